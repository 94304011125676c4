package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/lambdaemu"
	"github.com/loomipay/loomipay/internal/testenv"
)

// TestDevSurvivesRestart: the local stack is stopped and started again (issue 20, item 3). An
// order paid before the restart is refunded after it, its cashier page of before still opens the
// same order, and a new order's cashier number does not repeat one of before — the sandbox keeps
// its state beside the stack's database.
func TestDevSurvivesRestart(t *testing.T) {
	useTestServers(t)
	stateDir := t.TempDir()
	apiAddr, sandboxAddr := freeAddr(t), freeAddr(t)
	apiURL := "http://" + apiAddr
	devRun := func() (stop func(), stdout *lambdaemu.LockedBuffer) {
		ctx, cancel := context.WithCancel(context.Background())
		stdout = &lambdaemu.LockedBuffer{}
		var stderr lambdaemu.LockedBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"dev", "--addr", apiAddr, "--sandbox-addr", sandboxAddr, "--state-dir", stateDir}, stdout, &stderr)
		}()
		testenv.Eventually(t, 30*time.Second, "dev to print its banner", func() bool { return strings.Contains(stdout.String(), "Ctrl-C") })
		return func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("dev stopped with %v\n%s", err, stderr.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatal("dev did not stop")
			}
		}, stdout
	}
	type order struct {
		ID             string         `json:"id"`
		Status         string         `json:"status"`
		RefundedAmount int64          `json:"refunded_amount"`
		ExtraData      map[string]any `json:"extra_data"`
	}
	var key string
	get := func(id string) order {
		t.Helper()
		code, body := testenv.Do(t, apiURL, "GET", "/api/v1/payment-orders/"+id+"?app_id=demo_app", key, "")
		if code != http.StatusOK {
			t.Fatalf("get %s = %d %s", id, code, body)
		}
		var o order
		if err := json.Unmarshal(body, &o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	checkout := func(id string) order {
		t.Helper()
		code, body := testenv.Do(t, apiURL, "POST", "/api/v1/payment-orders", key,
			`{"app_id":"demo_app","merchant_order_id":"`+id+`","amount":3000,"order_type":"payment","subject":"before and after"}`)
		if code != http.StatusAccepted {
			t.Fatalf("create %s = %d %s", id, code, body)
		}
		var o order
		testenv.Eventually(t, 20*time.Second, "a payment URL for "+id, func() bool { o = get(id); return o.Status == "processing" })
		return o
	}

	stop, out := devRun()
	m := regexp.MustCompile(`(?m)^\s+(lp_\S+)$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no API key in the first banner:\n%s", out.String())
	}
	key = m[1]
	before := checkout("BEFORE")
	page, _ := before.ExtraData["payment_url"].(string)
	resp, err := http.PostForm(page, url.Values{"action": {"pay"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	testenv.Eventually(t, 15*time.Second, "BEFORE to succeed", func() bool { return get("BEFORE").Status == "succeeded" })
	stop()

	stop, _ = devRun()
	defer stop()
	code, body := testenv.Do(t, apiURL, "POST", "/api/v1/refund-orders", key,
		`{"app_id":"demo_app","payment_order_id":"`+before.ID+`","amount":1200,"reason":"after the restart"}`)
	if code != http.StatusAccepted {
		t.Fatalf("refund after the restart = %d %s", code, body)
	}
	testenv.Eventually(t, 20*time.Second, "the refund of an order paid before the restart", func() bool {
		return get("BEFORE").RefundedAmount == 1200
	})
	resp, err = http.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	payOrderNo := page[strings.LastIndex(page, "/")+1:]
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(html), payOrderNo) || !strings.Contains(string(html), "refunded") {
		t.Fatalf("the cashier page of before after the restart: HTTP %d\n%s", resp.StatusCode, html)
	}
	after := checkout("AFTER")
	afterPage, _ := after.ExtraData["payment_url"].(string)
	if afterNo := afterPage[strings.LastIndex(afterPage, "/")+1:]; afterNo == payOrderNo || afterNo <= payOrderNo {
		t.Fatalf("the cashier number after the restart, %s, repeats or precedes %s", afterNo, payOrderNo)
	}
}

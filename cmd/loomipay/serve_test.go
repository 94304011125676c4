package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/lambdaemu"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/service"
)

func TestOperatorCommandsNeedADatabaseOrLocal(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	t.Setenv("DATABASE_URL_SECRET_ARN", "")
	for _, args := range [][]string{{"migrate"}, {"keys", "list"}, {"keys", "create", "--app-id", "x"}, {"process"}} {
		stdout, _, err := runCmd(t, args...)
		if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") || !strings.Contains(err.Error(), "--local") {
			t.Errorf("%v without DATABASE_URL: err = %v; want one naming DATABASE_URL and --local", args, err)
		}
		if stdout != "" {
			t.Errorf("%v printed %q", args, stdout)
		}
	}
}

func TestProdRefusesTestLakalaSettings(t *testing.T) {
	useTestServers(t)
	t.Setenv("STAGE", "prod")
	_, _, err := runCmd(t, "keys", "list")
	if err == nil {
		t.Fatal("keys list with STAGE=prod and Lakala's test identity succeeded")
	}
	// The default base URL is https, but Lakala's test environment, which prod refuses too.
	for _, name := range []string{"LAKALA_BASE_URL", "LAKALA_APP_ID", "LAKALA_MERCHANT_NO", "LAKALA_SERIAL_NO", "LAKALA_TERM_NO"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs a command in the background until the test ends, and checks it stops cleanly.
func start(t *testing.T, stdout *lambdaemu.LockedBuffer, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr lambdaemu.LockedBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%v stopped with %v\n%s", args, err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%v did not stop after SIGINT/SIGTERM (context cancelled)", args)
		}
	})
}

// TestServeAndWorkerTakeAPayment runs the service as it is hosted outside Lambda: `loomipay
// serve` and `loomipay worker` configured only by environment variables, against `loomipay
// sandbox` as a separate Lakala.
func TestServeAndWorkerTakeAPayment(t *testing.T) {
	store := useTestServers(t)
	sandboxURL := startSandboxProcess(t)
	apiAddr := freeAddr(t)
	t.Setenv("LAKALA_NOTIFY_URL", "http://"+apiAddr+"/webhooks/lakala")
	t.Setenv("REQUEST_TIMEOUT", "3s")

	if err := store.EnsureApp(context.Background(), "shop_cn"); err != nil {
		t.Fatal(err)
	}
	key, _, err := service.New(store, testenv.Streams(t), testenv.Logger(), service.Config{}).CreateAPIKey(context.Background(), "shop_cn", "")
	if err != nil {
		t.Fatal(err)
	}
	var serveOut, workerOut lambdaemu.LockedBuffer
	start(t, &serveOut, "serve", "--addr", apiAddr)
	start(t, &workerOut, "worker")
	apiURL := "http://" + apiAddr
	testenv.Eventually(t, 10*time.Second, "serve to listen", func() bool { return strings.Contains(serveOut.String(), apiURL) })

	code, body := testenv.Do(t, apiURL, "POST", "/api/v1/payment-orders", key,
		`{"app_id":"shop_cn","merchant_order_id":"SERVE_1","amount":1200,"order_type":"payment","subject":"served"}`)
	if code != http.StatusAccepted {
		t.Fatalf("create = %d %s", code, body)
	}
	var order struct {
		Status    string         `json:"status"`
		ExtraData map[string]any `json:"extra_data"`
	}
	get := func() {
		code, body := testenv.Do(t, apiURL, "GET", "/api/v1/payment-orders/SERVE_1?app_id=shop_cn", key, "")
		if code != http.StatusOK {
			t.Fatalf("get = %d %s", code, body)
		}
		if err := json.Unmarshal(body, &order); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 15*time.Second, "the worker to issue a payment URL", func() bool {
		get()
		return order.Status == "processing"
	})
	paymentURL, _ := order.ExtraData["payment_url"].(string)
	if !strings.HasPrefix(paymentURL, sandboxURL) {
		t.Fatalf("payment_url = %q; want one of the sandbox at %s", paymentURL, sandboxURL)
	}
	resp, err := http.PostForm(paymentURL, url.Values{"action": {"pay"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("paying at the cashier = %d", resp.StatusCode)
	}
	testenv.Eventually(t, 15*time.Second, "the sandbox's notification, through serve, to settle the order", func() bool {
		get()
		return order.Status == "succeeded"
	})
}

func TestDevNamesTheFlagOfABusyPort(t *testing.T) {
	useTestServers(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	for _, tc := range []struct{ flag string }{{"--addr"}, {"--sandbox-addr"}} {
		args := []string{"dev", "--addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0", "--state-dir", t.TempDir()}
		for i := range args {
			if args[i] == tc.flag {
				args[i+1] = busy
			}
		}
		_, _, err := runCmd(t, args...)
		if err == nil || !strings.Contains(err.Error(), tc.flag+" ") || !strings.Contains(err.Error(), busy) || !strings.Contains(err.Error(), "in use") {
			t.Errorf("dev with %s on a busy port: err = %v; want one naming %s, the address and 'in use'", tc.flag, err, tc.flag)
		}
	}
}

// TestDevWithConfiguredLakala runs `loomipay dev --lakala env` against a Lakala it does not start
// (a separate `loomipay sandbox`), configured only by the LAKALA_* variables.
func TestDevWithConfiguredLakala(t *testing.T) {
	useTestServers(t)
	sandboxURL := startSandboxProcess(t)
	t.Setenv("LAKALA_NOTIFY_URL", "")

	var devOut lambdaemu.LockedBuffer
	start(t, &devOut, "dev", "--lakala", "env", "--addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:1", "--state-dir", t.TempDir())
	var apiURL, key string
	testenv.Eventually(t, 20*time.Second, "dev to print its banner", func() bool {
		m := regexp.MustCompile(`API and webhook\s+(http://\S+)`).FindStringSubmatch(devOut.String())
		k := regexp.MustCompile(`(?m)^\s+(lp_\S+)$`).FindStringSubmatch(devOut.String())
		if m == nil || k == nil {
			return false
		}
		apiURL, key = m[1], k[1]
		return true
	})
	if strings.Contains(devOut.String(), "Lakala sandbox") || !strings.Contains(devOut.String(), sandboxURL) {
		t.Errorf("banner does not name the configured Lakala %s (or names a sandbox):\n%s", sandboxURL, devOut.String())
	}
	code, body := testenv.Do(t, apiURL, "POST", "/api/v1/payment-orders", key,
		`{"app_id":"demo_app","merchant_order_id":"ENV_1","amount":800,"order_type":"payment","subject":"env lakala"}`)
	if code != http.StatusAccepted {
		t.Fatalf("create = %d %s", code, body)
	}
	var order struct {
		Status    string         `json:"status"`
		ExtraData map[string]any `json:"extra_data"`
	}
	testenv.Eventually(t, 15*time.Second, "a payment URL from the configured Lakala", func() bool {
		_, body := testenv.Do(t, apiURL, "GET", "/api/v1/payment-orders/ENV_1?app_id=demo_app", key, "")
		_ = json.Unmarshal(body, &order)
		return order.Status == "processing"
	})
	if u, _ := order.ExtraData["payment_url"].(string); !strings.HasPrefix(u, sandboxURL) {
		t.Errorf("payment_url = %q; want one of the configured Lakala %s", u, sandboxURL)
	}
}

// startSandboxProcess runs `loomipay sandbox` as a separate process with the test merchant's
// certificate, points LAKALA_BASE_URL, LAKALA_PRIVATE_KEY and LAKALA_PLATFORM_CERT at it, and
// returns its URL.
func startSandboxProcess(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	merchant := testenv.MerchantKey(t)
	der, err := x509.MarshalPKIXPublicKey(&merchant.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, platformCert := filepath.Join(dir, "merchant.pem"), filepath.Join(dir, "platform.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	var sbOut lambdaemu.LockedBuffer
	start(t, &sbOut, "sandbox", "--addr", "127.0.0.1:0", "--merchant-cert", certFile, "--platform-cert-out", platformCert)
	var sandboxURL string
	testenv.Eventually(t, 10*time.Second, "the sandbox to listen", func() bool {
		m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(sbOut.String())
		if m != nil {
			sandboxURL = m[1]
		}
		return m != nil
	})
	cert, err := os.ReadFile(platformCert)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LAKALA_BASE_URL", sandboxURL)
	t.Setenv("LAKALA_PRIVATE_KEY", string(lakala.MarshalPrivateKeyPEM(merchant)))
	t.Setenv("LAKALA_PLATFORM_CERT", string(cert))
	return sandboxURL
}

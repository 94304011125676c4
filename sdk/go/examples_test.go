package loomipay_test

import (
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExamples builds each example and runs it against the stack, as a reader would.
func TestExamples(t *testing.T) {
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./examples/...")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build examples: %v\n%s", err, out)
	}
	env := append(os.Environ(), "LOOMI_PAY_BASE_URL="+stack.baseURL, "LOOMI_PAY_API_KEY="+stack.apiKey,
		"APP_ID="+stack.appID, "REDIS_URL="+stack.appRedisURL, "STREAM_PREFIX="+stack.prefix)
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(dir, name), args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	if out := run("quickstart"); !strings.Contains(out, "send the payer to http") {
		t.Errorf("quickstart printed:\n%s", out)
	}
	paid := paidOrder(t, newClient(t), uniqueID("example"), 5000)
	if out := run("refund", paid.MerchantOrderID, "1500"); !strings.Contains(out, "read back by merchant_refund_id") {
		t.Errorf("refund printed:\n%s", out)
	}
	if out := run("results", "-for", "2s"); !strings.Contains(out, paid.MerchantOrderID+" processing → succeeded") {
		t.Errorf("results printed:\n%s", out)
	}

	// The webhook receiver, behind the stack's forwarding: dev's webhooks reach it through a proxy.
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	hook := exec.Command(filepath.Join(dir, "webhook"), "-addr", addr)
	hook.Env, hook.Stdout, hook.Stderr = append(env, "LOOMI_WEBHOOK_SECRET="+stack.webhookSecret), &out, &out
	if err := hook.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hook.Process.Kill(); _ = hook.Wait() }()
	eventually(t, 10*time.Second, "the webhook example listening", func() bool { return strings.Contains(out.String(), "receiving webhooks") })
	stack.hooks.set(httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr}))
	defer stack.hooks.set(nil)
	paid = paidOrder(t, newClient(t), uniqueID("example-webhook"), 3000)
	eventually(t, 20*time.Second, "the webhook example applying "+paid.MerchantOrderID, func() bool {
		return strings.Contains(out.String(), paid.MerchantOrderID+" #2 processing → succeeded")
	})
}

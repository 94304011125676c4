package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/webhooks"
)

func TestWebhooksCommands(t *testing.T) {
	store := useTestServers(t)
	const key = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"
	t.Setenv("WEBHOOK_SECRET_KEY", key)
	t.Setenv("WEBHOOK_ALLOW_LOOPBACK", "true")
	ctx := context.Background()
	if _, stderr, err := runCmd(t, "apps", "create", "shop_b"); err != nil {
		t.Fatalf("apps create: %v %s", err, stderr)
	}
	var hits atomic.Int32
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer rc.Close()

	if _, _, err := runCmd(t, "webhooks", "add", "--app-id", "no_such_app", "--url", rc.URL); err == nil {
		t.Error("webhooks add for an unknown app succeeded")
	}
	stdout, stderr, err := runCmd(t, "webhooks", "add", "--app-id", "shop_b", "--url", rc.URL+"/hook", "--events", "payment_status_changed")
	if err != nil {
		t.Fatalf("webhooks add: %v %s", err, stderr)
	}
	if !regexp.MustCompile(`^whsec_[0-9a-f]{64}\n$`).MatchString(stdout) {
		t.Fatalf("webhooks add stdout = %q; want the secret alone", stdout)
	}
	epID := regexp.MustCompile(`we_[0-9a-f]{16}`).FindString(stderr)
	if epID == "" || strings.Contains(stderr, strings.TrimSpace(stdout)) {
		t.Fatalf("webhooks add stderr = %q; want the endpoint id and not the secret", stderr)
	}
	stdout, _, err = runCmd(t, "webhooks", "list", "--app-id", "shop_b")
	if err != nil || !strings.Contains(stdout, epID) || !strings.Contains(stdout, rc.URL+"/hook") || strings.Contains(stdout, "whsec_") {
		t.Errorf("webhooks list = %q, %v", stdout, err)
	}

	// A result event, delivered by the engine the processor runs.
	eventID := uuid.NewString()
	if _, err := store.Pool().Exec(ctx, `INSERT INTO outbox (event_id, stream, fields) VALUES ($1, 'payment_results', $2)`, eventID,
		map[string]string{"event_id": eventID, "event_type": "payment_status_changed", "app_id": "shop_b", "payment_order_id": "o1", "seq": "1"}); err != nil {
		t.Fatal(err)
	}
	w, err := webhooks.New(store.Pool(), webhooks.Config{SecretKey: key, AllowLoopback: true}, testenv.Logger())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	stdout, _, err = runCmd(t, "webhooks", "deliveries", "--endpoint", epID)
	if err != nil || !regexp.MustCompile(eventID+`\s+payment_status_changed\s+o1\s+1\s+delivered\s+1`).MatchString(stdout) ||
		!regexp.MustCompile(`attempt\s+\S+\s+status 200`).MatchString(stdout) {
		t.Errorf("webhooks deliveries = %q, %v", stdout, err)
	}
	if _, stderr, err := runCmd(t, "webhooks", "redeliver", eventID); err != nil || !strings.Contains(stderr, "1 endpoint") {
		t.Fatalf("redeliver: %v %s", err, stderr)
	}
	if _, err := w.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 2 {
		t.Errorf("receiver got %d requests; want 2 (delivery and redelivery)", hits.Load())
	}
	stdout, stderr, err = runCmd(t, "webhooks", "rotate-secret", epID)
	if err != nil || !regexp.MustCompile(`^whsec_[0-9a-f]{64}\n$`).MatchString(stdout) || !strings.Contains(stderr, "until") {
		t.Errorf("rotate-secret = %q %q %v", stdout, stderr, err)
	}
	if _, _, err := runCmd(t, "webhooks", "disable", epID); err != nil {
		t.Fatal(err)
	}
	stdout, _, _ = runCmd(t, "webhooks", "list")
	if !strings.Contains(stdout, "disabled") {
		t.Errorf("list after disable = %q", stdout)
	}
	for _, args := range [][]string{
		{"webhooks"}, {"webhooks", "add", "--app-id", "shop_b"}, {"webhooks", "add", "--app-id", "shop_b", "--url", "http://10.0.0.1/"},
		{"webhooks", "disable", "we_nope"}, {"webhooks", "deliveries"}, {"webhooks", "redeliver", uuid.NewString()},
		{"webhooks", "rotate-secret", "we_nope"}, {"webhooks", "frob"},
	} {
		if stdout, _, err := runCmd(t, args...); err == nil || stdout != "" {
			t.Errorf("%v = %q, %v; want an error and nothing on stdout", args, stdout, err)
		}
	}
}

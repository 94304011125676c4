package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/apicheck"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/httpapi"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

func TestCreateOrderWhileRedisIsDown(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{SweepGrace: time.Nanosecond}})
	ctx := context.Background()

	// The same database as the stack, but a Redis that refuses every connection.
	deadRedis, err := streams.NewClient("redis://127.0.0.1:1/0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deadRedis.Close() })
	cut := service.New(s.Store, streams.New(deadRedis, streams.Config{Prefix: "unreachable:"}), testenv.Logger(), service.Config{})
	api := httptest.NewServer(apicheck.Middleware(t, httpapi.New(cut).Handler()))
	t.Cleanup(api.Close)

	code, body := testenv.Do(t, api.URL, "POST", ordersPath, s.APIKey, orderBody(t, "nored-1", nil))
	if code != http.StatusAccepted {
		t.Fatalf("create with Redis down = %d %s; want 202", code, body)
	}
	o := decodeOrder(t, body)
	code, ready := testenv.Do(t, api.URL, "GET", "/readyz", "", "")
	checkError(t, code, ready, http.StatusServiceUnavailable, "service_unavailable", "redis")
	if got := count(t, s, "SELECT count(*) FROM payment_orders WHERE id = $1 AND status = 'pending'", o.ID); got != 1 {
		t.Fatalf("pending order rows = %d; want 1", got)
	}
	unpublished := "SELECT count(*) FROM tasks WHERE kind = 'payment' AND subject_id = $1 AND state = 'queued' AND published_at IS NULL"
	if got := count(t, s, unpublished, o.ID); got != 1 {
		t.Fatalf("queued, unpublished payment tasks = %d; want 1", got)
	}
	if got := taskStreamLen(t, s); got != 0 {
		t.Fatalf("task stream entries = %d; want 0 before the sweep", got)
	}

	st, err := s.Processor.RunOnce(ctx)
	if err != nil {
		t.Fatalf("processor run: %v", err)
	}
	if st.Republished != 1 {
		t.Errorf("sweep republished %d tasks; want 1", st.Republished)
	}
	if got := taskStreamLen(t, s); got != 1 {
		t.Errorf("task stream entries = %d; want 1 after the sweep", got)
	}
	if got := count(t, s, "SELECT count(*) FROM tasks WHERE subject_id = $1 AND published_at IS NOT NULL", o.ID); got != 1 {
		t.Errorf("tasks marked published = %d; want 1", got)
	}
	// The processor drained what the sweep published: the order reached the gateway.
	if got := count(t, s, "SELECT count(*) FROM tasks WHERE subject_id = $1 AND state = 'done'", o.ID); got != 1 {
		t.Errorf("done tasks = %d; want 1", got)
	}
	code, body = s.Do(t, "GET", ordersPath+"/nored-1?app_id=test_app", s.APIKey, "")
	if code != http.StatusOK || decodeOrder(t, body).Status != "processing" {
		t.Errorf("GET after the sweep = %d %s; want 200 processing", code, body)
	}
}

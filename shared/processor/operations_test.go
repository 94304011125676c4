package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/metrics"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/processor"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The maintenance pass prunes the evidence logs, records its heartbeat and emits the gauges.
func TestMaintenanceOperations(t *testing.T) {
	var out syncBuffer
	s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{
		EvidenceRetention: 24 * time.Hour, Metrics: metrics.New(&out, "LoomiPay/test")}})
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	for _, at := range []time.Time{old, time.Now()} {
		if err := s.Store.RecordGatewayCall(ctx, postgres.GatewayCall{Operation: "query", OutNo: "X", Outcome: "ok", DurationMS: 1, CalledAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.SeedNotification(t, s.Store, "", "X", "unknown_order", false)
	if _, err := s.Store.Pool().Exec(ctx, `INSERT INTO notifications (received_at, verified, result, body_sha256) VALUES ($1, false, 'refused_signature', 'x')`, old); err != nil {
		t.Fatal(err)
	}
	pending := testenv.SeedOrder(t, s.Store, s.AppID, "DEAD-1", "failed", 100)
	testenv.SeedDeadTask(t, s.Store, s.Streams, "payment", pending, "x")
	s.CreateOrder(t, "M-1", 100)
	if _, err := s.Store.Pool().Exec(ctx, `INSERT INTO task_lag_minutes (minute, lag_seconds) VALUES (now() - interval '40 days', 5)`); err != nil {
		t.Fatal(err)
	}

	s.RunOnce(t)

	// The minute's task lag is kept for the overview's chart, and the one older than 31 days dropped.
	var lagRows, thisMinute int
	_ = s.Store.Pool().QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE minute > now() - interval '2 minutes') FROM task_lag_minutes`).Scan(&lagRows, &thisMinute)
	if lagRows != 1 || thisMinute != 1 {
		t.Fatalf("task_lag_minutes: %d rows, %d of the last minutes; want only the run's minute", lagRows, thisMinute)
	}

	var calls, notes int
	_ = s.Store.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM gateway_calls WHERE out_no = 'X'), (SELECT count(*) FROM notifications)`).Scan(&calls, &notes)
	if calls != 1 || notes != 1 {
		t.Fatalf("after pruning: %d gateway calls, %d notifications; want 1 and 1 (the old ones pruned)", calls, notes)
	}
	hb, err := ops.ReadHeartbeat(ctx, s.Store, ops.HeartbeatProcessor)
	if err != nil || time.Since(hb.At) > time.Minute || !strings.Contains(string(hb.Detail), "stats") {
		t.Fatalf("heartbeat %+v, %v", hb, err)
	}
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.Contains(l, `"DeadLetters"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil {
		t.Fatalf("no gauge line in %q", out.String())
	}
	if line["DeadLetters"] != 1.0 || line["OrdersCreated"] != 2.0 || line["ProcessorRuns"] != 1.0 || line["NotificationsRefused"] != 1.0 {
		t.Fatalf("gauges %v", line)
	}
}

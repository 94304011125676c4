package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
	"github.com/loomipay/loomipay/shared/streams"
)

const (
	// lakalaLatency is what the sandbox adds to every Lakala call in row 5.
	lakalaLatency = 50 * time.Millisecond
	// drainConcurrency is processor.Config.Concurrency in row 5: the default. At 50 ms per call
	// the ceiling is 64 / 0.05 s = 1,280 tasks/s, 2.5 × the target, and 64 connections' worth
	// of Lakala calls in flight stays well inside one Lambda's file and memory limits.
	drainConcurrency = 64
)

// queueTasks inserts n pending orders with their queued payment tasks in one statement and
// puts the tasks on the stream, as n creates would have. It returns the publish time.
func queueTasks(t testing.TB, s *testenv.Stack, n int) {
	t.Helper()
	ctx := context.Background()
	run := testenv.UniqueName("D")
	rows, err := s.Store.Pool().Query(ctx, `
		WITH o AS (
			INSERT INTO payment_orders (id, app_id, merchant_order_id, status, order_type, amount, currency,
				payment_gateway, subject, extra_data, created_at, updated_at)
			SELECT gen_random_uuid(), $1, $2 || g, 'pending', 'payment', 10000, 'CNY', 'lakala',
				'VIP membership', '{"user_id":"user_12345"}', now(), now()
			FROM generate_series(1, $3::int) g
			RETURNING id
		)
		INSERT INTO tasks (kind, subject_id, created_at, updated_at, next_attempt_at, published_at)
		SELECT 'payment', id, now(), now(), now(), now() FROM o
		RETURNING id, subject_id::text`, s.AppID, run+"_", n)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []streams.TaskMessage
	for rows.Next() {
		var m streams.TaskMessage
		if err := rows.Scan(&m.TaskID, &m.SubjectID); err != nil {
			t.Fatal(err)
		}
		m.Kind = "payment"
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Streams.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	for len(msgs) > 0 {
		k := min(1000, len(msgs))
		if err := s.Streams.PublishTasks(ctx, msgs[:k]...); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[k:]
	}
}

// drainOnce queues n tasks on a fresh stack with a slow sandbox and times one processor
// draining them; it checks every order reached processing.
func drainOnce(t testing.TB, n, concurrency int) float64 {
	t.Helper()
	s := testenv.NewStack(t, testenv.StackOptions{NoAPICheck: true, Processor: processor.Config{Concurrency: concurrency}})
	queueTasks(t, s, n)
	s.SetFaults(sandbox.Faults{Latency: lakalaLatency})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	st, err := s.Processor.Drain(ctx, 0)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	var processing int
	if err := s.Store.Pool().QueryRow(ctx, "SELECT count(*) FROM payment_orders WHERE status = 'processing'").Scan(&processing); err != nil {
		t.Fatal(err)
	}
	if st.Handled != n || processing != n {
		t.Fatalf("drain handled %d, %d orders processing; want %d (stats %+v)", st.Handled, processing, n, st)
	}
	return float64(n) / took.Seconds()
}

// testDrain is row 5.
func testDrain(t *testing.T) {
	sz := size()
	var rates []float64
	for range sz.DrainRuns {
		t.Run("run", func(t *testing.T) { rates = append(rates, drainOnce(t, sz.DrainTasks, drainConcurrency)) })
	}
	r := SummarizeLow(rates)
	record(&Row{N: 5, What: fmt.Sprintf("processor drain of %d queued payment tasks, Lakala +%s per call, one processor", sz.DrainTasks, lakalaLatency),
		Figures: []string{
			fig("tasks/s", r, perSec),
			fmt.Sprintf("concurrency %d (processor.Config.Concurrency, the default): ceiling %d / %.2f s = %.0f tasks/s",
				drainConcurrency, drainConcurrency, lakalaLatency.Seconds(), float64(drainConcurrency)/lakalaLatency.Seconds()),
		},
		Ratio:   fmt.Sprintf("%.0f tasks/s", r.Median),
		Target:  "≥ 500 tasks/s",
		Met:     met(r.Median >= 500),
		Command: command("drain"),
		Notes: []string{"Each task: claim in Postgres, read the order, a signed cashier-order call to the sandbox over " +
			"HTTP (RSA-SHA256 signature, verified response), the order's transition with its outbox row and the task's " +
			"completion in one statement, the result message, the ack: 4 Postgres statements and 2 Redis commands. " +
			"Why 64: the work per task is I/O wait (the 50 ms call) plus a few ms of CPU; 500/s needs at least 25 in " +
			"flight, and 64 leaves room for Lakala slower than 50 ms while bounding the connections to Lakala and the " +
			"Postgres pool's queue.",
			"What the profiles changed (2026-11-27; `go test ./bench -run '^$' -bench ProcessorDrain -benchtime 4000x " +
				"-cpuprofile /tmp/drain.cpu`, then `go tool pprof -top -cum bench.test /tmp/drain.cpu`): the first run " +
				"gave 374 tasks/s. (1) The Lakala client used Go's default transport, which keeps 2 idle connections per " +
				"host, so 64 calls in flight kept opening new connections (a TLS handshake each against the real Lakala); " +
				"it now keeps as many as calls in flight. (2) The drain read 64 tasks and waited for the slowest before " +
				"reading more, so only 1.2 of the 2 cores were busy; it now reads whenever a worker is free. (3) The " +
				"pending → processing transition took 6 round trips (BEGIN, locked read, update, outbox insert, task " +
				"update, COMMIT); it is now one statement. Together: 374 → about 500–540 tasks/s, noisy on this shared machine.",
			"What is left: 75 % of the process's CPU is RSA-2048 signing (`crypto/rsa.SignPKCS1v15`), half in " +
				"`lakala.SignRequest` (our request signature, which Lakala's protocol requires on every call, unique per " +
				"request, so not cacheable) and half in the sandbox's `lakala.SetResponseSignature` (Lakala's side, which " +
				"in production runs on Lakala's machines). About 1.1 ms per signature on this CPU, two per task, on 2 " +
				"cores shared with PostgreSQL and Redis: the drain is CPU-bound there, not concurrency-bound, and raising " +
				"the concurrency cannot help (the 50 ms waits already overlap 64 at a time)."},
	})
}

// BenchmarkProcessorDrain is row 5 at b.N tasks, for profiling.
func BenchmarkProcessorDrain(b *testing.B) {
	rate := drainOnce(b, max(b.N, 10), drainConcurrency)
	b.ReportMetric(rate, "tasks/s")
}

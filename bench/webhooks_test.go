package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/webhooks"
)

const (
	webhookReceiverDelay = 50 * time.Millisecond
	webhookEndpoints     = 8 // × WEBHOOK_ENDPOINT_CONCURRENCY 4 = the default WEBHOOK_CONCURRENCY 32
	webhookBenchKey      = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
)

// webhookStack is a schema with one app, endpoints on a local receiver that answers 200 after
// 50 ms (calling seen with each event id on arrival), and the engine with its defaults.
func webhookStack(t testing.TB, endpoints int, seen func(eventID string)) (*postgres.Store, *webhooks.Webhooks) {
	t.Helper()
	store := testenv.Postgres(t)
	if err := store.EnsureApp(context.Background(), "bench_app"); err != nil {
		t.Fatal(err)
	}
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			seen(r.Header.Get("Loomi-Event-Id"))
		}
		time.Sleep(webhookReceiverDelay)
	}))
	t.Cleanup(rc.Close)
	w, err := webhooks.New(store.Pool(), webhooks.Config{SecretKey: webhookBenchKey, AllowLoopback: true}, testenv.Logger())
	if err != nil {
		t.Fatal(err)
	}
	for range endpoints {
		if _, _, err := w.AddEndpoint(context.Background(), "bench_app", rc.URL+"/hook", nil); err != nil {
			t.Fatal(err)
		}
	}
	return store, w
}

// insertEvents commits n result events (one order each) to the outbox in one statement.
func insertEvents(t testing.TB, store *postgres.Store, n int) {
	t.Helper()
	_, err := store.Pool().Exec(context.Background(), `INSERT INTO outbox (event_id, stream, fields)
		SELECT id, 'payment_results', jsonb_build_object('event_id', id::text, 'event_type', 'payment_status_changed',
			'app_id', 'bench_app', 'payment_order_id', gen_random_uuid()::text, 'new_status', 'succeeded', 'seq', '2', 'amount', '10000')
		FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, $1)) g`, n)
	if err != nil {
		t.Fatal(err)
	}
}

// webhookThroughput fans n events out to 8 endpoints and returns deliveries per second, from
// the engine's start until every delivery is acknowledged.
func webhookThroughput(t testing.TB, n int) float64 {
	t.Helper()
	store, w := webhookStack(t, webhookEndpoints, nil)
	insertEvents(t, store, n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { w.Run(ctx, nil); close(done) }()
	want := n * webhookEndpoints
	for {
		var delivered int
		if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered'`).Scan(&delivered); err != nil {
			t.Fatal(err)
		}
		if delivered == want {
			break
		}
		if time.Since(start) > 5*time.Minute {
			t.Fatalf("only %d of %d deliveries after 5 min", delivered, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cancel()
	<-done
	return float64(want) / elapsed.Seconds()
}

// webhookLatencies commits n events one at a time, as a status change does (outbox row, then
// the publish that follows the commit), and times each from its commit to its request arriving
// at the receiver (before the receiver's 50 ms).
func webhookLatencies(t testing.TB, n int) []time.Duration {
	t.Helper()
	var mu sync.Mutex
	arrived := map[string]chan struct{}{}
	store, w := webhookStack(t, 1, func(id string) {
		mu.Lock()
		ch := arrived[id]
		mu.Unlock()
		if ch != nil {
			close(ch)
		}
	})
	st := testenv.Streams(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	wake := st.ResultWakeups(ctx)
	go func() { w.Run(ctx, wake); close(done) }()
	defer func() { cancel(); <-done }()
	lat := make([]time.Duration, 0, n)
	for range n {
		id := uuid.Must(uuid.NewV7()).String()
		ch := make(chan struct{})
		mu.Lock()
		arrived[id] = ch
		mu.Unlock()
		fields := map[string]string{"event_id": id, "event_type": "payment_status_changed", "app_id": "bench_app",
			"payment_order_id": uuid.NewString(), "seq": "1"}
		start := time.Now()
		if _, err := store.Pool().Exec(ctx, `INSERT INTO outbox (event_id, stream, fields) VALUES ($1, 'payment_results', $2)`, id, fields); err != nil {
			t.Fatal(err)
		}
		if err := st.PublishResults(ctx, []pay.ResultMessage{{EventID: id, Stream: pay.StreamPaymentResults, Fields: fields}}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("event %s not delivered within 30 s", id)
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}

// testWebhooks is row 11.
func testWebhooks(t *testing.T) {
	sz := size()
	var rates, p99s, p50s []float64
	var all []time.Duration
	for range sz.WebhookRuns {
		rates = append(rates, webhookThroughput(t, sz.WebhookEvents))
		lat := webhookLatencies(t, sz.WebhookSamples)
		all = append(all, lat...)
		p50s = append(p50s, float64(Percentile(lat, 50)))
		p99s = append(p99s, float64(Percentile(lat, 99)))
	}
	rate := SummarizeLow(rates)
	bound := float64(webhookEndpoints*4) / webhookReceiverDelay.Seconds() // slots / receiver time
	p99 := Summarize(p99s)
	record(&Row{N: 12, What: "webhooks: deliveries/s to a receiver answering in 50 ms; commit → delivery p99",
		Figures: []string{
			fig("deliveries per second", rate, perSec),
			fmt.Sprintf("bound at 32 in flight / 50 ms: %.0f/s", bound),
			fig("commit → request at the receiver, p50 per run", Summarize(p50s), msf),
			fig("commit → request at the receiver, p99 per run", p99, msf),
			fmt.Sprintf("all %d latency samples: p50 %s, p99 %s, max %s", len(all), ms(Percentile(all, 50)), ms(Percentile(all, 99)), ms(Percentile(all, 100))),
		},
		Ratio:   fmt.Sprintf("%.0f%% of the bound; p99 %s", 100*rate.Median/bound, msf(p99.Median)),
		Target:  "≥ 60% of the bound; p99 ≤ 100 ms",
		Met:     met(rate.Median >= 0.6*bound && p99.Median <= float64(100*time.Millisecond)),
		Command: command("webhooks"),
		Notes: []string{fmt.Sprintf("Throughput: %d result events committed to the outbox, fanned out to %d endpoints of one app "+
			"(%d deliveries), sent with the default limits (32 in flight, 4 per endpoint) to one local HTTP receiver "+
			"that answers 200 after 50 ms; timed from the engine's start until every delivery is recorded delivered "+
			"(fan-out, claim, signed POST, attempt row and state update each). Latency: %d events committed one at a "+
			"time as a status change does (the outbox INSERT commits, then the results are published to Redis, which "+
			"also notifies the engine on a pub/sub channel), each timed from the commit to its request reaching the "+
			"receiver. Without that notification (Redis down) the engine finds new events by polling every 200 ms.",
			sz.WebhookEvents, webhookEndpoints, sz.WebhookEvents*webhookEndpoints, sz.WebhookSamples)},
	})
}

// BenchmarkWebhookDelivery is row 11's throughput at b.N events (× 8 endpoints).
func BenchmarkWebhookDelivery(b *testing.B) {
	b.ReportMetric(webhookThroughput(b, max(b.N, 10)), "deliveries/s")
}

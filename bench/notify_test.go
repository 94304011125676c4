package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
)

// notifyLatencies checks out n orders, then pays them one at a time at the sandbox and times
// each from the Pay call to the succeeded message being returned to a reader blocked on XREAD.
func notifyLatencies(t testing.TB, n int) []time.Duration {
	t.Helper()
	ctx := context.Background()
	s := testenv.NewStack(t, testenv.StackOptions{NoAPICheck: true})
	run := testenv.UniqueName("N")
	orders := make([]testenv.Order, n)
	for i := range orders {
		orders[i] = s.CreateOrder(t, fmt.Sprintf("%s_%d", run, i), 10000)
	}
	s.RunOnce(t)

	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	reader := redis.NewClient(opts)
	defer reader.Close()
	stream := s.Streams.Name(pay.StreamPaymentResults)
	// Read from the stream's current end by id, not "$": a message published before the
	// reader's XREAD arrives must still be seen.
	last := "0-0"
	if msgs, err := reader.XRevRangeN(ctx, stream, "+", "-", 1).Result(); err != nil {
		t.Fatal(err)
	} else if len(msgs) == 1 {
		last = msgs[0].ID
	}
	var lat []time.Duration
	for _, o := range orders {
		view, ok := s.Sandbox.Order(o.OutOrderNo())
		if !ok {
			t.Fatalf("order %s has no cashier order", o.MerchantOrderID)
		}
		got := make(chan error, 1)
		ready := make(chan struct{})
		go func() {
			close(ready)
			for {
				res, err := reader.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, last}, Block: 5 * time.Second}).Result()
				if err != nil {
					got <- fmt.Errorf("xread: %w", err)
					return
				}
				for _, m := range res[0].Messages {
					last = m.ID
					if m.Values["merchant_order_id"] == o.MerchantOrderID && m.Values["new_status"] == "succeeded" {
						got <- nil
						return
					}
				}
			}
		}()
		<-ready
		time.Sleep(time.Millisecond) // let the reader's XREAD reach Redis before the payment
		start := time.Now()
		if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}

// testNotify is row 6.
func testNotify(t *testing.T) {
	sz := size()
	var p50s, p99s []float64
	var all []time.Duration
	for range sz.Runs {
		lat := notifyLatencies(t, sz.NotifySamples)
		all = append(all, lat...)
		p50s = append(p50s, float64(Percentile(lat, 50)))
		p99s = append(p99s, float64(Percentile(lat, 99)))
	}
	p99 := Summarize(p99s)
	record(&Row{N: 6, What: "notification to result: sandbox Pay → webhook → message on payment_results",
		Figures: []string{
			fig("p50 per run", Summarize(p50s), msf),
			fig("p99 per run", p99, msf),
			fmt.Sprintf("all %d samples: p50 %s, p99 %s, max %s", len(all), ms(Percentile(all, 50)), ms(Percentile(all, 99)), ms(Percentile(all, 100))),
		},
		Ratio:   "p99 " + msf(p99.Median),
		Target:  "p99 ≤ 25 ms",
		Met:     met(p99.Median <= float64(25*time.Millisecond)),
		Command: command("notify"),
		Notes: []string{fmt.Sprintf("%d payments per run, one at a time. Each: the sandbox signs the notification "+
			"(RSA-SHA256) and POSTs it to the webhook over HTTP; the webhook verifies it, settles the order with its "+
			"outbox row in one transaction, publishes the message and marks it published. The clock starts before "+
			"Sandbox.Pay and stops when a separate client blocked on XREAD returns the message.", sz.NotifySamples)},
	})
}

// BenchmarkNotifyToResult is row 6 at b.N payments; it reports the p99.
func BenchmarkNotifyToResult(b *testing.B) {
	lat := notifyLatencies(b, max(b.N, 2))
	b.ReportMetric(float64(Percentile(lat, 99))/1e6, "p99-ms")
}

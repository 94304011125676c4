package loomipay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	loomipay "github.com/loomipay/loomipay/sdk/go"
)

// recorder is a handler that records what it applied and can fail on demand.
type recorder struct {
	mu      sync.Mutex
	applied []string // event ids
	results []loomipay.Result
	failing map[string]int // event id → failures left
}

func (r *recorder) handle(_ context.Context, res loomipay.Result) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing[res.EventID()] > 0 {
		r.failing[res.EventID()]--
		return errors.New("handler failed")
	}
	r.applied = append(r.applied, res.EventID())
	r.results = append(r.results, res)
	return nil
}

func (r *recorder) snapshot() ([]string, []loomipay.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.applied), slices.Clone(r.results)
}

func runConsumer(t *testing.T, cfg loomipay.ConsumerConfig, h loomipay.Handler) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c, err := loomipay.NewConsumer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consumer Run: %v", err)
		}
	})
}

func pending(t *testing.T, stream, group string) int64 {
	t.Helper()
	p, err := stack.rdb.XPending(context.Background(), stream, group).Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

// TestConsumerOnTheStack: the consumer sees an order's real status changes.
func TestConsumerOnTheStack(t *testing.T) {
	rec := &recorder{}
	runConsumer(t, loomipay.ConsumerConfig{Redis: stack.rdb, Group: "sdk_app_results", Prefix: stack.prefix,
		AppID: stack.appID, Block: 200 * time.Millisecond}, rec.handle)
	c := newClient(t)
	id := uniqueID("consume")
	paid := paidOrder(t, c, id, 500)
	eventually(t, 20*time.Second, "processing and succeeded messages", func() bool {
		_, results := rec.snapshot()
		var got []string
		for _, r := range results {
			if r.MerchantOrderID() == id {
				got = append(got, r.OldStatus()+">"+r.NewStatus())
			}
		}
		return slices.Equal(got, []string{"pending>processing", "processing>succeeded"})
	})
	_, results := rec.snapshot()
	var seqs []int64
	for _, r := range results {
		if seq, ok := r.Seq(); ok && r.MerchantOrderID() == id {
			seqs = append(seqs, seq)
		}
	}
	if len(seqs) != 2 || seqs[1] <= seqs[0] {
		t.Errorf("seq of the order's messages = %v; want two, increasing", seqs)
	}
	for _, r := range results {
		if r.MerchantOrderID() == id && (r.PaymentOrderID() != paid.ID || r.Amount() != 500 || r.EventType() != loomipay.EventPaymentStatusChanged || r.EventID() == "") {
			t.Errorf("message %v: want payment %s, amount 500, an event id", r.Fields, paid.ID)
		}
	}
	eventually(t, 5*time.Second, "every message acknowledged", func() bool {
		return pending(t, stack.prefix+loomipay.StreamPaymentResults, "sdk_app_results") == 0
	})
}

func TestConsumerRules(t *testing.T) {
	ctx := context.Background()
	prefix := stack.prefix + "rules" + uniqueID("") + ":"
	stream := prefix + loomipay.StreamPaymentResults
	add := func(eventID, app, order string, seq int) {
		t.Helper()
		fields := map[string]any{"event_type": loomipay.EventPaymentStatusChanged, "event_id": eventID, "app_id": app,
			"payment_order_id": order, "merchant_order_id": "m-" + order, "old_status": "pending", "new_status": "processing"}
		if seq > 0 {
			fields["seq"] = fmt.Sprint(seq)
		}
		if err := stack.rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: fields}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	const group = "rules_group"

	t.Run("a crashed consumer's message is claimed", func(t *testing.T) {
		if err := stack.rdb.XGroupCreateMkStream(ctx, stream, group, "0").Err(); err != nil {
			t.Fatal(err)
		}
		add("crashed", "app", "o0", 0)
		// Delivered to a consumer that dies before acknowledging.
		if err := stack.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "dead", Streams: []string{stream, ">"}}).Err(); err != nil {
			t.Fatal(err)
		}
	})

	rec := &recorder{failing: map[string]int{"flaky": 1}}
	store := &loomipay.MemoryStore{}
	runConsumer(t, loomipay.ConsumerConfig{Redis: stack.rdb, Group: group, Consumer: "alive", Prefix: prefix,
		Streams: []string{loomipay.StreamPaymentResults}, AppID: "app", Store: store,
		ClaimIdle: 300 * time.Millisecond, Block: 50 * time.Millisecond}, rec.handle)

	add("e1", "app", "o1", 1)
	add("e1", "app", "o1", 1)       // a repeat: dropped by event_id
	add("e2", "app", "o1", 3)       // applied
	add("e3", "app", "o1", 2)       // stale: seq 2 after 3
	add("e4", "other_app", "o9", 1) // another app's
	add("e5", "app", "o2", 1)       // another order: its own seq
	add("flaky", "app", "o3", 0)    // the handler fails once: redelivered after ClaimIdle
	add("noseq", "app", "o1", 0)    // without seq (before the service sent one): applied

	want := []string{"crashed", "e1", "e2", "e5", "noseq", "flaky"}
	eventually(t, 10*time.Second, "every message handled", func() bool {
		applied, _ := rec.snapshot()
		return len(applied) >= len(want) && pending(t, stream, group) == 0
	})
	applied, _ := rec.snapshot()
	slices.Sort(applied)
	slices.Sort(want)
	if !slices.Equal(applied, want) {
		t.Errorf("applied %v; want %v (no repeat, no stale seq, no other app)", applied, want)
	}
	if seq, ok, _ := store.LastSeq(ctx, "payment:o1"); !ok || seq != 3 {
		t.Errorf("last seq of o1 = %d %v; want 3", seq, ok)
	}
}

func TestConsumerAcksOnlyAfterSuccess(t *testing.T) {
	ctx := context.Background()
	prefix := stack.prefix + "ack" + uniqueID("") + ":"
	stream := prefix + loomipay.StreamRefundResults
	rec := &recorder{failing: map[string]int{"r1": 1000}}
	runConsumer(t, loomipay.ConsumerConfig{Redis: stack.rdb, Group: "g", Prefix: prefix,
		Streams: []string{loomipay.StreamRefundResults}, ClaimIdle: time.Hour, Block: 50 * time.Millisecond}, rec.handle)
	// The consumer makes its group as it starts; count pending messages only once it exists.
	eventually(t, 5*time.Second, "the consumer's group", func() bool {
		groups, err := stack.rdb.XInfoGroups(ctx, stream).Result()
		return err == nil && len(groups) == 1
	})
	if err := stack.rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"event_id": "r1", "refund_order_id": "x", "seq": "1"}}).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the message delivered", func() bool { return pending(t, stream, "g") == 1 })
	// The handler saw the message and failed (a consumer that dropped it would also leave it pending).
	eventually(t, 5*time.Second, "the handler called", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.failing["r1"] < 1000
	})
	time.Sleep(200 * time.Millisecond)
	if n := pending(t, stream, "g"); n != 1 {
		t.Fatalf("pending = %d after the handler failed; want 1 (not acknowledged)", n)
	}
	if applied, _ := rec.snapshot(); len(applied) != 0 {
		t.Fatalf("applied %v; want nothing", applied)
	}
}

// A refund message counts by its refund on an app's own stream too (refund_results:{APP}), not
// by its payment order: otherwise its seq 1 would be dropped as stale after the order's seq 2.
func TestSubjectOnOwnStreams(t *testing.T) {
	for stream, want := range map[string]string{
		loomipay.StreamRefundResults: "refund:ro_1", "refund_results:{shop_b}": "refund:ro_1", "payment_results:{shop_b}": "payment:po_1",
	} {
		event := loomipay.EventRefundStatusChanged
		if strings.HasPrefix(stream, loomipay.StreamPaymentResults) {
			event = loomipay.EventPaymentStatusChanged
		}
		r := loomipay.Result{Stream: stream, Fields: map[string]string{"event_type": event, "payment_order_id": "po_1", "refund_order_id": "ro_1"}}
		if event == loomipay.EventPaymentStatusChanged {
			delete(r.Fields, "refund_order_id")
		}
		if got := r.Subject(); got != want {
			t.Errorf("Subject of a %s message on %s = %q; want %q", event, stream, got, want)
		}
	}
}

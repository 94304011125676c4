package streams_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/streams"
)

func results(n int) []pay.ResultMessage {
	msgs := make([]pay.ResultMessage, n)
	for i := range msgs {
		msgs[i] = pay.ResultMessage{Stream: pay.StreamPaymentResults, Fields: map[string]string{"event_id": strconv.Itoa(i)}}
	}
	return msgs
}

func TestResultStreamsStayBounded(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		cfg      streams.Config
		trim     bool
		max, min int64 // approximate trimming keeps whole stream nodes (100 entries by default)
	}{
		{"retention window keeps everything recent", streams.Config{}, false, 2000, 2000},
		{"retention window drops the old", streams.Config{ResultRetention: time.Millisecond}, false, 300, 1},
		{"length cap", streams.Config{ResultMaxLen: 500}, true, 700, 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			onEachRedis(t, func(t *testing.T, b backend) {
				rdb, cfg := b.rdb, tc.cfg
				cfg.Prefix = b.prefix
				st := streams.New(rdb, cfg)
				for range 10 {
					if err := st.PublishResults(ctx, results(200)); err != nil {
						t.Fatal(err)
					}
					time.Sleep(2 * time.Millisecond) // let the 1 ms window pass between batches
				}
				if tc.trim {
					if err := st.TrimResults(ctx); err != nil {
						t.Fatal(err)
					}
				}
				n, err := rdb.XLen(ctx, st.Name(pay.StreamPaymentResults)).Result()
				if err != nil {
					t.Fatal(err)
				}
				if n > tc.max || n < tc.min {
					t.Errorf("XLEN = %d; want between %d and %d", n, tc.min, tc.max)
				}
			})
		})
	}
}

func TestTaskMessagesRoundTrip(t *testing.T) { onEachRedis(t, testTaskMessagesRoundTrip) }

func testTaskMessagesRoundTrip(t *testing.T, b backend) {
	ctx := context.Background()
	rdb := b.rdb
	st := streams.New(rdb, streams.Config{Prefix: b.prefix})
	if err := st.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureGroup(ctx); err != nil {
		t.Fatalf("EnsureGroup twice: %v", err)
	}
	want := streams.TaskMessage{TaskID: 42, Kind: "refund", SubjectID: "0190c8a2-0000-7000-8000-000000000001"}
	if err := st.PublishTasks(ctx, want); err != nil {
		t.Fatal(err)
	}
	// A foreign entry must come back marked malformed, not crash or vanish.
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: st.Name(streams.TaskStream), Values: []string{"task_id", "nope"}}).Err(); err != nil {
		t.Fatal(err)
	}
	ds, err := st.ReadTasks(ctx, "c1", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("read %d messages; want 2", len(ds))
	}
	if ds[0].Task != want || ds[0].Malformed != "" {
		t.Errorf("first = %+v; want %+v", ds[0], want)
	}
	if ds[1].Malformed == "" {
		t.Errorf("second = %+v; want it marked malformed", ds[1])
	}
	// Unacknowledged messages are reclaimed by another consumer once idle long enough.
	time.Sleep(20 * time.Millisecond)
	re, err := st.ReclaimTasks(ctx, "c2", 10*time.Millisecond, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(re) != 2 {
		t.Fatalf("reclaimed %d; want 2", len(re))
	}
	if err := st.Ack(ctx, re[0].ID, re[1].ID); err != nil {
		t.Fatal(err)
	}
	if re, _ := st.ReclaimTasks(ctx, "c3", 0, 10); len(re) != 0 {
		t.Errorf("reclaimed %d after ack; want 0", len(re))
	}
	if err := st.DeadLetter(ctx, ds[1], 3, "malformed"); err != nil {
		t.Fatal(err)
	}
	dead, err := rdb.XRange(ctx, st.Name(streams.DeadLetterStream), "-", "+").Result()
	if err != nil || len(dead) != 1 || dead[0].Values["reason"] != "malformed" || dead[0].Values["attempts"] != "3" {
		t.Errorf("dead letters = %v, %v; want one with reason and attempts", dead, err)
	}
}

// A burst far beyond the length cap (more than one approximate trim's default LIMIT of 10,000
// entries) stays near the cap while it is published, and one trim brings it back under it.
func TestResultStreamBurstStaysNearCap(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	st := streams.New(rdb, streams.Config{Prefix: prefix, ResultMaxLen: 500})
	name := st.Name(pay.StreamPaymentResults)
	var peak int64
	for range 25 {
		if err := st.PublishResults(ctx, results(1000)); err != nil {
			t.Fatal(err)
		}
		n, err := rdb.XLen(ctx, name).Result()
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, n)
	}
	if peak > 1700 {
		t.Errorf("XLEN reached %d while publishing 25,000 with a cap of 500; want at most a batch and a node over it", peak)
	}
	// Past the per-call limit without the publish path's own trim.
	plain := streams.New(rdb, streams.Config{Prefix: prefix})
	for range 25 {
		if err := plain.PublishResults(ctx, results(1000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.TrimResults(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := rdb.XLen(ctx, name).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n > 700 {
		t.Errorf("XLEN = %d after one trim of a 25,000+ entry stream capped at 500; want at most 700", n)
	}
}

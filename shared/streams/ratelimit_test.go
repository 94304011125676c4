package streams_test

import (
	"context"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/streams"
)

// The token bucket script (one key, so one slot) gives out the burst, then refuses with the wait
// for the next token, and keeps buckets apart.
func TestTakeToken(t *testing.T) { onEachRedis(t, testTakeToken) }

func testTakeToken(t *testing.T, b backend) {
	ctx := context.Background()
	st := streams.New(b.rdb, streams.Config{Prefix: b.prefix})
	for i := range 3 {
		ok, _, err := st.TakeToken(ctx, "ratelimit:{app_a}", 1, 3)
		if err != nil || !ok {
			t.Fatalf("token %d of a burst of 3 = %v, %v; want taken", i+1, ok, err)
		}
	}
	ok, wait, err := st.TakeToken(ctx, "ratelimit:{app_a}", 1, 3)
	if err != nil || ok || wait <= 0 || wait > time.Second {
		t.Fatalf("4th token = %v, wait %s, %v; want refused with a wait of at most 1 s", ok, wait, err)
	}
	if ok, _, err := st.TakeToken(ctx, "ratelimit:{app_b}", 1, 3); err != nil || !ok {
		t.Fatalf("another app's bucket = %v, %v; want its own tokens", ok, err)
	}
	for _, key := range []string{"ratelimit:{app_a}", "ratelimit:{app_b}"} {
		if ttl := b.rdb.PTTL(ctx, b.prefix+key).Val(); ttl <= 0 {
			t.Errorf("bucket %s has TTL %s; want it to expire once full again", key, ttl)
		}
	}
}

// PublishResults wakes the webhook engine through pub/sub, on a cluster too (where PUBLISH is
// sent to one node and carried to the subscriber's over the cluster bus).
func TestResultWakeups(t *testing.T) { onEachRedis(t, testResultWakeups) }

func testResultWakeups(t *testing.T, b backend) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := streams.New(b.rdb, streams.Config{Prefix: b.prefix})
	wake := st.ResultWakeups(ctx)
	// The subscription is made in the background; publish until a wake-up arrives.
	deadline := time.After(5 * time.Second)
	for {
		if err := st.PublishResults(ctx, appResults("app_a", 1)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-wake:
			return
		case <-deadline:
			t.Fatal("no wake-up within 5 s of publishing results")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// A failure bucket empties after its burst and says how long until it holds a token again; the
// collapsing counter reports the first event of a window and, with the next window's first, how
// many were counted in between.
func TestFailureBucketAndCountSince(t *testing.T) { onEachRedis(t, testFailureBucketAndCountSince) }

func testFailureBucketAndCountSince(t *testing.T, b backend) {
	ctx := context.Background()
	st := streams.New(b.rdb, streams.Config{Prefix: b.prefix})
	for i := range 4 {
		over, empty, wait, err := st.TakeFailure(ctx, "fail:{203.0.113.9}", 0.1, 3)
		if err != nil || over != (i == 3) || empty != (i >= 2) {
			t.Fatalf("failure %d with a burst of 3: over %v, empty %v (wait %s), %v", i+1, over, empty, wait, err)
		}
		if i >= 2 && (wait <= 9*time.Second || wait > 10*time.Second) {
			t.Fatalf("wait after the burst = %s; want about 10 s (one token every 10 s)", wait)
		}
	}
	if over, empty, _, err := st.TakeFailure(ctx, "fail:{192.0.2.1}", 0.1, 3); err != nil || over || empty {
		t.Fatalf("another bucket = over %v, empty %v, %v; want its own burst", over, empty, err)
	}

	first, before, err := st.CountSince(ctx, "count:{a}", time.Minute)
	if err != nil || !first || before != 0 {
		t.Fatalf("first event = %v, %d, %v; want the first, none before", first, before, err)
	}
	for range 3 {
		if first, _, err := st.CountSince(ctx, "count:{a}", time.Minute); err != nil || first {
			t.Fatalf("event in the window = first %v, %v; want counted only", first, err)
		}
	}
	if err := b.rdb.Del(ctx, b.prefix+"count:{a}:window").Err(); err != nil { // the window ends
		t.Fatal(err)
	}
	if first, before, err := st.CountSince(ctx, "count:{a}", time.Minute); err != nil || !first || before != 3 {
		t.Fatalf("first event of the next window = %v, %d, %v; want the first, 3 counted before", first, before, err)
	}
}

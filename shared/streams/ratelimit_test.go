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

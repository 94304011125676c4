package streams_test

import (
	"context"
	"testing"

	"github.com/loomipay/loomipay/internal/rediscluster"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/streams"
)

// An online resharding moves the task stream (with its consumer group and pending messages), an
// app's result streams and a rate-limit bucket to other masters while the service's client still
// holds the old slot map: reads, acks, reclaims, the results pipeline and the token bucket script
// follow MOVED, and each key's state moved with it.
func TestStreamsFollowResharding(t *testing.T) {
	ctx := context.Background()
	c := rediscluster.Shared(t)
	rdb, prefix := testenv.ClusterRedis(t, c)
	st := streams.New(rdb, streams.Config{Prefix: prefix})
	const bucket = "ratelimit:{app_m}"
	if err := st.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.PublishTasks(ctx, streams.TaskMessage{TaskID: 1, Kind: "payment", SubjectID: "a"},
		streams.TaskMessage{TaskID: 2, Kind: "payment", SubjectID: "b"}); err != nil {
		t.Fatal(err)
	}
	if ds, err := st.ReadTasks(ctx, "run-1", 1, 0); err != nil || len(ds) != 1 || ds[0].Task.TaskID != 1 {
		t.Fatalf("first read = %+v, %v; want task 1", ds, err)
	}
	if err := st.PublishResults(ctx, appResults("app_m", 1)); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := st.TakeToken(ctx, bucket, 1, 2); err != nil || !ok {
		t.Fatalf("first token = %v, %v", ok, err)
	}

	for _, key := range []string{st.Name(streams.TaskStream), st.AppStream(pay.StreamPaymentResults, "app_m"), prefix + bucket} {
		from, err := c.Owner(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.MoveSlot(ctx, key, (from+1)%rediscluster.Masters); err != nil {
			t.Fatalf("move %s: %v", key, err)
		}
	}

	// The group moved with the stream: task 2 is still new, task 1 still pending for run-1.
	if ds, err := st.ReadTasks(ctx, "run-1", 10, 0); err != nil || len(ds) != 1 || ds[0].Task.TaskID != 2 {
		t.Fatalf("read after the move = %+v, %v; want task 2 only", ds, err)
	} else if err := st.Ack(ctx, ds[0].ID); err != nil {
		t.Fatalf("ack after the move: %v", err)
	}
	re, err := st.ReclaimTasks(ctx, "run-2", 0, 10)
	if err != nil || len(re) != 1 || re[0].Task.TaskID != 1 {
		t.Fatalf("reclaim after the move = %+v, %v; want task 1", re, err)
	}
	if err := st.Ack(ctx, re[0].ID); err != nil {
		t.Fatal(err)
	}
	if names := consumerNames(t, st); len(names) != 2 {
		t.Errorf("consumers after the move = %v; want run-1 and run-2", names)
	}
	if err := st.PublishResults(ctx, appResults("app_m", 1)); err != nil {
		t.Fatalf("publish after the move: %v", err)
	}
	if n, err := rdb.XLen(ctx, st.AppStream(pay.StreamPaymentResults, "app_m")).Result(); err != nil || n != 2 {
		t.Errorf("app stream after the move: XLEN %d, %v; want 2", n, err)
	}
	// The bucket kept its state: one of two tokens was taken before the move.
	if ok, _, err := st.TakeToken(ctx, bucket, 1, 2); err != nil || !ok {
		t.Fatalf("second token after the move = %v, %v; want taken", ok, err)
	}
	if ok, _, err := st.TakeToken(ctx, bucket, 1, 2); err != nil || ok {
		t.Fatalf("third token after the move = %v, %v; want refused (burst 2)", ok, err)
	}
}

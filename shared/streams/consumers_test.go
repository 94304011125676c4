package streams_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/streams"
)

func consumerNames(t *testing.T, st *streams.Streams) []string {
	t.Helper()
	list, err := st.Consumers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return names
}

// Runs read under their own names: each gets a share of new messages, and finished runs' names
// are removed unless they still hold messages someone must reclaim.
func TestConsumersShareTheStreamAndAreRemoved(t *testing.T) {
	onEachRedis(t, testConsumersShareTheStreamAndAreRemoved)
}

func testConsumersShareTheStreamAndAreRemoved(t *testing.T, b backend) {
	ctx := context.Background()
	st := streams.New(b.rdb, streams.Config{Prefix: b.prefix})
	if names := consumerNames(t, st); len(names) != 0 {
		t.Fatalf("consumers before the group exists = %v", names)
	}
	if err := st.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	var msgs []streams.TaskMessage
	for i := range 6 {
		msgs = append(msgs, streams.TaskMessage{TaskID: int64(i + 1), Kind: "payment", SubjectID: "s"})
	}
	if err := st.PublishTasks(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]string{}
	for _, run := range []string{"run-a", "run-b", "run-c"} {
		ds, err := st.ReadTasks(ctx, run, 2, 0)
		if err != nil || len(ds) != 2 {
			t.Fatalf("%s read %d tasks, %v; want 2", run, len(ds), err)
		}
		for _, d := range ds {
			if other, dup := seen[d.Task.TaskID]; dup {
				t.Errorf("task %d delivered to %s and %s", d.Task.TaskID, other, run)
			}
			seen[d.Task.TaskID] = run
			if run != "run-c" { // run-c "crashes" with its messages unacknowledged
				if err := st.Ack(ctx, d.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if got := consumerNames(t, st); !slices.Equal(got, []string{"run-a", "run-b", "run-c"}) {
		t.Fatalf("consumers = %v; want the three runs", got)
	}
	if ok, err := st.RemoveConsumer(ctx, "run-a"); err != nil || !ok {
		t.Errorf("RemoveConsumer(run-a, nothing pending) = %v, %v; want true", ok, err)
	}
	if ok, err := st.RemoveConsumer(ctx, "run-c"); err != nil || ok {
		t.Errorf("RemoveConsumer(run-c, 2 pending) = %v, %v; want false: its messages must stay reclaimable", ok, err)
	}
	time.Sleep(30 * time.Millisecond)
	n, err := st.RemoveIdleConsumers(ctx, 20*time.Millisecond)
	if err != nil || n != 1 {
		t.Errorf("RemoveIdleConsumers = %d, %v; want 1 (run-b)", n, err)
	}
	if got := consumerNames(t, st); !slices.Equal(got, []string{"run-c"}) {
		t.Errorf("consumers = %v; want only run-c, which holds pending messages", got)
	}
	// Another run reclaims run-c's messages; then run-c goes too.
	ds, err := st.ReclaimTasks(ctx, "run-d", 0, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("reclaim = %d, %v; want 2", len(ds), err)
	}
	for _, d := range ds {
		if err := st.Ack(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(30 * time.Millisecond)
	if n, err := st.RemoveIdleConsumers(ctx, 20*time.Millisecond); err != nil || n != 2 {
		t.Errorf("RemoveIdleConsumers after the reclaim = %d, %v; want 2 (run-c, run-d)", n, err)
	}
	if got := consumerNames(t, st); len(got) != 0 {
		t.Errorf("consumers left = %v; want none", got)
	}
}

// A stopping run gives back what it read and will not work: the messages leave its pending list
// (so its name can be removed at once) and the next reader gets them without waiting for a lease.
func TestReleaseGivesMessagesToTheNextReader(t *testing.T) {
	onEachRedis(t, testReleaseGivesMessagesToTheNextReader)
}

func testReleaseGivesMessagesToTheNextReader(t *testing.T, b backend) {
	ctx := context.Background()
	st := streams.New(b.rdb, streams.Config{Prefix: b.prefix})
	if err := st.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.PublishTasks(ctx, streams.TaskMessage{TaskID: 7, Kind: "payment", SubjectID: "s7"},
		streams.TaskMessage{TaskID: 8, Kind: "refund", SubjectID: "s8"}); err != nil {
		t.Fatal(err)
	}
	ds, err := st.ReadTasks(ctx, "stopping", 2, 0)
	if err != nil || len(ds) != 2 {
		t.Fatalf("read %d tasks, %v; want 2", len(ds), err)
	}
	if err := st.Release(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	if removed, err := st.RemoveConsumer(ctx, "stopping"); err != nil || !removed {
		t.Fatalf("RemoveConsumer after Release = %v, %v; want the name removed (nothing pending)", removed, err)
	}
	next, err := st.ReadTasks(ctx, "next", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []streams.TaskMessage
	for _, d := range next {
		got = append(got, d.Task)
	}
	want := []streams.TaskMessage{{TaskID: 7, Kind: "payment", SubjectID: "s7"}, {TaskID: 8, Kind: "refund", SubjectID: "s8"}}
	if !slices.Equal(got, want) {
		t.Fatalf("the next reader got %v; want %v", got, want)
	}
}

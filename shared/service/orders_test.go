package service_test

import (
	"context"
	"testing"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/streams"
)

// The create path makes the processor's consumer group at the start of the stream, so a task
// published before any processor ran is still delivered to it.
func TestCreateOrderMakesTheConsumerGroup(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	s.CreateOrder(t, "GROUP_1", 100)

	groups, err := s.Streams.Client().XInfoGroups(ctx, s.Streams.Name(streams.TaskStream)).Result()
	if err != nil {
		t.Fatalf("XINFO GROUPS: %v", err)
	}
	if len(groups) != 1 || groups[0].Name != s.Streams.Group() {
		t.Fatalf("groups = %+v; want just %q", groups, s.Streams.Group())
	}
	if got, want := groups[0].Lag, int64(1); got != want {
		t.Errorf("group lag = %d; want %d (the task waits for the processor)", got, want)
	}
	ds, err := s.Streams.ReadTasks(ctx, "reader", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Task.Kind != "payment" {
		t.Errorf("read %+v; want the one payment task", ds)
	}
}

package worker

import (
	"context"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/streams"
)

func TestScalerAddsRunsWhileTheBacklogIsOld(t *testing.T) {
	ctx := context.Background()
	store, _ := testenv.PostgresSchema(t)
	st := testenv.Streams(t)
	if err := st.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	started := 0
	s := &Scaler{Store: store, Streams: st, MaxRuns: 3, After: 30 * time.Second, Log: testenv.Logger(),
		Start: func(_ context.Context, n int) error { started += n; return nil }}
	check := func(want int, why string) {
		t.Helper()
		before := started
		n, err := s.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != want || started-before != want {
			t.Errorf("%s: started %d (Start called for %d); want %d", why, n, started-before, want)
		}
	}
	addTask := func(waited time.Duration) {
		t.Helper()
		_, err := store.Pool().Exec(ctx, `INSERT INTO tasks (kind, subject_id, next_attempt_at, created_at)
			VALUES ('payment', gen_random_uuid(), now() - $1::interval, now() - $1::interval)`, waited.String())
		if err != nil {
			t.Fatal(err)
		}
	}
	// A run reading: one active consumer. (Redis lists a consumer once it was handed a message.)
	read := func(name string) {
		t.Helper()
		if err := st.PublishTasks(ctx, streams.TaskMessage{TaskID: 1, Kind: "payment", SubjectID: "x"}); err != nil {
			t.Fatal(err)
		}
		if ds, err := st.ReadTasks(ctx, name, 1, 0); err != nil || len(ds) != 1 {
			t.Fatalf("%s read %d, %v", name, len(ds), err)
		}
	}

	check(0, "no tasks")
	addTask(5 * time.Second)
	check(0, "a fresh backlog")
	addTask(2 * time.Minute)
	read("run-scheduled")
	check(1, "an old backlog, 1 of 3 runs active")
	read("run-extra-1")
	check(1, "an old backlog, 2 of 3 runs active")
	read("run-extra-2")
	check(0, "3 of 3 runs active: the cap")
	s.MaxRuns = 1
	check(0, "PROCESSOR_MAX_RUNS=1 never scales")
}

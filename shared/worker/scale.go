package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"time"

	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/streams"
)

// ConsumerName is a name of the task stream's consumer group unique to this process: k runs at
// once are k consumers, each getting its own share of new messages. The processor removes its
// name when its run ends (and any idle name without pending messages), so names do not pile up.
func ConsumerName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	host, _ := os.Hostname()
	if len(host) > 24 {
		host = host[:24]
	}
	return "run-" + host + "-" + hex.EncodeToString(b)
}

// Scaler adds processor runs while the backlog is old: the scheduled run checks every Every, and
// when the oldest due task has waited longer than After it starts one more run, as long as fewer
// than MaxRuns are reading (a consumer that read within activeWithin counts as a running run).
// The function's reserved concurrency (= MaxRuns) caps it again on AWS's side.
type Scaler struct {
	Store   *postgres.Store
	Streams *streams.Streams
	MaxRuns int
	After   time.Duration
	Every   time.Duration
	// Start begins n extra runs (asynchronous invocations of the processor function).
	Start func(ctx context.Context, n int) error
	Log   *slog.Logger
}

// activeWithin: a run reads at least once per read block (1 s) while idle and whenever a slot
// frees while busy, so a consumer silent for longer has finished.
const activeWithin = 10 * time.Second

// Check looks at the backlog once and starts at most one run; it returns how many it started.
// One at a time, so that a run just started has read (and counts as active) before the next
// check: the backlog then also reflects what the new run drains.
func (s *Scaler) Check(ctx context.Context) (int, error) {
	if s.MaxRuns <= 1 {
		return 0, nil
	}
	age, err := s.Store.OldestDueTask(ctx, time.Now())
	if err != nil || age <= s.After {
		return 0, err
	}
	consumers, err := s.Streams.Consumers(ctx)
	if err != nil {
		return 0, err
	}
	active := 0
	for _, c := range consumers {
		if c.Idle < activeWithin {
			active++
		}
	}
	if active >= s.MaxRuns {
		return 0, nil
	}
	if err := s.Start(ctx, 1); err != nil {
		return 0, err
	}
	s.Log.InfoContext(ctx, "backlog is old: started an extra processor run", "oldest_due", age.Round(time.Second).String(), "active_runs", active, "max_runs", s.MaxRuns)
	return 1, nil
}

// Run checks at once (a backlog found by the schedule is acted on without delay), then every
// Every until ctx ends.
func (s *Scaler) Run(ctx context.Context) {
	every := s.Every
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.Check(ctx); err != nil && ctx.Err() == nil {
			s.Log.WarnContext(ctx, "scale-out check failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

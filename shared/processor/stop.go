package processor

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/loomipay/loomipay/shared/streams"
)

// How a run ends. Every run has two contexts:
//
//   - work: what is under way runs under it (a task's handling, a reconciliation check, a
//     webhook attempt, the writes of a maintenance duty). It ends at the Lambda deadline (less
//     DeadlineMargin), when the caller's context ends, or when a stop's grace runs out.
//   - intake: nothing new starts after it ends — no read of the task stream, no claim, no
//     maintenance duty, no reconciliation check, no webhook attempt. It ends with work, and
//     earlier when a graceful stop is asked for.
//
// Run gives the function its behaviour of old: no stop, so both end together at the deadline
// and whatever is in flight then is cut short. RunUntil (loomipay worker) closes the intake on
// stop and lets the work in flight finish, each handling within its own deadline (LeaseMargin
// before its lease ends), for up to the grace.

// ErrStopCut is wrapped by RunUntil's error when a graceful stop had to cancel work still in
// flight: its grace ran out, or the caller's context ended (a second signal). Nothing is lost: a
// task cut short is put back due at once (or, should that write fail, reclaimed after its
// lease), and every step of a handling is safe to repeat.
var ErrStopCut = errors.New("the stop cancelled work in flight")

// errGraceOver is the cause of work's end when the grace of a stop runs out.
var errGraceOver = errors.New("stop grace over")

// run is one run's two contexts (see above) and what its stop reports.
type run struct {
	work, intake context.Context
	close        func() // releases the contexts

	busy     atomic.Int64 // task handlings under way
	finished atomic.Int64 // handlings that ended, not cut short, after the intake closed
	cut      atomic.Int64 // handlings cut short by the end of work
}

// plainRun is a run without a stop of its own, for the one-pass entry points (RunOnce, Drain,
// Maintain): ctx is both its work and its intake.
func plainRun(ctx context.Context) *run {
	return &run{work: ctx, intake: ctx, close: func() {}}
}

// startRun makes a run's contexts from ctx and starts watching stop (nil: never). The returned
// watch must be called once everything the run started has ended: it stops the watch and
// reports the stop, returning an error wrapping ErrStopCut if the stop cancelled work.
func (p *Processor) startRun(ctx context.Context, stop <-chan struct{}, grace time.Duration) (r *run, watch func() error) {
	work, cancelWork := context.WithCancelCause(ctx)
	intake, closeIntake := context.WithCancel(work)
	r = &run{work: work, intake: intake, close: func() { closeIntake(); cancelWork(nil) }}
	ended := make(chan struct{})   // closed by watch: the run's work is over
	watched := make(chan struct{}) // closed when the watcher is done
	var stopped time.Time          // when the stop was asked for; read once watched is closed
	var inFlight int64
	go func() {
		defer close(watched)
		select {
		case <-stop:
		case <-ended:
			return
		}
		stopped = time.Now()
		closeIntake()
		inFlight = r.busy.Load()
		p.log.InfoContext(ctx, "stop requested: claiming no new tasks, letting the tasks in flight finish",
			"in_flight", inFlight, "grace", grace.String())
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelWork(errGraceOver)
		case <-ended:
		}
	}()
	watch = func() error {
		close(ended)
		<-watched
		if stopped.IsZero() {
			return nil
		}
		took := time.Since(stopped).Round(time.Millisecond)
		finished, cut := r.finished.Load(), r.cut.Load()
		attrs := []any{"in_flight_at_stop", inFlight, "finished", finished, "cut_short", cut, "took", took.String()}
		switch {
		case work.Err() == nil:
			p.log.InfoContext(ctx, "stopped gracefully: every task in flight finished", attrs...)
			return nil
		case errors.Is(context.Cause(work), errGraceOver):
			p.log.WarnContext(ctx, "stop grace ran out: cancelled the work still in flight; its tasks are retried by the next run", attrs...)
			return fmt.Errorf("%w: the grace of %s ran out (task handlings cut short: %d, finished: %d)", ErrStopCut, grace, cut, finished)
		default:
			p.log.WarnContext(ctx, "stop forced: cancelled the work still in flight; its tasks are retried by the next run", attrs...)
			return fmt.Errorf("%w: forced before the grace ran out (task handlings cut short: %d, finished: %d)", ErrStopCut, cut, finished)
		}
	}
	return r, watch
}

// handle works one task message within a run. A message read once the run has stopped taking
// work is released to the stream for the next run rather than claimed (a malformed one is still
// dead-lettered: that touches no task).
func (p *Processor) handle(r *run, d streams.Delivery) Stats {
	if r.intake.Err() != nil && d.Malformed == "" {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.work), 5*time.Second)
		defer cancel()
		if err := p.streams.Release(ctx, d); err != nil {
			p.log.WarnContext(ctx, "could not release a task message read while stopping; it is reclaimed after its lease",
				"stream_id", d.ID, "task_id", d.Task.TaskID, "err", err)
		}
		return Stats{}
	}
	r.busy.Add(1)
	st, cut := p.handleTask(r.work, d)
	r.busy.Add(-1)
	switch {
	case cut:
		r.cut.Add(1)
	case r.intake.Err() != nil:
		r.finished.Add(1)
	}
	return st
}

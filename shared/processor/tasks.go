package processor

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/loomipay/loomipay/shared/crash"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

// handleTask works one task message and always decides its fate: ack, retry later, dead letter
// or review. Acks use a context detached from the invocation's, so that a deadline hit just after
// the work does not leave a finished task to be reclaimed and repeated. The work itself runs
// under a deadline LeaseMargin before the lease ends, so it never outlives its claim. cut reports
// a handling that the end of ctx interrupted.
func (p *Processor) handleTask(ctx context.Context, d streams.Delivery) (st Stats, cut bool) {
	ackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	ack := func() {
		if err := p.streams.Ack(ackCtx, d.ID); err != nil {
			p.log.WarnContext(ackCtx, "ack failed; the message will be reclaimed and found finished", "stream_id", d.ID, "err", err)
		}
	}
	log := p.log.With("task_id", d.Task.TaskID, "kind", d.Task.Kind, "subject_id", d.Task.SubjectID)
	if d.Malformed != "" {
		log.ErrorContext(ctx, "malformed task message dead-lettered", "stream_id", d.ID, "problem", d.Malformed)
		if err := p.streams.DeadLetter(ackCtx, d, 0, d.Malformed); err != nil {
			return Stats{}, false // keep it pending; it will be reclaimed
		}
		ack()
		return Stats{Handled: 1, Dead: 1}, false
	}
	now := time.Now()
	task, claimed, err := p.store.ClaimTask(ctx, d.Task.TaskID, now, p.cfg.Lease)
	if err != nil {
		log.WarnContext(ctx, "claim failed; left for reclaim", "err", err)
		return Stats{}, false
	}
	if !claimed {
		// Finished, not due yet, or held by another worker (whose own message covers it): this
		// message is redundant. A due task is republished by the sweep.
		ack()
		return Stats{Handled: 1}, false
	}
	workCtx, cancelWork := context.WithDeadline(ctx, now.Add(p.cfg.Lease-p.cfg.LeaseMargin))
	var res service.TaskResult
	switch task.Kind {
	case postgres.TaskPayment:
		res = p.pay.AdvancePayment(workCtx, task)
	case postgres.TaskRefund:
		res = p.pay.AdvanceRefund(workCtx, task)
	default:
		res = service.TaskResult{Reason: "unknown task kind " + string(task.Kind)}
	}
	cancelWork()
	crash.Here(ctx, crash.TaskFinished)
	if !res.Done && ctx.Err() != nil {
		// The run is ending (its deadline, or a stop that could not wait): hand the task to the
		// next run at once rather than after a backoff (the attempt still counts towards
		// MaxAttempts).
		_ = p.store.RetryTask(ackCtx, task.Lease, time.Now(), "interrupted: "+res.Reason)
		ack()
		return Stats{Handled: 1, Retried: 1}, true
	}
	switch {
	case res.Done || res.Review:
		ack()
		return Stats{Handled: 1}, false
	case task.Attempts >= p.cfg.MaxAttempts:
		end, err := p.giveUp(ackCtx, d, task, res.Reason)
		if errors.Is(err, postgres.ErrLeaseLost) {
			ack() // another worker holds the task now; its own message covers it
			return Stats{Handled: 1}, false
		}
		if err != nil {
			log.ErrorContext(ctx, "giving up on task failed; left for reclaim", "err", err)
			return Stats{}, false
		}
		ack()
		switch end {
		case service.GiveUpReview:
			return Stats{Handled: 1, Review: 1}, false
		case service.GiveUpEnded:
			return Stats{Handled: 1, Dead: 1}, false
		}
		return Stats{Handled: 1, Retried: 1}, false
	default:
		next := time.Now().Add(p.backoff(task.Attempts))
		log.WarnContext(ctx, "task attempt failed; will retry", "attempt", task.Attempts, "next_attempt_at", next, "reason", res.Reason)
		if err := p.store.RetryTask(ackCtx, task.Lease, next, res.Reason); err != nil && !errors.Is(err, postgres.ErrLeaseLost) {
			return Stats{}, false
		}
		ack()
		return Stats{Handled: 1, Retried: 1}, false
	}
}

// backoff is the delay after the n-th failed attempt: base·2^(n-1), capped.
func (p *Processor) backoff(attempt int) time.Duration {
	d := time.Duration(float64(p.cfg.BackoffBase) * math.Pow(2, float64(attempt-1)))
	if d > p.cfg.BackoffMax || d <= 0 {
		return p.cfg.BackoffMax
	}
	return d
}

// giveUp ends a task that used its attempts. A payment order winds down (retries_exhausted) with
// a fresh budget, or becomes a review case if its wind-down itself ran out; a refund never sent
// fails, one that may have reached Lakala becomes a review case. A task that ends is recorded in
// the dead-letter stream so that a person can see why.
func (p *Processor) giveUp(ctx context.Context, d streams.Delivery, task postgres.Task, reason string) (service.GiveUp, error) {
	p.log.WarnContext(ctx, "task used its attempts", "task_id", task.ID, "kind", task.Kind,
		"subject_id", task.SubjectID, "attempts", task.Attempts, "reason", reason)
	var end service.GiveUp
	var err error
	switch task.Kind {
	case postgres.TaskPayment:
		end, err = p.pay.PaymentAttemptsExhausted(ctx, task, reason)
	case postgres.TaskRefund:
		end, err = p.pay.RefundAttemptsExhausted(ctx, task, reason)
	default:
		end, err = service.GiveUpEnded, p.store.FinishTask(ctx, task.Lease, postgres.TaskDead, reason)
	}
	if err != nil || end == service.GiveUpRestarted {
		return end, err
	}
	p.log.ErrorContext(ctx, "task given up", "task_id", task.ID, "kind", task.Kind, "subject_id", task.SubjectID, "reason", reason)
	if derr := p.streams.DeadLetter(ctx, d, task.Attempts, reason); derr != nil {
		p.log.WarnContext(ctx, "dead-letter record failed", "task_id", task.ID, "err", derr)
	}
	return end, nil
}

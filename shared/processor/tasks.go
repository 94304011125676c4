package processor

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/streams"
)

// outcome is what became of one attempt at a task.
type outcome struct {
	done   bool   // finished (or nothing left to do): ack
	review bool   // stop retrying; a person must look (refund outcome unknown)
	reason string // why it is not done
}

func done() outcome                  { return outcome{done: true} }
func retry(why string) outcome       { return outcome{reason: why} }
func retryErr(err error) outcome     { return outcome{reason: err.Error()} }
func needsReview(why string) outcome { return outcome{review: true, reason: why} }

// handle works one task message and always decides its fate: ack, retry later, dead letter.
// Acks use a context detached from the invocation's, so that a deadline hit just after the work
// does not leave a finished task to be reclaimed and repeated.
func (p *Processor) handle(ctx context.Context, d streams.Delivery) Stats {
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
			return Stats{} // keep it pending; it will be reclaimed
		}
		ack()
		return Stats{Handled: 1, Dead: 1}
	}
	now := time.Now()
	task, claimed, err := p.store.ClaimTask(ctx, d.Task.TaskID, now, p.cfg.Lease)
	if err != nil {
		log.WarnContext(ctx, "claim failed; left for reclaim", "err", err)
		return Stats{}
	}
	if !claimed {
		// Finished, not due yet, or held by another worker (whose own message covers it): this
		// message is redundant. A due task is republished by the sweep.
		ack()
		return Stats{Handled: 1}
	}
	var res outcome
	switch task.Kind {
	case postgres.TaskPayment:
		res = p.startCheckout(ctx, task)
	case postgres.TaskRefund:
		res = p.processRefund(ctx, task)
	default:
		res = retry("unknown task kind " + string(task.Kind))
	}
	if ctx.Err() != nil && !res.done {
		// The invocation is ending: hand the task to the next run at once rather than after a
		// backoff (the attempt still counts towards MaxAttempts).
		_ = p.store.RetryTask(ackCtx, task.ID, time.Now(), "interrupted: "+res.reason)
		ack()
		return Stats{Handled: 1, Retried: 1}
	}
	switch {
	case res.done:
		ack()
		return Stats{Handled: 1}
	case res.review:
		if err := p.store.FinishTask(ackCtx, task.ID, postgres.TaskReview, res.reason); err != nil {
			return Stats{}
		}
		ack()
		return Stats{Handled: 1, Dead: 1}
	case task.Attempts >= p.cfg.MaxAttempts:
		if err := p.giveUp(ackCtx, d, task, res.reason); err != nil {
			log.ErrorContext(ctx, "giving up on task failed; left for reclaim", "err", err)
			return Stats{}
		}
		ack()
		return Stats{Handled: 1, Dead: 1}
	default:
		next := time.Now().Add(p.backoff(task.Attempts))
		log.WarnContext(ctx, "task attempt failed; will retry", "attempt", task.Attempts, "next_attempt_at", next, "reason", res.reason)
		if err := p.store.RetryTask(ackCtx, task.ID, next, res.reason); err != nil {
			return Stats{}
		}
		ack()
		return Stats{Handled: 1, Retried: 1}
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

// giveUp ends a task that used its attempts: the order (or unsubmitted refund) fails with the
// reason, the task is recorded in the dead-letter stream, and a person can see why.
func (p *Processor) giveUp(ctx context.Context, d streams.Delivery, task postgres.Task, reason string) error {
	p.log.ErrorContext(ctx, "task gave up after its attempts", "task_id", task.ID, "kind", task.Kind,
		"subject_id", task.SubjectID, "attempts", task.Attempts, "reason", reason)
	if err := p.streams.DeadLetter(ctx, d, task.Attempts, reason); err != nil {
		return err
	}
	failure := pay.ReasonRetriesExceeded + ": " + reason
	switch task.Kind {
	case postgres.TaskPayment:
		if _, err := p.svc.FailPayment(ctx, task.SubjectID, failure); err != nil {
			return err
		}
	case postgres.TaskRefund:
		if err := p.failPendingRefund(ctx, task.SubjectID, failure); err != nil {
			return err
		}
	}
	return p.store.FinishTask(ctx, task.ID, postgres.TaskDead, reason)
}

// startCheckout creates the Lakala cashier order of a pending payment order and moves it to
// processing with its payment URL. Safe to repeat: the out_order_no is fixed per order, so a
// repeated create refers to the same cashier order, and the status change is conditional.
func (p *Processor) startCheckout(ctx context.Context, task postgres.Task) outcome {
	o, err := p.store.Order(ctx, task.SubjectID)
	if errors.Is(err, pay.ErrNotFound) {
		_ = p.store.FinishTask(ctx, task.ID, postgres.TaskDead, "order not found")
		return done()
	}
	if err != nil {
		return retryErr(err)
	}
	if o.Status != pay.StatusPending {
		return p.finish(ctx, task.ID)
	}
	ttl := p.cfg.OrderTTL
	if o.ExpiresIn > 0 { // the order's own expires_in
		ttl = time.Duration(o.ExpiresIn) * time.Second
	}
	expiresAt := time.Now().Add(ttl)
	res, err := p.gw.CreateCashierOrder(ctx, lakala.CreateCashierOrder{
		OutOrderNo: o.OutOrderNo(), Amount: o.Amount, Subject: o.Subject,
		NotifyURL: p.cfg.NotifyURL, CallbackURL: o.ReturnURL(), ExpiresAt: expiresAt,
	})
	if err != nil {
		return retry("create cashier order: " + err.Error())
	}
	if res.CounterURL == "" {
		return retry("create cashier order: Lakala returned no counter_url")
	}
	// No row lock: the conditional update (… WHERE status = 'pending') alone decides whether
	// this change applies, and a notification that settled the order meanwhile wins.
	if err := o.StartCheckout(res.CounterURL, res.PayOrderNo, expiresAt, time.Now()); err != nil {
		return retryErr(err)
	}
	events, _, err := p.store.SaveOrderFinishingTask(ctx, &o, pay.StatusPending, task.ID)
	if err != nil {
		return retryErr(err)
	}
	p.svc.PublishEvents(ctx, events)
	return done()
}

func (p *Processor) finish(ctx context.Context, taskID int64) outcome {
	if err := p.store.FinishTask(ctx, taskID, postgres.TaskDone, ""); err != nil {
		return retryErr(err)
	}
	return done()
}

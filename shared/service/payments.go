package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/loomipay/loomipay/shared/crash"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// PaymentsConfig tunes how orders and refunds are driven through the gateway.
type PaymentsConfig struct {
	// NotifyURL is the webhook's public URL, given to Lakala with every cashier order.
	NotifyURL string
	// RefundRequestIP is location_info.request_ip of refunds. Default 127.0.0.1.
	RefundRequestIP string
	// VisibilityLag is how long Lakala may take before a query sees an operation it applied.
	// A cashier order whose create answer was lost, and that a query does not find, counts as
	// never created only this long after the last create call. Default 2 min.
	VisibilityLag time.Duration
	// MaxCashierOrders bounds the cashier orders (attempts) one order may use. Default 5.
	MaxCashierOrders int
	// CloseLease is how long a merchant's close holds the order's task. Default 30 s.
	CloseLease time.Duration
	// MinLifetime: a new cashier order is created only if the order has at least this long
	// left before it expires (Lakala wants order_efficient_time in the future). Default 1 min,
	// or a quarter of the service's OrderTTL if that is shorter.
	MinLifetime time.Duration
	// RefundAPI is the Lakala refund API new refunds go through: lakala.RefundAPIRfd (统一退货,
	// the default) or lakala.RefundAPILabs.
	RefundAPI string
}

func (c *PaymentsConfig) defaults(orderTTL time.Duration) {
	if c.RefundRequestIP == "" {
		c.RefundRequestIP = "127.0.0.1"
	}
	if c.VisibilityLag == 0 {
		c.VisibilityLag = 2 * time.Minute
	}
	if c.MaxCashierOrders == 0 {
		c.MaxCashierOrders = 5
	}
	if c.CloseLease == 0 {
		c.CloseLease = 30 * time.Second
	}
	if c.MinLifetime == 0 {
		c.MinLifetime = min(time.Minute, orderTTL/4)
	}
	if c.RefundAPI == "" {
		c.RefundAPI = lakala.RefundAPIRfd
	}
}

// Payments drives payment orders and refunds through the gateway: it creates cashier orders,
// settles ambiguous ones, winds orders down (close, query again, fail), submits and confirms
// refunds. Every call that changes something at Lakala for an order or a refund happens here,
// under the lease of its task, so two workers never act on one order at once. The rules are
// the decision tables of docs/DECISIONS.md.
type Payments struct {
	*Service
	gws Gateways
	cfg PaymentsConfig
	log *slog.Logger
}

// NewPayments builds Payments on a service and the merchants' gateways: every call about an order
// or a refund goes through the client of the merchant the order was created with.
func NewPayments(svc *Service, gws Gateways, cfg PaymentsConfig) *Payments {
	cfg.defaults(svc.cfg.OrderTTL)
	return &Payments{Service: svc, gws: gws, cfg: cfg, log: svc.log.With("component", "payments")}
}

// GatewayOf is the Lakala client of the merchant the order was created with: every call about it,
// and about its refunds, is signed as that merchant, whatever its app is bound to now.
func (p *Payments) GatewayOf(ctx context.Context, o pay.Order) (Gateway, error) {
	gw, err := p.gws.Gateway(ctx, o.MerchantID)
	if err != nil {
		return nil, fmt.Errorf("merchant %q of order %s: %w", o.MerchantID, o.ID, err)
	}
	return gw, nil
}

// Config returns the configuration in force, defaults included.
func (p *Payments) Config() PaymentsConfig { return p.cfg }

// TaskResult is what one attempt at a task came to.
type TaskResult struct {
	Done   bool   // finished (or nothing left to do); the task is closed
	Review bool   // stop retrying: a person must look (a review case was opened)
	Reason string // why it is not done
}

func taskDone() TaskResult { return TaskResult{Done: true} }
func taskRetry(format string, args ...any) TaskResult {
	return TaskResult{Reason: fmt.Sprintf(format, args...)}
}

// AdvancePayment moves a payment order one step forward under its task's lease.
func (p *Payments) AdvancePayment(ctx context.Context, task postgres.Task) TaskResult {
	o, err := p.store.Order(ctx, task.SubjectID)
	if errors.Is(err, pay.ErrNotFound) {
		return p.finishTask(ctx, task, postgres.TaskDead, "order not found")
	}
	if err != nil {
		return taskRetry("read order: %v", err)
	}
	now := p.Now()
	switch {
	case o.Status.Final():
		// A cashier order may still be open behind a final order (a create that landed after the
		// order failed, another attempt of an order paid through one): close it.
		return p.closeLeftovers(ctx, o, task)
	case o.ClosingReason != "":
		return p.windDown(ctx, o, task)
	case o.ExpiresAt != nil && now.After(*o.ExpiresAt):
		return p.startWindDown(ctx, o, task, pay.ReasonExpired)
	case o.Status == pay.StatusProcessing:
		return p.finishTask(ctx, task, postgres.TaskDone, "")
	}
	attempts, err := p.store.Attempts(ctx, o.ID)
	if err != nil {
		return taskRetry("read attempts: %v", err)
	}
	if len(attempts) == 0 || attempts[len(attempts)-1].State.Settled() {
		return p.newAttempt(ctx, o, attempts, task)
	}
	last := attempts[len(attempts)-1]
	switch {
	case last.State == pay.AttemptCreating && last.Submissions == 0:
		return p.submitCreate(ctx, o, last, task, true)
	case last.State == pay.AttemptCreating:
		return p.resolveCreate(ctx, o, attempts, task)
	default: // open: created, but the order did not move with it (it changed meanwhile); try again
		return p.commitCheckout(ctx, o, last, task)
	}
}

// again re-reads the order and goes on from where it stands now (after a step that may have made
// it final, such as a payment found).
func (p *Payments) again(ctx context.Context, task postgres.Task) TaskResult {
	if err := ctx.Err(); err != nil {
		return taskRetry("%v", err)
	}
	return p.AdvancePayment(ctx, task)
}

// newAttempt starts the order's next cashier order, if the order may have one.
func (p *Payments) newAttempt(ctx context.Context, o pay.Order, attempts []pay.Attempt, task postgres.Task) TaskResult {
	now := p.Now()
	if len(attempts) >= p.cfg.MaxCashierOrders {
		return p.startWindDown(ctx, o, task, fmt.Sprintf("%s: %d cashier orders could not be used", pay.ReasonRetriesExceeded, len(attempts)))
	}
	// An order has one lifetime, whichever cashier order the payer ends up using: the one set at
	// its creation. An order created before expires_at was set at creation has it from its first
	// cashier order, or, without one, by the same definition from its creation.
	var expiresAt time.Time
	switch {
	case o.ExpiresAt != nil:
		expiresAt = *o.ExpiresAt
	case len(attempts) > 0:
		expiresAt = attempts[0].ExpiresAt
	default:
		expiresAt = pay.OrderExpiry(o.CreatedAt, o.ExpiresIn, p.Service.cfg.OrderTTL)
	}
	if expiresAt.Sub(now) < p.cfg.MinLifetime {
		return p.startWindDown(ctx, o, task, pay.ReasonExpired)
	}
	gw, r := p.canCreate(ctx, o)
	if r != nil {
		return *r
	}
	// Recorded with its first call already counted: the insert commits before the call is sent,
	// so after a crash the attempt is known to be ambiguous (one round trip instead of two).
	a := pay.Attempt{PaymentOrderID: o.ID, No: len(attempts) + 1, State: pay.AttemptCreating,
		ExpiresAt: expiresAt.Truncate(time.Second), Submissions: 1, SubmittedAt: now, CreatedAt: now, UpdatedAt: now}
	a.OutOrderNo = pay.AttemptOutOrderNo(o.ID, a.No)
	if err := p.store.NewAttempt(ctx, a); err != nil {
		return taskRetry("record attempt %d: %v", a.No, err)
	}
	crash.Here(ctx, crash.AttemptRecorded)
	return p.sendCreate(ctx, gw, o, a, task, true)
}

// submitCreate sends the create call of an attempt under its own out_order_no. The call is
// counted (and committed) before it is sent, so after a crash the attempt is known to be
// ambiguous. Only a listed refusal of an attempt's first call rejects it: a refusal of a
// resubmission proves nothing (the first may have created it; a gateway may refuse the repeated
// number), and no gateway creates two cashier orders under one out_order_no.
func (p *Payments) submitCreate(ctx context.Context, o pay.Order, a pay.Attempt, task postgres.Task, first bool) TaskResult {
	gw, r := p.canCreate(ctx, o)
	if r != nil {
		return *r
	}
	a.Submissions++
	a.SubmittedAt, a.UpdatedAt = p.Now(), p.Now()
	if err := p.store.SaveAttempt(ctx, &a); err != nil {
		return taskRetry("record create call: %v", err)
	}
	crash.Here(ctx, crash.AttemptRecorded)
	return p.sendCreate(ctx, gw, o, a, task, first)
}

// canCreate returns the client of the order's merchant, or why no cashier order can be created
// now: without a notify URL Lakala would reject it, and a rejected first call fails the order (only
// the processor creates cashier orders; a function without LAKALA_NOTIFY_URL — createorder, whose
// close only winds orders down — leaves the task to it); without its merchant's client (a key that
// cannot be read) nothing can be signed. Either way nothing is counted: no call was sent.
func (p *Payments) canCreate(ctx context.Context, o pay.Order) (Gateway, *TaskResult) {
	if p.cfg.NotifyURL == "" {
		r := taskRetry("no LAKALA_NOTIFY_URL here: cashier orders are created by the processor")
		return nil, &r
	}
	gw, err := p.GatewayOf(ctx, o)
	if err != nil {
		r := taskRetry("%v", err)
		return nil, &r
	}
	return gw, nil
}

// sendCreate sends an attempt's create call, already counted, and records what came of it.
func (p *Payments) sendCreate(ctx context.Context, gw Gateway, o pay.Order, a pay.Attempt, task postgres.Task, first bool) TaskResult {
	res, err := gw.CreateCashierOrder(ctx, p.createRequest(o, a))
	switch {
	case err == nil && res.CounterURL != "":
		a.State, a.PayOrderNo, a.CounterURL, a.UpdatedAt = pay.AttemptOpen, res.PayOrderNo, res.CounterURL, p.Now()
		return p.commitCheckout(ctx, o, a, task)
	case err == nil:
		a.LastError = "create answered without counter_url"
	case first && lakala.IsRefused(err):
		// A definite refusal of a fresh number (a listed code, or a request refused before it
		// was sent): nothing exists at Lakala, and the same request would be refused again.
		a.State, a.LastError, a.UpdatedAt = pay.AttemptAbsent, err.Error(), p.Now()
		if err := p.store.SaveAttempt(ctx, &a); err != nil {
			return taskRetry("record refused attempt: %v", err)
		}
		crash.Here(ctx, crash.AttemptSaved)
		return p.failOrder(ctx, o.ID, task, pay.ReasonGatewayRejected+": "+lakala.AnswerText(err))
	default:
		a.LastError = err.Error()
	}
	a.UpdatedAt = p.Now()
	if err := p.store.SaveAttempt(ctx, &a); err != nil {
		return taskRetry("record create outcome: %v", err)
	}
	crash.Here(ctx, crash.AttemptSaved)
	return taskRetry("create cashier order %s: outcome unknown, will query: %s", a.OutOrderNo, a.LastError)
}

// commitCheckout moves a pending order to processing with an open attempt's payment URL.
func (p *Payments) commitCheckout(ctx context.Context, o pay.Order, a pay.Attempt, task postgres.Task) TaskResult {
	if err := o.StartCheckout(a.CounterURL, a.PayOrderNo, a.ExpiresAt, p.Now()); err != nil {
		return taskRetry("%v", err)
	}
	events, applied, err := p.store.CommitCheckout(ctx, &o, &a, task.Lease)
	if err != nil {
		return taskRetry("%v", err)
	}
	crash.Here(ctx, crash.CheckoutCommitted)
	p.PublishEvents(ctx, events)
	if !applied {
		// The order changed while Lakala created the cashier order (a report, a close): the next
		// attempt of the task sees what changed, and closes this cashier order if it must.
		return taskRetry("order %s changed during checkout", o.ID)
	}
	return taskDone()
}

// resolveCreate settles an attempt whose create outcome is unknown. It asks Lakala first: a
// payment found is applied; a cashier order found is settled — final ones as they are, payable
// ones closed (their URL never reached us, so nobody may pay them) — and the next one started.
// When the query cannot say (Lakala publishes no code for "not found"), the create is sent again
// under the same number once Lakala has had time to show it: either it was never created and now
// is (its answer brings the URL), or it exists and a later query finds it. Past its expiry, a
// cashier order nobody could confirm lapses. At most three calls: query, close, create.
func (p *Payments) resolveCreate(ctx context.Context, o pay.Order, attempts []pay.Attempt, task postgres.Task) TaskResult {
	a := attempts[len(attempts)-1]
	gw, err := p.GatewayOf(ctx, o)
	if err != nil {
		return taskRetry("%v", err)
	}
	q, err := gw.QueryCashierOrder(ctx, a.OutOrderNo)
	now := p.Now()
	switch {
	case err != nil && now.After(a.ExpiresAt.Add(p.cfg.VisibilityLag)):
		a.State, a.LastError = pay.AttemptLapsed, "never confirmed either way: "+err.Error()
	case err != nil && now.Sub(a.SubmittedAt) < p.cfg.VisibilityLag:
		return taskRetry("cashier order %s: not seen yet (%v); Lakala may take %s to show it", a.OutOrderNo, err, p.cfg.VisibilityLag)
	case err != nil:
		return p.submitCreate(ctx, o, a, task, false)
	default:
		report := ReportFromQuery(q, now)
		switch {
		case report.Outcome == pay.OutcomePaid:
			if _, err := p.ApplyReport(ctx, a, report, "query", nil); err != nil {
				return taskRetry("apply payment of %s: %v", a.OutOrderNo, err)
			}
			return p.again(ctx, task)
		case report.ClosedAtGateway || q.OrderStatus == lakala.OrderStatusFailed:
			a.State, a.LastError = pay.AttemptClosed, ""
		default: // payable or expired: close it
			_, closeErr := gw.CloseCashierOrder(ctx, a.OutOrderNo)
			switch {
			case closeErr == nil, report.Outcome == pay.OutcomeFinalUnpaid && lakala.IsAnswered(closeErr):
				a.State, a.LastError = pay.AttemptClosed, ""
			default:
				a.LastError = fmt.Sprintf("order_status %s; close: %v", q.OrderStatus, closeErr)
			}
		}
	}
	a.UpdatedAt = p.Now()
	if r := p.saveAttempt(ctx, &a); r != nil {
		return *r
	}
	crash.Here(ctx, crash.AttemptSaved)
	if !a.State.Settled() {
		return taskRetry("cashier order %s: create outcome not settled yet: %s", a.OutOrderNo, a.LastError)
	}
	return p.again(ctx, task)
}

// settleAttempt closes an attempt that may exist at Lakala and queries it again, and records what
// it learned. settled: nobody can pay it any more (closed, never created, lapsed, or paid). A paid
// cashier order is recorded together with its consequence for the order (ApplyReport), never on
// its own; res is then set when that failed.
func (p *Payments) settleAttempt(ctx context.Context, o pay.Order, a *pay.Attempt) (settled bool, res *TaskResult) {
	if a.State.Settled() {
		return true, nil
	}
	if a.State == pay.AttemptCreating && a.Submissions == 0 {
		a.State, a.UpdatedAt = pay.AttemptAbsent, p.Now()
		return true, p.saveAttempt(ctx, a)
	}
	gw, err := p.GatewayOf(ctx, o)
	if err != nil {
		r := taskRetry("%v", err)
		return false, &r
	}
	_, closeErr := gw.CloseCashierOrder(ctx, a.OutOrderNo)
	q, err := gw.QueryCashierOrder(ctx, a.OutOrderNo)
	now := p.Now()
	switch {
	case err == nil:
		report := ReportFromQuery(q, now)
		switch {
		case report.Outcome == pay.OutcomePaid:
			if _, err := p.ApplyReport(ctx, *a, report, "query", nil); err != nil {
				r := taskRetry("apply payment of %s: %v", a.OutOrderNo, err)
				return false, &r
			}
			a.State = pay.AttemptPaid
			return true, nil
		// Closed: Lakala said so to the close (a query may not see it yet), or the query says
		// closed, cancelled or failed; or it says expired and Lakala answered the close (a refusal
		// then means it will not close it: it is final, and the late-payment watch looks at it).
		// An expired one whose close went unanswered is closed again: a close arms Lakala's
		// automatic refund of a payment that lands after it.
		case closeErr == nil || report.ClosedAtGateway || q.OrderStatus == lakala.OrderStatusFailed ||
			(report.Outcome == pay.OutcomeFinalUnpaid && lakala.IsAnswered(closeErr)):
			a.State, a.LastError = pay.AttemptClosed, ""
		default:
			a.LastError = fmt.Sprintf("order_status %s after close: %v", q.OrderStatus, closeErr)
		}
	case closeErr == nil:
		// Lakala closed it; the query does not see it yet.
		a.State, a.LastError = pay.AttemptClosed, ""
	case a.State == pay.AttemptCreating && now.After(a.ExpiresAt.Add(p.cfg.VisibilityLag)):
		// Nobody could confirm it was created, and it is past its expiry: its URL never reached
		// us, and Lakala takes no payment after order_efficient_time.
		a.State, a.LastError = pay.AttemptLapsed, "never confirmed either way: "+err.Error()
	case a.State == pay.AttemptCreating && now.Sub(a.SubmittedAt) >= p.cfg.VisibilityLag:
		// Neither the close nor the query found it, and Lakala publishes no code that says "not
		// found": create it again under its number, to close it for sure next time (no gateway
		// makes two cashier orders of one out_order_no, and its URL goes to nobody).
		return false, p.recreate(ctx, gw, o, a)
	default:
		a.LastError = "query after close: " + err.Error()
	}
	a.UpdatedAt = now
	if r := p.saveAttempt(ctx, a); r != nil {
		return false, r
	}
	crash.Here(ctx, crash.AttemptSaved)
	return a.State.Settled(), nil
}

// recreate sends the create call of an attempt whose existence nobody could confirm again, under
// its own number, counted first, and records what came of it: open with its URL, or the error.
// It never moves the order: the caller decides what an open attempt is for.
func (p *Payments) recreate(ctx context.Context, gw Gateway, o pay.Order, a *pay.Attempt) *TaskResult {
	a.Submissions++
	a.SubmittedAt, a.UpdatedAt = p.Now(), p.Now()
	if r := p.saveAttempt(ctx, a); r != nil {
		return r
	}
	crash.Here(ctx, crash.AttemptRecorded)
	res, err := gw.CreateCashierOrder(ctx, p.createRequest(o, *a))
	switch {
	case err == nil && res.CounterURL != "":
		a.State, a.PayOrderNo, a.CounterURL, a.LastError = pay.AttemptOpen, res.PayOrderNo, res.CounterURL, ""
	case err == nil:
		a.LastError = "create answered without counter_url"
	default:
		a.LastError = "create again: " + err.Error()
	}
	a.UpdatedAt = p.Now()
	if r := p.saveAttempt(ctx, a); r != nil {
		return r
	}
	crash.Here(ctx, crash.AttemptSaved)
	return nil
}

// createRequest is the create call of an attempt: every call of one attempt is the same request.
func (p *Payments) createRequest(o pay.Order, a pay.Attempt) lakala.CreateCashierOrder {
	return lakala.CreateCashierOrder{
		OutOrderNo: a.OutOrderNo, Amount: o.Amount, Subject: o.Subject,
		NotifyURL: p.cfg.NotifyURL, CallbackURL: o.ReturnURL(), ExpiresAt: a.ExpiresAt,
	}
}

func (p *Payments) saveAttempt(ctx context.Context, a *pay.Attempt) *TaskResult {
	if err := p.store.SaveAttempt(ctx, a); err != nil {
		r := taskRetry("record attempt %s: %v", a.OutOrderNo, err)
		return &r
	}
	return nil
}

// startWindDown records that the order must fail with reason, then winds it down.
func (p *Payments) startWindDown(ctx context.Context, o pay.Order, task postgres.Task, reason string) TaskResult {
	if err := p.RequestWindDown(ctx, o.ID, reason); err != nil {
		return taskRetry("request wind-down: %v", err)
	}
	o.ClosingReason = reason
	return p.windDown(ctx, o, task)
}

// RequestWindDown records that a live order must fail with reason once its cashier orders are
// settled at the gateway (the first reason stands), and hands the order to its task.
func (s *Service) RequestWindDown(ctx context.Context, orderID, reason string) error {
	requested := false
	_, err := s.store.InTx(ctx, func(tx *postgres.Tx) error {
		o, err := tx.LockOrder(ctx, orderID)
		if err != nil {
			return err
		}
		if !o.RequestWindDown(reason) {
			return nil
		}
		requested = true
		o.UpdatedAt = s.Now()
		return tx.SaveOrder(ctx, &o, o.Status)
	})
	if err != nil {
		return err
	}
	crash.Here(ctx, crash.WindDownRequested)
	if requested {
		s.RequeuePayment(ctx, orderID, "wind down: "+reason)
	}
	return nil
}

// windDown closes every cashier order of the order that may be payable, queries each again (a
// payer may have paid just before the close), and fails the order only when all of them are
// settled. A payment found on the way is applied instead.
func (p *Payments) windDown(ctx context.Context, o pay.Order, task postgres.Task) TaskResult {
	attempts, err := p.store.Attempts(ctx, o.ID)
	if err != nil {
		return taskRetry("read attempts: %v", err)
	}
	unsettled := 0
	for i := range attempts {
		settled, res := p.settleAttempt(ctx, o, &attempts[i])
		if res != nil {
			return *res
		}
		if !settled {
			unsettled++
		}
	}
	if unsettled > 0 {
		return taskRetry("winding down (%s): %d cashier order(s) not confirmed closed", o.ClosingReason, unsettled)
	}
	return p.failOrder(ctx, o.ID, task, "")
}

// SettleAttempts closes at Lakala and queries again every cashier order of an order that may be
// payable, under the lease of the order's task, as the wind-down does: for a person who resolves
// a review case, before any status changes. A payment found on the way is applied (the order
// succeeds, or a review case records it). It reports whether every cashier order is settled, with
// what is left to settle, and returns the order as it is afterwards.
func (p *Payments) SettleAttempts(ctx context.Context, orderID string) (pay.Order, []string, error) {
	o, err := p.store.Order(ctx, orderID)
	if err != nil {
		return o, nil, err
	}
	attempts, err := p.store.Attempts(ctx, o.ID)
	if err != nil {
		return o, nil, err
	}
	var unsettled []string
	for i := range attempts {
		settled, res := p.settleAttempt(ctx, o, &attempts[i])
		switch {
		case res != nil:
			unsettled = append(unsettled, fmt.Sprintf("%s (%s)", attempts[i].OutOrderNo, res.Reason))
		case !settled:
			unsettled = append(unsettled, fmt.Sprintf("%s (%s)", attempts[i].OutOrderNo, attempts[i].LastError))
		}
	}
	o, err = p.store.Order(ctx, orderID)
	return o, unsettled, err
}

// closeLeftovers settles the cashier orders still open behind a final order.
func (p *Payments) closeLeftovers(ctx context.Context, o pay.Order, task postgres.Task) TaskResult {
	attempts, err := p.store.Attempts(ctx, o.ID)
	if err != nil {
		return taskRetry("read attempts: %v", err)
	}
	for i := range attempts {
		settled, res := p.settleAttempt(ctx, o, &attempts[i])
		if res != nil {
			return *res
		}
		if !settled {
			return taskRetry("order %s is %s but cashier order %s is not confirmed closed", o.ID, o.Status, attempts[i].OutOrderNo)
		}
	}
	return p.finishTask(ctx, task, postgres.TaskDone, "")
}

// failOrder fails a live order (with reason, or the wind-down's reason when reason is empty)
// and finishes its task, in one transaction. A final order is left as it is. Under the order's
// lock it reads the attempts again and fails the order only if pay.CheckFail allows: every
// cashier order settled, none paid (but by a payment of the wrong amount).
func (p *Payments) failOrder(ctx context.Context, orderID string, task postgres.Task, reason string) TaskResult {
	events, err := p.store.InTx(ctx, func(tx *postgres.Tx) error {
		o, err := tx.LockOrder(ctx, orderID)
		if err != nil {
			return err
		}
		if !o.Status.Final() {
			why := reason
			if why == "" {
				why = o.ClosingReason
			}
			attempts, err := tx.Attempts(ctx, o.ID)
			if err != nil {
				return err
			}
			if err := pay.CheckFail(&o, attempts, why); err != nil {
				return err
			}
			old := o.Status
			if err := o.Fail(why, p.Now()); err != nil {
				return err
			}
			if err := tx.SaveOrder(ctx, &o, old); err != nil {
				return err
			}
			p.log.InfoContext(ctx, "order failed", "order_id", o.ID, "reason", why)
		}
		return tx.FinishTask(ctx, task.Lease, postgres.TaskDone, "")
	})
	if err != nil {
		return taskRetry("fail order: %v", err)
	}
	crash.Here(ctx, crash.OrderFailed)
	p.PublishEvents(ctx, events)
	return taskDone()
}

func (p *Payments) finishTask(ctx context.Context, task postgres.Task, state postgres.TaskState, note string) TaskResult {
	if err := p.store.FinishTask(ctx, task.Lease, state, note); err != nil {
		return taskRetry("finish task: %v", err)
	}
	return taskDone()
}

// GiveUp is what became of a task that used its attempt budget.
type GiveUp int

const (
	GiveUpRestarted GiveUp = iota // it goes on with a fresh budget (an order winding down)
	GiveUpEnded                   // it ended, and its subject with it (a refund never sent failed)
	GiveUpReview                  // it waits for a person: a review case was opened
)

// PaymentAttemptsExhausted is called when a payment task used its attempt budget. An order that
// was not winding down yet starts to (retries_exhausted) with a fresh budget; one whose wind-down
// itself kept failing becomes a review case, and its task waits for a person.
func (p *Payments) PaymentAttemptsExhausted(ctx context.Context, task postgres.Task, lastReason string) (GiveUp, error) {
	o, err := p.store.Order(ctx, task.SubjectID)
	if err != nil {
		return GiveUpRestarted, err
	}
	if o.Status.Final() || o.ClosingReason != "" {
		c := pay.ReviewCase{Kind: pay.ReviewReconcileFailing, AppID: o.AppID, PaymentOrderID: o.ID, DedupeKey: "task",
			Summary:  fmt.Sprintf("the order's cashier orders could not be confirmed closed after %d attempts: %s", task.Attempts, lastReason),
			Evidence: map[string]any{"status": string(o.Status), "closing_reason": o.ClosingReason, "last_error": lastReason}}
		if _, err := p.store.OpenReviewCase(ctx, c); err != nil {
			return GiveUpReview, err
		}
		p.log.ErrorContext(ctx, "review case opened: "+c.Summary, "order_id", o.ID, "kind", c.Kind)
		return GiveUpReview, p.store.FinishTask(ctx, task.Lease, postgres.TaskReview, lastReason)
	}
	if err := p.RequestWindDown(ctx, o.ID, pay.ReasonRetriesExceeded+": "+lastReason); err != nil {
		return GiveUpRestarted, err
	}
	return GiveUpRestarted, p.store.RestartTask(ctx, task.Lease, "wind down after retries: "+lastReason)
}

// Gateways are the merchants' gateways Payments calls.
func (p *Payments) Gateways() Gateways { return p.gws }

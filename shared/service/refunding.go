package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/loomipay/loomipay/shared/crash"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// AdvanceRefund moves a refund one step forward under its task's lease. A refund's outcome is
// decided only by a listed refusal of its first submission, by an answer that says the refund
// succeeded or failed, or by a query that reports a final state (docs/DECISIONS.md, "Refund
// outcomes"). A pending refund is marked processing, and every call is counted, before the call
// is sent: after a crash at any point the refund is found processing and Lakala is asked about
// it before anything else, never a second refund.
func (p *Payments) AdvanceRefund(ctx context.Context, task postgres.Task) TaskResult {
	r, err := p.store.Refund(ctx, task.SubjectID)
	if errors.Is(err, pay.ErrNotFound) {
		return p.finishTask(ctx, task, postgres.TaskDead, "refund not found")
	}
	if err != nil {
		return taskRetry("read refund: %v", err)
	}
	switch {
	case r.Status.Final():
		return p.finishTask(ctx, task, postgres.TaskDone, "")
	case r.Status == pay.StatusPending || r.Submissions == 0:
		return p.submitRefund(ctx, task, r)
	default:
		return p.confirmRefund(ctx, task, r)
	}
}

// submitRefund sends the refund under its fixed out_trade_no, counting the call first.
func (p *Payments) submitRefund(ctx context.Context, task postgres.Task, r pay.Refund) TaskResult {
	order, err := p.store.Order(ctx, r.PaymentOrderID)
	if err != nil {
		return taskRetry("read payment order: %v", err)
	}
	// Read before the call is counted: a first call naming the wrong cashier order would be
	// rejected, and a rejected first call fails the refund for good.
	originOutOrderNo, err := p.paidOutOrderNo(ctx, order)
	if err != nil {
		return taskRetry("read payment attempts: %v", err)
	}
	if err := p.countRefundCall(ctx, &r); err != nil {
		return taskRetry("record refund call: %v", err)
	}
	crash.Here(ctx, crash.RefundCounted)
	first := r.Submissions == 1
	var origin CallbackSummary
	_ = json.Unmarshal(order.GatewayCallback, &origin) // absent fields stay empty
	tradeNo := origin.TradeNo
	if tradeNo == "" {
		tradeNo = order.GatewayTransactionID
	}
	// The payment's merchant refunds it: Lakala knows the payment under that merchant only.
	gw, err := p.GatewayOf(ctx, order)
	if err != nil {
		return taskRetry("%v", err)
	}
	ans, err := gw.Refund(ctx, lakala.RefundRequest{
		API: r.RefundAPI, OutTradeNo: r.OutTradeNo, Amount: r.Amount, Reason: refundReason(r), RequestIP: p.cfg.RefundRequestIP,
		OriginOutTradeNo: originOutOrderNo, OriginTradeNo: tradeNo, OriginLogNo: origin.LogNo,
	})
	switch {
	case err == nil && ans.Outcome == lakala.RefundSucceeded:
		return p.settleRefund(ctx, task, r.ID, pay.StatusSucceeded, refundTrade(ans), "")
	case err == nil && ans.Outcome == lakala.RefundFailed && first:
		return p.settleRefund(ctx, task, r.ID, pay.StatusFailed, pay.RefundTrade{}, pay.ReasonRefundRejected+": trade_state "+ans.State+" "+ans.Desc)
	case err == nil:
		// Accepted but not finished (DEAL, PROCESSING, TIMEOUT…), or a failure answered to a
		// resubmission (the first may have moved the money): ask later.
		return taskRetry("refund answered trade_state %s (%s); will query", ans.State, ans.Outcome)
	case first && lakala.IsRefused(err):
		return p.settleRefund(ctx, task, r.ID, pay.StatusFailed, pay.RefundTrade{}, pay.ReasonRefundRejected+": "+lakala.AnswerText(err))
	case lakala.IsRefused(err):
		// The first call may have moved the money; a gateway may refuse the repeated number, or
		// find nothing left to refund because the first consumed it.
		return taskRetry("refund resubmission refused (proves nothing; will query): %s", lakala.AnswerText(err))
	default:
		return taskRetry("refund outcome unknown, will query: %v", err)
	}
}

// paidOutOrderNo is the out_order_no of the cashier order that took the payment (the first
// attempt's number when none is marked paid, as for orders from before attempts were recorded).
func (p *Payments) paidOutOrderNo(ctx context.Context, o pay.Order) (string, error) {
	attempts, err := p.store.Attempts(ctx, o.ID)
	if err != nil {
		return "", err
	}
	for _, a := range attempts {
		if a.No == o.PaidAttemptNo || (o.PaidAttemptNo == 0 && a.State == pay.AttemptPaid) {
			return a.OutOrderNo, nil
		}
	}
	return o.OutOrderNo(), nil
}

// countRefundCall moves a pending refund to processing and counts the call about to be sent, in
// one committed transaction. Its first call fixes the refund API it goes through for good.
func (p *Payments) countRefundCall(ctx context.Context, r *pay.Refund) error {
	events, err := p.store.InTx(ctx, func(tx *postgres.Tx) error {
		locked, err := tx.LockRefund(ctx, r.ID)
		if err != nil {
			return err
		}
		if locked.Status.Final() {
			return fmt.Errorf("refund %s is already %s", locked.ID, locked.Status)
		}
		old := locked.Status
		if old == pay.StatusPending {
			if err := locked.MoveTo(pay.StatusProcessing, p.Now()); err != nil {
				return err
			}
		}
		if locked.RefundAPI == "" {
			locked.RefundAPI = p.cfg.RefundAPI
		}
		locked.Submissions++
		now := p.Now()
		locked.SubmittedAt = &now
		if err := tx.SaveRefund(ctx, &locked, old); err != nil {
			return err
		}
		*r = locked
		return nil
	})
	if err != nil {
		return err
	}
	p.PublishEvents(ctx, events)
	return nil
}

func refundReason(r pay.Refund) string {
	if r.Reason != "" {
		return r.Reason
	}
	return "refund"
}

// confirmRefund asks Lakala what became of a refund that was sent. Only a final state settles
// it. A refund Lakala does not show — its query says it knows no such trade, describes another
// trade, or cannot be read — is sent again under the same out_trade_no once Lakala has had time
// to show it (no reading of Lakala applies one number twice), so a refund that never reached
// Lakala is not left waiting for ever.
func (p *Payments) confirmRefund(ctx context.Context, task postgres.Task, r pay.Refund) TaskResult {
	order, err := p.store.Order(ctx, r.PaymentOrderID)
	if err != nil {
		return taskRetry("read payment order: %v", err)
	}
	gw, err := p.GatewayOf(ctx, order)
	if err != nil {
		return taskRetry("%v", err)
	}
	ans, err := gw.QueryRefund(ctx, r.RefundAPI, r.OutTradeNo)
	switch {
	case err == nil && ans.Outcome == lakala.RefundSucceeded:
		return p.settleRefund(ctx, task, r.ID, pay.StatusSucceeded, refundTrade(ans), "")
	case err == nil && ans.Outcome == lakala.RefundFailed:
		return p.settleRefund(ctx, task, r.ID, pay.StatusFailed, pay.RefundTrade{}, pay.ReasonRefundRejected+": trade_state "+ans.State+" "+ans.Desc)
	case err == nil && ans.Outcome == lakala.RefundPending:
		return taskRetry("refund still processing at Lakala: trade_state %s", ans.State)
	}
	why := fmt.Sprintf("refund query: %v", err)
	if err == nil {
		why = fmt.Sprintf("refund query: trade_state %s (%s)", ans.State, ans.Outcome)
	}
	if r.SubmittedAt != nil && p.Now().Sub(*r.SubmittedAt) < p.cfg.VisibilityLag {
		return taskRetry("%s; Lakala may take %s to show a refund", why, p.cfg.VisibilityLag)
	}
	return p.submitRefund(ctx, task, r)
}

// refundTrade is Lakala's word on a refund that went through (a refund answer or a query): its
// trade_no, log_no and trade time, for the daily statement. An unreadable time is left out.
func refundTrade(a lakala.RefundAnswer) pay.RefundTrade {
	t, _ := lakala.ParseTime(a.TradeTime)
	return pay.RefundTrade{TradeNo: a.TradeNo, LogNo: a.LogNo, Time: t}
}

// settleRefund records the final result of a refund and finishes its task, in one transaction.
func (p *Payments) settleRefund(ctx context.Context, task postgres.Task, id string, to pay.Status, trade pay.RefundTrade, reason string) TaskResult {
	events, err := p.store.InTx(ctx, func(tx *postgres.Tx) error {
		r, err := tx.LockRefund(ctx, id)
		if err != nil {
			return err
		}
		if r.Status == pay.StatusProcessing {
			var err error
			if to == pay.StatusSucceeded {
				err = r.Succeed(trade, p.Now())
			} else {
				err = r.Fail(reason, p.Now())
				p.log.WarnContext(ctx, "refund failed at Lakala", "refund_id", r.ID, "reason", reason)
			}
			if err != nil {
				return err
			}
			if err := tx.SaveRefund(ctx, &r, pay.StatusProcessing); err != nil {
				return err
			}
		}
		return tx.FinishTask(ctx, task.Lease, postgres.TaskDone, "")
	})
	if err != nil {
		return taskRetry("settle refund: %v", err)
	}
	crash.Here(ctx, crash.RefundSettled)
	p.PublishEvents(ctx, events)
	return taskDone()
}

// RefundAttemptsExhausted is called when a refund task used its attempt budget. A refund never
// sent fails; one that may have reached Lakala can be neither failed nor sent as new: it stays
// processing and becomes a review case.
func (p *Payments) RefundAttemptsExhausted(ctx context.Context, task postgres.Task, lastReason string) (GiveUp, error) {
	end := GiveUpEnded
	events, err := p.store.InTx(ctx, func(tx *postgres.Tx) error {
		r, err := tx.LockRefund(ctx, task.SubjectID)
		if err != nil {
			return err
		}
		switch {
		case r.Status.Final():
			return tx.FinishTask(ctx, task.Lease, postgres.TaskDone, "")
		case r.Submissions == 0:
			old := r.Status
			if err := r.Fail(pay.ReasonRetriesExceeded+": "+lastReason, p.Now()); err != nil {
				return err
			}
			if err := tx.SaveRefund(ctx, &r, old); err != nil {
				return err
			}
			return tx.FinishTask(ctx, task.Lease, postgres.TaskDead, lastReason)
		}
		end = GiveUpReview
		c := pay.ReviewCase{Kind: pay.ReviewRefundOutcomeUnknown, AppID: r.AppID, PaymentOrderID: r.PaymentOrderID, RefundOrderID: r.ID,
			Summary: fmt.Sprintf("refund %s (out_trade_no %s, %d fen) may have moved money, but no answer or query settled it after %d attempts: %s",
				r.ID, r.OutTradeNo, r.Amount, task.Attempts, lastReason),
			Evidence: map[string]any{"out_trade_no": r.OutTradeNo, "amount": r.Amount, "submissions": r.Submissions, "last_error": lastReason}}
		if _, err := tx.OpenReviewCase(ctx, c); err != nil {
			return err
		}
		p.log.ErrorContext(ctx, "review case opened: "+c.Summary, "refund_id", r.ID, "kind", c.Kind)
		return tx.FinishTask(ctx, task.Lease, postgres.TaskReview, lastReason)
	})
	if err != nil {
		return end, err
	}
	p.PublishEvents(ctx, events)
	return end, nil
}

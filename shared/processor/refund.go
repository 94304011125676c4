package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/service"
)

// processRefund moves a refund forward. A pending refund is marked processing before Lakala is
// called, so after a crash at any point the refund is found processing and Lakala is asked what
// became of it (by its fixed out_trade_no) before anything else: never a second refund.
func (p *Processor) processRefund(ctx context.Context, task postgres.Task) outcome {
	r, err := p.store.Refund(ctx, task.SubjectID)
	if errors.Is(err, pay.ErrNotFound) {
		_ = p.store.FinishTask(ctx, task.ID, postgres.TaskDead, "refund not found")
		return done()
	}
	if err != nil {
		return retryErr(err)
	}
	var res outcome
	switch r.Status {
	case pay.StatusSucceeded, pay.StatusFailed:
		return p.finish(ctx, task.ID)
	case pay.StatusPending:
		if err := p.markRefundProcessing(ctx, &r); err != nil {
			return retryErr(err)
		}
		res = p.submitRefund(ctx, task, r)
	default:
		res = p.confirmRefund(ctx, task, r)
	}
	if !res.done && !res.review && task.Attempts >= p.cfg.MaxAttempts {
		// The refund may have reached Lakala: it can be neither failed nor retried as new.
		res = needsReview("refund outcome still unknown after " + fmt.Sprint(task.Attempts) + " attempts: " + res.reason)
	}
	if res.review {
		if err := p.flagRefundForReview(ctx, r.ID, res.reason); err != nil {
			return retryErr(err)
		}
	}
	return res
}

func (p *Processor) markRefundProcessing(ctx context.Context, r *pay.Refund) error {
	events, err := p.store.InTx(ctx, func(tx *postgres.Tx) error {
		locked, err := tx.LockRefund(ctx, r.ID)
		if err != nil {
			return err
		}
		if locked.Status == pay.StatusPending {
			if err := locked.MoveTo(pay.StatusProcessing, time.Now()); err != nil {
				return err
			}
			if err := tx.SaveRefund(ctx, &locked, pay.StatusPending); err != nil {
				return err
			}
		}
		*r = locked
		return nil
	})
	if err != nil {
		return err
	}
	p.svc.PublishEvents(ctx, events)
	return nil
}

// submitRefund sends the refund to Lakala under its fixed out_trade_no.
func (p *Processor) submitRefund(ctx context.Context, task postgres.Task, r pay.Refund) outcome {
	order, err := p.store.Order(ctx, r.PaymentOrderID)
	if err != nil {
		return retryErr(err)
	}
	var origin service.CallbackSummary
	_ = json.Unmarshal(order.GatewayCallback, &origin) // absent fields stay empty
	tradeNo := origin.TradeNo
	if tradeNo == "" {
		tradeNo = order.GatewayTransactionID
	}
	res, err := p.gw.Refund(ctx, lakala.RefundRequest{
		OutTradeNo: r.OutTradeNo, Amount: r.Amount, Reason: refundReason(r), RequestIP: p.cfg.RefundRequestIP,
		OriginOutTradeNo: order.OutOrderNo(), OriginTradeNo: tradeNo, OriginLogNo: origin.LogNo,
	})
	var gwErr *lakala.GatewayError
	switch {
	case err == nil:
		return p.settleRefund(ctx, task, r.ID, pay.StatusSucceeded, res.TradeNo, "")
	case errors.As(err, &gwErr):
		return p.settleRefund(ctx, task, r.ID, pay.StatusFailed, "", fmt.Sprintf("%s: %s %s", pay.ReasonRefundRejected, gwErr.Code, gwErr.Msg))
	case errors.Is(err, lakala.ErrInvalidRequest):
		// Refused by our own client before sending: nothing reached Lakala.
		return p.settleRefund(ctx, task, r.ID, pay.StatusFailed, "", pay.ReasonRefundRejected+": "+err.Error())
	default:
		return retry("refund outcome unknown, will query: " + err.Error())
	}
}

func refundReason(r pay.Refund) string {
	if r.Reason != "" {
		return r.Reason
	}
	return "refund"
}

// confirmRefund asks Lakala what became of a refund that is processing, and resubmits it
// (same out_trade_no) only if Lakala has no trace of it.
func (p *Processor) confirmRefund(ctx context.Context, task postgres.Task, r pay.Refund) outcome {
	q, err := p.gw.QueryTrade(ctx, r.OutTradeNo)
	if err != nil {
		return retry("refund query failed: " + err.Error())
	}
	switch q.TradeState {
	case lakala.TradeStateSuccess, lakala.TradeStateRefund, lakala.TradeStatePartRefund:
		return p.settleRefund(ctx, task, r.ID, pay.StatusSucceeded, q.TradeNo, "")
	case lakala.TradeStateFail, lakala.TradeStateClose:
		return p.settleRefund(ctx, task, r.ID, pay.StatusFailed, "", pay.ReasonRefundRejected+": trade_state "+q.TradeState+" "+q.TradeMsg)
	case lakala.TradeStateUnknown:
		return p.submitRefund(ctx, task, r)
	default: // DEAL, INIT, CREATE: still under way at Lakala
		return retry("refund still processing at Lakala: trade_state " + q.TradeState)
	}
}

// settleRefund records the final result of a refund and finishes its task, in one transaction.
func (p *Processor) settleRefund(ctx context.Context, task postgres.Task, id string, to pay.Status, gatewayRefundID, reason string) outcome {
	events, err := p.store.InTx(ctx, func(tx *postgres.Tx) error {
		r, err := tx.LockRefund(ctx, id)
		if err != nil {
			return err
		}
		if r.Status == pay.StatusProcessing {
			var err error
			if to == pay.StatusSucceeded {
				err = r.Succeed(gatewayRefundID, time.Now())
			} else {
				err = r.Fail(reason, time.Now())
				p.log.WarnContext(ctx, "refund failed at Lakala", "refund_id", r.ID, "reason", reason)
			}
			if err != nil {
				return err
			}
			if err := tx.SaveRefund(ctx, &r, pay.StatusProcessing); err != nil {
				return err
			}
		}
		return tx.FinishTask(ctx, task.ID, postgres.TaskDone, "")
	})
	if err != nil {
		return retryErr(err)
	}
	p.svc.PublishEvents(ctx, events)
	return done()
}

// failPendingRefund fails a refund that never reached Lakala; one that may have is flagged.
func (p *Processor) failPendingRefund(ctx context.Context, id, reason string) error {
	events, err := p.store.InTx(ctx, func(tx *postgres.Tx) error {
		r, err := tx.LockRefund(ctx, id)
		if err != nil || r.Status != pay.StatusPending {
			return err
		}
		if err := r.Fail(reason, time.Now()); err != nil {
			return err
		}
		return tx.SaveRefund(ctx, &r, pay.StatusPending)
	})
	if err != nil {
		return err
	}
	p.svc.PublishEvents(ctx, events)
	return nil
}

// flagRefundForReview marks a processing refund whose outcome stayed unknown, for a person to
// settle with Lakala. It stays processing: failing it could hide money that did move.
func (p *Processor) flagRefundForReview(ctx context.Context, id, reason string) error {
	p.log.ErrorContext(ctx, "refund needs manual review: outcome unknown at Lakala", "refund_id", id, "reason", reason)
	_, err := p.store.InTx(ctx, func(tx *postgres.Tx) error {
		r, err := tx.LockRefund(ctx, id)
		if err != nil || r.Status.Final() {
			return err
		}
		extra := map[string]any{}
		_ = json.Unmarshal(r.ExtraData, &extra)
		extra["review_required"] = true
		extra["review_reason"] = reason
		extra["review_flagged_at"] = pay.FormatTime(time.Now())
		r.ExtraData, err = json.Marshal(extra)
		if err != nil {
			return err
		}
		r.UpdatedAt = time.Now()
		return tx.SaveRefund(ctx, &r, r.Status)
	})
	return err
}

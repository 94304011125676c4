package processor

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/service"
)

// reconcile settles orders whose notification never came by asking Lakala, and closes unpaid
// orders past their expiry. It returns how many orders it moved.
func (p *Processor) reconcile(ctx context.Context) (int, error) {
	now := time.Now()
	orders, err := p.store.OrdersToReconcile(ctx, now.Add(-p.cfg.ReconcileAfter), now, 200)
	if err != nil {
		return 0, err
	}
	var moved atomic.Int64
	forEach(orders, p.cfg.Concurrency, func(o pay.Order) {
		if p.reconcileOrder(ctx, o) {
			moved.Add(1)
		}
	})
	return int(moved.Load()), nil
}

func (p *Processor) reconcileOrder(ctx context.Context, o pay.Order) bool {
	log := p.log.With("order_id", o.ID)
	q, err := p.gw.QueryCashierOrder(ctx, o.OutOrderNo())
	if err != nil {
		log.WarnContext(ctx, "reconcile: query failed", "err", err)
		return false
	}
	if moved, decided := p.applyQuery(ctx, o, q); decided {
		return moved
	}
	expiredAtGateway := q.OrderStatus == lakala.OrderStatusExpired
	expired := o.ExpiresAt != nil && time.Now().After(*o.ExpiresAt) || expiredAtGateway
	closedAtGateway := q.OrderStatus == lakala.OrderStatusCancelled || q.OrderStatus == lakala.OrderStatusClosed
	if !expired && !closedAtGateway {
		if err := p.store.MarkOrderChecked(ctx, o.ID, time.Now()); err != nil {
			log.WarnContext(ctx, "reconcile: recording the check failed", "err", err)
		}
		return false
	}
	if !closedAtGateway {
		// An order Lakala reports expired is closed too: close_order_auto_refund only covers a
		// payment that lands after a close, and an expired order can still race a payment.
		if _, err := p.gw.CloseCashierOrder(ctx, o.OutOrderNo()); err != nil {
			if !expiredAtGateway {
				log.WarnContext(ctx, "reconcile: close failed; will retry", "err", err)
				return false
			}
			log.WarnContext(ctx, "reconcile: close of an order Lakala reports expired failed; checking it once more", "err", err)
		}
		// A payer may have paid just before the close: ask once more before failing the order.
		if q, err = p.gw.QueryCashierOrder(ctx, o.OutOrderNo()); err != nil {
			log.WarnContext(ctx, "reconcile: query after close failed", "err", err)
			return false
		}
		if moved, decided := p.applyQuery(ctx, o, q); decided {
			return moved
		}
	}
	reason := pay.ReasonExpired
	if q.OrderStatus == lakala.OrderStatusCancelled || (q.OrderStatus == lakala.OrderStatusClosed && !expired) {
		reason = pay.ReasonClosed
	}
	failed, err := p.svc.FailPayment(ctx, o.ID, reason)
	if err != nil {
		log.ErrorContext(ctx, "reconcile: failing expired order failed", "err", err)
		return false
	}
	if failed {
		log.InfoContext(ctx, "unpaid order closed and failed", "reason", reason)
	}
	return failed
}

// applyQuery settles o if the query decides it (paid or failed); decided is false while unpaid.
func (p *Processor) applyQuery(ctx context.Context, o pay.Order, q lakala.QueryOrderResult) (moved, decided bool) {
	report := reportFromQuery(q)
	if report.Outcome == pay.OutcomeUnpaid {
		return false, false
	}
	res, err := p.svc.SettlePayment(ctx, o.ID, report)
	if err != nil {
		p.log.ErrorContext(ctx, "reconcile: settle failed", "order_id", o.ID, "err", err)
		return false, true
	}
	if res == service.NotificationApplied {
		p.log.InfoContext(ctx, "order settled by reconciliation (no notification arrived)", "order_id", o.ID)
	}
	return res == service.NotificationApplied, true
}

// reportFromQuery turns a cashier order query into the gateway's word on the payment.
func reportFromQuery(q lakala.QueryOrderResult) pay.GatewayReport {
	var r pay.GatewayReport
	payStatus := ""
	switch q.OrderStatus {
	case lakala.OrderStatusPaid, lakala.OrderStatusRefunded:
		r.Outcome, payStatus = pay.OutcomePaid, "S"
	case lakala.OrderStatusFailed:
		r.Outcome, payStatus = pay.OutcomeFailed, "F"
	default:
		return r
	}
	r.Amount = int64(q.TotalAmount)
	summary := service.CallbackSummary{PayStatus: payStatus, Timestamp: pay.FormatTime(time.Now()), Source: "query",
		PayOrderNo: q.PayOrderNo, Amount: r.Amount}
	for _, t := range q.OrderTradeInfoList {
		if t.TradeType == lakala.TradeTypePay {
			r.TradeNo = t.TradeNo
			summary.TradeNo, summary.LogNo, summary.AccTradeNo = t.TradeNo, t.LogNo, t.AccTradeNo
			if tt, err := lakala.ParseTime(t.TradeTime); err == nil {
				summary.TradeTime = pay.FormatTime(tt)
			}
			if t.TradeStatus == lakala.TradeStatusSuccess {
				break
			}
		}
	}
	r.Summary, _ = json.Marshal(summary)
	return r
}

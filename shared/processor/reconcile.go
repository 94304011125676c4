package processor

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/service"
)

// reconcile looks at live orders whose notification never came, that are past their expiry, or
// that wind down, least recently checked first. It only queries Lakala and writes to the
// database: anything that changes something at Lakala (closing a cashier order) is handed to the
// order's task, which works under a lease. It returns how many orders it moved. Once the run
// stops taking work no further check starts; those under way finish.
func (p *Processor) reconcile(r *run) (int, error) {
	ctx := r.work
	now := time.Now()
	orders, err := p.store.OrdersToReconcile(ctx, now.Add(-p.cfg.ReconcileAfter), now.Add(-p.checkSpacing()), now, p.cfg.ReconcileBatch)
	if err != nil {
		return 0, err
	}
	watched, err := p.store.FinalOrdersToWatch(ctx, now, p.cfg.LatePaymentWatch, p.cfg.ReconcileAfter, p.cfg.ReconcileBatch)
	if err != nil {
		return 0, err
	}
	var moved atomic.Int64
	forEach(append(orders, watched...), p.cfg.Concurrency, func(o pay.Order) {
		if r.intake.Err() == nil && p.reconcileOrder(ctx, o) {
			moved.Add(1)
		}
	})
	return int(moved.Load()), nil
}

// checkSpacing is the least time between two checks of one order.
func (p *Processor) checkSpacing() time.Duration {
	return min(p.cfg.ReconcileAfter, p.cfg.MaintenanceEvery)
}

func (p *Processor) reconcileOrder(ctx context.Context, o pay.Order) bool {
	log := p.log.With("order_id", o.ID)
	// A check is as recent as its questions: Lakala answered about the moment it was asked.
	askedAt := time.Now()
	moved, checkErr := p.checkOrder(ctx, o)
	msg := ""
	if checkErr != nil {
		msg = checkErr.Error()
		log.WarnContext(ctx, "reconcile: check failed", "err", checkErr)
	}
	failures, err := p.store.RecordCheck(ctx, o.ID, askedAt, msg)
	if err != nil {
		log.WarnContext(ctx, "reconcile: recording the check failed", "err", err)
		return moved
	}
	if failures >= p.cfg.ReviewAfterFailedChecks {
		c := pay.ReviewCase{Kind: pay.ReviewReconcileFailing, AppID: o.AppID, PaymentOrderID: o.ID, DedupeKey: "checks",
			Summary:  fmt.Sprintf("%d checks of the order with Lakala failed in a row; last: %s", failures, msg),
			Evidence: map[string]any{"status": string(o.Status), "failures": failures, "last_error": msg}}
		if opened, err := p.store.OpenReviewCase(ctx, c); err != nil {
			log.WarnContext(ctx, "reconcile: opening a review case failed", "err", err)
		} else if opened {
			log.ErrorContext(ctx, "review case opened: "+c.Summary, "kind", c.Kind)
		}
	}
	return moved
}

// checkOrder queries every cashier order of a live order that may be payable, applies what a
// query decides (a payment, a final cashier order), and starts the wind-down of an order past
// its expiry. An order already winding down only has its task requeued. Of a final order, it
// queries the closed cashier orders, where a late payment may have landed (a review case).
func (p *Processor) checkOrder(ctx context.Context, o pay.Order) (moved bool, err error) {
	if o.Status.Final() {
		return false, p.checkClosed(ctx, o)
	}
	if o.ClosingReason != "" {
		p.svc.RequeuePayment(ctx, o.ID, "wind down: "+o.ClosingReason)
		return false, nil
	}
	attempts, err := p.store.Attempts(ctx, o.ID)
	if err != nil {
		return false, err
	}
	var errs []error
	for _, a := range attempts {
		if a.State != pay.AttemptOpen {
			continue // creating ones are the task's to settle; settled ones are settled
		}
		gw, err := p.pay.GatewayOf(ctx, o)
		if err != nil {
			errs = append(errs, err)
			break
		}
		q, err := gw.QueryCashierOrder(ctx, a.OutOrderNo)
		if err != nil {
			errs = append(errs, fmt.Errorf("query %s: %w", a.OutOrderNo, err))
			continue
		}
		res, err := p.svc.ApplyReport(ctx, a, service.ReportFromQuery(q, time.Now()), "query", nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if res == service.NotificationApplied {
			p.log.InfoContext(ctx, "order settled by reconciliation (no notification arrived)", "order_id", o.ID, "out_order_no", a.OutOrderNo)
			return true, nil
		}
	}
	if o.ExpiresAt != nil && time.Now().After(*o.ExpiresAt) {
		if err := p.svc.RequestWindDown(ctx, o.ID, pay.ReasonExpired); err != nil {
			errs = append(errs, err)
		} else {
			moved = true
		}
	}
	return moved, errors.Join(errs...)
}

// checkClosed looks for payments on the closed cashier orders of a final order.
func (p *Processor) checkClosed(ctx context.Context, o pay.Order) error {
	attempts, err := p.store.Attempts(ctx, o.ID)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range attempts {
		if a.State != pay.AttemptClosed {
			continue
		}
		gw, err := p.pay.GatewayOf(ctx, o)
		if err != nil {
			errs = append(errs, err)
			break
		}
		q, err := gw.QueryCashierOrder(ctx, a.OutOrderNo)
		if err != nil {
			errs = append(errs, fmt.Errorf("query %s: %w", a.OutOrderNo, err))
			continue
		}
		if _, err := p.svc.ApplyReport(ctx, a, service.ReportFromQuery(q, time.Now()), "query", nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

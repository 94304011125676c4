package service

import (
	"context"
	"errors"
	"time"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// closeWait bounds how long a merchant's close waits for a processor that holds the order's task.
const closeWait = 3 * time.Second

// CloseOrder winds a live order down at the merchant's request (closed_by_merchant): its cashier
// orders are closed at Lakala and queried again, then it fails — or succeeds, if a payer paid
// just before the close. It works under the order's task lease like the processor, so the two
// never act on one order at once; if the processor holds the task, CloseOrder records the
// request and waits a moment for the processor to carry it out. A final order is returned as it
// is. The order returned may still be live (the close is under way) when Lakala did not answer.
func (p *Payments) CloseOrder(ctx context.Context, orderID string) (pay.Order, error) {
	o, err := p.store.Order(ctx, orderID)
	if err != nil || o.Status.Final() {
		return o, err
	}
	if err := p.RequestWindDown(ctx, o.ID, pay.ReasonClosedByMerchant); err != nil {
		return o, err
	}
	task, err := p.store.TaskFor(ctx, postgres.TaskPayment, o.ID)
	if err != nil {
		return o, err
	}
	deadline := time.Now().Add(closeWait)
	for {
		claimed, ok, err := p.store.ClaimIdleTask(ctx, task.ID, time.Now(), p.cfg.CloseLease)
		if err != nil {
			return o, err
		}
		if ok {
			res := p.AdvancePayment(ctx, claimed)
			if !res.Done {
				// Lakala did not settle it now: the processor goes on (its sweep publishes the task).
				if err := p.store.RetryTask(ctx, claimed.Lease, time.Now(), res.Reason); err != nil && !errors.Is(err, postgres.ErrLeaseLost) {
					return o, err
				}
			}
			return p.store.Order(ctx, o.ID)
		}
		if o, err = p.store.Order(ctx, o.ID); err != nil || o.Status.Final() || time.Now().After(deadline) {
			return o, err
		}
		select {
		case <-ctx.Done():
			return o, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

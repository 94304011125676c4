package service

import (
	"context"

	"github.com/loomipay/loomipay/shared/pay"
)

// CloseMerchantOrder is the API's close: the caller's order, named by its
// merchant_order_id, is wound down by CloseOrder. A paid order — already, or found paid by the
// final query — is refused with order_already_paid (refund it instead); a failed order is
// returned as it is, so a repeated close answers the same. The order returned may still be live
// when Lakala did not answer in time: the processor finishes the close.
func (p *Payments) CloseMerchantOrder(ctx context.Context, keyApp, appID, merchantOrderID string) (pay.Order, error) {
	o, err := p.GetOrder(ctx, keyApp, appID, merchantOrderID)
	if err != nil {
		return o, err
	}
	if o.Status != pay.StatusSucceeded {
		if o, err = p.CloseOrder(ctx, o.ID); err != nil {
			return o, err
		}
	}
	if o.Status == pay.StatusSucceeded {
		return o, pay.Errorf(pay.KindConflict, pay.CodeOrderAlreadyPaid,
			"payment order %q is paid (succeeded); refund it instead of closing it", merchantOrderID)
	}
	return o, nil
}

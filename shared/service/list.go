package service

import (
	"context"
	"errors"
	"net/url"

	"github.com/loomipay/loomipay/shared/pay"
)

// ListOrders returns a page of the caller's payment orders, newest first, and whether there
// are more in the direction of travel.
func (s *Service) ListOrders(ctx context.Context, keyApp string, v url.Values) ([]pay.Order, bool, error) {
	q, err := pay.ParseListOrders(v)
	if err != nil {
		return nil, false, err
	}
	if q.AppID, err = requestApp(keyApp, q.AppID); err != nil {
		return nil, false, err
	}
	return s.store.ListOrders(ctx, q)
}

// ListRefunds returns a page of the caller's refunds, newest first. A merchant_order_id filter
// is resolved to its payment order first (an unknown one lists nothing).
func (s *Service) ListRefunds(ctx context.Context, keyApp string, v url.Values) ([]pay.Refund, bool, error) {
	q, err := pay.ParseListRefunds(v)
	if err != nil {
		return nil, false, err
	}
	if q.AppID, err = requestApp(keyApp, q.AppID); err != nil {
		return nil, false, err
	}
	if q.MerchantOrderID != "" {
		o, err := s.store.OrderByMerchantID(ctx, q.AppID, q.MerchantOrderID)
		if errors.Is(err, pay.ErrNotFound) || (err == nil && q.PaymentOrderID != "" && q.PaymentOrderID != o.ID) {
			return []pay.Refund{}, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		q.PaymentOrderID = o.ID
	}
	return s.store.ListRefunds(ctx, q)
}

// GetRefundByMerchantID returns the app's refund with this merchant_refund_id.
func (s *Service) GetRefundByMerchantID(ctx context.Context, keyApp, appID, merchantRefundID string) (pay.Refund, error) {
	appID, err := requestApp(keyApp, appID)
	if err != nil {
		return pay.Refund{}, err
	}
	notFound := pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "refund order with merchant_refund_id %q not found", merchantRefundID)
	if !pay.ValidIdentifier(merchantRefundID) {
		return pay.Refund{}, notFound
	}
	r, err := s.store.RefundByMerchantID(ctx, appID, merchantRefundID)
	if errors.Is(err, pay.ErrNotFound) {
		return r, notFound
	}
	return r, err
}

// Ready reports whether the service can serve: PostgreSQL and Redis answer and every embedded
// migration is applied. The error says which check failed.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return pay.Errorf(pay.KindUnavailable, pay.CodeUnavailable, "postgres is not reachable")
	}
	pending, err := s.store.MigrationsPending(ctx)
	if err != nil {
		return pay.Errorf(pay.KindUnavailable, pay.CodeUnavailable, "cannot read the schema version")
	}
	if pending > 0 {
		e := pay.Errorf(pay.KindUnavailable, pay.CodeUnavailable, "%d migrations not applied; run loomipay migrate", pending)
		return e
	}
	if err := s.streams.Client().Ping(ctx).Err(); err != nil {
		return pay.Errorf(pay.KindUnavailable, pay.CodeUnavailable, "redis is not reachable")
	}
	return nil
}

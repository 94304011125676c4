package service

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/loomipay/loomipay/shared/crash"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/streams"
)

// requestApp is the app a request acts for: the app_id it names, which must be its API key's
// app (else 403 forbidden), or the key's app when it names none, since a key belongs to one app.
func requestApp(keyApp, requested string) (string, error) {
	if requested == "" {
		return keyApp, nil
	}
	if !pay.ValidIdentifier(requested) {
		return "", pay.Invalid("app_id", "app_id must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'")
	}
	if keyApp != requested {
		return "", pay.Errorf(pay.KindForbidden, pay.CodeForbidden, "this API key belongs to another app than %q", requested)
	}
	return requested, nil
}

// CreateOrder creates a payment order from a request body, for the app of the caller's key.
// created is false when an identical order already existed (a retried request).
func (s *Service) CreateOrder(ctx context.Context, keyApp string, body []byte) (pay.Order, bool, error) {
	in, err := pay.ParseCreateOrder(body)
	if err != nil {
		return pay.Order{}, false, err
	}
	if in.AppID, err = requestApp(keyApp, in.AppID); err != nil {
		return pay.Order{}, false, err
	}
	now := s.Now()
	order, taskID, created, err := s.store.CreateOrder(ctx, newID(), in, now, pay.OrderExpiry(now, in.ExpiresIn, s.cfg.OrderTTL))
	if err != nil {
		return order, false, err
	}
	if !created {
		if err := s.sameOrder(ctx, order, in); err != nil {
			return order, false, err
		}
		return order, false, nil
	}
	crash.Here(ctx, crash.OrderCreated)
	s.publishTask(ctx, streams.TaskMessage{TaskID: taskID, Kind: string(postgres.TaskPayment), SubjectID: order.ID})
	return order, true, nil
}

// sameOrder decides between an identical retry (nil) and a conflicting reuse of the
// merchant_order_id (a conflict naming every field that differs).
func (s *Service) sameOrder(ctx context.Context, o pay.Order, in pay.CreateOrderInput) error {
	var diff []string
	if o.Amount != in.Amount {
		diff = append(diff, fmt.Sprintf("amount (stored %d, got %d)", o.Amount, in.Amount))
	}
	if o.OrderType != in.OrderType {
		diff = append(diff, fmt.Sprintf("order_type (stored %q, got %q)", o.OrderType, in.OrderType))
	}
	if o.Subject != in.Subject {
		diff = append(diff, "subject")
	}
	if o.Currency != in.Currency {
		diff = append(diff, fmt.Sprintf("currency (stored %q, got %q)", o.Currency, in.Currency))
	}
	if o.ExpiresIn != in.ExpiresIn {
		diff = append(diff, fmt.Sprintf("expires_in (stored %d, got %d; 0 = not given)", o.ExpiresIn, in.ExpiresIn))
	}
	same, err := s.store.SameExtraData(ctx, o.ExtraData, in.ExtraData)
	if err != nil {
		return fmt.Errorf("compare extra_data: %w", err)
	}
	if !same {
		diff = append(diff, "extra_data")
	}
	if len(diff) == 0 {
		return nil
	}
	return pay.Errorf(pay.KindConflict, pay.CodeOrderConflict,
		"merchant_order_id %q already exists for this app with a different %s", o.MerchantOrderID, strings.Join(diff, ", "))
}

// publishTask wakes the processor. Failure is logged, not returned: the task is committed in
// Postgres and the processor's sweep publishes what never reached the stream.
func (s *Service) publishTask(ctx context.Context, t streams.TaskMessage) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.PublishTimeout)
	defer cancel()
	if !s.groupReady.Load() {
		// Created at the stream's start, so tasks published before the processor ever ran
		// are not skipped.
		if err := s.streams.EnsureGroup(ctx); err != nil {
			s.log.WarnContext(ctx, "task left for the sweep: consumer group not ready", "task_id", t.TaskID, "err", err)
			return
		}
		s.groupReady.Store(true)
	}
	if err := s.streams.PublishTasks(ctx, t); err != nil {
		s.log.WarnContext(ctx, "task left for the sweep: publish failed", "task_id", t.TaskID, "kind", t.Kind, "err", err)
	}
}

// GetOrder returns the app's order with this merchant_order_id; appID is the request's app_id
// ("" for the key's app).
func (s *Service) GetOrder(ctx context.Context, keyApp, appID, merchantOrderID string) (pay.Order, error) {
	appID, err := requestApp(keyApp, appID)
	if err != nil {
		return pay.Order{}, err
	}
	notFound := pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "payment order %q not found", merchantOrderID)
	if !pay.ValidIdentifier(merchantOrderID) {
		return pay.Order{}, notFound
	}
	o, err := s.store.OrderByMerchantID(ctx, appID, merchantOrderID)
	if errors.Is(err, pay.ErrNotFound) {
		return o, notFound
	}
	return o, err
}

// CreateRefund takes a refund against a succeeded payment order.
func (s *Service) CreateRefund(ctx context.Context, keyApp string, body []byte) (pay.Refund, bool, error) {
	in, err := pay.ParseCreateRefund(body)
	if err != nil {
		return pay.Refund{}, false, err
	}
	if in.AppID, err = requestApp(keyApp, in.AppID); err != nil {
		return pay.Refund{}, false, err
	}
	if in.MerchantOrderID != "" {
		o, err := s.store.OrderByMerchantID(ctx, in.AppID, in.MerchantOrderID)
		if errors.Is(err, pay.ErrNotFound) {
			return pay.Refund{}, false, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "payment order %q not found", in.MerchantOrderID)
		}
		if err != nil {
			return pay.Refund{}, false, err
		}
		in.PaymentOrderID = o.ID
	}
	r, taskID, created, err := s.store.CreateRefund(ctx, newID(), in, s.Now())
	if err != nil || !created {
		return r, false, err
	}
	crash.Here(ctx, crash.RefundCreated)
	s.publishTask(ctx, streams.TaskMessage{TaskID: taskID, Kind: string(postgres.TaskRefund), SubjectID: r.ID})
	return r, true, nil
}

// GetRefund returns the app's refund with this id; appID is the request's app_id ("" for the
// key's app).
func (s *Service) GetRefund(ctx context.Context, keyApp, appID, refundID string) (pay.Refund, error) {
	appID, err := requestApp(keyApp, appID)
	if err != nil {
		return pay.Refund{}, err
	}
	id, err := pay.ParseID("refund_order_id", refundID)
	if err != nil {
		return pay.Refund{}, err
	}
	r, err := s.store.Refund(ctx, id)
	if errors.Is(err, pay.ErrNotFound) || (err == nil && r.AppID != appID) {
		return pay.Refund{}, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "refund order %s not found", refundID)
	}
	return r, err
}

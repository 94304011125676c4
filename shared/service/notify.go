package service

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// CallbackSummary is what extra_data.lakala_callback shows of the gateway's word on a payment.
type CallbackSummary struct {
	PayStatus  string `json:"payStatus"`         // "S" success, "F" failure
	Timestamp  string `json:"timestamp"`         // when we received it, RFC 3339 UTC
	Source     string `json:"source"`            // "notification" or "query"
	TradeNo    string `json:"tradeNo,omitempty"` // Lakala trade serial (gateway_transaction_id)
	LogNo      string `json:"logNo,omitempty"`   // needed to refund the payment
	PayOrderNo string `json:"payOrderNo,omitempty"`
	AccTradeNo string `json:"accTradeNo,omitempty"` // Alipay / WeChat transaction id
	TradeTime  string `json:"tradeTime,omitempty"`
	Amount     int64  `json:"amount"`
}

// NotificationResult says how a verified notification was handled, for logs and tests.
type NotificationResult string

const (
	NotificationApplied      NotificationResult = "applied"
	NotificationNoChange     NotificationResult = "no_change"     // duplicate, late, or still pending
	NotificationUnknownOrder NotificationResult = "unknown_order" // not one of ours; acknowledged
)

// HandleNotification verifies a Lakala payment notification on its raw body and applies it.
// A bad or missing signature is an Unauthorized error and changes nothing. Verified
// notifications about unknown orders or final orders are acknowledged without change, so that
// Lakala stops retrying.
func (s *Service) HandleNotification(ctx context.Context, header http.Header, body []byte) (NotificationResult, error) {
	if s.cfg.PlatformKey == nil {
		return "", pay.Internal(errors.New("no Lakala platform certificate configured"))
	}
	signedAt, err := lakala.VerifyNotification(s.cfg.PlatformKey, header, body)
	if err != nil {
		s.log.WarnContext(ctx, "notification refused: bad signature", "err", err)
		return "", pay.Errorf(pay.KindUnauthorized, pay.CodeBadSignature, "notification signature is missing or invalid")
	}
	n, err := lakala.ParseNotification(body)
	if err != nil {
		s.log.WarnContext(ctx, "verified notification not understood", "err", err)
		return "", pay.Errorf(pay.KindInvalid, pay.CodeInvalidJSON, "not a Lakala payment notification")
	}
	log := s.log.With("out_order_no", n.OutOrderNo, "pay_order_no", n.PayOrderNo, "trade_no", n.TradeNo, "result", n.Result.String())
	orderID, ok := pay.OrderIDFromOutOrderNo(n.OutOrderNo)
	if !ok {
		log.WarnContext(ctx, "notification for an order that is not ours; acknowledged")
		return NotificationUnknownOrder, nil
	}
	now := s.Now()
	report := pay.GatewayReport{Amount: n.TotalAmount, TradeNo: n.TradeNo}
	switch n.Result {
	case lakala.PaySucceeded:
		report.Outcome = pay.OutcomePaid
	case lakala.PayFailed:
		report.Outcome = pay.OutcomeFailed
	}
	summary, _ := json.Marshal(CallbackSummary{
		PayStatus: n.PayStatus, Timestamp: pay.FormatTime(now), Source: "notification",
		TradeNo: n.TradeNo, LogNo: n.LogNo, PayOrderNo: n.PayOrderNo, AccTradeNo: n.AccTradeNo,
		TradeTime: formatOptional(n.TradeTime), Amount: n.TotalAmount,
	})
	report.Summary = summary

	// A stale notification may not change a live order (the reconciler settles it by query
	// instead), but a stale repeat for a final order is still acknowledged.
	var refuseChange error
	if absDuration(now.Sub(signedAt)) > s.cfg.ReplayWindow {
		refuseChange = pay.Errorf(pay.KindUnauthorized, pay.CodeBadSignature, "notification timestamp is outside the replay window")
	}
	result, err := s.settle(ctx, orderID, report, refuseChange)
	if err != nil {
		var perr *pay.Error
		if errors.As(err, &perr) && perr.Kind == pay.KindUnauthorized {
			log.WarnContext(ctx, "notification refused: outside the replay window", "signed_at", signedAt)
		}
		return "", err
	}
	switch result {
	case NotificationUnknownOrder:
		log.WarnContext(ctx, "notification for an unknown order; acknowledged")
	case NotificationApplied:
		log.InfoContext(ctx, "notification applied", "order_id", orderID)
	}
	return result, nil
}

// SettlePayment applies the gateway's word on a payment found by querying it (reconciliation).
func (s *Service) SettlePayment(ctx context.Context, orderID string, report pay.GatewayReport) (NotificationResult, error) {
	return s.settle(ctx, orderID, report, nil)
}

// settle applies a gateway report to an order under its row lock. If refuseChange is set, it is
// returned instead of changing a live order. Final orders never move: a duplicate or late report
// is acknowledged without change.
func (s *Service) settle(ctx context.Context, orderID string, report pay.GatewayReport, refuseChange error) (NotificationResult, error) {
	result := NotificationNoChange
	events, err := s.store.InTx(ctx, func(tx *postgres.Tx) error {
		o, err := tx.LockOrder(ctx, orderID)
		if errors.Is(err, pay.ErrNotFound) {
			result = NotificationUnknownOrder
			return nil
		}
		if err != nil {
			return err
		}
		log := s.log.With("order_id", o.ID, "trade_no", report.TradeNo)
		if o.Status.Final() {
			if report.Outcome == pay.OutcomePaid && o.Status == pay.StatusFailed {
				// Lakala refunds a payment landing after close (close_order_auto_refund), but
				// a person should know it happened.
				log.ErrorContext(ctx, "payment reported for a failed order; not applied", "failure_reason", o.FailureReason)
			}
			return nil
		}
		if report.Outcome == pay.OutcomeUnpaid {
			return nil
		}
		if refuseChange != nil {
			return refuseChange
		}
		old := o.Status
		changed, err := o.Settle(report, s.Now())
		if err != nil || !changed {
			return err
		}
		if o.FailureReason == pay.ReasonAmountMismatch {
			log.ErrorContext(ctx, "paid amount differs from the order amount; order failed",
				"order_amount", o.Amount, "paid_amount", report.Amount)
		}
		result = NotificationApplied
		return tx.SaveOrder(ctx, &o, old)
	})
	if err != nil {
		return "", err
	}
	s.PublishEvents(ctx, events)
	return result, nil
}

// FailPayment moves a live order to failed with a reason (expiry, retries exhausted). It returns
// false if the order was already final.
func (s *Service) FailPayment(ctx context.Context, orderID, reason string) (bool, error) {
	failed := false
	events, err := s.store.InTx(ctx, func(tx *postgres.Tx) error {
		o, err := tx.LockOrder(ctx, orderID)
		if err != nil || o.Status.Final() {
			return err
		}
		old := o.Status
		if err := o.Fail(reason, s.Now()); err != nil {
			return err
		}
		failed = true
		return tx.SaveOrder(ctx, &o, old)
	})
	if err != nil {
		return false, err
	}
	s.PublishEvents(ctx, events)
	return failed, nil
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func formatOptional(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return pay.FormatTime(t)
}

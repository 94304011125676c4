package service

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/loomipay/loomipay/shared/crash"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/streams"
)

// NotificationResult says how a gateway report (a notification or a query) was handled.
type NotificationResult string

const (
	NotificationApplied      NotificationResult = "applied"       // the order moved, or began winding down
	NotificationNoChange     NotificationResult = "no_change"     // duplicate, late, or nothing final
	NotificationUnknownOrder NotificationResult = "unknown_order" // not one of ours; acknowledged
	NotificationReview       NotificationResult = "review"        // money moved against a final order: a review case
	// NotificationUnbound: it names one of our numbers, but not the cashier order we created
	// (another merchant's, another pay_order_no, or the legacy form that names no merchant): it
	// changes nothing by itself, and the reconciler confirms the order by our own query.
	NotificationUnbound NotificationResult = "unbound"
)

// Why a notification does not bind to the cashier order we created (notifications.binding).
const (
	BindingBound         = "bound"
	BindingNoMerchant    = "no_merchant"     // the legacy form names no merchant
	BindingOtherMerchant = "other_merchant"  // merchant_no is not the attempt's merchant's
	BindingOtherPayOrder = "other_pay_order" // pay_order_no is not the one Lakala gave our cashier order
	// BindingOtherCertificate: signed with a key that is not the attempt's merchant's (another of
	// our merchants' notification certificate).
	BindingOtherCertificate = "other_certificate"
)

// bindNotification decides whether a verified notification is about the cashier order we
// created, for the merchant that created it (m, the attempt's order's merchant): it must be
// signed with that merchant's notification key (signedBy), name its merchant_no (one platform key
// signs every merchant's notifications and out_order_no is unique per merchant only), and name
// the pay_order_no Lakala gave the attempt when we know it. The settlement terminal (term_no) is
// not compared: Lakala's own sample notification names a settlement terminal other than the
// merchant's configured one, so it would unbind our own notifications and adds nothing
// merchant_no does not already prove.
func bindNotification(n lakala.Notification, m MerchantIdentity, signedBy *rsa.PublicKey, a pay.Attempt) string {
	switch {
	case m.NotifyKey == nil || !m.NotifyKey.Equal(signedBy):
		return BindingOtherCertificate
	case n.MerchantNo == "":
		return BindingNoMerchant
	case n.MerchantNo != m.MerchantNo:
		return BindingOtherMerchant
	case a.PayOrderNo != "" && n.PayOrderNo != a.PayOrderNo:
		return BindingOtherPayOrder
	}
	return BindingBound
}

// verifyNotification checks a notification's signature against every merchant's notification key
// and returns the key that verified it and when it was signed.
func (s *Service) verifyNotification(ctx context.Context, header http.Header, body []byte) (*rsa.PublicKey, time.Time, error) {
	keys, err := s.merchants.NotifyKeys(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	if len(keys) == 0 {
		return nil, time.Time{}, errNoNotifyKey
	}
	var errs []error
	for _, k := range keys {
		signedAt, err := lakala.VerifyNotification(k, header, body)
		if err == nil {
			return k, signedAt, nil
		}
		errs = append(errs, err)
	}
	return nil, time.Time{}, errors.Join(errs...)
}

var errNoNotifyKey = errors.New("no Lakala platform certificate configured")

// HandleNotification verifies a Lakala payment notification on its raw body and applies it.
// A bad or missing signature is an Unauthorized error and changes nothing. Verified
// notifications about unknown orders or final orders are acknowledged without change, so that
// Lakala stops retrying. Every notification, verified or not, is recorded with what became of it.
func (s *Service) HandleNotification(ctx context.Context, header http.Header, body []byte) (NotificationResult, error) {
	sum := sha256.Sum256(body)
	record := postgres.NotificationRecord{BodySHA256: hex.EncodeToString(sum[:])}
	defer func() { s.recordNotification(ctx, record) }()
	signedBy, signedAt, err := s.verifyNotification(ctx, header, body)
	if errors.Is(err, errNoNotifyKey) {
		record.Result = "refused_config"
		return "", pay.Internal(err)
	}
	if err != nil && !errors.Is(err, lakala.ErrBadSignature) {
		record.Result = "error"
		return "", err
	}
	if err != nil {
		record.Result = "refused_signature"
		s.log.WarnContext(ctx, "notification refused: bad signature", "err", err)
		return "", pay.Errorf(pay.KindUnauthorized, pay.CodeBadSignature, "notification signature is missing or invalid")
	}
	record.Verified = true
	n, err := lakala.ParseNotification(body)
	if err == nil {
		// Text the database cannot hold (a NUL, a lone surrogate) in a signed body: refused, so
		// Lakala retries and the reconciler settles the order by query meanwhile.
		err = pay.CheckStorable(body)
	}
	if err != nil {
		record.Result = "not_understood"
		s.log.ErrorContext(ctx, "verified notification not understood", "err", err)
		return "", pay.Errorf(pay.KindInvalid, pay.CodeInvalidJSON, "not a Lakala payment notification")
	}
	record.OutOrderNo, record.TradeNo, record.TradeType, record.TradeStatus = n.OutOrderNo, n.TradeNo, n.TradeType, n.TradeStatus
	record.OrderStatus, record.Amount = n.OrderStatus, n.TotalAmount
	record.MerchantNo, record.TermNo, record.PayOrderNo = n.MerchantNo, n.TermNo, n.PayOrderNo
	log := s.log.With("out_order_no", n.OutOrderNo, "pay_order_no", n.PayOrderNo, "trade_no", n.TradeNo, "result", n.Result.String())
	attempt, err := s.store.AttemptByOutOrderNo(ctx, n.OutOrderNo)
	if errors.Is(err, pay.ErrNotFound) {
		record.Result = string(NotificationUnknownOrder)
		log.WarnContext(ctx, "notification for an order that is not ours; acknowledged")
		return NotificationUnknownOrder, nil
	}
	if err != nil {
		record.Result = "error"
		return "", err
	}
	record.PaymentOrderID = attempt.PaymentOrderID
	crash.Here(ctx, crash.NotificationHeard)
	// The merchant that created the attempt: its order's, for the order's whole life.
	order, err := s.store.Order(ctx, attempt.PaymentOrderID)
	if err != nil {
		record.Result = "error"
		return "", err
	}
	merchant, err := s.merchants.Identity(ctx, order.MerchantID)
	if err != nil {
		record.Result = "error"
		return "", fmt.Errorf("merchant %q of order %s: %w", order.MerchantID, order.ID, err)
	}
	if record.Binding = bindNotification(n, merchant, signedBy, attempt); record.Binding != BindingBound {
		// Acknowledged, so Lakala stops; our own query of our cashier order decides instead. A
		// paid notification of another merchant's cashier order moves no money here: it is on the
		// order's timeline for people to see.
		record.Result = string(NotificationUnbound)
		log.WarnContext(ctx, "notification does not bind to our cashier order; the order is confirmed by query",
			"order_id", attempt.PaymentOrderID, "binding", record.Binding, "merchant_no", n.MerchantNo, "merchant_id", order.MerchantID)
		if err := s.store.RequestCheck(ctx, attempt.PaymentOrderID, s.Now()); err != nil {
			record.Result = "error"
			return "", err
		}
		return NotificationUnbound, nil
	}
	// A stale notification may not change a live order (the reconciler settles it by query
	// instead), but a stale repeat for a final order is still acknowledged.
	var refuseChange error
	if absDuration(s.Now().Sub(signedAt)) > s.cfg.ReplayWindow {
		refuseChange = pay.Errorf(pay.KindUnauthorized, pay.CodeBadSignature, "notification timestamp is outside the replay window")
	}
	report := reportFromNotification(n, s.Now())
	result, err := s.ApplyReport(ctx, attempt, report, "notification", refuseChange)
	if err != nil {
		record.Result = "error"
		if errors.Is(err, refuseChange) {
			record.Result = "refused_replay"
			log.WarnContext(ctx, "notification refused: outside the replay window", "signed_at", signedAt)
		}
		return "", err
	}
	record.Result = string(result)
	if result == NotificationApplied {
		log.InfoContext(ctx, "notification applied", "order_id", attempt.PaymentOrderID)
	}
	return result, nil
}

// recordNotification keeps the evidence of a notification; a failure to record is logged only:
// the notification's effect is already committed (or refused) either way.
func (s *Service) recordNotification(ctx context.Context, r postgres.NotificationRecord) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.PublishTimeout)
	defer cancel()
	if err := s.store.RecordNotification(ctx, r); err != nil {
		s.log.WarnContext(ctx, "notification not recorded in the log", "err", err)
	}
}

// ApplyReport applies the gateway's word on one cashier order (an attempt) to its order, under
// the order's row lock, by the decision table pay.DecideReport: the order succeeds, or begins
// winding down (its task then closes its cashier orders and fails it), or a review case records
// money that moved against a final order. It only writes to the database: no Lakala call. If
// refuseChange is set, it is returned instead of changing a live order.
func (s *Service) ApplyReport(ctx context.Context, attempt pay.Attempt, report pay.GatewayReport, source string, refuseChange error) (NotificationResult, error) {
	result := NotificationNoChange
	requeue := false
	report.AttemptNo = attempt.No
	events, err := s.store.InTx(ctx, func(tx *postgres.Tx) error {
		o, err := tx.LockOrder(ctx, attempt.PaymentOrderID)
		if errors.Is(err, pay.ErrNotFound) {
			result = NotificationUnknownOrder
			return nil
		}
		if err != nil {
			return err
		}
		now := s.Now()
		// What the gateway said of the cashier order is evidence: kept whatever the order does, and
		// a payment only here, together with what it does to the order (success, or a review case),
		// so that no crash can leave a paid cashier order whose consequence was never recorded.
		// A payment of the wrong amount is recorded only once our own query confirms it (the
		// wind-down closes and queries the cashier order first).
		switch {
		case report.Outcome == pay.OutcomePaid && attempt.State != pay.AttemptPaid && (report.AmountMatches(&o) || source == "query"):
			attempt.State, attempt.UpdatedAt = pay.AttemptPaid, now
			if err := tx.SaveAttempt(ctx, &attempt); err != nil {
				return err
			}
		case report.ClosedAtGateway && !attempt.State.Settled():
			attempt.State, attempt.UpdatedAt = pay.AttemptClosed, now
			if err := tx.SaveAttempt(ctx, &attempt); err != nil {
				return err
			}
		}
		d := pay.DecideReport(&o, report)
		if refuseChange != nil && (d.Succeed || d.WindDown != "") {
			return refuseChange
		}
		log := s.log.With("order_id", o.ID, "out_order_no", attempt.OutOrderNo, "trade_no", report.TradeNo, "source", source)
		if d.Review != "" {
			c := reviewCaseFor(d.Review, &o, attempt, report, source)
			opened, err := tx.OpenReviewCase(ctx, c)
			if err != nil {
				return err
			}
			if opened {
				log.ErrorContext(ctx, "review case opened: "+c.Summary, "kind", c.Kind)
			}
			result = NotificationReview
		}
		old := o.Status
		switch {
		case d.Succeed:
			if err := o.Succeed(report, now); err != nil {
				return err
			}
			result = NotificationApplied
			// Any other cashier order of the order must not stay payable: its task closes them.
			requeue = true
		case d.WindDown != "":
			if !o.RequestWindDown(d.WindDown) {
				return nil
			}
			o.UpdatedAt = now
			if len(report.Summary) > 0 {
				o.GatewayCallback = report.Summary
			}
			if report.TradeNo != "" && o.GatewayTransactionID == "" {
				o.GatewayTransactionID = report.TradeNo
			}
			log.InfoContext(ctx, "order winds down: its cashier orders are closed, then it fails", "reason", d.WindDown)
			if result != NotificationReview {
				result = NotificationApplied
			}
			requeue = true
		default:
			return nil
		}
		return tx.SaveOrder(ctx, &o, old)
	})
	if err != nil {
		return "", err
	}
	crash.Here(ctx, crash.ReportCommitted)
	s.PublishEvents(ctx, events)
	if requeue {
		s.RequeuePayment(ctx, attempt.PaymentOrderID, "gateway report from "+source)
	}
	return result, nil
}

// RequeuePayment hands an order back to its task (to close cashier orders, or wind it down)
// and wakes the processor. A failure is logged: the reconciler requeues the task of every order
// still winding down, and the sweep publishes every due task.
func (s *Service) RequeuePayment(ctx context.Context, orderID, why string) {
	taskID, requeued, err := s.store.RequeueTask(ctx, postgres.TaskPayment, orderID, why)
	if err != nil {
		s.log.WarnContext(ctx, "payment task not requeued; the reconciler will", "order_id", orderID, "err", err)
		return
	}
	crash.Here(ctx, crash.TaskRequeued)
	if requeued {
		s.publishTask(ctx, streams.TaskMessage{TaskID: taskID, Kind: string(postgres.TaskPayment), SubjectID: orderID})
	}
}

// reviewCaseFor describes a review case from the report that opened it.
func reviewCaseFor(kind string, o *pay.Order, a pay.Attempt, r pay.GatewayReport, source string) pay.ReviewCase {
	c := pay.ReviewCase{Kind: kind, AppID: o.AppID, PaymentOrderID: o.ID, DedupeKey: a.OutOrderNo + "/" + r.TradeNo,
		Evidence: map[string]any{
			"source": source, "out_order_no": a.OutOrderNo, "trade_no": r.TradeNo,
			"order_amount": o.Amount, "reported_total_amount": r.OrderAmount, "reported_trade_amount": r.TradeAmount,
			"order_status": string(o.Status), "failure_reason": o.FailureReason,
			// Lakala's statement numbers of the payment, for the daily statement's review lines.
			"log_no": r.LogNo, "trade_time": formatOptional(r.TradeTime),
		}}
	switch kind {
	case pay.ReviewPaidAfterFailed:
		c.Summary = fmt.Sprintf("Lakala reports cashier order %s paid (trade %s) but the order is failed (%s); the payer's money must be returned", a.OutOrderNo, r.TradeNo, o.FailureReason)
	case pay.ReviewAmountMismatch:
		c.Summary = fmt.Sprintf("Lakala reports cashier order %s paid with total %d and trade amount %d fen, but the order is for %d fen; the order fails and the payment must be returned", a.OutOrderNo, r.OrderAmount, r.TradeAmount, o.Amount)
	case pay.ReviewDuplicatePayment:
		c.Summary = fmt.Sprintf("cashier order %s was paid (trade %s) after the order had already succeeded with trade %s; the second payment must be returned", a.OutOrderNo, r.TradeNo, o.GatewayTransactionID)
	default:
		c.Summary = kind
	}
	return c
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

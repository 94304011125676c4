package pay

import (
	"encoding/json"
	"fmt"
	"time"
)

// MoveTo changes the order's status if the transition is allowed. An order that succeeds without
// a trade time from the gateway gets the time of its success: the statement puts every
// succeeded payment on a day.
func (o *Order) MoveTo(to Status, at time.Time) error {
	if !CanMovePayment(o.Status, to) {
		return fmt.Errorf("payment order %s: %s → %s is not allowed", o.ID, o.Status, to)
	}
	o.Status = to
	o.UpdatedAt = at
	if to == StatusSucceeded && o.GatewayTradeTime == nil {
		o.GatewayTradeTime = &at
	}
	return nil
}

// Fail moves the order to failed with a reason.
func (o *Order) Fail(reason string, at time.Time) error {
	if err := o.MoveTo(StatusFailed, at); err != nil {
		return err
	}
	o.FailureReason = reason
	o.ClosingReason = ""
	return nil
}

// StartCheckout records the cashier order the gateway issued and moves pending → processing.
func (o *Order) StartCheckout(paymentURL, gatewayOrderNo string, expiresAt, at time.Time) error {
	if err := o.MoveTo(StatusProcessing, at); err != nil {
		return err
	}
	o.PaymentURL = paymentURL
	o.GatewayOrderNo = gatewayOrderNo
	o.ExpiresAt = &expiresAt
	return nil
}

// PaymentOutcome is what the gateway says about one cashier order.
type PaymentOutcome int

const (
	// OutcomeOpen: not paid and still payable (unpaid, paying, or a failed trade on an order
	// that stays payable). Not a failure of the order.
	OutcomeOpen PaymentOutcome = iota
	OutcomePaid
	// OutcomeFinalUnpaid: failed, expired, cancelled or closed at the gateway.
	OutcomeFinalUnpaid
	// OutcomeNotFound: the gateway does not know the cashier order, or does not see it yet.
	OutcomeNotFound
)

// GatewayReport is the gateway's word on one cashier order, from a notification or a query.
type GatewayReport struct {
	// AttemptNo is the attempt (cashier order) the report is about.
	AttemptNo int
	Outcome   PaymentOutcome
	// FailReason is the failure_reason an OutcomeFinalUnpaid leads to (payment_failed, expired,
	// closed).
	FailReason string
	// ClosedAtGateway: the gateway says the cashier order is closed or cancelled, so nobody can
	// pay it; an expired or failed one is closed by us first all the same.
	ClosedAtGateway bool
	OrderAmount     int64           // total_amount, in fen
	TradeAmount     int64           // the PAY trade's trade_amount; 0 when the report has none
	TradeNo         string          // becomes gateway_transaction_id
	LogNo           string          // the PAY trade's log_no (Lakala's statement serial number)
	TradeTime       time.Time       // the PAY trade's trade time; zero when the report has none
	Summary         json.RawMessage // stored as extra_data.lakala_callback
}

// SamePaymentAs reports whether a paid report is about the payment a succeeded order succeeded
// with. Payments are told apart by cashier order (attempt), not by trade number, which a report
// may lack. An order that succeeded before the attempt was recorded falls back to the trade
// number, and without one on both sides it is not the same payment: a second case a person
// closes is cheaper than a second payment nobody returns.
func (r GatewayReport) SamePaymentAs(o *Order) bool {
	if o.PaidAttemptNo != 0 {
		return r.AttemptNo == o.PaidAttemptNo
	}
	return r.TradeNo != "" && r.TradeNo == o.GatewayTransactionID
}

// AmountMatches reports whether a paid report is for exactly the order's amount: the order
// total and, when given, the PAY trade's own amount (a trade of 1 fen under a matching total
// is not a payment of the order).
func (r GatewayReport) AmountMatches(o *Order) bool {
	return r.OrderAmount == o.Amount && (r.TradeAmount == 0 || r.TradeAmount == o.Amount)
}

// ReportDecision is what a gateway report does to an order; see DecideReport.
type ReportDecision struct {
	Succeed  bool   // live → succeeded
	WindDown string // close the order's cashier orders, then fail it with this reason
	Review   string // open a review case of this kind
}

// DecideReport is the one decision table for a gateway report about an order (docs/DECISIONS.md,
// "Payment reports"). An order fails only once its cashier orders are settled at the gateway,
// so a report never fails an order directly: it asks for a wind-down (close, query again,
// then fail). Money that moved against a final order opens a review case.
func DecideReport(o *Order, r GatewayReport) ReportDecision {
	switch {
	case r.Outcome == OutcomePaid && o.Status == StatusSucceeded:
		if !r.SamePaymentAs(o) {
			return ReportDecision{Review: ReviewDuplicatePayment}
		}
		return ReportDecision{}
	case r.Outcome == OutcomePaid && o.Status == StatusFailed && !r.AmountMatches(o):
		// Said again of an order that failed for it (the late-payment watch asks again): the same
		// case, not a second one.
		return ReportDecision{Review: ReviewAmountMismatch}
	case r.Outcome == OutcomePaid && o.Status == StatusFailed:
		return ReportDecision{Review: ReviewPaidAfterFailed}
	case r.Outcome == OutcomePaid && !r.AmountMatches(o):
		return ReportDecision{Review: ReviewAmountMismatch, WindDown: ReasonAmountMismatch}
	case r.Outcome == OutcomePaid:
		return ReportDecision{Succeed: true}
	case r.Outcome == OutcomeFinalUnpaid && !o.Status.Final():
		return ReportDecision{WindDown: r.FailReason}
	}
	return ReportDecision{}
}

// Succeed moves a live order to succeeded with the gateway's trade.
func (o *Order) Succeed(r GatewayReport, at time.Time) error {
	if err := o.MoveTo(StatusSucceeded, at); err != nil {
		return err
	}
	if len(r.Summary) > 0 {
		o.GatewayCallback = r.Summary
	}
	if r.TradeNo != "" {
		o.GatewayTransactionID = r.TradeNo
	}
	o.PaidAttemptNo = r.AttemptNo
	o.GatewayLogNo = r.LogNo
	if !r.TradeTime.IsZero() {
		t := r.TradeTime.UTC()
		o.GatewayTradeTime = &t
	}
	o.ClosingReason = ""
	return nil
}

// RequestWindDown records that a live order must fail with reason once its cashier orders are
// settled at the gateway. The first reason stands, except that amount_mismatch replaces any
// other: money moved, and the failure must say so (CheckFail lets only it fail an order with a
// paid cashier order). It reports whether anything changed.
func (o *Order) RequestWindDown(reason string) bool {
	if o.Status.Final() || o.ClosingReason == reason {
		return false
	}
	if o.ClosingReason != "" && reason != ReasonAmountMismatch {
		return false
	}
	o.ClosingReason = reason
	return true
}

// MoveTo changes the refund's status if the transition is allowed. A refund that succeeds
// without a trade time from the gateway gets the time of its success, as an order does.
func (r *Refund) MoveTo(to Status, at time.Time) error {
	if !CanMoveRefund(r.Status, to) {
		return fmt.Errorf("refund %s: %s → %s is not allowed", r.ID, r.Status, to)
	}
	r.Status = to
	r.UpdatedAt = at
	if to == StatusSucceeded && r.GatewayTradeTime == nil {
		r.GatewayTradeTime = &at
	}
	return nil
}

// Fail moves the refund to failed with a reason.
func (r *Refund) Fail(reason string, at time.Time) error {
	if err := r.MoveTo(StatusFailed, at); err != nil {
		return err
	}
	r.FailureReason = reason
	return nil
}

// RefundTrade is the gateway's word on a refund that went through: its trade_no (the refund's
// gateway_refund_id), log_no and trade time (zero when not given).
type RefundTrade struct {
	TradeNo string
	LogNo   string
	Time    time.Time
}

// Succeed records the gateway's refund trade and moves processing → succeeded.
func (r *Refund) Succeed(trade RefundTrade, at time.Time) error {
	if err := r.MoveTo(StatusSucceeded, at); err != nil {
		return err
	}
	r.GatewayRefundID = trade.TradeNo
	r.GatewayLogNo = trade.LogNo
	if !trade.Time.IsZero() {
		t := trade.Time.UTC()
		r.GatewayTradeTime = &t
	}
	return nil
}

// Refundable is what may still be refunded of o, given the sum of its refunds that are
// pending, processing or succeeded: nothing unless o succeeded.
func Refundable(o *Order, outstanding int64) int64 {
	if o.Status != StatusSucceeded {
		return 0
	}
	return max(0, o.Amount-outstanding)
}

// CheckRefund decides whether a new refund of amount may be taken against o. outstanding is the
// sum of its refunds that are pending, processing or succeeded (a failed refund gives its amount
// back), so what may still be refunded is the paid amount minus outstanding.
func CheckRefund(o *Order, outstanding, amount int64) error {
	if o.Status != StatusSucceeded {
		return Errorf(KindConflict, CodePaymentNotRefundable,
			"payment order %s is %s; only a succeeded payment can be refunded", o.ID, o.Status)
	}
	if left := Refundable(o, outstanding); amount > left {
		return &Error{Kind: KindInvalid, Code: CodeRefundExceeds, Field: "amount",
			Detail: fmt.Sprintf("amount %d exceeds the refundable remainder of %d fen", amount, left)}
	}
	return nil
}

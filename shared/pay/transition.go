package pay

import (
	"encoding/json"
	"fmt"
	"time"
)

// MoveTo changes the order's status if the transition is allowed.
func (o *Order) MoveTo(to Status, at time.Time) error {
	if !CanMovePayment(o.Status, to) {
		return fmt.Errorf("payment order %s: %s → %s is not allowed", o.ID, o.Status, to)
	}
	o.Status = to
	o.UpdatedAt = at
	return nil
}

// Fail moves the order to failed with a reason.
func (o *Order) Fail(reason string, at time.Time) error {
	if err := o.MoveTo(StatusFailed, at); err != nil {
		return err
	}
	o.FailureReason = reason
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

// PaymentOutcome is what the gateway says about a payment.
type PaymentOutcome int

const (
	OutcomeUnpaid PaymentOutcome = iota // nothing final yet
	OutcomePaid
	OutcomeFailed
)

// GatewayReport is the gateway's word on a payment, from a notification or a query.
type GatewayReport struct {
	Outcome PaymentOutcome
	Amount  int64           // the order/trade amount the gateway reports, in fen
	TradeNo string          // becomes gateway_transaction_id
	Summary json.RawMessage // stored as extra_data.lakala_callback when it came from a notification
}

// Settle applies a gateway report. It returns false when the report changes nothing: the order
// is already final (a duplicate or late report) or the payment is not decided yet. A paid report
// whose amount differs from the order's never makes the order succeeded: it fails it instead.
func (o *Order) Settle(r GatewayReport, at time.Time) (bool, error) {
	if o.Status.Final() || r.Outcome == OutcomeUnpaid {
		return false, nil
	}
	if len(r.Summary) > 0 {
		o.GatewayCallback = r.Summary
	}
	if r.TradeNo != "" {
		o.GatewayTransactionID = r.TradeNo
	}
	switch {
	case r.Outcome == OutcomePaid && r.Amount != o.Amount:
		return true, o.Fail(ReasonAmountMismatch, at)
	case r.Outcome == OutcomePaid:
		return true, o.MoveTo(StatusSucceeded, at)
	default:
		return true, o.Fail(ReasonPaymentFailed, at)
	}
}

// MoveTo changes the refund's status if the transition is allowed.
func (r *Refund) MoveTo(to Status, at time.Time) error {
	if !CanMoveRefund(r.Status, to) {
		return fmt.Errorf("refund %s: %s → %s is not allowed", r.ID, r.Status, to)
	}
	r.Status = to
	r.UpdatedAt = at
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

// Succeed records the gateway's refund id and moves processing → succeeded.
func (r *Refund) Succeed(gatewayRefundID string, at time.Time) error {
	if err := r.MoveTo(StatusSucceeded, at); err != nil {
		return err
	}
	r.GatewayRefundID = gatewayRefundID
	return nil
}

// CheckRefund decides whether a new refund of amount may be taken against o. outstanding is the
// sum of its refunds that are pending, processing or succeeded (a failed refund gives its amount
// back), so what may still be refunded is the paid amount minus outstanding.
func CheckRefund(o *Order, outstanding, amount int64) error {
	if o.Status != StatusSucceeded {
		return Errorf(KindConflict, CodePaymentNotRefundable,
			"payment order %s is %s; only a succeeded payment can be refunded", o.ID, o.Status)
	}
	if left := o.Amount - outstanding; amount > left {
		return &Error{Kind: KindInvalid, Code: CodeRefundExceeds, Field: "amount",
			Detail: fmt.Sprintf("amount %d exceeds the refundable remainder of %d fen", amount, left)}
	}
	return nil
}

package pay

// Status is the status of a payment order or a refund order; both use the same four words.
type Status string

const (
	StatusPending    Status = "pending"    // accepted, not yet at the gateway
	StatusProcessing Status = "processing" // at the gateway: cashier URL issued, or refund submitted
	StatusSucceeded  Status = "succeeded"  // final
	StatusFailed     Status = "failed"     // final
)

// Final reports whether no further change is allowed.
func (s Status) Final() bool { return s == StatusSucceeded || s == StatusFailed }

// paymentTransitions lists every allowed change of a payment order's status.
// pending → succeeded is allowed because a payment that the gateway confirms (a notification or
// a reconciliation query) must never be dropped, even if our own record of the cashier order was
// lost in a crash between the gateway call and the commit.
var paymentTransitions = map[Status][]Status{
	StatusPending:    {StatusProcessing, StatusSucceeded, StatusFailed},
	StatusProcessing: {StatusSucceeded, StatusFailed},
}

// refundTransitions lists every allowed change of a refund's status. pending → failed is for a
// refund that was never submitted (its task died before reaching the gateway).
var refundTransitions = map[Status][]Status{
	StatusPending:    {StatusProcessing, StatusFailed},
	StatusProcessing: {StatusSucceeded, StatusFailed},
}

// CanMovePayment reports whether a payment order may go from one status to another.
func CanMovePayment(from, to Status) bool { return allowed(paymentTransitions, from, to) }

// CanMoveRefund reports whether a refund may go from one status to another.
func CanMoveRefund(from, to Status) bool { return allowed(refundTransitions, from, to) }

func allowed(table map[Status][]Status, from, to Status) bool {
	for _, s := range table[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Reasons recorded in failure_reason.
const (
	ReasonAmountMismatch   = "amount_mismatch"
	ReasonPaymentFailed    = "payment_failed"
	ReasonExpired          = "expired"
	ReasonClosed           = "closed"
	ReasonGatewayRejected  = "gateway_rejected"
	ReasonRetriesExceeded  = "retries_exhausted"
	ReasonRefundRejected   = "refund_rejected"
	ReasonClosedByMerchant = "closed_by_merchant"
)

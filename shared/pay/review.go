package pay

// Kinds of review case: a state that only a person can settle, recorded in Postgres with its
// evidence rather than only logged.
const (
	// ReviewPaidAfterFailed: the gateway reports a payment on an order that is already failed.
	ReviewPaidAfterFailed = "paid_after_failed"
	// ReviewAmountMismatch: the gateway reports a payment whose amount differs from the order's.
	ReviewAmountMismatch = "amount_mismatch"
	// ReviewDuplicatePayment: a second cashier order of an already succeeded order was paid.
	ReviewDuplicatePayment = "duplicate_payment"
	// ReviewRefundOutcomeUnknown: a refund may have moved money, and no query settled it.
	ReviewRefundOutcomeUnknown = "refund_outcome_unknown"
	// ReviewReconcileFailing: checks or closes of a live order keep failing.
	ReviewReconcileFailing = "reconcile_failing"
)

// ReviewCase is one state that needs a person.
type ReviewCase struct {
	ID             int64
	Kind           string
	AppID          string
	PaymentOrderID string
	RefundOrderID  string // empty for a payment case
	DedupeKey      string // what tells two open cases of one kind on one subject apart
	Summary        string // one sentence for the person
	Evidence       map[string]any
}

package ops

import (
	"strings"

	"github.com/loomipay/loomipay/shared/pay"
)

// States in plain words, for people who support customers: what the status means for the payer
// and what happens next.

var reasonWords = map[string]string{
	pay.ReasonExpired:          "the payer did not pay before the order expired",
	pay.ReasonClosed:           "Lakala closed the cashier order (the payer cancelled, or Lakala did)",
	pay.ReasonClosedByMerchant: "closed on purpose, by the main app or an operator",
	pay.ReasonPaymentFailed:    "the payment failed at Lakala",
	pay.ReasonGatewayRejected:  "Lakala refused to create the cashier order",
	pay.ReasonRetriesExceeded:  "Lakala could not be reached for too long",
	pay.ReasonAmountMismatch:   "Lakala reported another amount than the order's (a review case says what to do)",
	pay.ReasonRefundRejected:   "Lakala refused the refund",
}

// ReasonWords says a failure_reason in words ("retries_exhausted: …" keeps its detail).
func ReasonWords(reason string) string {
	code, detail, _ := strings.Cut(reason, ":")
	w, ok := reasonWords[code]
	if !ok {
		return reason
	}
	if detail = strings.TrimSpace(detail); detail != "" {
		w += " (" + detail + ")"
	}
	return w
}

// OrderWords says where a payment order stands.
func OrderWords(o OrderRow) string {
	switch o.Status {
	case pay.StatusPending:
		return "Not yet at Lakala: the processor is creating its cashier order"
	case pay.StatusProcessing:
		if o.ClosingReason != "" {
			return "Being closed at Lakala (" + ReasonWords(o.ClosingReason) + "); it fails once Lakala confirms, or succeeds if the payer paid just before"
		}
		return "Waiting for the payer at Lakala's cashier"
	case pay.StatusSucceeded:
		switch {
		case o.RefundedAmount >= o.Amount:
			return "Paid, and refunded in full"
		case o.RefundedAmount > 0:
			return "Paid, and refunded in part"
		}
		return "Paid"
	case pay.StatusFailed:
		return "Not paid: " + ReasonWords(o.FailureReason)
	}
	return string(o.Status)
}

// RefundWords says where a refund stands.
func RefundWords(r RefundRow) string {
	switch r.Status {
	case pay.StatusPending:
		return "Not yet sent to Lakala"
	case pay.StatusProcessing:
		if r.ReviewReason != "" {
			return "Sent to Lakala, outcome unknown: a review case waits for a person"
		}
		return "Sent to Lakala, waiting for its answer"
	case pay.StatusSucceeded:
		return "Refunded"
	case pay.StatusFailed:
		return "Not refunded: " + ReasonWords(r.FailureReason)
	}
	return string(r.Status)
}

package pay

import (
	"strconv"
	"time"
)

// Logical names of the result streams main apps read.
const (
	StreamPaymentResults = "payment_results"
	StreamRefundResults  = "refund_results"
)

// Event types on the result streams.
const (
	EventPaymentStatusChanged = "payment_status_changed"
	EventRefundStatusChanged  = "refund_status_changed"
)

// ResultMessage is one message for a result stream: a flat map of strings, as Redis stream
// fields are. Field names are the integration guide's and must not change.
type ResultMessage struct {
	EventID string
	Stream  string
	// SubjectID is the order or refund the message is about; Seq numbers its messages 1, 2, 3 …
	// in the order of its status changes (also sent as the "seq" field).
	SubjectID string
	AppID     string
	Seq       int
	Fields    map[string]string
}

// TimeFormat is how every timestamp leaves the service: RFC 3339 in UTC.
const TimeFormat = time.RFC3339

// FormatTime renders t in UTC, RFC 3339.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// PaymentChanged is the payment_results message for o having moved from old to o.Status; it is
// the order's o.ResultSeq-th message.
func PaymentChanged(eventID string, o *Order, old Status) ResultMessage {
	f := map[string]string{
		"event_type":             EventPaymentStatusChanged,
		"event_id":               eventID,
		"payment_order_id":       o.ID,
		"app_id":                 o.AppID,
		"merchant_order_id":      o.MerchantOrderID,
		"old_status":             string(old),
		"new_status":             string(o.Status),
		"gateway_transaction_id": o.GatewayTransactionID,
		"amount":                 strconv.FormatInt(o.Amount, 10),
		"timestamp":              FormatTime(o.UpdatedAt),
		"seq":                    strconv.Itoa(o.ResultSeq),
	}
	if o.Status == StatusProcessing {
		f["payment_url"] = o.PaymentURL
	}
	if o.Status == StatusFailed {
		f["failure_reason"] = o.FailureReason
	}
	return ResultMessage{EventID: eventID, Stream: StreamPaymentResults, SubjectID: o.ID, AppID: o.AppID, Seq: o.ResultSeq, Fields: f}
}

// RefundChanged is the refund_results message for r having moved from old to r.Status; it is
// the refund's r.ResultSeq-th message.
func RefundChanged(eventID string, r *Refund, old Status) ResultMessage {
	f := map[string]string{
		"event_type":         EventRefundStatusChanged,
		"event_id":           eventID,
		"refund_order_id":    r.ID,
		"payment_order_id":   r.PaymentOrderID,
		"app_id":             r.AppID,
		"merchant_refund_id": r.MerchantRefundID,
		"merchant_order_id":  r.MerchantOrderID,
		"old_status":         string(old),
		"new_status":         string(r.Status),
		"gateway_refund_id":  r.GatewayRefundID,
		"amount":             strconv.FormatInt(r.Amount, 10),
		"timestamp":          FormatTime(r.UpdatedAt),
		"seq":                strconv.Itoa(r.ResultSeq),
	}
	if r.Status == StatusFailed {
		f["failure_reason"] = r.FailureReason
	}
	return ResultMessage{EventID: eventID, Stream: StreamRefundResults, SubjectID: r.ID, AppID: r.AppID, Seq: r.ResultSeq, Fields: f}
}

package loomipay

import (
	"errors"
	"fmt"
	"time"
)

// Error codes of the API (docs/ERRORS.md in the service's repository).
const (
	CodeValidation           = "validation_error"
	CodeInvalidJSON          = "invalid_json"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeOrderConflict        = "order_conflict"
	CodeRefundConflict       = "refund_conflict"
	CodePaymentNotRefundable = "payment_not_refundable"
	CodeRefundExceeds        = "refund_exceeds_refundable"
	CodeOrderAlreadyPaid     = "order_already_paid"
	CodeBodyTooLarge         = "body_too_large"
	CodeRateLimited          = "rate_limited"
	CodeUnavailable          = "service_unavailable"
	CodeInternal             = "internal_error"
)

// Error is an error answer of the API: its HTTP status and the body's code, detail and field.
type Error struct {
	Status     int
	Code       string
	Detail     string
	Field      string        // the offending field of a validation error
	RetryAfter time.Duration // from a Retry-After header, if any
}

func (e *Error) Error() string {
	return fmt.Sprintf("loomipay: %d %s: %s", e.Status, e.Code, e.Detail)
}

// ErrorCode returns the API error code of err (an *Error, possibly wrapped), or "".
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// IsNotFound reports whether err is the API's not_found.
func IsNotFound(err error) bool { return ErrorCode(err) == CodeNotFound }

package pay

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an Error; the HTTP layer maps each kind to one status code, in one place.
type Kind int

const (
	KindInternal     Kind = iota // a fault of ours; details are logged, never shown
	KindInvalid                  // the request is malformed or breaks a rule (400)
	KindUnauthorized             // no or unknown credentials (401)
	KindForbidden                // credentials valid, but not for this app (403)
	KindNotFound                 // no such thing for this caller (404)
	KindConflict                 // clashes with the current state (409)
	KindTooLarge                 // the body exceeds the limit (413)
	KindUnavailable              // a dependency is down; retrying later may succeed (503)
	KindRateLimited              // the app exceeded its request rate (429)
)

// Machine-readable error codes sent as "code" in error bodies.
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
	CodeBodyTooLarge         = "body_too_large"
	CodeBadSignature         = "bad_signature"
	CodeUnavailable          = "service_unavailable"
	CodeInternal             = "internal_error"
	CodeRateLimited          = "rate_limited"
)

// Error is the one error type of the project. Detail is safe to show to the caller; Err, if
// set, is the underlying cause and is only logged.
type Error struct {
	Kind   Kind
	Code   string
	Detail string
	Field  string // the offending request field, for validation errors
	Err    error
	// RetryAfter, when set, is sent as the Retry-After header (rate limits, unavailability).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Detail, e.Err)
	}
	return e.Code + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// Invalid reports a request that breaks a field rule.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Code: CodeValidation, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// Errorf builds an Error of the given kind and code.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Internal wraps an unexpected failure; the caller sees only a generic message.
func Internal(err error) *Error {
	return &Error{Kind: KindInternal, Code: CodeInternal, Detail: "internal error", Err: err}
}

// ErrNotFound is what storage returns when a row does not exist; callers turn it into a
// caller-facing *Error with the right wording.
var ErrNotFound = errors.New("not found")

// AsError returns err as an *Error, classifying anything else as internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}

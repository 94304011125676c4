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
	KindRateLimited              // too many requests; retry after a pause (429)
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
	CodeOrderAlreadyPaid     = "order_already_paid" // close of an order that is (or just became) paid
	CodeRateLimited          = "rate_limited"       // the per-app rate limit
)

// ErrorCode describes one code for docs/ERRORS.md, which a test generates from this list and
// keeps equal to it, to the Code constants above and to api/openapi.yaml.
type ErrorCode struct {
	Code    string
	Kind    Kind
	Meaning string
}

// ErrorCodes is every code the API can answer with.
var ErrorCodes = []ErrorCode{
	{CodeValidation, KindInvalid, "A field breaks a rule or is not one the route takes (a misspelt name); `detail` says which rule and `field` names the field. Fix the request; retrying it unchanged fails again."},
	{CodeInvalidJSON, KindInvalid, "The body is empty, not JSON (`detail` gives the byte offset where it stops being JSON), or not a JSON object (webhook: verified, but not a payment notification)."},
	{CodeRefundExceeds, KindInvalid, "The refund amount exceeds what is left to refund (paid amount minus pending, processing and succeeded refunds); `detail` states the remainder."},
	{CodeUnauthorized, KindUnauthorized, "No `Authorization: Bearer` key, or an unknown or revoked one."},
	{CodeBadSignature, KindUnauthorized, "Webhook only: Lakala's signature is missing or invalid, or signed outside the replay window for a live order."},
	{CodeForbidden, KindForbidden, "The key is valid but belongs to another app than the request's `app_id` (leave `app_id` out to mean the key's app)."},
	{CodeNotFound, KindNotFound, "No such order or refund for this app (another app's is a 404 too), or no such route."},
	{CodeMethodNotAllowed, KindInvalid, "The route exists but not with this method; the `Allow` header lists the methods it takes."},
	{CodeOrderConflict, KindConflict, "The `merchant_order_id` exists with a different amount, order_type, subject, currency, extra_data or expires_in; `detail` names them."},
	{CodeRefundConflict, KindConflict, "The `merchant_refund_id` exists with a different payment order, amount or reason."},
	{CodePaymentNotRefundable, KindConflict, "Only a `succeeded` payment can be refunded."},
	{CodeOrderAlreadyPaid, KindConflict, "Close: the order is (or, at the final query, turned out to be) `succeeded`; refund it instead."},
	{CodeBodyTooLarge, KindTooLarge, "The body exceeds 64 KiB."},
	{CodeRateLimited, KindRateLimited, "Too many requests for this app, or too many wrong API keys from this address or for this key id; retry after the `Retry-After` header's seconds."},
	{CodeUnavailable, KindUnavailable, "A dependency (PostgreSQL, Redis, Lakala) is down or slow, or the service is not ready; nothing was changed that a retry would duplicate. Retry later."},
	{CodeInternal, KindInternal, "A fault of the service; it is logged with its cause. Safe to retry create calls (they are idempotent)."},
}

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

package pay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits from the contract, narrowed where Lakala takes less (docs/DECISIONS.md, "Fields we
// send"): an amount is at most 12 digits (total_amount long(12)), a return_url at most 128
// bytes (callback_url String(128)).
const (
	MaxAmount        int64 = 999_999_999_999 // fen
	MaxReturnURLLen        = 128
	MaxIdentifierLen       = 64
	MaxSubjectLen          = 128
	MaxReasonLen           = 256
	MaxExtraDataSize       = 16 << 10
	MaxBodySize            = 64 << 10
	MinExpiresIn           = 60            // seconds
	MaxExpiresIn           = 7 * 24 * 3600 // Lakala's order_efficient_time limit
	DefaultCurrency        = "CNY"
)

var identifierRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// CreateOrderInput is a validated create-payment-order request.
type CreateOrderInput struct {
	AppID           string // empty when the body leaves it out: the API key's app
	MerchantOrderID string
	Amount          int64
	OrderType       string
	Subject         string
	Currency        string
	ExtraData       json.RawMessage // always a JSON object
	ExpiresIn       int             // seconds from creation; 0 when not given (ORDER_TTL from checkout)
}

// CreateRefundInput is a validated create-refund request.
type CreateRefundInput struct {
	AppID            string // empty when the body leaves it out: the API key's app
	PaymentOrderID   string // canonical lower-case UUID; empty when MerchantOrderID names the order
	MerchantOrderID  string // the payment order's merchant_order_id, instead of PaymentOrderID
	Amount           int64
	Reason           string
	MerchantRefundID string
}

// ParseCreateOrder decodes and validates a create-payment-order body. Unknown fields are refused;
// app_id may be left out (the API key's app is meant), so AppID may be empty.
func ParseCreateOrder(body []byte) (CreateOrderInput, error) {
	f, err := decodeObject(body, createOrderFields)
	if err != nil {
		return CreateOrderInput{}, err
	}
	var in CreateOrderInput
	if in.AppID, err = f.identifier("app_id", false); err != nil {
		return in, err
	}
	if in.MerchantOrderID, err = f.identifier("merchant_order_id", true); err != nil {
		return in, err
	}
	if in.Amount, err = f.amount("amount"); err != nil {
		return in, err
	}
	if in.OrderType, err = f.str("order_type", true); err != nil {
		return in, err
	}
	if in.OrderType != OrderTypePayment && in.OrderType != OrderTypeRecharge {
		return in, Invalid("order_type", "order_type must be %q or %q", OrderTypePayment, OrderTypeRecharge)
	}
	if in.Subject, err = f.str("subject", true); err != nil {
		return in, err
	}
	if strings.TrimSpace(in.Subject) == "" {
		return in, Invalid("subject", "subject must not be blank")
	}
	if n := utf8.RuneCountInString(in.Subject); n > MaxSubjectLen {
		return in, Invalid("subject", "subject must be at most %d characters (got %d)", MaxSubjectLen, n)
	}
	if in.Currency, err = f.str("currency", false); err != nil {
		return in, err
	}
	if !f.present("currency") {
		in.Currency = DefaultCurrency
	}
	if in.Currency != DefaultCurrency {
		return in, Invalid("currency", "currency must be %q (the only currency the gateway takes)", DefaultCurrency)
	}
	if in.ExtraData, err = f.object("extra_data", MaxExtraDataSize); err != nil {
		return in, err
	}
	if err := checkReturnURL(in.ExtraData); err != nil {
		return in, err
	}
	if f.present("expires_in") {
		n, err := f.integer("expires_in")
		if err != nil {
			return in, err
		}
		if n < MinExpiresIn || n > MaxExpiresIn {
			return in, Invalid("expires_in", "expires_in must be between %d and %d seconds (got %d)", MinExpiresIn, MaxExpiresIn, n)
		}
		in.ExpiresIn = int(n)
	}
	return in, nil
}

// checkReturnURL refuses an extra_data.return_url Lakala would refuse as callback_url: the
// payer's browser returns there, so it is sent with every cashier order.
func checkReturnURL(extra json.RawMessage) error {
	var e struct {
		ReturnURL *json.RawMessage `json:"return_url"`
	}
	if len(extra) == 0 || json.Unmarshal(extra, &e) != nil || e.ReturnURL == nil || string(*e.ReturnURL) == "null" {
		return nil
	}
	var raw string
	if err := json.Unmarshal(*e.ReturnURL, &raw); err != nil {
		return Invalid("extra_data", "extra_data.return_url must be a string (the URL the payer's browser returns to)")
	}
	if len(raw) > MaxReturnURLLen {
		return Invalid("extra_data", "extra_data.return_url is %d bytes; Lakala takes at most %d", len(raw), MaxReturnURLLen)
	}
	if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Invalid("extra_data", "extra_data.return_url %q must be an absolute http:// or https:// URL", raw)
	}
	return nil
}

// ParseCreateRefund decodes and validates a create-refund body. Unknown fields are refused;
// app_id may be left out (the API key's app is meant), so AppID may be empty.
func ParseCreateRefund(body []byte) (CreateRefundInput, error) {
	f, err := decodeObject(body, createRefundFields)
	if err != nil {
		return CreateRefundInput{}, err
	}
	var in CreateRefundInput
	if in.AppID, err = f.identifier("app_id", false); err != nil {
		return in, err
	}
	// Exactly one of payment_order_id and merchant_order_id names the payment order.
	switch byID, byMerchant := f.present("payment_order_id"), f.present("merchant_order_id"); {
	case byID && byMerchant:
		return in, Invalid("payment_order_id", "give payment_order_id or merchant_order_id, not both")
	case byMerchant:
		if in.MerchantOrderID, err = f.identifier("merchant_order_id", true); err != nil {
			return in, err
		}
	default:
		id, err := f.str("payment_order_id", false)
		if err != nil {
			return in, err
		}
		if id == "" {
			return in, Invalid("payment_order_id", "payment_order_id or merchant_order_id is required")
		}
		if in.PaymentOrderID, err = ParseID("payment_order_id", id); err != nil {
			return in, err
		}
	}
	if in.Amount, err = f.amount("amount"); err != nil {
		return in, err
	}
	if in.Reason, err = f.str("reason", false); err != nil {
		return in, err
	}
	if n := utf8.RuneCountInString(in.Reason); n > MaxReasonLen {
		return in, Invalid("reason", "reason must be at most %d characters (got %d)", MaxReasonLen, n)
	}
	if in.MerchantRefundID, err = f.identifier("merchant_refund_id", false); err != nil {
		return in, err
	}
	return in, nil
}

// ParseID checks that s is a UUID in its canonical 36-character form and returns it lower-cased.
func ParseID(field, s string) (string, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", Invalid(field, "%s must be a UUID like 550e8400-e29b-41d4-a716-446655440000", field)
	}
	return u.String(), nil
}

// ValidIdentifier reports whether s is a valid app_id / merchant order id.
func ValidIdentifier(s string) bool { return identifierRE.MatchString(s) }

// fields is a decoded JSON object, field by field, so that each field's JSON type can be checked
// exactly (a quoted amount or 100.0 must be refused, which decoding into int64 would blur).
type fields map[string]json.RawMessage

// Fields the create bodies take; any other is refused, as unknown query parameters are, so a
// misspelt optional field ("subjet", "expires") is an error rather than silently dropped.
var (
	createOrderFields  = []string{"app_id", "merchant_order_id", "amount", "order_type", "subject", "currency", "extra_data", "expires_in"}
	createRefundFields = []string{"app_id", "payment_order_id", "merchant_order_id", "amount", "reason", "merchant_refund_id"}
)

// decodeObject decodes a JSON object body whose fields must all be among known.
func decodeObject(body []byte, known []string) (fields, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, &Error{Kind: KindInvalid, Code: CodeInvalidJSON, Detail: "request body is empty; a JSON object is expected"}
	}
	lead := int64(len(body) - len(bytes.TrimLeftFunc(body, unicode.IsSpace)))
	if trimmed[0] != '{' {
		if json.Valid(trimmed) {
			return nil, &Error{Kind: KindInvalid, Code: CodeInvalidJSON, Detail: "request body must be a JSON object"}
		}
		var v any
		return nil, invalidJSON(json.Unmarshal(trimmed, &v), lead)
	}
	var f fields
	if err := json.Unmarshal(trimmed, &f); err != nil {
		return nil, invalidJSON(err, lead)
	}
	// Before any field is read: a repeated key or text PostgreSQL cannot store is refused
	// here, once, for every field of every body.
	if err := CheckStorable(trimmed); err != nil {
		return nil, err
	}
	var unknown []string
	for name := range f {
		if !slices.Contains(known, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, Invalid(unknown[0], "unknown field %q (allowed: %s)", unknown[0], strings.Join(known, ", "))
	}
	return f, nil
}

// invalidJSON describes a body encoding/json refused, with the byte offset (from the start of
// the body, 0-based) where it stopped making sense, so a client can find its mistake.
func invalidJSON(err error, lead int64) *Error {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		// Offset counts the bytes read: the offending one included, or all of them when the
		// body ends too soon.
		at := lead + syntax.Offset
		if !strings.HasPrefix(syntax.Error(), "unexpected end") {
			at = lead + max(syntax.Offset-1, 0)
		}
		return &Error{Kind: KindInvalid, Code: CodeInvalidJSON, Detail: fmt.Sprintf("request body is not valid JSON: %s at byte offset %d", syntax.Error(), at)}
	}
	return &Error{Kind: KindInvalid, Code: CodeInvalidJSON, Detail: "request body is not valid JSON"}
}

// present reports whether a field is given and not null.
func (f fields) present(name string) bool {
	raw, ok := f[name]
	return ok && !bytes.Equal(raw, []byte("null"))
}

func (f fields) str(name string, required bool) (string, error) {
	if !f.present(name) {
		if required {
			return "", Invalid(name, "%s is required", name)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(f[name], &s); err != nil {
		return "", Invalid(name, "%s must be a string", name)
	}
	return s, nil
}

func (f fields) identifier(name string, required bool) (string, error) {
	s, err := f.str(name, required)
	if err != nil || (s == "" && !required && !f.present(name)) {
		return s, err
	}
	if !identifierRE.MatchString(s) {
		return "", Invalid(name, "%s must be 1-%d characters of A-Z, a-z, 0-9, '_', '.', '-'", name, MaxIdentifierLen)
	}
	return s, nil
}

// integer accepts only a JSON integer literal (no quotes, fraction or exponent).
func (f fields) integer(name string) (int64, error) {
	raw := string(f[name])
	if strings.ContainsAny(raw, `".eE`) || raw == "true" || raw == "false" || raw[0] == '[' || raw[0] == '{' {
		return 0, Invalid(name, "%s must be an integer, not %s", name, describe(raw))
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return 0, Invalid(name, "%s is out of range", name)
	}
	return n, nil
}

// amount accepts only a JSON integer literal: no quotes, no fraction, no exponent.
func (f fields) amount(name string) (int64, error) {
	if !f.present(name) {
		return 0, Invalid(name, "%s is required", name)
	}
	raw := string(f[name])
	if strings.ContainsAny(raw, `".eE`) || raw == "true" || raw == "false" || raw[0] == '[' || raw[0] == '{' {
		return 0, Invalid(name, "%s must be an integer number of fen (e.g. 10000 for 100.00 CNY), not %s", name, describe(raw))
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n > MaxAmount {
		return 0, Invalid(name, "%s must be at most %d fen", name, MaxAmount)
	}
	if n < 1 {
		return 0, Invalid(name, "%s must be at least 1 fen", name)
	}
	return n, nil
}

func (f fields) object(name string, maxSize int) (json.RawMessage, error) {
	if !f.present(name) {
		return json.RawMessage("{}"), nil
	}
	raw := bytes.TrimSpace(f[name])
	if raw[0] != '{' {
		return nil, Invalid(name, "%s must be a JSON object", name)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, Invalid(name, "%s must be a JSON object", name)
	}
	if compact.Len() > maxSize {
		return nil, Invalid(name, "%s must be at most %d bytes when serialized (got %d)", name, maxSize, compact.Len())
	}
	return compact.Bytes(), nil
}

func describe(raw string) string {
	switch {
	case strings.HasPrefix(raw, `"`):
		return "a string"
	case strings.ContainsAny(raw, ".eE"):
		return "a number with a fraction or exponent"
	default:
		return "a " + map[byte]string{'t': "boolean", 'f': "boolean", '[': "list", '{': "object"}[raw[0]]
	}
}

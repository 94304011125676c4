package loomipay

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// WebhookSignatureHeader is the header of a webhook's signature:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">", with one v1 per signing secret
// during a secret rotation.
const WebhookSignatureHeader = "Loomi-Signature"

// DefaultWebhookTolerance is how far a webhook's timestamp may be from the receiver's clock
// when VerifyWebhook is given no tolerance.
const DefaultWebhookTolerance = 5 * time.Minute

// Errors of VerifyWebhook; test with errors.Is.
var (
	ErrWebhookMalformedHeader = errors.New("loomipay: malformed Loomi-Signature header")
	ErrWebhookSignature       = errors.New("loomipay: no webhook signature matches")
	ErrWebhookStale           = errors.New("loomipay: webhook timestamp outside the tolerance")
	ErrWebhookMalformedBody   = errors.New("loomipay: webhook body is not a JSON object")
)

// VerifyWebhook checks a webhook's Loomi-Signature header against its raw body and the
// endpoint's signing secret (the whole "whsec_…" string), and returns the result it carries.
//
// One v1 signature must match (during a rotation the header carries one per secret, so either
// the old or the new secret verifies), compared in constant time; and its timestamp must lie
// within tolerance of now, so a captured request cannot be replayed later (tolerance <= 0 means
// DefaultWebhookTolerance; a zero now means time.Now()). The signature is checked before the
// timestamp: t is signed, so a changed t is a signature mismatch.
//
// The header is read tolerantly: spaces around its parts, empty parts and unknown keys (other
// schemes than v1) are ignored. It is malformed without a t, with a t that is not a number or
// is given twice differently, or without any v1.
//
// The returned Result is the same as the stream consumer's (Fields holds the body's fields, all
// strings; Stream is derived from event_type; MessageID is empty), so one function can apply
// results from both channels. Delivery is at least once: drop repeats by EventID, and apply
// a message only if its Seq is above the last applied for its Subject.
func VerifyWebhook(secret, header string, body []byte, tolerance time.Duration, now time.Time) (Result, error) {
	t, sigs, err := parseSignatureHeader(header)
	if err != nil {
		return Result{}, err
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(t, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	want := m.Sum(nil)
	matched := false
	for _, s := range sigs {
		got, err := hex.DecodeString(s)
		// Every v1 is compared (no early exit), each in constant time.
		if err == nil && hmac.Equal(got, want) {
			matched = true
		}
	}
	if !matched {
		return Result{}, ErrWebhookSignature
	}
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	if now.IsZero() {
		now = time.Now()
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return Result{}, fmt.Errorf("%w: t=%d is %s from now", ErrWebhookStale, t, d.Round(time.Second))
	}
	return decodeWebhookBody(body)
}

func parseSignatureHeader(header string) (t int64, sigs []string, err error) {
	t = -1
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue // empty part or junk without a key; a required key missing is caught below
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || (t >= 0 && n != t) {
				return 0, nil, ErrWebhookMalformedHeader
			}
			t = n
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if t < 0 || len(sigs) == 0 {
		return 0, nil, ErrWebhookMalformedHeader
	}
	return t, sigs, nil
}

// decodeWebhookBody reads the body's flat JSON object into a Result. Values are strings; any
// other JSON value is kept as its JSON text rather than refused, so a field added later as a
// number or an object does not make valid, signed webhooks fail.
func decodeWebhookBody(body []byte) (Result, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return Result{}, fmt.Errorf("%w: %v", ErrWebhookMalformedBody, err)
	}
	r := Result{Fields: make(map[string]string, len(raw))}
	for k, v := range raw {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			s = string(bytes.TrimSpace(v))
		}
		r.Fields[k] = s
	}
	switch r.EventType() {
	case EventPaymentStatusChanged:
		r.Stream = StreamPaymentResults
	case EventRefundStatusChanged:
		r.Stream = StreamRefundResults
	}
	return r, nil
}

// DefaultWebhookMaxBody is WebhookHandler's body limit when MaxBody is 0.
const DefaultWebhookMaxBody = 1 << 20

// WebhookHandler is an http.Handler receiving Loomi Pay webhooks: it reads the body (up to
// MaxBody), verifies it with VerifyWebhook and calls Handle. It answers 204 only when Handle
// returned nil; otherwise the service retries the delivery later (10 s, 30 s, 2 min, … for up
// to 3 days), so Handle must tolerate repeats (drop them by EventID). Answers: 405 to anything
// but POST, 413 to a body over the limit, 400 to a request that does not verify, 500 when
// Handle failed. The reason goes in the answer's body, never the secret.
type WebhookHandler struct {
	Secret    string                                    // the endpoint's signing secret
	Handle    func(ctx context.Context, r Result) error // applies the result
	Tolerance time.Duration                             // 0: DefaultWebhookTolerance
	MaxBody   int64                                     // bytes; 0: DefaultWebhookMaxBody
	Now       func() time.Time                          // nil: time.Now
}

// ServeHTTP implements http.Handler.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	limit := h.MaxBody
	if limit <= 0 {
		limit = DefaultWebhookMaxBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "could not read the body", http.StatusBadRequest)
		return
	}
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	r, err := VerifyWebhook(h.Secret, req.Header.Get(WebhookSignatureHeader), body, h.Tolerance, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := h.Handle(req.Context(), r); err != nil {
		http.Error(w, "not applied; retry later", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

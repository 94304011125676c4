// Package webhooks delivers result messages to main apps as signed HTTP POSTs: per-app endpoints
// with their own signing secrets, fanned out from the result outbox, retried with backoff for up
// to three days, every attempt recorded, outbound connections refused to private addresses.
package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">"; during a
// secret rotation it carries one v1 per secret.
const SignatureHeader = "Loomi-Signature"

// Sign is the hex HMAC-SHA256, keyed with the secret, of "<t>.<body>".
func Sign(secret string, t int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(t, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// SignatureValue is the Loomi-Signature header value for body at time t, one v1 per secret.
func SignatureValue(t int64, body []byte, secrets ...string) string {
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(t, 10))
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(Sign(s, t, body))
	}
	return b.String()
}

// Errors of Verify.
var (
	ErrBadHeader    = errors.New("malformed Loomi-Signature header")
	ErrBadSignature = errors.New("no v1 signature matches")
	ErrTooOld       = errors.New("signature timestamp outside the tolerance")
)

// Verify checks a Loomi-Signature header against the raw body and the endpoint's secret: one
// v1 must match, and t must be within tolerance of now (replay protection; 0 skips the check).
// Main apps cannot import this package: the Go SDK's VerifyWebhook (sdk/go) is theirs, held to
// the same fixed vector as this package's tests; docs/INTEGRATING.md shows the same in Python and Node.
func Verify(header string, body []byte, secret string, tolerance time.Duration, now time.Time) error {
	var t int64 = -1
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrBadHeader
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return ErrBadHeader
			}
			t = n
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if t < 0 || len(sigs) == 0 {
		return ErrBadHeader
	}
	want := []byte(Sign(secret, t, body))
	matched := false
	for _, s := range sigs {
		if hmac.Equal([]byte(s), want) {
			matched = true
		}
	}
	if !matched {
		return ErrBadSignature
	}
	if tolerance > 0 {
		d := now.Sub(time.Unix(t, 0))
		if d > tolerance || d < -tolerance {
			return ErrTooOld
		}
	}
	return nil
}

package loomipay_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	loomipay "github.com/loomipay/loomipay/sdk/go"
)

// The service's fixed vector (shared/webhooks/sign_test.go and docs/INTEGRATING.md), computed
// independently with Python's hmac module. The SDK cannot import the service's signer; passing
// the same vector is what proves the two agree.
const (
	vectorSecret = "whsec_test_vector"
	vectorT      = 1700000000
	vectorBody   = `{"app_id":"shop_b","event_id":"0190a5b2-0000-7000-8000-000000000001","seq":"1"}`
	vectorSig    = "5083c1e19b05d45f1712b5a9f4f1ffa4678f4bb60d98245f802dbf9b7dcdc07c"
	// The same body and t under "whsec_new" (Python too): the header of a rotation carries both.
	vectorSigNew = "c1f9d20045c03dd70c670be3c71f68e41dd6bbb058605744214f705a535fa5a5"
	// A whole payment event as the service sends it (keys sorted, all strings), signed with
	// vectorSecret at vectorT (Python).
	eventBody = `{"amount":"10000","app_id":"shop_b","event_id":"0190a5b2-0000-7000-8000-000000000002",` +
		`"event_type":"payment_status_changed","merchant_order_id":"M-1","new_status":"succeeded",` +
		`"old_status":"processing","payment_order_id":"po_1","seq":"3"}`
	eventSig = "a2372511b26d8f96b18551c0268057b4687febb9d36cc5daa9b70147d0630e06"
)

var vectorHeader = "t=" + strconv.Itoa(vectorT) + ",v1=" + vectorSig

// sign is a receiver-side test signer, checked against the fixed vector in TestSignHelper.
func sign(secret string, t int64, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(t, 10) + "." + body))
	return "t=" + strconv.FormatInt(t, 10) + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

func TestSignHelper(t *testing.T) {
	if got := sign(vectorSecret, vectorT, vectorBody); got != vectorHeader {
		t.Fatalf("sign = %s; want %s", got, vectorHeader)
	}
}

func TestVerifyWebhook(t *testing.T) {
	signedAt := time.Unix(vectorT, 0)
	at := signedAt.Add(time.Minute)
	rotation := "t=1700000000,v1=" + vectorSigNew + ",v1=" + vectorSig
	tests := []struct {
		name      string
		secret    string
		header    string
		body      string
		tolerance time.Duration
		now       time.Time
		want      error
	}{
		{"fixed vector", vectorSecret, vectorHeader, vectorBody, 0, at, nil},
		{"rotation: old secret", vectorSecret, rotation, vectorBody, 0, at, nil},
		{"rotation: new secret", "whsec_new", rotation, vectorBody, 0, at, nil},
		{"rotation: neither secret", "whsec_other", rotation, vectorBody, 0, at, loomipay.ErrWebhookSignature},
		{"tolerant: spaces, empty parts, unknown schemes", vectorSecret,
			" t=1700000000 , v0=deadbeef,, v1=" + vectorSig + " ,v2=x,", vectorBody, 0, at, nil},
		{"tolerant: upper-case hex", vectorSecret, "t=1700000000,v1=" + strings.ToUpper(vectorSig), vectorBody, 0, at, nil},
		{"tolerant: the same t twice", vectorSecret, "t=1700000000,t=1700000000,v1=" + vectorSig, vectorBody, 0, at, nil},
		{"forged body", vectorSecret, vectorHeader, strings.Replace(vectorBody, `"seq":"1"`, `"seq":"2"`, 1), 0, at, loomipay.ErrWebhookSignature},
		{"body with a trailing newline", vectorSecret, vectorHeader, vectorBody + "\n", 0, at, loomipay.ErrWebhookSignature},
		{"wrong secret", "whsec_other", vectorHeader, vectorBody, 0, at, loomipay.ErrWebhookSignature},
		{"timestamp changed", vectorSecret, strings.Replace(vectorHeader, "t=1700000000", "t=1700000030", 1), vectorBody, 0, at, loomipay.ErrWebhookSignature},
		{"signature truncated", vectorSecret, vectorHeader[:len(vectorHeader)-2], vectorBody, 0, at, loomipay.ErrWebhookSignature},
		{"signature not hex", vectorSecret, "t=1700000000,v1=zz" + vectorSig[2:], vectorBody, 0, at, loomipay.ErrWebhookSignature},
		{"signature as v0 only", vectorSecret, "t=1700000000,v0=" + vectorSig, vectorBody, 0, at, loomipay.ErrWebhookMalformedHeader},
		{"4 min late, default tolerance", vectorSecret, vectorHeader, vectorBody, 0, signedAt.Add(4 * time.Minute), nil},
		{"6 min late, default tolerance", vectorSecret, vectorHeader, vectorBody, 0, signedAt.Add(6 * time.Minute), loomipay.ErrWebhookStale},
		{"6 min early (clock skew), default tolerance", vectorSecret, vectorHeader, vectorBody, 0, signedAt.Add(-6 * time.Minute), loomipay.ErrWebhookStale},
		{"an hour late", vectorSecret, vectorHeader, vectorBody, 0, signedAt.Add(time.Hour), loomipay.ErrWebhookStale},
		{"an hour late, 2 h tolerance", vectorSecret, vectorHeader, vectorBody, 2 * time.Hour, signedAt.Add(time.Hour), nil},
		{"30 s late, 10 s tolerance", vectorSecret, vectorHeader, vectorBody, 10 * time.Second, signedAt.Add(30 * time.Second), loomipay.ErrWebhookStale},
		{"stale and forged: the signature speaks first", vectorSecret, vectorHeader, `{}`, 0, signedAt.Add(time.Hour), loomipay.ErrWebhookSignature},
		{"empty header", vectorSecret, "", vectorBody, 0, at, loomipay.ErrWebhookMalformedHeader},
		{"garbage", vectorSecret, "nonsense", vectorBody, 0, at, loomipay.ErrWebhookMalformedHeader},
		{"no v1", vectorSecret, "t=1700000000", vectorBody, 0, at, loomipay.ErrWebhookMalformedHeader},
		{"no t", vectorSecret, "v1=" + vectorSig, vectorBody, 0, at, loomipay.ErrWebhookMalformedHeader},
		{"t not a number", vectorSecret, "t=soon,v1=" + vectorSig, vectorBody, 0, at, loomipay.ErrWebhookMalformedHeader},
		{"t negative", vectorSecret, "t=-1700000000,v1=" + vectorSig, vectorBody, 0, at, loomipay.ErrWebhookMalformedHeader},
		{"two different t", vectorSecret, "t=1700000000,t=1700000030,v1=" + vectorSig, vectorBody, 0, at, loomipay.ErrWebhookMalformedHeader},
		{"semicolons", vectorSecret, "t=1700000000;v1=" + vectorSig, vectorBody, 0, at, loomipay.ErrWebhookMalformedHeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := loomipay.VerifyWebhook(tc.secret, tc.header, []byte(tc.body), tc.tolerance, tc.now)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("VerifyWebhook = %v; want %v", err, tc.want)
			}
			if err != nil {
				if r.Fields != nil {
					t.Errorf("a refused webhook returned fields %v", r.Fields)
				}
				return
			}
			if seq, ok := r.Seq(); r.AppID() != "shop_b" || r.EventID() != "0190a5b2-0000-7000-8000-000000000001" || !ok || seq != 1 {
				t.Errorf("decoded %+v", r)
			}
		})
	}
}

func TestVerifyWebhookDecodesTheEvent(t *testing.T) {
	r, err := loomipay.VerifyWebhook(vectorSecret, "t=1700000000,v1="+eventSig, []byte(eventBody), 0, time.Unix(vectorT, 0))
	if err != nil {
		t.Fatal(err)
	}
	seq, ok := r.Seq()
	if r.EventType() != loomipay.EventPaymentStatusChanged || r.Stream != loomipay.StreamPaymentResults ||
		r.EventID() != "0190a5b2-0000-7000-8000-000000000002" || !ok || seq != 3 ||
		r.PaymentOrderID() != "po_1" || r.MerchantOrderID() != "M-1" || r.OldStatus() != "processing" ||
		r.NewStatus() != "succeeded" || r.Amount() != 10000 || r.Subject() != "payment:po_1" || r.MessageID != "" ||
		len(r.Fields) != 9 {
		t.Errorf("decoded %+v", r)
	}

	// A refund event names its Stream (and so its Subject) after the refund.
	now := time.Now()
	refund := `{"event_type":"refund_status_changed","refund_order_id":"ro_1","payment_order_id":"po_1","seq":"2","amount":1500,"extra":{"a":1}}`
	r, err = loomipay.VerifyWebhook("whsec_x", sign("whsec_x", now.Unix(), refund), []byte(refund), 0, now)
	if err != nil {
		t.Fatal(err)
	}
	// Non-string values (not sent today) are kept as their JSON text, not refused.
	if r.Stream != loomipay.StreamRefundResults || r.Subject() != "refund:ro_1" || r.Amount() != 1500 || r.Fields["extra"] != `{"a":1}` {
		t.Errorf("decoded %+v", r)
	}

	// A signed body that is not a JSON object is refused, with its own error.
	for _, body := range []string{``, `null`, `[1]`, `"x"`, `{"a":`} {
		if _, err := loomipay.VerifyWebhook("whsec_x", sign("whsec_x", now.Unix(), body), []byte(body), 0, now); !errors.Is(err, loomipay.ErrWebhookMalformedBody) {
			t.Errorf("body %q: %v; want ErrWebhookMalformedBody", body, err)
		}
	}
}

func TestWebhookHandler(t *testing.T) {
	const secret = "whsec_handler"
	var (
		mu   sync.Mutex
		got  []loomipay.Result
		fail bool
	)
	srv := httptest.NewServer(&loomipay.WebhookHandler{
		Secret:  secret,
		MaxBody: 1024,
		Handle: func(_ context.Context, r loomipay.Result) error {
			mu.Lock()
			defer mu.Unlock()
			if fail {
				return errors.New("database down")
			}
			got = append(got, r)
			return nil
		},
	})
	defer srv.Close()
	post := func(method, header, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set(loomipay.WebhookSignatureHeader, header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	now := time.Now().Unix()
	handled := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }

	if code, _ := post(http.MethodPost, sign(secret, now, eventBody), eventBody); code != http.StatusNoContent {
		t.Fatalf("valid webhook: %d; want 204", code)
	}
	if handled() != 1 || got[0].EventID() != "0190a5b2-0000-7000-8000-000000000002" || got[0].NewStatus() != "succeeded" {
		t.Fatalf("handled %+v", got)
	}
	big := `{"pad":"` + strings.Repeat("x", 2000) + `"}`
	tests := []struct {
		name, method, header, body string
		want                       int
		wantBody                   string
	}{
		{"forged body", http.MethodPost, sign(secret, now, eventBody), strings.Replace(eventBody, "10000", "1", 1), http.StatusBadRequest, "no webhook signature matches"},
		{"wrong secret", http.MethodPost, sign("whsec_other", now, eventBody), eventBody, http.StatusBadRequest, "no webhook signature matches"},
		{"stale", http.MethodPost, sign(secret, now-3600, eventBody), eventBody, http.StatusBadRequest, "outside the tolerance"},
		{"no header", http.MethodPost, "", eventBody, http.StatusBadRequest, "malformed"},
		{"body over MaxBody", http.MethodPost, sign(secret, now, big), big, http.StatusRequestEntityTooLarge, "too large"},
		{"GET", http.MethodGet, sign(secret, now, ""), "", http.StatusMethodNotAllowed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(tc.method, tc.header, tc.body)
			if code != tc.want || !strings.Contains(body, tc.wantBody) || strings.Contains(body, secret) {
				t.Errorf("%d %q; want %d containing %q", code, body, tc.want, tc.wantBody)
			}
		})
	}
	if handled() != 1 {
		t.Errorf("refused requests reached Handle: %d results", handled())
	}

	// Handle failing: not acknowledged, so the service retries.
	mu.Lock()
	fail = true
	mu.Unlock()
	if code, body := post(http.MethodPost, sign(secret, now, eventBody), eventBody); code != http.StatusInternalServerError || strings.Contains(body, "database down") {
		t.Errorf("failing Handle: %d %q; want 500 without the handler's error", code, body)
	}
}

// TestWebhookHandlerOnTheStack receives the stack's real webhooks (loomipay dev forwards
// sdk_app's results, signed by the service's own signer) with WebhookHandler: every status
// change of a paid order arrives, verifies, and decodes, in seq order.
func TestWebhookHandlerOnTheStack(t *testing.T) {
	var (
		mu  sync.Mutex
		got []loomipay.Result
	)
	stack.hooks.set(&loomipay.WebhookHandler{Secret: stack.webhookSecret, Handle: func(_ context.Context, r loomipay.Result) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r)
		return nil
	}})
	defer stack.hooks.set(nil)
	paid := paidOrder(t, newClient(t), uniqueID("webhook"), 4200)
	var mine []loomipay.Result
	eventually(t, 20*time.Second, "the webhook of "+paid.MerchantOrderID+" → succeeded", func() bool {
		mu.Lock()
		defer mu.Unlock()
		mine = mine[:0]
		for _, r := range got {
			if r.MerchantOrderID() == paid.MerchantOrderID {
				mine = append(mine, r)
			}
		}
		return len(mine) > 0 && mine[len(mine)-1].NewStatus() == loomipay.StatusSucceeded
	})
	var last int64
	for i, r := range mine {
		seq, ok := r.Seq()
		if !ok || seq <= last || r.EventType() != loomipay.EventPaymentStatusChanged || r.Stream != loomipay.StreamPaymentResults ||
			r.PaymentOrderID() != paid.ID || r.AppID() != stack.appID || r.EventID() == "" || r.Amount() != 4200 {
			t.Errorf("webhook %d: %+v", i, r)
		}
		last = seq
	}
	if first := mine[0]; first.OldStatus() != loomipay.StatusPending || first.NewStatus() != loomipay.StatusProcessing {
		t.Errorf("first webhook %s → %s; want pending → processing", first.OldStatus(), first.NewStatus())
	}
}

package lakala

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Notifications and their Authorization come from the internet before anything is verified:
// the parsers must never panic, and what they accept must be well-formed.

func FuzzParseNotification(f *testing.F) {
	for _, seed := range []string{
		`{"out_order_no":"0190b2a47c1e7d2a9f3b2a1c3d4e5f60","pay_order_no":"P1","total_amount":"10000","order_status":"2","trade_time":"20240101120000"}`,
		`{"merchantOrderNo":"0190b2a47c1e7d2a9f3b2a1c3d4e5f60","payOrderNo":"P1","amount":10000,"payStatus":"S","tradeTime":"2024-01-01 12:00:00"}`,
		`{"out_order_no":"x","total_amount":"1.5"}`, `{"merchantOrderNo":"x","amount":-1}`, `{"out_order_no":null}`,
		`{}`, `[]`, `"x"`, `{"out_order_no":"a","merchantOrderNo":"b"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := ParseNotification(body)
		if err == nil && n.OutOrderNo == "" {
			t.Fatalf("accepted a notification without an order number: %+v", n)
		}
	})
}

func FuzzParseAuthorization(f *testing.F) {
	for _, seed := range []string{
		`LKLAPI-SHA256withRSA appid="OP00000003",serial_no="00dfba8194c41b84cf",timestamp="1700000000",nonce_str="abc",signature="c2lnbmF0dXJl=="`,
		"LKLAPI-SHA256withRSA timestamp=\"1700000000\",\nnonce_str=\"abc\",\nsignature=\"x==\"",
		`LKLAPI-SHA256withRSA`, `LKLAPI-SHA256withRSAappid=1`, `Bearer x`, `LKLAPI-SHA256withRSA a`, ``, `LKLAPI-SHA256withRSA ,,,=,"`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		pairs, err := parseAuthorization(value)
		if err != nil {
			return
		}
		if !strings.HasPrefix(strings.TrimSpace(value), AuthScheme) {
			t.Fatalf("accepted %q without the %s scheme", value, AuthScheme)
		}
		for k, v := range pairs {
			if strings.Contains(k, ",") || strings.Contains(v, ",") {
				t.Fatalf("pair %q=%q holds a separator", k, v)
			}
		}
	})
}

// FuzzVerifyNotification: arbitrary headers and bodies never verify against a key that signed
// none of them, and never panic.
func FuzzVerifyNotification(f *testing.F) {
	key, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // a throwaway key for fuzzing speed
	if err != nil {
		f.Fatal(err)
	}
	f.Add(`LKLAPI-SHA256withRSA timestamp="1700000000",nonce_str="abc",signature="c2lnbmF0dXJl"`, []byte(`{"out_order_no":"x"}`))
	f.Add(`LKLAPI-SHA256withRSA timestamp="99999999999999999999",nonce_str="",signature=""`, []byte(``))
	f.Fuzz(func(t *testing.T, authorization string, body []byte) {
		h := http.Header{}
		h.Set("Authorization", authorization)
		if _, err := VerifyNotification(&key.PublicKey, h, body); err == nil {
			t.Fatalf("verified a notification nobody signed: %q %q", authorization, body)
		}
	})
}

// FuzzAmount: Lakala's amounts are whole fen, as a JSON number or a string of digits.
func FuzzAmount(f *testing.F) {
	for _, seed := range []string{`10000`, `"10000"`, `null`, `1.5`, `"1e4"`, `-1`, `"-1"`, `""`, `"0"`, `9223372036854775807`, `9223372036854775808`, ` 12 `, `"１２"`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v Fen
		err := v.UnmarshalJSON(data)
		if err != nil {
			return
		}
		trimmed := strings.Trim(strings.TrimSpace(string(data)), `"`)
		if trimmed == "null" {
			return
		}
		if v < 0 {
			t.Fatalf("%q decoded to a negative amount %d", data, v)
		}
		n, perr := strconv.ParseInt(trimmed, 10, 64)
		if perr != nil || n != int64(v) {
			t.Fatalf("%q decoded to %d; its digits say %d (%v)", data, v, n, perr)
		}
	})
}

package pay_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/loomipay/loomipay/shared/pay"
)

// orderWith is a valid create-order body with subject and extra_data given as raw JSON.
func orderWith(subject, extra string) string {
	return `{"app_id":"a","merchant_order_id":"m","amount":1,"order_type":"payment","subject":` + subject + `,"extra_data":` + extra + `}`
}

func TestParseCreateOrderRefusesWhatPostgresCannotStore(t *testing.T) {
	// The numeric limits were read off PostgreSQL 15: SELECT '{"n":<lit>}'::jsonb.
	tests := []struct {
		name, body, field, code string
	}{
		{"NUL escape in subject", orderWith(`"a\u0000"`, `{}`), "subject", pay.CodeValidation},
		{"raw NUL in subject", orderWith("\"a\x00\"", `{}`), "", pay.CodeInvalidJSON},
		{"raw NUL outside strings", "{\x00}", "", pay.CodeInvalidJSON},
		{"lone high surrogate", orderWith(`"\ud800"`, `{}`), "subject", pay.CodeValidation},
		{"lone low surrogate", orderWith(`"\udc00"`, `{}`), "subject", pay.CodeValidation},
		{"high surrogate then letter", orderWith(`"\ud800\u0041"`, `{}`), "subject", pay.CodeValidation},
		{"high surrogate twice", orderWith(`"\ud800\ud800"`, `{}`), "subject", pay.CodeValidation},
		{"surrogates swapped", orderWith(`"\ude00\ud83d"`, `{}`), "subject", pay.CodeValidation},
		{"high surrogate then other escape", orderWith(`"\ud800\n"`, `{}`), "subject", pay.CodeValidation},
		{"invalid UTF-8 byte", orderWith("\"a\xff\"", `{}`), "subject", pay.CodeValidation},
		{"UTF-8 encoded surrogate", orderWith("\"\xed\xa0\x80\"", `{}`), "subject", pay.CodeValidation},
		{"truncated UTF-8", orderWith("\"\xe4\xbc\"", `{}`), "subject", pay.CodeValidation},
		{"NUL in extra_data value", orderWith(`"s"`, `{"k":"\u0000"}`), "extra_data", pay.CodeValidation},
		{"NUL in extra_data key", orderWith(`"s"`, `{"\u0000":1}`), "extra_data", pay.CodeValidation},
		{"surrogate deep in extra_data", orderWith(`"s"`, `{"a":[1,{"b":["\udbff"]}]}`), "extra_data", pay.CodeValidation},
		{"NUL in an ignored field", `{"note":"\u0000",` + orderWith(`"s"`, `{}`)[1:], "note", pay.CodeValidation},
		{"duplicate amount", `{"amount":-5,` + orderWith(`"s"`, `{}`)[1:], "amount", pay.CodeValidation},
		{"duplicate app_id", `{"app_id":"b",` + orderWith(`"s"`, `{}`)[1:], "app_id", pay.CodeValidation},
		{"duplicate key spelled with an escape", `{"\u0061mount":5,` + orderWith(`"s"`, `{}`)[1:], "amount", pay.CodeValidation},
		{"duplicate key in extra_data", orderWith(`"s"`, `{"a":1, "a" :2}`), "extra_data", pay.CodeValidation},
		{"duplicate key nested in a list", orderWith(`"s"`, `{"l":[{"x":1,"x":1}]}`), "extra_data", pay.CodeValidation},
		{"number above numeric", orderWith(`"s"`, `{"n":1e131072}`), "extra_data", pay.CodeValidation},
		{"number above numeric by digits", orderWith(`"s"`, `{"n":10e131071}`), "extra_data", pay.CodeValidation},
		{"number scale above numeric", orderWith(`"s"`, `{"n":1e-16384}`), "extra_data", pay.CodeValidation},
		{"zero with too much scale", orderWith(`"s"`, `{"n":0.0e-16383}`), "extra_data", pay.CodeValidation},
		{"exponent numeric_in refuses", orderWith(`"s"`, `{"n":0e1073741823}`), "extra_data", pay.CodeValidation},
		{"exponent beyond int", orderWith(`"s"`, `{"n":-1E99999999999999999999}`), "extra_data", pay.CodeValidation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pay.ParseCreateOrder([]byte(tc.body))
			var e *pay.Error
			if !errors.As(err, &e) || e.Kind != pay.KindInvalid || e.Code != tc.code || e.Field != tc.field {
				t.Fatalf("ParseCreateOrder = %v; want %s on field %q", err, tc.code, tc.field)
			}
			if tc.field != "" && !strings.Contains(e.Detail, tc.field) {
				t.Errorf("detail %q does not name %s", e.Detail, tc.field)
			}
		})
	}
}

func TestParseCreateOrderKeepsWhatPostgresCanStore(t *testing.T) {
	tests := []struct {
		name, subject, extra, wantSubject string
	}{
		{"surrogate pair", `"\ud83d\ude00"`, `{"e":"\ud83d\ude00"}`, "😀"},
		{"escaped quotes and backslashes", `"say \"hi\" \\u0000"`, `{"q":"\"\\"}`, `say "hi" \u0000`},
		{"unicode text", `"会员 é ü"`, `{"名":"值"}`, "会员 é ü"},
		{"U+FFFD sent on purpose", `"\ufffd"`, `{}`, "\ufffd"},
		{"same key in different objects", `"s"`, `{"a":{"k":1},"b":{"k":2},"l":[{"k":1},{"k":2}]}`, "s"},
		{"numbers at numeric's limits", `"s"`, `{"a":1e131071,"b":0.1e131072,"c":1e-16383,"d":0.00001e-16378,"e":0e999999,"f":-0}`, "s"},
		{"whitespace everywhere", `"s"`, " { \"a\" : [ 1 , { \"b\" : null } ] , \"c\" : true } ", "s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := pay.ParseCreateOrder([]byte(orderWith(tc.subject, tc.extra)))
			if err != nil {
				t.Fatalf("ParseCreateOrder: %v", err)
			}
			if in.Subject != tc.wantSubject {
				t.Errorf("subject = %q; want %q", in.Subject, tc.wantSubject)
			}
		})
	}
}

func TestParseCreateRefundRefusesWhatPostgresCannotStore(t *testing.T) {
	refund := func(more string) []byte {
		return []byte(`{"app_id":"a","payment_order_id":"550e8400-e29b-41d4-a716-446655440000","amount":1` + more + `}`)
	}
	for name, tc := range map[string]struct{ more, field string }{
		"NUL in reason":             {`,"reason":"x\u0000"`, "reason"},
		"lone surrogate in reason":  {`,"reason":"\udc00"`, "reason"},
		"invalid UTF-8 in reason":   {",\"reason\":\"\xc0\xaf\"", "reason"},
		"duplicate amount":          {`,"amount":1000`, "amount"},
		"NUL in merchant_refund_id": {`,"merchant_refund_id":"\u0000"`, "merchant_refund_id"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := pay.ParseCreateRefund(refund(tc.more))
			var e *pay.Error
			if !errors.As(err, &e) || e.Code != pay.CodeValidation || e.Field != tc.field {
				t.Fatalf("ParseCreateRefund = %v; want a validation error on %q", err, tc.field)
			}
		})
	}
	in, err := pay.ParseCreateRefund(refund(`,"reason":"退款 \ud83d\ude00"`))
	if err != nil || in.Reason != "退款 😀" {
		t.Fatalf("valid refund = %+v, %v", in, err)
	}
}

// storable is the property the fuzz targets check: every string the parser returns can be
// stored as PostgreSQL text, and extra_data as jsonb.
func storable(t *testing.T, strs []string, extra []byte) {
	t.Helper()
	for _, s := range strs {
		if strings.ContainsRune(s, 0) || !utf8.ValidString(s) {
			t.Fatalf("parser returned %q, which PostgreSQL text cannot hold", s)
		}
	}
	if !utf8.Valid(extra) {
		t.Fatalf("extra_data %q is not UTF-8", extra)
	}
	// Every \u escape in extra_data is neither \u0000 nor part of a lone surrogate.
	for i := 0; i < len(extra); i++ {
		if extra[i] != '\\' {
			continue
		}
		if extra[i+1] != 'u' {
			i++ // \\ or \" or \n …: skip the escaped character
			continue
		}
		hex := strings.ToLower(string(extra[i+2 : i+6]))
		switch {
		case hex == "0000":
			t.Fatalf("extra_data %q holds \\u0000", extra)
		case hex >= "dc00" && hex <= "dfff":
			t.Fatalf("extra_data %q holds a lone low surrogate", extra)
		case hex >= "d800" && hex <= "dbff":
			next := ""
			if i+12 <= len(extra) && string(extra[i+6:i+8]) == `\u` {
				next = strings.ToLower(string(extra[i+8 : i+12]))
			}
			if next < "dc00" || next > "dfff" {
				t.Fatalf("extra_data %q holds a lone high surrogate", extra)
			}
			i += 6
		}
		i += 5
	}
}

// refusedAsInvalid fails unless err is a *pay.Error of kind invalid.
func refusedAsInvalid(t *testing.T, err error) {
	t.Helper()
	var e *pay.Error
	if !errors.As(err, &e) || e.Kind != pay.KindInvalid {
		t.Fatalf("parser error %v (%T) is not a *pay.Error of kind invalid", err, err)
	}
}

func FuzzParseCreateOrder(f *testing.F) {
	f.Add([]byte(orderWith(`"s"`, `{"a":"\ud83d\ude00"}`)))
	f.Add([]byte(orderWith(`"\u0000"`, `{}`)))
	f.Add([]byte(orderWith(`"s"`, `{"\ud800":1,"a":1,"a":2}`)))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := pay.ParseCreateOrder(body)
		if err != nil {
			refusedAsInvalid(t, err)
			return
		}
		storable(t, []string{in.AppID, in.MerchantOrderID, in.OrderType, in.Subject, in.Currency}, in.ExtraData)
	})
}

func FuzzParseCreateRefund(f *testing.F) {
	f.Add([]byte(`{"app_id":"a","payment_order_id":"550e8400-e29b-41d4-a716-446655440000","amount":1,"reason":"\ud83d\ude00"}`))
	f.Add([]byte(`{"app_id":"a","payment_order_id":"550e8400-e29b-41d4-a716-446655440000","amount":1,"reason":"\ud800x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := pay.ParseCreateRefund(body)
		if err != nil {
			refusedAsInvalid(t, err)
			return
		}
		storable(t, []string{in.AppID, in.PaymentOrderID, in.Reason, in.MerchantRefundID}, nil)
	})
}

package pay

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// The parsers of request bodies take anything a client sends: they must never panic, and
// whatever they accept must satisfy the rules the rest of the service relies on.

func FuzzCreateOrderRules(f *testing.F) {
	for _, seed := range []string{
		`{"app_id":"shop","merchant_order_id":"ORDER_1","amount":10000,"order_type":"payment","subject":"VIP"}`,
		`{"app_id":"shop","merchant_order_id":"o","amount":1,"order_type":"payment","subject":"s","currency":"CNY","extra_data":{"user_id":"u1"}}`,
		`{"merchant_order_id":"o","amount":1,"order_type":"payment","subject":"s"}`, `{"amount":100.0}`, `{"amount":"100"}`, `{"amount":1e4}`, `{"amount":-1}`, `{"amount":9223372036854775808}`,
		`{"extra_data":[]}`, `{"currency":""}`, `{"subject":"   "}`, `[]`, `null`, `{`, `{"app_id":"shop","app_id":"x"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := ParseCreateOrder(body)
		if err != nil {
			if AsError(err).Kind != KindInvalid {
				t.Fatalf("error %v is not a client error", err)
			}
			return
		}
		// app_id may be left out (the API key's app is meant); given, it is an identifier.
		if in.Amount <= 0 || (in.AppID != "" && !ValidIdentifier(in.AppID)) || !ValidIdentifier(in.MerchantOrderID) || in.Currency == "" || !utf8.ValidString(in.Subject) {
			t.Fatalf("accepted an invalid order: %+v", in)
		}
		var obj map[string]any
		if json.Unmarshal(in.ExtraData, &obj) != nil || obj == nil {
			t.Fatalf("extra_data %q is not a JSON object", in.ExtraData)
		}
	})
}

func FuzzCreateRefundRules(f *testing.F) {
	for _, seed := range []string{
		`{"app_id":"shop","payment_order_id":"0190b2a4-7c1e-7d2a-9f3b-2a1c3d4e5f60","amount":3000,"reason":"partial"}`,
		`{"app_id":"shop","payment_order_id":"0190B2A4-7C1E-7D2A-9F3B-2A1C3D4E5F60","amount":1,"merchant_refund_id":"R1"}`,
		`{"payment_order_id":"not-a-uuid","amount":1}`, `{"payment_order_id":"00000000-0000-0000-0000-000000000000","amount":1}`, `{"amount":0}`, `{"amount":1.5}`, `{}`, `"x"`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := ParseCreateRefund(body)
		if err != nil {
			if AsError(err).Kind != KindInvalid {
				t.Fatalf("error %v is not a client error", err)
			}
			return
		}
		if in.Amount <= 0 || (in.AppID != "" && !ValidIdentifier(in.AppID)) || len(in.PaymentOrderID) != 36 {
			t.Fatalf("accepted an invalid refund: %+v", in)
		}
		if in.MerchantRefundID != "" && !ValidIdentifier(in.MerchantRefundID) {
			t.Fatalf("accepted merchant_refund_id %q", in.MerchantRefundID)
		}
	})
}

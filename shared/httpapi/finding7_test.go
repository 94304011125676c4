package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/loomipay/loomipay/internal/testenv"
)

// TestFinding7TextThePostgresCannotHold: text PostgreSQL cannot store (NUL, lone or misordered
// surrogate escapes, invalid UTF-8, numbers beyond numeric) and duplicate keys at any depth are
// refused with a 400 naming the field, before anything is written. Before the fix these
// answered 500 or were silently accepted (the last duplicate winning).
func TestFinding7TextThePostgresCannotHold(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	paid := succeededPayment(t, s, "f7-paid", 10000)

	// order builds a create-order body around the raw JSON fragments given (inserted verbatim).
	order := func(subject, extra string) string {
		return `{"app_id":"test_app","merchant_order_id":"f7-1","amount":100,"order_type":"payment","subject":` +
			subject + `,"extra_data":` + extra + `}`
	}
	refund := func(fields string) string {
		return `{"app_id":"test_app","payment_order_id":"` + paid + `","amount":100` + fields + `}`
	}
	bad := []struct {
		name, path, body, field string
	}{
		{"subject NUL escape", ordersPath, order(`"a\u0000b"`, `{}`), "subject"},
		{"subject lone high surrogate", ordersPath, order(`"a\ud800"`, `{}`), "subject"},
		{"subject lone low surrogate", ordersPath, order(`"\udc00a"`, `{}`), "subject"},
		{"subject misordered surrogates", ordersPath, order(`"\ude00\ud83d"`, `{}`), "subject"},
		{"subject high surrogate then letter", ordersPath, order(`"\ud800\u0041"`, `{}`), "subject"},
		{"subject invalid UTF-8", ordersPath, order("\"a\xffb\"", `{}`), "subject"},
		{"extra_data value NUL", ordersPath, order(`"s"`, `{"k":"\u0000"}`), "extra_data"},
		{"extra_data key NUL", ordersPath, order(`"s"`, `{"\u0000":1}`), "extra_data"},
		{"extra_data nested lone surrogate", ordersPath, order(`"s"`, `{"a":[{"b":"\ud800"}]}`), "extra_data"},
		{"extra_data key lone surrogate", ordersPath, order(`"s"`, `{"\udfff":1}`), "extra_data"},
		{"extra_data invalid UTF-8", ordersPath, order(`"s"`, "{\"k\":\"\xc3\x28\"}"), "extra_data"},
		{"extra_data number beyond numeric", ordersPath, order(`"s"`, `{"n":1e999999}`), "extra_data"},
		{"extra_data number scale beyond numeric", ordersPath, order(`"s"`, `{"n":0e-999999}`), "extra_data"},
		{"extra_data duplicate key", ordersPath, order(`"s"`, `{"a":1,"a":2}`), "extra_data"},
		{"extra_data nested duplicate key", ordersPath, order(`"s"`, `{"a":{"b":1,"\u0062":2}}`), "extra_data"},
		{"duplicate amount", ordersPath, `{"app_id":"test_app","merchant_order_id":"f7-1","amount":-5,"amount":1000,"order_type":"payment","subject":"s"}`, "amount"},
		{"duplicate app_id", ordersPath, `{"app_id":"b","app_id":"test_app","merchant_order_id":"f7-1","amount":100,"order_type":"payment","subject":"s"}`, "app_id"},
		{"unknown field NUL", ordersPath, `{"app_id":"test_app","merchant_order_id":"f7-1","amount":100,"order_type":"payment","subject":"s","note":"\u0000"}`, "note"},
		{"refund reason NUL", refundsPath, refund(`,"reason":"no\u0000"`), "reason"},
		{"refund reason lone surrogate", refundsPath, refund(`,"reason":"\ud800"`), "reason"},
		{"refund reason invalid UTF-8", refundsPath, refund(",\"reason\":\"\xed\xa0\x80\""), "reason"},
		{"refund merchant_refund_id NUL", refundsPath, refund(`,"merchant_refund_id":"r\u0000"`), "merchant_refund_id"},
		{"refund duplicate amount", refundsPath, refund(`,"amount":-5`), "amount"},
		{"refund duplicate app_id", refundsPath, `{"app_id":"b","app_id":"test_app","payment_order_id":"` + paid + `","amount":100}`, "app_id"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			orders := count(t, s, "SELECT count(*) FROM payment_orders")
			tasks := count(t, s, "SELECT count(*) FROM tasks")
			code, resp := s.Do(t, "POST", tc.path, s.APIKey, tc.body)
			e := checkError(t, code, resp, http.StatusBadRequest, "validation_error", tc.field)
			if e.Field != tc.field {
				t.Errorf("field = %q; want %q (detail %q)", e.Field, tc.field, e.Detail)
			}
			if got := count(t, s, "SELECT count(*) FROM payment_orders"); got != orders {
				t.Errorf("payment_orders rows = %d; want %d", got, orders)
			}
			if got := count(t, s, "SELECT count(*) FROM refund_orders"); got != 0 {
				t.Errorf("refund_orders rows = %d; want 0", got)
			}
			if got := count(t, s, "SELECT count(*) FROM tasks"); got != tasks {
				t.Errorf("tasks rows = %d; want %d", got, tasks)
			}
		})
	}

	// A raw NUL or control byte is not JSON at all.
	code, resp := s.Do(t, "POST", ordersPath, s.APIKey, order("\"a\x00b\"", `{}`))
	checkError(t, code, resp, http.StatusBadRequest, "invalid_json", "JSON")

	// What PostgreSQL can store stays accepted, and is stored as sent.
	code, resp = s.Do(t, "POST", ordersPath, s.APIKey,
		order(`"pay \ud83d\ude00 \"q\" 会员 \\u0000"`, `{"a":{"k":1},"b":{"k":2},"l":[{"k":1},{"k":2}],"n":1e-5,"e":"\u00e9"}`))
	if code != http.StatusAccepted {
		t.Fatalf("valid body = %d %s; want 202", code, resp)
	}
	if o := decodeOrder(t, resp); o.Subject != `pay 😀 "q" 会员 \u0000` || !strings.Contains(string(o.ExtraData), `"é"`) {
		t.Errorf("stored subject %q extra_data %s", o.Subject, o.ExtraData)
	}
	code, resp = s.Do(t, "POST", refundsPath, s.APIKey, refund(`,"reason":"退款 \ud83d\ude00"`))
	if code != http.StatusAccepted {
		t.Fatalf("valid refund = %d %s; want 202", code, resp)
	}
}

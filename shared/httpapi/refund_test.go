package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
)

func TestCreateRefundRejectsInvalidRequests(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	paid := succeededPayment(t, s, "rv-1", 10000)
	otherKey := s.NewKey(t, "other_app")
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	body := func(amount any, extra map[string]any) string { return refundBody(t, paid, amount, extra) }
	without := func(field string) string {
		f := map[string]any{"app_id": "test_app", "payment_order_id": paid, "amount": 100}
		delete(f, field)
		return mustJSON(t, f)
	}

	tests := []struct {
		name     string
		key      string
		body     string
		status   int
		code     string
		inDetail string
	}{
		{"payment_order_id not a UUID", "", body(100, map[string]any{"payment_order_id": "not-a-uuid"}), 400, "validation_error", "payment_order_id"},
		{"payment_order_id without dashes", "", body(100, map[string]any{"payment_order_id": pay.OutOrderNo(paid)}), 400, "validation_error", "payment_order_id"},
		{"payment_order_id number", "", body(100, map[string]any{"payment_order_id": 12}), 400, "validation_error", "payment_order_id"},
		{"missing payment_order_id", "", without("payment_order_id"), 400, "validation_error", "payment_order_id"},
		{"unknown field", "", body(100, map[string]any{"reason": "size", "notify": true}), 400, "validation_error", "notify"},
		{"app_id of another app", "", body(100, map[string]any{"app_id": "other_app"}), 403, "forbidden", "other_app"},
		{"missing amount", "", without("amount"), 400, "validation_error", "amount"},
		{"amount zero", "", body(0, nil), 400, "validation_error", "amount"},
		{"amount negative", "", body(-1000, nil), 400, "validation_error", "amount"},
		{"amount as string", "", body("1000", nil), 400, "validation_error", "amount"},
		{"amount with fraction", "", body(raw("10.5"), nil), 400, "validation_error", "amount"},
		{"amount null", "", body(nil, nil), 400, "validation_error", "amount"},
		{"reason over 256 chars", "", body(100, map[string]any{"reason": strings.Repeat("r", 257)}), 400, "validation_error", "reason"},
		{"reason over 256 multibyte chars", "", body(100, map[string]any{"reason": strings.Repeat("退", 257)}), 400, "validation_error", "reason"},
		{"reason number", "", body(100, map[string]any{"reason": 5}), 400, "validation_error", "reason"},
		{"merchant_refund_id bad chars", "", body(100, map[string]any{"merchant_refund_id": "r 1"}), 400, "validation_error", "merchant_refund_id"},
		{"amount over the payment", "", body(10001, nil), 400, "refund_exceeds_refundable", "10000"},
		{"not JSON", "", `{"amount":`, 400, "invalid_json", "byte offset 10"},
		{"empty body", "", ``, 400, "invalid_json", "empty"},
		{"body over 64 KiB", "", body(100, map[string]any{"padding": strings.Repeat("p", 64<<10)}), 413, "body_too_large", "65536"},
		{"unknown payment", "", body(100, map[string]any{"payment_order_id": "550e8400-e29b-41d4-a716-446655440000"}), 404, "not_found", "550e8400-e29b-41d4-a716-446655440000"},
		{"another app's payment", otherKey, body(100, map[string]any{"app_id": "other_app"}), 404, "not_found", paid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			if key == "" {
				key = s.APIKey
			}
			code, resp := s.Do(t, "POST", refundsPath, key, tc.body)
			checkError(t, code, resp, tc.status, tc.code, tc.inDetail)
			if got := count(t, s, "SELECT count(*) FROM refund_orders"); got != 0 {
				t.Errorf("refund_orders rows = %d; want 0", got)
			}
			if got := count(t, s, "SELECT count(*) FROM tasks WHERE kind = 'refund'"); got != 0 {
				t.Errorf("refund tasks = %d; want 0", got)
			}
		})
	}

	accepted := []struct {
		name   string
		extra  map[string]any
		reason *string
	}{
		{"reason of 256 multibyte chars", map[string]any{"reason": strings.Repeat("退", 256)}, ptr(strings.Repeat("退", 256))},
		{"reason null", map[string]any{"reason": nil}, nil},
		{"reason absent", nil, nil},
		{"app_id null: the key's app", map[string]any{"reason": "size", "app_id": nil}, ptr("size")},
		{"app_id left out: the key's app", map[string]any{"app_id": "-"}, nil},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			sent := body(1, tc.extra)
			if tc.extra["app_id"] == "-" {
				sent = without("app_id")
				sent = strings.Replace(sent, `"amount":100`, `"amount":1`, 1)
			}
			code, resp := s.Do(t, "POST", refundsPath, s.APIKey, sent)
			if code != http.StatusAccepted {
				t.Fatalf("status = %d %s; want 202", code, resp)
			}
			r := decodeRefund(t, resp)
			if (r.Reason == nil) != (tc.reason == nil) || (r.Reason != nil && *r.Reason != *tc.reason) {
				t.Errorf("reason = %v; want %v", r.Reason, tc.reason)
			}
			if got := count(t, s, "SELECT count(*) FROM refund_orders WHERE id = $1 AND payment_order_id = $2 AND status = 'pending'", r.ID, paid); got != 1 {
				t.Errorf("pending refund rows = %d; want 1", got)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestRefundOfPaymentNotSucceeded(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{Optimistic: true})
	ctx := context.Background()
	pending := createOrder(t, s, "nr-pending", 10000)
	t.Run("pending", func(t *testing.T) {
		code, body := s.Do(t, "POST", refundsPath, s.APIKey, refundBody(t, pending.ID, 100, nil))
		checkError(t, code, body, http.StatusConflict, "payment_not_refundable", "pending")
	})

	if _, err := s.Processor.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	waitOrderStatus(t, s, "nr-pending", "processing")
	t.Run("processing", func(t *testing.T) {
		code, body := s.Do(t, "POST", refundsPath, s.APIKey, refundBody(t, pending.ID, 100, nil))
		checkError(t, code, body, http.StatusConflict, "payment_not_refundable", "processing")
	})

	at, ok := s.Sandbox.Order(pay.OutOrderNo(pending.ID))
	if !ok {
		t.Fatal("order not at the sandbox")
	}
	if err := s.Sandbox.Fail(ctx, at.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the order to fail", func() bool {
		s.RunOnce(t)
		return s.Order(t, "nr-pending").Status == "failed"
	})
	t.Run("failed", func(t *testing.T) {
		code, body := s.Do(t, "POST", refundsPath, s.APIKey, refundBody(t, pending.ID, 100, nil))
		checkError(t, code, body, http.StatusConflict, "payment_not_refundable", "failed")
	})
	if got := count(t, s, "SELECT count(*) FROM refund_orders"); got != 0 {
		t.Errorf("refund_orders rows = %d; want 0", got)
	}
}

// remainderIs matches a detail that states the refundable remainder n as a whole number.
func remainderIs(t *testing.T, detail string, n string) {
	t.Helper()
	if !regexp.MustCompile(`\b` + n + `\b`).MatchString(detail) {
		t.Errorf("detail = %q; want it to state the remainder %s", detail, n)
	}
}

func TestPartialRefunds(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	paid := succeededPayment(t, s, "pr-1", 10000)
	steps := []struct {
		amount    int64
		status    int
		remainder string // for refused steps
	}{
		{3000, http.StatusAccepted, ""},
		{8000, http.StatusBadRequest, "7000"},
		{3000, http.StatusAccepted, ""},
		{4001, http.StatusBadRequest, "4000"},
		{4000, http.StatusAccepted, ""},
		{1, http.StatusBadRequest, "0"},
	}
	for i, step := range steps {
		code, body := s.Do(t, "POST", refundsPath, s.APIKey, refundBody(t, paid, step.amount, nil))
		if step.status == http.StatusAccepted {
			if code != step.status {
				t.Fatalf("step %d: refund of %d = %d %s; want 202", i, step.amount, code, body)
			}
			checkRefundObject(t, body, paid, step.amount)
			continue
		}
		e := checkError(t, code, body, step.status, "refund_exceeds_refundable", "")
		remainderIs(t, e.Detail, step.remainder)
	}
	if got := count(t, s, "SELECT count(*) FROM refund_orders WHERE payment_order_id = $1", paid); got != 3 {
		t.Errorf("refund rows = %d; want 3", got)
	}
	if got := count(t, s, "SELECT coalesce(sum(amount), 0) FROM refund_orders WHERE payment_order_id = $1", paid); got != 10000 {
		t.Errorf("refunded sum = %d; want 10000", got)
	}
	if got := count(t, s, "SELECT count(*) FROM tasks WHERE kind = 'refund'"); got != 3 {
		t.Errorf("refund tasks = %d; want 3", got)
	}
}

// checkRefundObject asserts the contract's refund object of a new refund.
func checkRefundObject(t *testing.T, body []byte, paymentOrderID string, amount int64) {
	t.Helper()
	var r map[string]json.RawMessage
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("refund %s: %v", body, err)
	}
	for _, f := range []string{"id", "app_id", "payment_order_id", "status", "amount", "currency", "reason",
		"gateway_refund_id", "extra_data", "created_at", "updated_at"} {
		if _, ok := r[f]; !ok {
			t.Errorf("refund lacks field %q: %s", f, body)
		}
	}
	want := map[string]string{
		"app_id":            `"test_app"`,
		"payment_order_id":  `"` + paymentOrderID + `"`,
		"status":            `"pending"`,
		"amount":            mustJSON(t, amount),
		"currency":          `"CNY"`,
		"gateway_refund_id": `null`,
		"extra_data":        `{}`,
	}
	for f, v := range want {
		if got := string(r[f]); got != v {
			t.Errorf("%s = %s; want %s", f, got, v)
		}
	}
	if _, err := pay.ParseID("id", strings.Trim(string(r["id"]), `"`)); err != nil {
		t.Errorf("id = %s; want a UUID", r["id"])
	}
}

func TestMerchantRefundIDIdempotency(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	paid := succeededPayment(t, s, "mr-1", 10000)
	other := succeededPayment(t, s, "mr-2", 10000)
	original := refundBody(t, paid, 2000, map[string]any{"merchant_refund_id": "R-1", "reason": "size"})
	code, first := s.Do(t, "POST", refundsPath, s.APIKey, original)
	if code != http.StatusAccepted {
		t.Fatalf("first refund = %d %s; want 202", code, first)
	}
	id := decodeRefund(t, first).ID

	t.Run("identical retry", func(t *testing.T) {
		code, body := s.Do(t, "POST", refundsPath, s.APIKey, original)
		if code != http.StatusOK {
			t.Fatalf("retry = %d %s; want 200", code, body)
		}
		if got := decodeRefund(t, body).ID; got != id {
			t.Errorf("retry id = %s; want %s", got, id)
		}
	})
	conflicts := []struct {
		name, body, field string
	}{
		{"different amount", refundBody(t, paid, 2001, map[string]any{"merchant_refund_id": "R-1", "reason": "size"}), "amount"},
		{"different reason", refundBody(t, paid, 2000, map[string]any{"merchant_refund_id": "R-1", "reason": "colour"}), "reason"},
		{"different payment", refundBody(t, other, 2000, map[string]any{"merchant_refund_id": "R-1", "reason": "size"}), "payment_order_id"},
	}
	for _, tc := range conflicts {
		t.Run(tc.name, func(t *testing.T) {
			code, body := s.Do(t, "POST", refundsPath, s.APIKey, tc.body)
			checkError(t, code, body, http.StatusConflict, "refund_conflict", tc.field)
		})
	}
	if got := count(t, s, "SELECT count(*) FROM refund_orders"); got != 1 {
		t.Errorf("refund rows = %d; want 1", got)
	}
	// The retry did not take a second 2000 from the refundable amount.
	code, body := s.Do(t, "POST", refundsPath, s.APIKey, refundBody(t, paid, 8000, nil))
	if code != http.StatusAccepted {
		t.Errorf("refund of the remaining 8000 = %d %s; want 202", code, body)
	}
}

func TestConcurrentRefundsCannotOverdraw(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	paid := succeededPayment(t, s, "cr-1", 10000)
	const n = 20
	body := refundBody(t, paid, 1000, nil)
	results := sendAtOnce(t, s, n, "POST", refundsPath, body)

	accepted := 0
	for i, r := range results {
		switch r.status {
		case http.StatusAccepted:
			accepted++
		case http.StatusBadRequest:
			if e := decodeError(t, r.body); e.Code != "refund_exceeds_refundable" {
				t.Errorf("request %d code = %q; want refund_exceeds_refundable", i, e.Code)
			}
		default:
			t.Errorf("request %d = %d %s; want 202 or 400", i, r.status, r.body)
		}
	}
	if accepted != 10 {
		t.Errorf("accepted refunds = %d; want 10", accepted)
	}
	if got := count(t, s, "SELECT coalesce(sum(amount), 0) FROM refund_orders WHERE payment_order_id = $1 AND status <> 'failed'", paid); got != 10000 {
		t.Errorf("sum of live refunds = %d; want 10000", got)
	}
	if got := count(t, s, "SELECT count(*) FROM tasks WHERE kind = 'refund'"); got != 10 {
		t.Errorf("refund tasks = %d; want 10", got)
	}
}

func TestGetRefund(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	paid := succeededPayment(t, s, "gr-1", 10000)
	otherKey := s.NewKey(t, "other_app")
	code, created := s.Do(t, "POST", refundsPath, s.APIKey, refundBody(t, paid, 2500, map[string]any{"reason": "damaged"}))
	if code != http.StatusAccepted {
		t.Fatalf("create refund = %d %s; want 202", code, created)
	}
	id := decodeRefund(t, created).ID

	t.Run("found", func(t *testing.T) {
		code, body := s.Do(t, "GET", refundsPath+"/"+id+"?app_id=test_app", s.APIKey, "")
		if code != http.StatusOK {
			t.Fatalf("GET = %d %s; want 200", code, body)
		}
		checkRefundObject(t, body, paid, 2500)
		if r := decodeRefund(t, body); r.ID != id || r.Reason == nil || *r.Reason != "damaged" {
			t.Errorf("refund = %+v; want id %s reason damaged", r, id)
		}
	})
	t.Run("upper-case id finds the same refund", func(t *testing.T) {
		code, body := s.Do(t, "GET", refundsPath+"/"+strings.ToUpper(id)+"?app_id=test_app", s.APIKey, "")
		if code != http.StatusOK || decodeRefund(t, body).ID != id {
			t.Errorf("GET = %d %s; want 200 with %s", code, body, id)
		}
	})
	failures := []struct {
		name, key, path string
		status          int
		code, inDetail  string
	}{
		{"bad UUID", s.APIKey, refundsPath + "/not-a-uuid?app_id=test_app", 400, "validation_error", "refund_order_id"},
		{"malformed app_id", s.APIKey, refundsPath + "/" + id + "?app_id=a%20b", 400, "validation_error", "app_id"},
		{"another app's refund without app_id", otherKey, refundsPath + "/" + id, 404, "not_found", "not found"},
		{"unknown id", s.APIKey, refundsPath + "/550e8400-e29b-41d4-a716-446655440000?app_id=test_app", 404, "not_found", "not found"},
		{"a payment id is not a refund id", s.APIKey, refundsPath + "/" + paid + "?app_id=test_app", 404, "not_found", "not found"},
		{"another app's refund", otherKey, refundsPath + "/" + id + "?app_id=other_app", 404, "not_found", "not found"},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			code, body := s.Do(t, "GET", tc.path, tc.key, "")
			checkError(t, code, body, tc.status, tc.code, tc.inDetail)
		})
	}
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/loomipay/loomipay/internal/testenv"
)

func TestCreateOrderRejectsInvalidBodies(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	body := func(change map[string]any, drop ...string) string { return orderBody(t, "o-1", change, drop...) }
	bigExtra := map[string]any{"blob": strings.Repeat("x", 16<<10)}

	tests := []struct {
		name     string
		body     string
		status   int
		code     string
		inDetail string
	}{
		{"amount as string", body(map[string]any{"amount": "100"}), 400, "validation_error", "amount"},
		{"amount with fraction", body(map[string]any{"amount": raw("100.0")}), 400, "validation_error", "amount"},
		{"amount with exponent", body(map[string]any{"amount": raw("1e4")}), 400, "validation_error", "amount"},
		{"amount zero", body(map[string]any{"amount": 0}), 400, "validation_error", "amount"},
		{"amount negative", body(map[string]any{"amount": -100}), 400, "validation_error", "amount"},
		{"amount of 13 digits (Lakala's total_amount is long(12))", body(map[string]any{"amount": int64(1_000_000_000_000)}), 400, "validation_error", "amount"},
		{"amount beyond int64", body(map[string]any{"amount": raw("99999999999999999999")}), 400, "validation_error", "amount"},
		{"amount bool", body(map[string]any{"amount": true}), 400, "validation_error", "amount"},
		{"amount list", body(map[string]any{"amount": []int{1}}), 400, "validation_error", "amount"},

		{"missing merchant_order_id", body(nil, "merchant_order_id"), 400, "validation_error", "merchant_order_id"},
		{"missing amount", body(nil, "amount"), 400, "validation_error", "amount"},
		{"missing order_type", body(nil, "order_type"), 400, "validation_error", "order_type"},
		{"missing subject", body(nil, "subject"), 400, "validation_error", "subject"},
		{"null merchant_order_id", body(map[string]any{"merchant_order_id": nil}), 400, "validation_error", "merchant_order_id"},
		{"null amount", body(map[string]any{"amount": nil}), 400, "validation_error", "amount"},
		{"null order_type", body(map[string]any{"order_type": nil}), 400, "validation_error", "order_type"},
		{"null subject", body(map[string]any{"subject": nil}), 400, "validation_error", "subject"},

		{"order_type unknown", body(map[string]any{"order_type": "refund"}), 400, "validation_error", "order_type"},
		{"order_type wrong case", body(map[string]any{"order_type": "PAYMENT"}), 400, "validation_error", "order_type"},
		{"order_type number", body(map[string]any{"order_type": 1}), 400, "validation_error", "order_type"},

		{"app_id too long", body(map[string]any{"app_id": strings.Repeat("a", 65)}), 400, "validation_error", "app_id"},
		{"app_id bad chars", body(map[string]any{"app_id": "test app"}), 400, "validation_error", "app_id"},
		{"app_id empty", body(map[string]any{"app_id": ""}), 400, "validation_error", "app_id"},
		{"app_id number", body(map[string]any{"app_id": 7}), 400, "validation_error", "app_id"},
		{"merchant_order_id too long", body(map[string]any{"merchant_order_id": strings.Repeat("m", 65)}), 400, "validation_error", "merchant_order_id"},
		{"merchant_order_id bad chars", body(map[string]any{"merchant_order_id": "o/1"}), 400, "validation_error", "merchant_order_id"},
		{"merchant_order_id non-ascii", body(map[string]any{"merchant_order_id": "订单1"}), 400, "validation_error", "merchant_order_id"},
		{"merchant_order_id empty", body(map[string]any{"merchant_order_id": ""}), 400, "validation_error", "merchant_order_id"},

		// extra_data.return_url is sent as Lakala's callback_url: String(128), a URL.
		{"return_url of 129 bytes", body(map[string]any{"extra_data": map[string]any{"return_url": "https://shop.example.com/" + strings.Repeat("退", 34) + "ab"}}), 400, "validation_error", "extra_data"},
		{"return_url not a URL", body(map[string]any{"extra_data": map[string]any{"return_url": "shop/return"}}), 400, "validation_error", "extra_data"},
		{"return_url not a string", body(map[string]any{"extra_data": map[string]any{"return_url": 7}}), 400, "validation_error", "extra_data"},

		{"subject empty", body(map[string]any{"subject": ""}), 400, "validation_error", "subject"},
		{"subject blank", body(map[string]any{"subject": " \t "}), 400, "validation_error", "subject"},
		{"subject 129 chars", body(map[string]any{"subject": strings.Repeat("s", 129)}), 400, "validation_error", "subject"},
		{"subject 129 multibyte chars", body(map[string]any{"subject": strings.Repeat("会", 129)}), 400, "validation_error", "subject"},
		{"subject number", body(map[string]any{"subject": 5}), 400, "validation_error", "subject"},

		{"currency USD", body(map[string]any{"currency": "USD"}), 400, "validation_error", "currency"},
		{"currency lower case", body(map[string]any{"currency": "cny"}), 400, "validation_error", "currency"},
		{"currency empty", body(map[string]any{"currency": ""}), 400, "validation_error", "currency"},
		{"currency number", body(map[string]any{"currency": 156}), 400, "validation_error", "currency"},

		{"extra_data list", body(map[string]any{"extra_data": []string{"a"}}), 400, "validation_error", "extra_data"},
		{"extra_data string", body(map[string]any{"extra_data": "{}"}), 400, "validation_error", "extra_data"},
		{"extra_data number", body(map[string]any{"extra_data": 1}), 400, "validation_error", "extra_data"},
		{"extra_data over 16 KiB", body(map[string]any{"extra_data": bigExtra}), 400, "validation_error", "extra_data"},

		// Unknown fields are refused like unknown query parameters: a misspelt optional field is
		// not silently dropped.
		{"unknown field", body(map[string]any{"subjet": "VIP"}), 400, "validation_error", "subjet"},
		{"unknown field beside the misspelt one", body(map[string]any{"expires": 120, "notify_url": "https://x"}), 400, "validation_error", "expires"},

		{"not JSON", `{"app_id": "test_app",`, 400, "invalid_json", "JSON"},
		{"not JSON: the offset of the error", `{"app_id": "test_app", "amount": 1O0}`, 400, "invalid_json", "byte offset 34"},
		{"not JSON: the offset after leading space", "\n  {\"amount\": ,}", 400, "invalid_json", "byte offset 14"},
		{"plain text", `amount=100`, 400, "invalid_json", "byte offset 0"},
		{"JSON array", `[` + body(nil) + `]`, 400, "invalid_json", "object"},
		{"JSON null", `null`, 400, "invalid_json", "object"},
		{"empty body", ``, 400, "invalid_json", "empty"},
		{"body over 64 KiB", body(map[string]any{"padding": strings.Repeat("p", 64<<10)}), 413, "body_too_large", "65536"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, resp := s.Do(t, "POST", ordersPath, s.APIKey, tc.body)
			e := checkError(t, code, resp, tc.status, tc.code, tc.inDetail)
			if tc.code == "validation_error" && e.Field != tc.inDetail {
				t.Errorf("field = %q; want %q", e.Field, tc.inDetail)
			}
			if got := count(t, s, "SELECT count(*) FROM payment_orders"); got != 0 {
				t.Errorf("payment_orders rows = %d; want 0", got)
			}
			if got := count(t, s, "SELECT count(*) FROM tasks"); got != 0 {
				t.Errorf("tasks rows = %d; want 0", got)
			}
			if got := taskStreamLen(t, s); got != 0 {
				t.Errorf("task stream entries = %d; want 0", got)
			}
		})
	}
}

func TestCreateOrderAcceptsEdgeValues(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	tests := []struct {
		name   string
		change map[string]any
		drop   []string
	}{
		{"app_id left out: the key's app", nil, []string{"app_id"}},
		{"app_id null: the key's app", map[string]any{"app_id": nil}, nil},
		{"amount 1", map[string]any{"amount": 1}, nil},
		{"amount of 12 digits", map[string]any{"amount": int64(999_999_999_999)}, nil},
		{"return_url of 128 bytes", map[string]any{"extra_data": map[string]any{"return_url": "https://shop.example.com/" + strings.Repeat("退", 34) + "a"}}, nil},
		{"return_url null", map[string]any{"extra_data": map[string]any{"return_url": nil}}, nil},
		{"order_type recharge", map[string]any{"order_type": "recharge"}, nil},
		{"subject 128 chars", map[string]any{"subject": strings.Repeat("s", 128)}, nil},
		{"subject 128 multibyte chars", map[string]any{"subject": strings.Repeat("会", 128)}, nil},
		{"currency CNY explicit", map[string]any{"currency": "CNY"}, nil},
		{"currency null", map[string]any{"currency": nil}, nil},
		{"extra_data null", map[string]any{"extra_data": nil}, nil},
		{"extra_data nested", map[string]any{"extra_data": map[string]any{"user_id": "u1", "tags": []any{1, "two", nil}}}, nil},
		{"merchant_order_id of 64 allowed chars", map[string]any{"merchant_order_id": "A-z_0." + strings.Repeat("9", 58)}, nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := "edge-" + string(rune('a'+i))
			if _, ok := tc.change["merchant_order_id"]; ok {
				id = tc.change["merchant_order_id"].(string)
			}
			sent := orderBody(t, id, tc.change, tc.drop...)
			code, body := s.Do(t, "POST", ordersPath, s.APIKey, sent)
			if code != http.StatusAccepted {
				t.Fatalf("status = %d; want 202 (body %s)", code, body)
			}
			o := decodeOrder(t, body)
			var in struct {
				Amount  int64  `json:"amount"`
				Subject string `json:"subject"`
			}
			_ = json.Unmarshal([]byte(sent), &in)
			if o.AppID != "test_app" || o.MerchantOrderID != id || o.Amount != in.Amount || o.Subject != in.Subject || o.Status != "pending" || o.Currency != "CNY" {
				t.Errorf("order = %+v; want app test_app, merchant_order_id %q amount %d subject %q pending CNY", o, id, in.Amount, in.Subject)
			}
			if got := count(t, s, "SELECT count(*) FROM payment_orders WHERE id = $1 AND subject = $2", o.ID, in.Subject); got != 1 {
				t.Errorf("rows with the full subject = %d; want 1", got)
			}
			if got := count(t, s, "SELECT count(*) FROM tasks WHERE kind = 'payment' AND subject_id = $1", o.ID); got != 1 {
				t.Errorf("payment tasks = %d; want 1", got)
			}
		})
	}
	if got, want := taskStreamLen(t, s), int64(len(tests)); got != want {
		t.Errorf("task stream entries = %d; want %d", got, want)
	}
}

func TestCreateOrderIdempotency(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	extra := json.RawMessage(`{"user_id":"user_12345","cart":{"items":[1,2],"coupon":null}}`)
	original := orderBody(t, "idem-1", map[string]any{"extra_data": extra})
	code, first := s.Do(t, "POST", ordersPath, s.APIKey, original)
	if code != http.StatusAccepted {
		t.Fatalf("first create = %d %s; want 202", code, first)
	}
	var want map[string]any
	if err := json.Unmarshal(first, &want); err != nil {
		t.Fatal(err)
	}

	identical := []struct {
		name string
		body string
	}{
		{"same body", original},
		{"extra_data keys in another order", orderBody(t, "idem-1", map[string]any{
			"extra_data": json.RawMessage(`{ "cart": {"coupon": null, "items": [1, 2]}, "user_id": "user_12345" }`)})},
		{"currency CNY given explicitly", orderBody(t, "idem-1", map[string]any{"extra_data": extra, "currency": "CNY"})},
		{"app_id left out", orderBody(t, "idem-1", map[string]any{"extra_data": extra}, "app_id")},
	}
	for _, tc := range identical {
		t.Run(tc.name, func(t *testing.T) {
			code, body := s.Do(t, "POST", ordersPath, s.APIKey, tc.body)
			if code != http.StatusOK {
				t.Fatalf("retry = %d %s; want 200", code, body)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("retry returned %s; want the first response %s", body, first)
			}
		})
	}

	conflicting := []struct {
		name  string
		body  string
		field string
	}{
		{"amount", orderBody(t, "idem-1", map[string]any{"extra_data": extra, "amount": 10001}), "amount"},
		{"order_type", orderBody(t, "idem-1", map[string]any{"extra_data": extra, "order_type": "recharge"}), "order_type"},
		{"subject", orderBody(t, "idem-1", map[string]any{"extra_data": extra, "subject": "VIP membership!"}), "subject"},
		{"extra_data value", orderBody(t, "idem-1", map[string]any{"extra_data": map[string]any{"user_id": "user_99999"}}), "extra_data"},
		{"extra_data missing", orderBody(t, "idem-1", nil), "extra_data"},
		{"extra_data number type", orderBody(t, "idem-1", map[string]any{
			"extra_data": json.RawMessage(`{"user_id":"user_12345","cart":{"items":["1",2],"coupon":null}}`)}), "extra_data"},
	}
	for _, tc := range conflicting {
		t.Run("conflict on "+tc.name, func(t *testing.T) {
			code, body := s.Do(t, "POST", ordersPath, s.APIKey, tc.body)
			checkError(t, code, body, http.StatusConflict, "order_conflict", tc.field)
		})
	}

	if got := count(t, s, "SELECT count(*) FROM payment_orders WHERE merchant_order_id = 'idem-1'"); got != 1 {
		t.Errorf("rows = %d; want exactly 1", got)
	}
	if got := count(t, s, "SELECT count(*) FROM tasks"); got != 1 {
		t.Errorf("tasks = %d; want exactly 1", got)
	}
	if got := taskStreamLen(t, s); got != 1 {
		t.Errorf("task stream entries = %d; want 1", got)
	}

	t.Run("absent, null and empty extra_data are the same", func(t *testing.T) {
		createOrder(t, s, "idem-2", 10000)
		for _, extra := range []any{nil, map[string]any{}} {
			code, body := s.Do(t, "POST", ordersPath, s.APIKey, orderBody(t, "idem-2", map[string]any{"extra_data": extra}))
			if code != http.StatusOK {
				t.Errorf("retry with extra_data %v = %d %s; want 200", extra, code, body)
			}
		}
	})

	t.Run("retry after the order moved on", func(t *testing.T) {
		created := createOrder(t, s, "idem-3", 10000)
		if _, err := s.Processor.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitOrderStatus(t, s, "idem-3", "processing")
		code, body := s.Do(t, "POST", ordersPath, s.APIKey, orderBody(t, "idem-3", nil))
		if code != http.StatusOK {
			t.Fatalf("retry of a processing order = %d %s; want 200", code, body)
		}
		o := decodeOrder(t, body)
		if o.ID != created.ID || o.Status != "processing" {
			t.Errorf("retry returned %+v; want order %s as it is now (processing)", o, created.ID)
		}
	})

	t.Run("same merchant_order_id in another app is a new order", func(t *testing.T) {
		key := s.NewKey(t, "other_app")
		code, body := s.Do(t, "POST", ordersPath, key, orderBody(t, "idem-1", map[string]any{"app_id": "other_app", "amount": 1}))
		if code != http.StatusAccepted {
			t.Fatalf("create = %d %s; want 202", code, body)
		}
		if got := count(t, s, "SELECT count(*) FROM payment_orders WHERE merchant_order_id = 'idem-1'"); got != 2 {
			t.Errorf("rows = %d; want 2 (one per app)", got)
		}
	})
}

func TestCreateOrderConcurrentIdenticalRequests(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	const n = 50
	body := orderBody(t, "race-1", map[string]any{"extra_data": map[string]any{"k": "v"}})
	results := sendAtOnce(t, s, n, "POST", ordersPath, body)

	accepted, ids := 0, map[string]int{}
	for i, r := range results {
		switch r.status {
		case http.StatusAccepted:
			accepted++
		case http.StatusOK:
		default:
			t.Errorf("request %d = %d %s; want 200 or 202", i, r.status, r.body)
			continue
		}
		ids[decodeOrder(t, r.body).ID]++
	}
	if accepted != 1 {
		t.Errorf("202 responses = %d; want exactly 1", accepted)
	}
	if len(ids) != 1 {
		t.Errorf("responses carry %d distinct ids (%v); want 1", len(ids), ids)
	}
	if got := count(t, s, "SELECT count(*) FROM payment_orders"); got != 1 {
		t.Errorf("payment_orders rows = %d; want 1", got)
	}
	if got := count(t, s, "SELECT count(*) FROM tasks"); got != 1 {
		t.Errorf("tasks rows = %d; want 1", got)
	}
	if got := taskStreamLen(t, s); got != 1 {
		t.Errorf("task stream entries = %d; want 1", got)
	}
}

package httpapi_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
)

// contractOrderFields are the guide's order fields: none may be dropped or renamed.
var contractOrderFields = []string{
	"id", "app_id", "merchant_order_id", "status", "order_type", "amount", "currency",
	"payment_gateway", "gateway_transaction_id", "subject", "extra_data", "created_at", "updated_at",
}

// checkOrderObject asserts the contract's shape of a fresh order created from the given values.
func checkOrderObject(t *testing.T, body []byte, merchantOrderID string, extraData string) {
	t.Helper()
	var o map[string]json.RawMessage
	if err := json.Unmarshal(body, &o); err != nil {
		t.Fatalf("order %s: %v", body, err)
	}
	for _, f := range contractOrderFields {
		if _, ok := o[f]; !ok {
			t.Errorf("order lacks field %q: %s", f, body)
		}
	}
	want := map[string]string{
		"app_id":                 `"test_app"`,
		"merchant_order_id":      `"` + merchantOrderID + `"`,
		"status":                 `"pending"`,
		"order_type":             `"payment"`,
		"amount":                 `10000`,
		"currency":               `"CNY"`,
		"payment_gateway":        `"lakala"`,
		"gateway_transaction_id": `null`,
		"subject":                `"VIP membership"`,
	}
	for f, v := range want {
		if got := string(o[f]); got != v {
			t.Errorf("%s = %s; want %s", f, got, v)
		}
	}
	var gotExtra, wantExtra any
	if err := json.Unmarshal(o["extra_data"], &gotExtra); err != nil {
		t.Errorf("extra_data %s: %v", o["extra_data"], err)
	}
	if err := json.Unmarshal([]byte(extraData), &wantExtra); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotExtra, wantExtra) {
		t.Errorf("extra_data = %s; want %s", o["extra_data"], extraData)
	}
	for _, f := range []string{"created_at", "updated_at"} {
		var ts string
		if err := json.Unmarshal(o[f], &ts); err != nil {
			t.Errorf("%s = %s; want a string", f, o[f])
			continue
		}
		parsed, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			t.Errorf("%s = %q is not RFC 3339: %v", f, ts, err)
			continue
		}
		if !strings.HasSuffix(ts, "Z") || parsed.Location() != time.UTC {
			t.Errorf("%s = %q; want UTC with a Z suffix", f, ts)
		}
		if age := time.Since(parsed); age < -time.Minute || age > time.Hour {
			t.Errorf("%s = %q is not the time of creation", f, ts)
		}
	}
}

func TestGetOrder(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	extra := `{"user_id":"user_12345","return_url":"https://app.example/done","nested":{"list":[1,"two",null,{"x":true}],"zh":"会员"}}`
	code, created := s.Do(t, "POST", ordersPath, s.APIKey, orderBody(t, "get-1", map[string]any{"extra_data": json.RawMessage(extra)}))
	if code != http.StatusAccepted {
		t.Fatalf("create = %d %s; want 202", code, created)
	}
	t.Run("create response has the contract's shape", func(t *testing.T) {
		checkOrderObject(t, created, "get-1", extra)
	})
	t.Run("get returns the same order", func(t *testing.T) {
		code, body := s.Do(t, "GET", ordersPath+"/get-1?app_id=test_app", s.APIKey, "")
		if code != http.StatusOK {
			t.Fatalf("GET = %d %s; want 200", code, body)
		}
		checkOrderObject(t, body, "get-1", extra)
		if got, want := decodeOrder(t, body).ID, decodeOrder(t, created).ID; got != want {
			t.Errorf("id = %s; want %s", got, want)
		}
	})
	t.Run("order without extra_data returns an empty object", func(t *testing.T) {
		createOrder(t, s, "get-2", 10000)
		code, body := s.Do(t, "GET", ordersPath+"/get-2?app_id=test_app", s.APIKey, "")
		if code != http.StatusOK {
			t.Fatalf("GET = %d %s; want 200", code, body)
		}
		checkOrderObject(t, body, "get-2", `{}`)
	})

	notFound := []struct{ name, path string }{
		{"unknown merchant_order_id", ordersPath + "/no-such-order?app_id=test_app"},
		{"merchant_order_id that could never exist", ordersPath + "/bad%20id?app_id=test_app"},
		{"merchant_order_id of another case", ordersPath + "/GET-1?app_id=test_app"},
	}
	for _, tc := range notFound {
		t.Run(tc.name, func(t *testing.T) {
			code, body := s.Do(t, "GET", tc.path, s.APIKey, "")
			checkError(t, code, body, http.StatusNotFound, "not_found", "not found")
		})
	}
}

func TestWrongMethodsAndUnknownRoutes(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	tests := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"DELETE", ordersPath + "/o1", http.StatusMethodNotAllowed, "method_not_allowed", "GET"},
		{"PUT", ordersPath + "/o1", http.StatusMethodNotAllowed, "method_not_allowed", "GET"},
		{"DELETE", ordersPath, http.StatusMethodNotAllowed, "method_not_allowed", "POST, GET"},
		{"PATCH", ordersPath, http.StatusMethodNotAllowed, "method_not_allowed", "POST, GET"},
		{"PUT", refundsPath, http.StatusMethodNotAllowed, "method_not_allowed", "POST, GET"},
		{"POST", refundsPath + "/660f9500-f30c-42e5-b827-557766551111", http.StatusMethodNotAllowed, "method_not_allowed", "GET"},
		{"GET", "/webhooks/lakala", http.StatusMethodNotAllowed, "method_not_allowed", "POST"},
		{"POST", "/healthz", http.StatusMethodNotAllowed, "method_not_allowed", "GET"},
		{"POST", ordersPath + "/o1/close/x", http.StatusNotFound, "not_found", ""},
		{"GET", "/api/v2/payment-orders", http.StatusNotFound, "not_found", ""},
		{"POST", "/api/v1/orders", http.StatusNotFound, "not_found", ""},
		{"GET", ordersPath + "/o1/refunds", http.StatusNotFound, "not_found", ""},
		{"GET", "/", http.StatusNotFound, "not_found", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, s.API.URL+tc.path, strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+s.APIKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body json.RawMessage
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			checkError(t, resp.StatusCode, body, tc.status, tc.code, "")
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q; want application/json", got)
			}
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q; want %q", got, tc.allow)
			}
		})
	}
}

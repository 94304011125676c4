package apicheck_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/loomipay/loomipay/internal/apicheck"
)

const order = `{"id":"550e8400-e29b-41d4-a716-446655440000","app_id":"a","merchant_order_id":"m","status":"pending",
"order_type":"payment","amount":1,"currency":"CNY","payment_gateway":"lakala","gateway_transaction_id":null,
"subject":"s","extra_data":{},"refunded_amount":0,"failure_reason":null,"expires_at":null,
"created_at":"2024-12-03T10:30:00Z","updated_at":"2024-12-03T10:30:00Z"}`

// The checker must accept what the service sends and refuse what breaks the document;
// otherwise every HTTP test would pass whatever the service answers.
func TestCheckerCatchesMismatches(t *testing.T) {
	c := apicheck.Must(t)
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	createBody := `{"app_id":"a","merchant_order_id":"m","amount":1,"order_type":"payment","subject":"s"}`
	tests := []struct {
		name, method, path, reqBody string
		status                      int
		header                      http.Header
		respBody                    string
		wantErr                     string // "" = valid
	}{
		{"valid create", "POST", "/api/v1/payment-orders", createBody, 202, jsonHeader, order, ""},
		{"order lacks a field", "POST", "/api/v1/payment-orders", createBody, 202, jsonHeader, strings.Replace(order, `"currency":"CNY",`, "", 1), "does not match"},
		{"order with an unknown field", "GET", "/api/v1/payment-orders/m?app_id=a", "", 200, jsonHeader, strings.Replace(order, `"amount":1`, `"amount":1,"x":1`, 1), "does not match"},
		{"undocumented status", "GET", "/api/v1/payment-orders/m?app_id=a", "", 418, jsonHeader, `{"detail":"x","code":"not_found"}`, "does not match"},
		{"error code not of this status", "GET", "/api/v1/payment-orders/m?app_id=a", "", 404, jsonHeader, `{"detail":"x","code":"forbidden"}`, "does not match"},
		{"invalid request accepted", "POST", "/api/v1/payment-orders", `{"app_id":"a"}`, 202, jsonHeader, order, "breaks api/openapi.yaml"},
		{"invalid request refused", "POST", "/api/v1/payment-orders", `{"app_id":"a"}`, 400, jsonHeader, `{"detail":"x","code":"validation_error","field":"amount"}`, ""},
		{"no key accepted", "GET", "/api/v1/payment-orders/m?app_id=a", "", 200, jsonHeader, order, "breaks api/openapi.yaml"},
		{"unknown path not a 404", "GET", "/api/v2/x", "", 200, jsonHeader, `{}`, "not a route"},
		{"unknown path 404", "GET", "/api/v2/x", "", 404, jsonHeader, `{"detail":"x","code":"not_found"}`, ""},
		{"health", "GET", "/healthz", "", 200, jsonHeader, `{"status":"ok"}`, ""},
		{"list with a bad limit accepted", "GET", "/api/v1/payment-orders?app_id=a&limit=0", "", 200, jsonHeader, `{"object":"list","data":[],"has_more":false,"next_cursor":null,"prev_cursor":null}`, "breaks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.reqBody))
			if tc.name != "no key accepted" {
				req.Header.Set("Authorization", "Bearer lp_x")
			}
			err := c.Check(req, []byte(tc.reqBody), tc.status, tc.header, []byte(tc.respBody))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error = %v; want one containing %q", err, tc.wantErr)
			}
		})
	}
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/streams"
)

const (
	ordersPath  = "/api/v1/payment-orders"
	refundsPath = "/api/v1/refund-orders"
)

// apiError is the contract's error body, decoded strictly: detail and code must be strings.
type apiError struct {
	Detail string `json:"detail"`
	Code   string `json:"code"`
	Field  string `json:"field"`
}

// decodeError fails the test unless body is a JSON object with a non-empty string detail and code.
func decodeError(t testing.TB, body []byte) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not the contract's error object: %v", body, err)
	}
	if e.Detail == "" || e.Code == "" {
		t.Fatalf("error body %s lacks a detail or a code", body)
	}
	return e
}

// checkError asserts an error response: its status, its code, and that detail mentions
// inDetail (a field name or a value the caller must see).
func checkError(t testing.TB, gotStatus int, body []byte, wantStatus int, wantCode, inDetail string) apiError {
	t.Helper()
	if gotStatus != wantStatus {
		t.Errorf("status = %d; want %d (body %s)", gotStatus, wantStatus, body)
	}
	e := decodeError(t, body)
	if e.Code != wantCode {
		t.Errorf("code = %q; want %q (detail %q)", e.Code, wantCode, e.Detail)
	}
	if !strings.Contains(e.Detail, inDetail) {
		t.Errorf("detail = %q; want it to mention %q", e.Detail, inDetail)
	}
	return e
}

// orderBody is a valid create-order body for merchantOrderID with fields changed or dropped.
// A json.RawMessage value is sent verbatim (for literals like 100.0 that Go would reformat).
func orderBody(t testing.TB, merchantOrderID string, change map[string]any, drop ...string) string {
	t.Helper()
	fields := map[string]any{
		"app_id":            "test_app",
		"merchant_order_id": merchantOrderID,
		"amount":            10000,
		"order_type":        "payment",
		"subject":           "VIP membership",
	}
	for k, v := range change {
		fields[k] = v
	}
	for _, k := range drop {
		delete(fields, k)
	}
	return mustJSON(t, fields)
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// orderResponse is the part of an order object the tests look at.
type orderResponse struct {
	ID              string          `json:"id"`
	AppID           string          `json:"app_id"`
	MerchantOrderID string          `json:"merchant_order_id"`
	Status          string          `json:"status"`
	Amount          int64           `json:"amount"`
	Subject         string          `json:"subject"`
	Currency        string          `json:"currency"`
	ExtraData       json.RawMessage `json:"extra_data"`
}

func decodeOrder(t testing.TB, body []byte) orderResponse {
	t.Helper()
	var o orderResponse
	if err := json.Unmarshal(body, &o); err != nil || o.ID == "" {
		t.Fatalf("body %s is not an order (err %v)", body, err)
	}
	return o
}

type refundResponse struct {
	ID             string  `json:"id"`
	AppID          string  `json:"app_id"`
	PaymentOrderID string  `json:"payment_order_id"`
	Status         string  `json:"status"`
	Amount         int64   `json:"amount"`
	Reason         *string `json:"reason"`
}

func decodeRefund(t testing.TB, body []byte) refundResponse {
	t.Helper()
	var r refundResponse
	if err := json.Unmarshal(body, &r); err != nil || r.ID == "" {
		t.Fatalf("body %s is not a refund (err %v)", body, err)
	}
	return r
}

// createOrder creates an order through the API and fails the test unless it is accepted.
func createOrder(t testing.TB, s *testenv.Stack, merchantOrderID string, amount int64) orderResponse {
	t.Helper()
	code, body := s.Do(t, "POST", ordersPath, s.APIKey, orderBody(t, merchantOrderID, map[string]any{"amount": amount}))
	if code != http.StatusAccepted {
		t.Fatalf("create order %s = %d %s; want 202", merchantOrderID, code, body)
	}
	return decodeOrder(t, body)
}

// succeededPayment creates an order of amount, has the processor open its cashier order, pays
// it at the sandbox and waits until the webhook made it succeeded. It returns the order id.
func succeededPayment(t testing.TB, s *testenv.Stack, merchantOrderID string, amount int64) string {
	t.Helper()
	ctx := context.Background()
	o := createOrder(t, s, merchantOrderID, amount)
	if _, err := s.Processor.RunOnce(ctx); err != nil {
		t.Fatalf("processor run: %v", err)
	}
	at, ok := s.Sandbox.Order(pay.OutOrderNo(o.ID))
	if !ok {
		t.Fatalf("order %s never reached the sandbox", o.ID)
	}
	if err := s.Sandbox.Pay(ctx, at.PayOrderNo); err != nil {
		t.Fatalf("pay at sandbox: %v", err)
	}
	waitOrderStatus(t, s, merchantOrderID, "succeeded")
	return o.ID
}

func waitOrderStatus(t testing.TB, s *testenv.Stack, merchantOrderID, want string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "order "+merchantOrderID+" "+want, func() bool {
		code, body := s.Do(t, "GET", ordersPath+"/"+merchantOrderID+"?app_id="+s.AppID, s.APIKey, "")
		return code == http.StatusOK && decodeOrder(t, body).Status == want
	})
}

func refundBody(t testing.TB, paymentOrderID string, amount any, extra map[string]any) string {
	t.Helper()
	fields := map[string]any{"app_id": "test_app", "payment_order_id": paymentOrderID, "amount": amount}
	for k, v := range extra {
		fields[k] = v
	}
	return mustJSON(t, fields)
}

// count runs a counting query on the test's schema.
func count(t testing.TB, s *testenv.Stack, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.Store.Pool().QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// taskStreamLen is how many entries the test's task stream holds.
func taskStreamLen(t testing.TB, s *testenv.Stack) int64 {
	t.Helper()
	n, err := s.Streams.Client().XLen(context.Background(), s.Streams.Name(streams.TaskStream)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// send is testenv.Do for goroutines: it returns an error instead of failing the test.
func send(base, method, path, key, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, b, nil
}

// response is one answer of sendAtOnce.
type response struct {
	status int
	body   []byte
}

// sendAtOnce sends n identical requests released at the same moment and returns every answer,
// in request order; a transport error fails the test.
func sendAtOnce(t testing.TB, s *testenv.Stack, n int, method, path, body string) []response {
	t.Helper()
	type result struct {
		response
		err error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			<-start
			code, b, err := send(s.API.URL, method, path, s.APIKey, body)
			results[i] = result{response{code, b}, err}
		})
	}
	close(start)
	wg.Wait()
	out := make([]response, n)
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
		out[i] = r.response
	}
	return out
}

package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/loomipay/loomipay/internal/apicheck"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/httpapi"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/processor"
)

// The sample order of the repository's events/*.json, used when a file is absent too.
const (
	sampleApp     = "demo_app"
	sampleOrderID = "ORDER_20241203_001"
	sampleCreate  = `{"app_id": "demo_app", "merchant_order_id": "ORDER_20241203_001", "amount": 10000, "order_type": "payment", "subject": "VIP membership", "currency": "CNY", "extra_data": {"user_id": "user_12345", "product_id": "vip_monthly", "return_url": "https://your-app.com/payment/return"}}`
)

// codeEvent is an API Gateway HTTP API (payload 2.0) event as the gateway sends it.
func codeEvent(method, path, query, body string) events.APIGatewayV2HTTPRequest {
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0",
		Headers: map[string]string{"content-type": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			AccountID: "123456789012", APIID: "abc123", Stage: "$default", RequestID: "test",
			DomainName: "abc123.execute-api.us-east-1.amazonaws.com",
			HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Protocol: "HTTP/1.1", SourceIP: "203.0.113.10"},
		},
	}
	return withRequest(ev, method, path, query, body)
}

// baseEvent loads events/<name> from the repository root, or falls back to an event built in code.
func baseEvent(t *testing.T, name string, fallback events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPRequest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if errors.Is(err, fs.ErrNotExist) {
		return fallback
	}
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("events/%s is not an API Gateway v2 event: %v", name, err)
	}
	return ev
}

// withRequest returns a copy of ev for another method, path, query and body.
func withRequest(ev events.APIGatewayV2HTTPRequest, method, path, query, body string) events.APIGatewayV2HTTPRequest {
	ev.Headers = cloneMap(ev.Headers)
	ev.RequestContext.HTTP.Method = method
	ev.RequestContext.HTTP.Path = path
	ev.RawPath = path
	ev.RawQueryString = query
	ev.QueryStringParameters = nil
	if q, _ := url.ParseQuery(query); len(q) > 0 {
		ev.QueryStringParameters = map[string]string{}
		for k := range q {
			ev.QueryStringParameters[k] = q.Get(k)
		}
	}
	ev.PathParameters = nil
	ev.RouteKey, ev.RequestContext.RouteKey = "", ""
	ev.Body, ev.IsBase64Encoded = body, false
	return ev
}

// withAuth returns a copy of ev whose Authorization header is value (none if empty).
func withAuth(ev events.APIGatewayV2HTTPRequest, value string) events.APIGatewayV2HTTPRequest {
	ev.Headers = cloneMap(ev.Headers)
	for k := range ev.Headers {
		if strings.EqualFold(k, "authorization") {
			delete(ev.Headers, k)
		}
	}
	if value != "" {
		ev.Headers["authorization"] = value
	}
	return ev
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// invoke runs ev through the function's handler the way the Lambda runtime does.
func invoke(t *testing.T, h http.Handler, ev events.APIGatewayV2HTTPRequest) (int, []byte) {
	t.Helper()
	resp, err := httpadapter.NewV2(h).ProxyWithContext(context.Background(), ev)
	if err != nil {
		t.Fatalf("proxy %s %s: %v", ev.RequestContext.HTTP.Method, ev.RawPath, err)
	}
	if got := resp.Headers["Content-Type"]; got != "application/json" {
		t.Errorf("%s %s: Content-Type = %q; want application/json", ev.RequestContext.HTTP.Method, ev.RawPath, got)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, body
}

// viaHTTP sends the request ev describes to the stack's HTTP server.
func viaHTTP(t *testing.T, s *testenv.Stack, ev events.APIGatewayV2HTTPRequest) (int, []byte) {
	t.Helper()
	path := ev.RawPath
	if ev.RawQueryString != "" {
		path += "?" + ev.RawQueryString
	}
	req, err := http.NewRequest(ev.RequestContext.HTTP.Method, s.API.URL+path, strings.NewReader(ev.Body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ev.Headers {
		if k != "host" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// lambdaRelay is the stand-in for API Gateway in front of the webhook function: it turns each
// HTTP request into a payload 2.0 event (header names lower-cased, repeated values joined with
// commas) and answers with the function's response.
type lambdaRelay struct {
	mu      sync.Mutex
	handler http.Handler
}

func (l *lambdaRelay) set(h http.Handler) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.handler = h
}

func (l *lambdaRelay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	h := l.handler
	l.mu.Unlock()
	body, err := io.ReadAll(r.Body)
	if err != nil || h == nil {
		http.Error(w, "relay not ready", http.StatusBadGateway)
		return
	}
	ev := codeEvent(r.Method, r.URL.Path, r.URL.RawQuery, string(body))
	if !utf8.Valid(body) {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	for k, v := range r.Header {
		ev.Headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	resp, err := httpadapter.NewV2(h).ProxyWithContext(r.Context(), ev)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.WriteString(w, resp.Body)
}

func TestLambdaFunctions(t *testing.T) {
	relay := &lambdaRelay{}
	notify := httptest.NewServer(relay)
	t.Cleanup(notify.Close)
	s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{NotifyURL: notify.URL + "/webhooks/lakala"}})
	api := httpapi.New(s.Service)
	// Each function's exchanges are held to api/openapi.yaml too.
	createFn := apicheck.Middleware(t, api.Handler(httpapi.FunctionCreateOrder), httpapi.FunctionCreateOrder)
	getFn := apicheck.Middleware(t, api.Handler(httpapi.FunctionGetOrder), httpapi.FunctionGetOrder)
	refundFn := apicheck.Middleware(t, api.Handler(httpapi.FunctionRefund), httpapi.FunctionRefund)
	webhookFn := apicheck.Middleware(t, api.Handler(httpapi.FunctionWebhook), httpapi.FunctionWebhook)
	relay.set(webhookFn)

	demoKey := s.NewKey(t, sampleApp)
	bearer := "Bearer " + demoKey
	create := withAuth(baseEvent(t, "createorder.json", codeEvent("POST", ordersPath, "", sampleCreate)), bearer)
	get := withAuth(baseEvent(t, "getorder.json", codeEvent("GET", ordersPath+"/"+sampleOrderID, "app_id="+sampleApp, "")), bearer)

	t.Run("createorder", func(t *testing.T) {
		code, created := invoke(t, createFn, create)
		if code != http.StatusAccepted {
			t.Fatalf("sample create = %d %s; want 202", code, created)
		}
		o := decodeOrder(t, created)
		if o.AppID != sampleApp || o.MerchantOrderID != sampleOrderID || o.Status != "pending" {
			t.Errorf("created %+v; want %s/%s pending", o, sampleApp, sampleOrderID)
		}
		code, again := invoke(t, createFn, create)
		if code != http.StatusOK || string(again) != string(created) {
			t.Errorf("retry = %d %s; want 200 with %s", code, again, created)
		}
		code, overHTTP := viaHTTP(t, s, create)
		if code != http.StatusOK || string(overHTTP) != string(created) {
			t.Errorf("retry over HTTP = %d %s; want 200 with %s", code, overHTTP, created)
		}
		if got := count(t, s, "SELECT count(*) FROM payment_orders WHERE app_id = $1", sampleApp); got != 1 {
			t.Errorf("rows = %d; want 1", got)
		}
	})

	t.Run("getorder", func(t *testing.T) {
		code, body := invoke(t, getFn, get)
		if code != http.StatusOK {
			t.Fatalf("sample get = %d %s; want 200", code, body)
		}
		if o := decodeOrder(t, body); o.MerchantOrderID != sampleOrderID {
			t.Errorf("got order %+v; want %s", o, sampleOrderID)
		}
		httpCode, httpBody := viaHTTP(t, s, get)
		if httpCode != code || string(httpBody) != string(body) {
			t.Errorf("HTTP server gives %d %s; the function gives %d %s", httpCode, httpBody, code, body)
		}
	})

	paid := succeededPayment(t, s, "lambda-paid", 10000) // its notification went through webhookFn
	ownBearer := "Bearer " + s.APIKey
	refundCreate := withAuth(baseEvent(t, "refund-create.json", codeEvent("POST", refundsPath, "", "")), ownBearer)
	code, refundBodyBytes := invoke(t, refundFn, withRequest(refundCreate, "POST", refundsPath, "", refundBody(t, paid, 5000, map[string]any{"reason": "user asked for a refund"})))
	if code != http.StatusAccepted {
		t.Fatalf("refund via the function = %d %s; want 202", code, refundBodyBytes)
	}
	refundID := decodeRefund(t, refundBodyBytes).ID
	refundGet := withRequest(withAuth(baseEvent(t, "refund-get.json", codeEvent("GET", "", "", "")), ownBearer),
		"GET", refundsPath+"/"+refundID, "app_id=test_app", "")
	pending := createOrder(t, s, "lambda-pending", 100)

	// Each case must give the same answer from its function as from the HTTP server.
	same := []struct {
		name     string
		fn       http.Handler
		ev       events.APIGatewayV2HTTPRequest
		status   int
		code     string
		inDetail string
	}{
		{"create: amount as string", createFn, withRequest(create, "POST", ordersPath, "", orderBody(t, "l-1", map[string]any{"app_id": sampleApp, "amount": "100"})), 400, "validation_error", "amount"},
		{"create: non-JSON", createFn, withRequest(create, "POST", ordersPath, "", "amount=1"), 400, "invalid_json", "JSON"},
		{"create: no key", createFn, withAuth(create, ""), 401, "unauthorized", "Authorization"},
		{"create: basic scheme", createFn, withAuth(create, "Basic "+demoKey), 401, "unauthorized", "Bearer"},
		{"create: another app", createFn, withRequest(create, "POST", ordersPath, "", orderBody(t, "l-2", nil)), 403, "forbidden", "test_app"},
		{"create: conflicting retry", createFn, withRequest(create, "POST", ordersPath, "", strings.Replace(sampleCreate, "10000", "10001", 1)), 409, "order_conflict", "amount"},
		{"create: body over 64 KiB", createFn, withRequest(create, "POST", ordersPath, "", orderBody(t, "l-3", map[string]any{"app_id": sampleApp, "pad": strings.Repeat("p", 64<<10)})), 413, "body_too_large", "65536"},
		{"get: unknown order", getFn, withRequest(get, "GET", ordersPath+"/NO_SUCH_ORDER", "app_id="+sampleApp, ""), 404, "not_found", "NO_SUCH_ORDER"},
		{"get: malformed app_id", getFn, withRequest(get, "GET", ordersPath+"/"+sampleOrderID, "app_id=a%20b", ""), 400, "validation_error", "app_id"},
		{"get: another app", getFn, withRequest(get, "GET", ordersPath+"/"+sampleOrderID, "app_id=test_app", ""), 403, "forbidden", "test_app"},
		{"get: no key", getFn, withAuth(get, ""), 401, "unauthorized", "Authorization"},
		{"get: wrong method", getFn, withRequest(get, "DELETE", ordersPath+"/"+sampleOrderID, "app_id="+sampleApp, ""), 405, "method_not_allowed", "GET"},
		{"refund: unknown payment", refundFn, withRequest(refundCreate, "POST", refundsPath, "", refundBody(t, "550e8400-e29b-41d4-a716-446655440000", 5000, nil)), 404, "not_found", "550e8400"},
		{"refund: payment not succeeded", refundFn, withRequest(refundCreate, "POST", refundsPath, "", refundBody(t, pending.ID, 50, nil)), 409, "payment_not_refundable", "pending"},
		{"refund: over the remainder", refundFn, withRequest(refundCreate, "POST", refundsPath, "", refundBody(t, paid, 5001, nil)), 400, "refund_exceeds_refundable", "5000"},
		{"refund: amount zero", refundFn, withRequest(refundCreate, "POST", refundsPath, "", refundBody(t, paid, 0, nil)), 400, "validation_error", "amount"},
		{"refund get: bad UUID", refundFn, withRequest(refundGet, "GET", refundsPath+"/nope", "app_id=test_app", ""), 400, "validation_error", "refund_order_id"},
		{"refund get: malformed app_id", refundFn, withRequest(refundGet, "GET", refundsPath+"/"+refundID, "app_id=a%20b", ""), 400, "validation_error", "app_id"},
		{"refund get: unknown", refundFn, withRequest(refundGet, "GET", refundsPath+"/550e8400-e29b-41d4-a716-446655440000", "app_id=test_app", ""), 404, "not_found", "not found"},
		{"webhook: bad signature", webhookFn, codeEvent("POST", "/webhooks/lakala", "", `{"merchantOrderNo":"x","payStatus":"S"}`), 401, "bad_signature", "signature"},
	}
	for _, tc := range same {
		t.Run(tc.name, func(t *testing.T) {
			code, body := invoke(t, tc.fn, tc.ev)
			checkError(t, code, body, tc.status, tc.code, tc.inDetail)
			httpCode, httpBody := viaHTTP(t, s, tc.ev)
			if httpCode != code || string(httpBody) != string(body) {
				t.Errorf("HTTP server gives %d %s; the function gives %d %s", httpCode, httpBody, code, body)
			}
		})
	}

	t.Run("refund get", func(t *testing.T) {
		code, body := invoke(t, refundFn, refundGet)
		if code != http.StatusOK || decodeRefund(t, body).ID != refundID {
			t.Fatalf("GET refund = %d %s; want 200 with %s", code, body, refundID)
		}
		httpCode, httpBody := viaHTTP(t, s, refundGet)
		if httpCode != code || string(httpBody) != string(body) {
			t.Errorf("HTTP server gives %d %s; the function gives %d %s", httpCode, httpBody, code, body)
		}
	})

	t.Run("create: wrong method", func(t *testing.T) {
		// The function mounts only POST on this path (the local stack also GET, the list).
		code, body := invoke(t, createFn, withRequest(create, "PUT", ordersPath, "", ""))
		checkError(t, code, body, http.StatusMethodNotAllowed, "method_not_allowed", "POST")
	})

	// A function serves only its own routes; the others are JSON 404s.
	elsewhere := []struct {
		name string
		fn   http.Handler
		ev   events.APIGatewayV2HTTPRequest
	}{
		{"createorder does not serve get", createFn, get},
		{"getorder does not serve refunds", getFn, withRequest(create, "POST", refundsPath, "", refundBody(t, "550e8400-e29b-41d4-a716-446655440000", 1, nil))},
		{"refund does not serve orders", refundFn, get},
		{"webhook does not serve the API", webhookFn, create},
	}
	for _, tc := range elsewhere {
		t.Run(tc.name, func(t *testing.T) {
			code, body := invoke(t, tc.fn, tc.ev)
			checkError(t, code, body, http.StatusNotFound, "not_found", "")
		})
	}

	t.Run("webhook sample event is refused", func(t *testing.T) {
		ev := baseEvent(t, "webhook.json", codeEvent("POST", "/webhooks/lakala", "", `{"payOrderNo":"1","merchantOrderNo":"x","payStatus":"S"}`))
		code, body := invoke(t, webhookFn, ev)
		checkError(t, code, body, http.StatusUnauthorized, "bad_signature", "")
	})
	t.Run("webhook acknowledged the sandbox's signed notification", func(t *testing.T) {
		at, ok := s.Sandbox.Order(pay.OutOrderNo(paid))
		if !ok || !strings.HasPrefix(at.NotifyURL, notify.URL) || !at.NotifyAcked {
			t.Fatalf("sandbox order %+v: want its notification sent to %s and acknowledged", at, notify.URL)
		}
	})
}

package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/loomipay/loomipay/internal/apicheck"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/internal/testskip"
	"github.com/loomipay/loomipay/shared/httpapi"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/sandbox"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

const ack = `{"code":"SUCCESS","message":"执行成功"}`

// missingTestData: Lakala's published vector lives outside the module; without it the test is
// skipped and make test says so, or fails under CI=true (testskip).
func missingTestData(t *testing.T, format string, args ...any) {
	t.Helper()
	testskip.Missing(t, fmt.Sprintf(format, args...), "put Lakala's published vectors in shared/lakala-testdata beside the checkout")
}

// testdata is Lakala's published notification vector, kept outside the module.
const testdata = "../../../shared/lakala-testdata"

// publishedNotification reads Lakala's sample: body, Authorization and the platform key.
func publishedNotification(t *testing.T) (body []byte, authorization string, key []byte) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(testdata, name))
		if os.IsNotExist(err) {
			missingTestData(t, "Lakala's published notification is not available at %s: %v", testdata, err)
		}
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	body = read("notify-sample-body.json")
	// The file ends with a newline the header itself does not carry; the newlines after the
	// commas are Lakala's and stay.
	authorization = strings.TrimSuffix(string(read("notify-sample-authorization.txt")), "\n")
	return body, authorization, read("lakala-platform-cert.pem")
}

// TestPublishedNotification: Lakala's own sample verifies with Lakala's certificate and is
// acknowledged (the order is not ours); any changed byte is refused. Nothing is written either way.
func TestPublishedNotification(t *testing.T) {
	body, auth, certPEM := publishedNotification(t)
	platformKey, err := lakala.ParsePublicKey(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	store, st := testenv.Postgres(t), testenv.Streams(t)
	// The sample was signed in 2021: the replay window must reach back that far.
	svc := service.New(store, st, testenv.Logger(), service.Config{PlatformKey: platformKey, ReplayWindow: 100 * 365 * 24 * time.Hour})
	handler := apicheck.Middleware(t, httpapi.New(svc).Handler())

	change := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("%q not in %q", old, s)
		}
		return strings.Replace(s, old, new, 1)
	}
	tests := []struct {
		name   string
		body   string
		header http.Header
		want   int
	}{
		{"as published", string(body), http.Header{"Authorization": {auth}}, http.StatusOK},
		{"split on commas as a proxy does", string(body), http.Header{"Authorization": strings.Split(auth, ",")}, http.StatusOK},
		{"amount changed", change(string(body), `"amount":1,`, `"amount":2,`), http.Header{"Authorization": {auth}}, http.StatusUnauthorized},
		{"body byte appended", string(body) + " ", http.Header{"Authorization": {auth}}, http.StatusUnauthorized},
		{"timestamp changed", string(body), http.Header{"Authorization": {change(auth, "1630905585", "1630905586")}}, http.StatusUnauthorized},
		{"nonce changed", string(body), http.Header{"Authorization": {change(auth, "9003323344", "9003323345")}}, http.StatusUnauthorized},
		{"signature changed", string(body), http.Header{"Authorization": {change(auth, "tnjIAc", "tnjIAd")}}, http.StatusUnauthorized},
		{"no signature", string(body), http.Header{}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/webhooks/lakala", strings.NewReader(tt.body))
			for k, vs := range tt.header {
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("webhook = %d %s, want %d", rec.Code, rec.Body, tt.want)
			}
			if tt.want == http.StatusOK && rec.Body.String() != ack {
				t.Errorf("body %s, want %s", rec.Body, ack)
			}
			if tt.want != http.StatusOK && strings.Contains(rec.Body.String(), "SUCCESS") {
				t.Errorf("refused notification answered %s", rec.Body)
			}
		})
	}

	t.Run("through the API Gateway v2 adapter", func(t *testing.T) {
		resp, err := httpadapter.NewV2(handler).ProxyWithContext(context.Background(), events.APIGatewayV2HTTPRequest{
			Version: "2.0", RouteKey: "POST /webhooks/lakala", RawPath: "/webhooks/lakala",
			Headers: map[string]string{"authorization": auth, "content-type": "application/json"},
			Body:    string(body),
			RequestContext: events.APIGatewayV2HTTPRequestContext{
				HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: http.MethodPost, Path: "/webhooks/lakala"},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Body != ack {
			t.Fatalf("adapter answer %d %s, want 200 %s", resp.StatusCode, resp.Body, ack)
		}
	})

	outbox, err := store.UnpublishedEvents(context.Background(), 10)
	if err != nil || len(outbox) != 0 {
		t.Errorf("outbox has %d events (err %v), want none", len(outbox), err)
	}
	if n, err := st.Client().XLen(context.Background(), st.Name(pay.StreamPaymentResults)).Result(); err != nil || n != 0 {
		t.Errorf("payment_results has %d messages (err %v), want none", n, err)
	}
}

// notification is a cashier notification body about the sandbox order view.
func notification(view sandbox.OrderView, orderStatus string, trade lakala.OrderTradeInfo, amount int64) []byte {
	b, err := json.Marshal(lakala.CashierNotification{
		PayOrderNo: view.PayOrderNo, OutOrderNo: view.OutOrderNo, MerchantNo: view.MerchantNo,
		OrderStatus: orderStatus, TotalAmount: lakala.Fen(amount), OrderInfo: view.OrderInfo, OrderTradeInfo: trade,
	})
	if err != nil {
		panic(err)
	}
	return b
}

func payTrade(tradeNo, status string, amount int64) lakala.OrderTradeInfo {
	return lakala.OrderTradeInfo{TradeNo: tradeNo, LogNo: "66000000000001", TradeType: lakala.TradeTypePay, TradeStatus: status,
		TradeAmount: lakala.Fen(amount), PayerAmount: lakala.Fen(amount), TradeTime: lakala.FormatTime(time.Now()), PayMode: "ALIPAY"}
}

// TestWebhookRefusesForgeries: notifications that do not verify, or verify but are stale for a
// live order, change nothing and are answered 401.
func TestWebhookRefusesForgeries(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	processing, view := s.Checkout(t, "o1", 4000)
	paid := notification(view, lakala.OrderStatusPaid, payTrade("T1", lakala.TradeStatusSuccess, 4000), 4000)

	otherKeyAuth, err := lakala.SignNotification(testenv.MerchantKey(t), paid, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		body []byte
		auth string
	}{
		{"signed with another key", paid, otherKeyAuth},
		{"signature of another body", paid, s.SignNotification(t, append(bytes.Clone(paid), ' '), time.Now())},
		{"outside the replay window", paid, s.SignNotification(t, paid, time.Now().Add(-time.Hour))},
		{"signed in the future", paid, s.SignNotification(t, paid, time.Now().Add(time.Hour))},
		{"unsigned", paid, ""},
	}
	for _, tt := range tests {
		code, body := s.Notify(t, tt.body, tt.auth)
		if code != http.StatusUnauthorized {
			t.Errorf("%s: webhook = %d %s, want 401", tt.name, code, body)
		}
	}
	o := s.RequireOrder(t, "o1", "processing", "")
	if o.Callback() != nil || o.GatewayTransactionID != nil {
		t.Errorf("refused notifications left a trace: %+v", o)
	}
	testenv.CheckMessages(t, s.Results(t, "payment_results"), testenv.ProcessingMessage(processing))
}

// TestWebhookAmountMismatch: a verified notification whose amount is not the order's fails the
// order; it never succeeds.
func TestWebhookAmountMismatch(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	processing, view := s.Checkout(t, "o1", 4000)
	for _, amount := range []int64{3999, 4001} {
		body := notification(view, lakala.OrderStatusPaid, payTrade("T1", lakala.TradeStatusSuccess, amount), amount)
		if code, answer := s.Notify(t, body, s.SignNotification(t, body, time.Now())); code != http.StatusOK || string(answer) != ack {
			t.Fatalf("webhook = %d %s, want 200 %s", code, answer, ack)
		}
	}
	// Money moved for the wrong amount: a review case records it, and the order winds down.
	cases, err := s.Store.OpenReviewCases(context.Background(), processing.ID)
	if err != nil || len(cases) != 1 || cases[0].Kind != pay.ReviewAmountMismatch {
		t.Fatalf("review cases %+v (err %v); want one %s (both reports are of trade T1)", cases, err, pay.ReviewAmountMismatch)
	}
	s.RunOnce(t)
	o := s.RequireOrder(t, "o1", "failed", pay.ReasonAmountMismatch)
	if o.ExtraData["review_required"] != true {
		t.Errorf("extra_data %v; want review_required", o.ExtraData)
	}
	failed := testenv.PaymentMessage(o, "processing", "failed")
	failed["failure_reason"] = pay.ReasonAmountMismatch
	failed["gateway_transaction_id"] = "T1"
	testenv.CheckMessages(t, s.Results(t, "payment_results"), testenv.ProcessingMessage(processing), failed)

	// The right amount arriving later cannot revive it.
	body := notification(view, lakala.OrderStatusPaid, payTrade("T1", lakala.TradeStatusSuccess, 4000), 4000)
	if code, answer := s.Notify(t, body, s.SignNotification(t, body, time.Now())); code != http.StatusOK {
		t.Fatalf("webhook = %d %s, want 200", code, answer)
	}
	s.RequireOrder(t, "o1", "failed", pay.ReasonAmountMismatch)
	if n := len(s.Results(t, "payment_results")); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

// TestWebhookFinalOrders: notifications for a final order are acknowledged and change nothing,
// even outside the replay window (Lakala retries with the original signature for hours).
func TestWebhookFinalOrders(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	o := s.PaySucceeded(t, "o1", 6000)
	view, _ := s.Sandbox.Order(o.OutOrderNo())
	before := s.Results(t, "payment_results")
	trade := view.Trades[0]
	paid := notification(view, lakala.OrderStatusPaid, trade, 6000)
	failed := notification(view, lakala.OrderStatusFailed, payTrade(trade.TradeNo, lakala.TradeStatusFailed, 6000), 6000)

	tests := []struct {
		name     string
		body     []byte
		signedAt time.Time
	}{
		{"failure after success", failed, time.Now()},
		{"duplicate success", paid, time.Now()},
		{"retry of the applied success, signed long ago", paid, time.Now().Add(-3 * time.Hour)},
	}
	for _, tt := range tests {
		code, answer := s.Notify(t, tt.body, s.SignNotification(t, tt.body, tt.signedAt))
		if code != http.StatusOK || string(answer) != ack {
			t.Errorf("%s: webhook = %d %s, want 200 %s", tt.name, code, answer, ack)
		}
	}
	after := s.RequireOrder(t, "o1", "succeeded", "")
	if after.FailureReason != nil || deref(after.GatewayTransactionID) != trade.TradeNo {
		t.Errorf("final order changed: %+v", after)
	}
	testenv.CheckMessages(t, s.Results(t, "payment_results"), before...)
}

// TestWebhookReplayWindow: a validly signed but old notification is refused while the order
// is live, and acknowledged once the order is final with that result.
func TestWebhookReplayWindow(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	processing, view := s.Checkout(t, "o1", 7000)
	s.SetFaults(sandbox.Faults{DropNotify: true})
	if err := s.Sandbox.Pay(context.Background(), view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	view, _ = s.Sandbox.Order(view.OutOrderNo)
	paid := notification(view, lakala.OrderStatusPaid, view.Trades[0], 7000)
	oldAuth := s.SignNotification(t, paid, time.Now().Add(-11*time.Minute))

	if code, answer := s.Notify(t, paid, oldAuth); code != http.StatusUnauthorized {
		t.Fatalf("stale notification for a live order = %d %s, want 401", code, answer)
	}
	s.RequireOrder(t, "o1", "processing", "")

	if code, answer := s.Notify(t, paid, s.SignNotification(t, paid, time.Now())); code != http.StatusOK || string(answer) != ack {
		t.Fatalf("fresh notification = %d %s, want 200", code, answer)
	}
	o := s.RequireOrder(t, "o1", "succeeded", "")
	if code, answer := s.Notify(t, paid, oldAuth); code != http.StatusOK || string(answer) != ack {
		t.Fatalf("stale repeat for the final order = %d %s, want 200 %s", code, answer, ack)
	}
	succeeded := testenv.PaymentMessage(o, "processing", "succeeded")
	succeeded["gateway_transaction_id"] = view.Trades[0].TradeNo
	testenv.CheckMessages(t, s.Results(t, "payment_results"), testenv.ProcessingMessage(processing), succeeded)
}

// TestWebhookWithRedisDown: a notification handled while Redis is down is applied and its
// message kept in the outbox; the processor's relay publishes it once.
func TestWebhookWithRedisDown(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	processing, view := s.Checkout(t, "o1", 8000)
	s.SetFaults(sandbox.Faults{DropNotify: true})
	if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	view, _ = s.Sandbox.Order(view.OutOrderNo)

	deadRedis, err := streams.NewClient("redis://127.0.0.1:1/0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deadRedis.Close() })
	down := service.New(s.Store, streams.New(deadRedis, streams.Config{Prefix: s.Streams.Name("")}), testenv.Logger(),
		service.Config{PlatformKey: s.Sandbox.PlatformPublicKey(), MerchantNo: testenv.LakalaMerchantNo})
	body := notification(view, lakala.OrderStatusPaid, view.Trades[0], 8000)
	req := httptest.NewRequest(http.MethodPost, "/webhooks/lakala", bytes.NewReader(body))
	req.Header.Set("Authorization", s.SignNotification(t, body, time.Now()))
	rec := httptest.NewRecorder()
	apicheck.Middleware(t, httpapi.New(down).Handler(httpapi.FunctionWebhook)).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Body.String() != ack {
		t.Fatalf("webhook with Redis down = %d %s, want 200 %s", rec.Code, rec.Body, ack)
	}

	o := s.RequireOrder(t, "o1", "succeeded", "")
	unpublished, err := s.Store.UnpublishedEvents(ctx, 10)
	if err != nil || len(unpublished) != 1 || unpublished[0].Fields["new_status"] != "succeeded" {
		t.Fatalf("outbox unpublished = %+v (err %v), want the succeeded message", unpublished, err)
	}
	testenv.CheckMessages(t, s.Results(t, "payment_results"), testenv.ProcessingMessage(processing))

	if st := s.RunOnce(t); st.Relayed != 1 {
		t.Errorf("relayed %d messages, want 1", st.Relayed)
	}
	s.RunOnce(t)
	succeeded := testenv.PaymentMessage(o, "processing", "succeeded")
	succeeded["gateway_transaction_id"] = view.Trades[0].TradeNo
	msgs := s.Results(t, "payment_results")
	testenv.CheckMessages(t, msgs, testenv.ProcessingMessage(processing), succeeded)
	if msgs[1]["event_id"] != unpublished[0].EventID {
		t.Errorf("relayed event_id %s, want the outbox's %s", msgs[1]["event_id"], unpublished[0].EventID)
	}
	if unpublished, err = s.Store.UnpublishedEvents(ctx, 10); err != nil || len(unpublished) != 0 {
		t.Errorf("outbox still has %d unpublished events (err %v)", len(unpublished), err)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

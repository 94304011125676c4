package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
)

// Order is the API's payment order object, as tests read it.
type Order struct {
	ID                   string         `json:"id"`
	AppID                string         `json:"app_id"`
	MerchantOrderID      string         `json:"merchant_order_id"`
	Status               string         `json:"status"`
	Amount               int64          `json:"amount"`
	GatewayTransactionID *string        `json:"gateway_transaction_id"`
	ExtraData            map[string]any `json:"extra_data"`
	RefundedAmount       int64          `json:"refunded_amount"`
	FailureReason        *string        `json:"failure_reason"`
}

// OutOrderNo is the order's number at the sandbox.
func (o Order) OutOrderNo() string { return pay.OutOrderNo(o.ID) }

// Callback is extra_data.lakala_callback, or nil.
func (o Order) Callback() map[string]any {
	c, _ := o.ExtraData["lakala_callback"].(map[string]any)
	return c
}

// Refund is the API's refund object, as tests read it.
type Refund struct {
	ID              string         `json:"id"`
	AppID           string         `json:"app_id"`
	PaymentOrderID  string         `json:"payment_order_id"`
	MerchantOrderID string         `json:"merchant_order_id"`
	Status          string         `json:"status"`
	Amount          int64          `json:"amount"`
	GatewayRefundID *string        `json:"gateway_refund_id"`
	Reason          *string        `json:"reason"`
	ExtraData       map[string]any `json:"extra_data"`
	FailureReason   *string        `json:"failure_reason"`
}

// CreateOrder creates a payment order of AppID through the API and expects 202.
func (s *Stack) CreateOrder(t testing.TB, merchantOrderID string, amount int64) Order {
	t.Helper()
	body := fmt.Sprintf(`{"app_id":%q,"merchant_order_id":%q,"amount":%d,"order_type":"payment","subject":"VIP"}`,
		s.AppID, merchantOrderID, amount)
	code, resp := s.Do(t, http.MethodPost, "/api/v1/payment-orders", s.APIKey, body)
	if code != http.StatusAccepted {
		t.Fatalf("create order %s = %d %s, want 202", merchantOrderID, code, resp)
	}
	return Decode[Order](t, resp)
}

// Order reads a payment order of AppID through the API.
func (s *Stack) Order(t testing.TB, merchantOrderID string) Order {
	t.Helper()
	code, resp := s.Do(t, http.MethodGet, "/api/v1/payment-orders/"+merchantOrderID+"?app_id="+s.AppID, s.APIKey, "")
	if code != http.StatusOK {
		t.Fatalf("get order %s = %d %s", merchantOrderID, code, resp)
	}
	return Decode[Order](t, resp)
}

// RequireOrder fails the test unless the order has status want both in Postgres and through
// the API (and, when failed, failure_reason reason, if reason is not empty). It returns the
// API's view.
func (s *Stack) RequireOrder(t testing.TB, merchantOrderID, want, reason string) Order {
	t.Helper()
	o := s.Order(t, merchantOrderID)
	stored, err := s.Store.Order(context.Background(), o.ID)
	if err != nil {
		t.Fatalf("read order %s: %v", o.ID, err)
	}
	if o.Status != want || string(stored.Status) != want {
		t.Fatalf("order %s: status API %q, DB %q; want %q (failure_reason %q)", merchantOrderID, o.Status, stored.Status, want, stored.FailureReason)
	}
	if reason != "" && (o.FailureReason == nil || *o.FailureReason != reason || stored.FailureReason != reason) {
		t.Fatalf("order %s: failure_reason API %v, DB %q; want %q", merchantOrderID, deref(o.FailureReason), stored.FailureReason, reason)
	}
	return o
}

// Checkout creates an order and runs the processor once, expecting the order processing with a
// cashier order at the sandbox. It returns the API's view and the sandbox's.
func (s *Stack) Checkout(t testing.TB, merchantOrderID string, amount int64) (Order, sandbox.OrderView) {
	t.Helper()
	created := s.CreateOrder(t, merchantOrderID, amount)
	s.RunOnce(t)
	o := s.RequireOrder(t, merchantOrderID, "processing", "")
	view, ok := s.Sandbox.Order(created.OutOrderNo())
	if !ok {
		t.Fatalf("order %s has no cashier order at the sandbox", merchantOrderID)
	}
	return o, view
}

// PaySucceeded pays a processing order at the sandbox and waits until the service has it
// succeeded.
func (s *Stack) PaySucceeded(t testing.TB, merchantOrderID string, amount int64) Order {
	t.Helper()
	_, view := s.Checkout(t, merchantOrderID, amount)
	if err := s.Sandbox.Pay(context.Background(), view.PayOrderNo); err != nil {
		t.Fatalf("pay %s: %v", merchantOrderID, err)
	}
	s.WaitNotifications(t)
	return s.RequireOrder(t, merchantOrderID, "succeeded", "")
}

// WaitNotifications waits (up to 10 s) until the sandbox's notifications are delivered or given up.
func (s *Stack) WaitNotifications(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Sandbox.WaitNotifications(ctx); err != nil {
		t.Fatal(err)
	}
}

// CreateRefund takes a refund of AppID through the API and expects 202.
func (s *Stack) CreateRefund(t testing.TB, paymentOrderID string, amount int64) Refund {
	t.Helper()
	code, resp := s.CreateRefundRaw(t, paymentOrderID, amount)
	if code != http.StatusAccepted {
		t.Fatalf("create refund = %d %s, want 202", code, resp)
	}
	return Decode[Refund](t, resp)
}

// CreateRefundRaw asks for a refund and returns the API's answer as it is.
func (s *Stack) CreateRefundRaw(t testing.TB, paymentOrderID string, amount int64) (int, []byte) {
	t.Helper()
	body := fmt.Sprintf(`{"app_id":%q,"payment_order_id":%q,"amount":%d,"reason":"test refund"}`, s.AppID, paymentOrderID, amount)
	return s.Do(t, http.MethodPost, "/api/v1/refund-orders", s.APIKey, body)
}

// RequireRefund fails the test unless the refund has status want both in Postgres and through
// the API. It returns the API's view.
func (s *Stack) RequireRefund(t testing.TB, id, want string) Refund {
	t.Helper()
	code, resp := s.Do(t, http.MethodGet, "/api/v1/refund-orders/"+id+"?app_id="+s.AppID, s.APIKey, "")
	if code != http.StatusOK {
		t.Fatalf("get refund %s = %d %s", id, code, resp)
	}
	r := Decode[Refund](t, resp)
	stored, err := s.Store.Refund(context.Background(), id)
	if err != nil {
		t.Fatalf("read refund %s: %v", id, err)
	}
	if r.Status != want || string(stored.Status) != want {
		t.Fatalf("refund %s: status API %q, DB %q; want %q (failure_reason %q)", id, r.Status, stored.Status, want, stored.FailureReason)
	}
	return r
}

// RunOnce runs the stack's processor once and fails the test on an error.
func (s *Stack) RunOnce(t testing.TB) processor.Stats {
	t.Helper()
	return RunOnce(t, s.Processor)
}

// RunOnce runs a processor once and fails the test on an error.
func RunOnce(t testing.TB, p *processor.Processor) processor.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := p.RunOnce(ctx)
	if err != nil {
		t.Fatalf("processor run: %v", err)
	}
	return st
}

// Results returns every message on a result stream ("payment_results", "refund_results"),
// oldest first, or on any other stream of the stack ("payment_tasks_dead").
func (s *Stack) Results(t testing.TB, stream string) []map[string]string {
	t.Helper()
	msgs, err := s.Streams.Client().XRange(context.Background(), s.Streams.Name(stream), "-", "+").Result()
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	out := make([]map[string]string, len(msgs))
	for i, m := range msgs {
		out[i] = make(map[string]string, len(m.Values))
		for k, v := range m.Values {
			out[i][k], _ = v.(string)
		}
	}
	return out
}

// PaymentMessage is the payment_results message expected for o moving from old to new, without
// event_id and timestamp (which CheckMessage checks by form). gateway_transaction_id is empty;
// set it, payment_url or failure_reason on the result as the transition requires.
func PaymentMessage(o Order, old, new string) map[string]string {
	return map[string]string{
		"event_type": pay.EventPaymentStatusChanged, "payment_order_id": o.ID, "app_id": o.AppID,
		"merchant_order_id": o.MerchantOrderID, "old_status": old, "new_status": new,
		"gateway_transaction_id": "", "amount": fmt.Sprint(o.Amount),
	}
}

// ProcessingMessage is the pending → processing message expected for o, a processing order.
func ProcessingMessage(o Order) map[string]string {
	m := PaymentMessage(o, "pending", "processing")
	m["payment_url"], _ = o.ExtraData["payment_url"].(string)
	return m
}

// RefundMessage is the refund_results message expected for r moving from old to new, without
// event_id and timestamp. gateway_refund_id is empty and merchant_refund_id too (the helpers
// create refunds without one).
func RefundMessage(r Refund, old, new string) map[string]string {
	return map[string]string{
		"event_type": pay.EventRefundStatusChanged, "refund_order_id": r.ID, "payment_order_id": r.PaymentOrderID,
		"app_id": r.AppID, "old_status": old, "new_status": new, "gateway_refund_id": "",
		"amount": fmt.Sprint(r.Amount), "merchant_refund_id": "", "merchant_order_id": r.MerchantOrderID,
	}
}

// CheckMessages fails the test unless msgs are exactly want, in order: each with want's fields
// and values, plus a non-empty event_id, an RFC 3339 UTC timestamp, and the subject's seq —
// 1, 2, 3 … per order or refund in the order of want, unless a wanted message names its own
// "seq" — and nothing else. Event ids must be distinct.
func CheckMessages(t testing.TB, msgs []map[string]string, want ...map[string]string) {
	t.Helper()
	if len(msgs) != len(want) {
		t.Fatalf("got %d messages, want %d:\n%s", len(msgs), len(want), dump(msgs))
	}
	seen := map[string]bool{}
	seqs := map[string]int{}
	for i, m := range msgs {
		w := maps.Clone(want[i])
		subject := w["refund_order_id"]
		if subject == "" {
			subject = w["payment_order_id"]
		}
		seqs[subject]++
		if _, ok := w["seq"]; !ok {
			w["seq"] = fmt.Sprint(seqs[subject])
		}
		if m["event_id"] == "" || seen[m["event_id"]] {
			t.Errorf("message %d: event_id %q empty or repeated", i, m["event_id"])
		}
		seen[m["event_id"]] = true
		ts, err := time.Parse(time.RFC3339, m["timestamp"])
		if err != nil || ts.Location() != time.UTC {
			t.Errorf("message %d: timestamp %q is not RFC 3339 UTC", i, m["timestamp"])
		}
		w["event_id"], w["timestamp"] = m["event_id"], m["timestamp"]
		if !maps.Equal(m, w) {
			t.Errorf("message %d:\n got %s\nwant %s", i, dump([]map[string]string{m}), dump([]map[string]string{w}))
		}
	}
}

// SignNotification signs a notification body as the sandbox does, with the given time.
func (s *Stack) SignNotification(t testing.TB, body []byte, at time.Time) string {
	t.Helper()
	auth, err := lakala.SignNotification(PlatformKey(t), body, at)
	if err != nil {
		t.Fatal(err)
	}
	return auth
}

// Notify posts a notification to the stack's webhook and returns the status and body.
func (s *Stack) Notify(t testing.TB, body []byte, authorization string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.API.URL+"/webhooks/lakala", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", authorization)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, answer
}

// Decode unmarshals a JSON answer into a T, failing the test if it is not one.
func Decode[T any](t testing.TB, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func dump(msgs []map[string]string) string {
	var b strings.Builder
	for _, m := range msgs {
		keys := slices.Sorted(maps.Keys(m))
		b.WriteString("{")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%s=%q", k, m[k])
		}
		b.WriteString("}\n")
	}
	return b.String()
}

package loomipay_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	loomipay "github.com/loomipay/loomipay/sdk/go"
)

func newClient(t *testing.T) *loomipay.Client {
	t.Helper()
	return loomipay.New(stack.baseURL, stack.apiKey, stack.appID, &loomipay.Options{Timeout: 5 * time.Second})
}

func uniqueID(prefix string) string { return prefix + "-" + time.Now().Format("150405.000000") }

// waitProcessing waits until the processor obtained the cashier URL.
func waitProcessing(t *testing.T, c *loomipay.Client, merchantOrderID string) loomipay.Order {
	t.Helper()
	var o loomipay.Order
	eventually(t, 20*time.Second, merchantOrderID+" processing", func() bool {
		var err error
		o, err = c.GetOrder(context.Background(), merchantOrderID)
		return err == nil && o.Status == loomipay.StatusProcessing && o.PaymentURL() != ""
	})
	return o
}

func paidOrder(t *testing.T, c *loomipay.Client, merchantOrderID string, amount int64) loomipay.Order {
	t.Helper()
	ctx := context.Background()
	if _, _, err := c.CreateOrder(ctx, loomipay.CreateOrderParams{MerchantOrderID: merchantOrderID, Amount: amount, OrderType: "payment", Subject: "SDK test"}); err != nil {
		t.Fatal(err)
	}
	pay(t, waitProcessing(t, c, merchantOrderID).PaymentURL())
	var o loomipay.Order
	eventually(t, 20*time.Second, merchantOrderID+" succeeded", func() bool {
		o, _ = c.GetOrder(ctx, merchantOrderID)
		return o.Status == loomipay.StatusSucceeded
	})
	return o
}

func TestOrderAndRefundLifecycle(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	id := uniqueID("life")
	params := loomipay.CreateOrderParams{MerchantOrderID: id, Amount: 10000, OrderType: "payment", Subject: "VIP",
		ExtraData: map[string]any{"user_id": "u1"}, ExpiresIn: 10 * time.Minute}
	o, created, err := c.CreateOrder(ctx, params)
	if err != nil || !created || o.Status != loomipay.StatusPending || o.MerchantOrderID != id {
		t.Fatalf("create = %+v created %v err %v; want a new pending order", o, created, err)
	}
	again, created, err := c.CreateOrder(ctx, params)
	if err != nil || created || again.ID != o.ID {
		t.Fatalf("identical retry = %s created %v err %v; want the same order, not created", again.ID, created, err)
	}
	params.Amount = 1
	_, _, err = c.CreateOrder(ctx, params)
	var apiErr *loomipay.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 409 || apiErr.Code != loomipay.CodeOrderConflict || apiErr.Detail == "" {
		t.Fatalf("conflicting create: err %v; want *Error 409 order_conflict with a detail", err)
	}

	processing := waitProcessing(t, c, id)
	if processing.ExpiresAt == nil || time.Until(*processing.ExpiresAt) > 10*time.Minute || time.Until(*processing.ExpiresAt) < 9*time.Minute {
		t.Errorf("expires_at %v; want about 10 minutes from now (ExpiresIn)", processing.ExpiresAt)
	}
	pay(t, processing.PaymentURL())
	eventually(t, 20*time.Second, "succeeded", func() bool {
		o, err = c.GetOrder(ctx, id)
		return err == nil && o.Status == loomipay.StatusSucceeded
	})

	r, created, err := c.CreateRefund(ctx, loomipay.CreateRefundParams{MerchantOrderID: id, MerchantRefundID: id + "-r1", Amount: 3000, Reason: "partial"})
	if err != nil || !created || r.PaymentOrderID != o.ID || r.MerchantOrderID != id {
		t.Fatalf("refund by merchant_order_id = %+v created %v err %v", r, created, err)
	}
	byMerchant, err := c.GetRefundByMerchantID(ctx, id+"-r1")
	if err != nil || byMerchant.ID != r.ID {
		t.Fatalf("GetRefundByMerchantID = %s, %v; want %s", byMerchant.ID, err, r.ID)
	}
	_, _, err = c.CreateRefund(ctx, loomipay.CreateRefundParams{MerchantOrderID: id, Amount: 8000})
	if loomipay.ErrorCode(err) != loomipay.CodeRefundExceeds {
		t.Fatalf("over-refund: %v; want refund_exceeds_refundable", err)
	}
	eventually(t, 20*time.Second, "refund succeeded", func() bool {
		got, err := c.GetRefund(ctx, r.ID)
		return err == nil && got.Status == loomipay.StatusSucceeded
	})
	var refunds []string
	for rf, err := range c.Refunds(ctx, loomipay.ListRefundsParams{MerchantOrderID: id}) {
		if err != nil {
			t.Fatal(err)
		}
		refunds = append(refunds, rf.ID)
	}
	if !slices.Equal(refunds, []string{r.ID}) {
		t.Errorf("Refunds(merchant_order_id) = %v; want [%s]", refunds, r.ID)
	}

	if _, err := c.GetOrder(ctx, "no-such-order"); !loomipay.IsNotFound(err) {
		t.Errorf("GetOrder(unknown) err %v; want not_found", err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

func TestCloseOrder(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	id := uniqueID("close")
	if _, _, err := c.CreateOrder(ctx, loomipay.CreateOrderParams{MerchantOrderID: id, Amount: 100, OrderType: "payment", Subject: "c"}); err != nil {
		t.Fatal(err)
	}
	waitProcessing(t, c, id)
	o, err := c.CloseOrder(ctx, id)
	if err != nil || o.Status != loomipay.StatusFailed || o.FailureReason == nil || *o.FailureReason != "closed_by_merchant" {
		t.Fatalf("close = %+v, %v; want failed closed_by_merchant", o, err)
	}
	if again, err := c.CloseOrder(ctx, id); err != nil || again.Status != loomipay.StatusFailed {
		t.Fatalf("second close = %s, %v; want failed again", again.Status, err)
	}
	paid := paidOrder(t, c, uniqueID("closepaid"), 100)
	if _, err := c.CloseOrder(ctx, paid.MerchantOrderID); loomipay.ErrorCode(err) != loomipay.CodeOrderAlreadyPaid {
		t.Fatalf("close of a paid order: %v; want order_already_paid", err)
	}
}

func TestOrdersIterator(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	start := time.Now().Add(-time.Second)
	var want []string
	for i := range 7 {
		id := uniqueID("iter") + string(rune('a'+i))
		if _, _, err := c.CreateOrder(ctx, loomipay.CreateOrderParams{MerchantOrderID: id, Amount: 100, OrderType: "recharge", Subject: "it"}); err != nil {
			t.Fatal(err)
		}
		want = append([]string{id}, want...) // newest first
	}
	var got []string
	for o, err := range c.Orders(ctx, loomipay.ListOrdersParams{OrderType: "recharge", CreatedGTE: start, Limit: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, o.MerchantOrderID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Orders = %v; want %v", got, want)
	}
	// Stopping early fetches no further page.
	n := 0
	for range c.Orders(ctx, loomipay.ListOrdersParams{OrderType: "recharge", CreatedGTE: start, Limit: 2}) {
		if n++; n == 3 {
			break
		}
	}
	page, err := c.ListOrders(ctx, loomipay.ListOrdersParams{OrderType: "recharge", CreatedGTE: start, Limit: 2})
	if err != nil || len(page.Data) != 2 || !page.HasMore {
		t.Fatalf("ListOrders limit 2 = %d items has_more %v err %v", len(page.Data), page.HasMore, err)
	}
	back, err := c.ListOrders(ctx, loomipay.ListOrdersParams{OrderType: "recharge", CreatedGTE: start, Limit: 2, EndingBefore: *page.PrevCursor})
	if err != nil || len(back.Data) != 0 || back.HasMore {
		t.Fatalf("page before the first = %d items has_more %v err %v; want empty", len(back.Data), back.HasMore, err)
	}
	if _, err := c.ListOrders(ctx, loomipay.ListOrdersParams{Limit: 500}); loomipay.ErrorCode(err) != loomipay.CodeValidation {
		t.Fatalf("limit 500: %v; want validation_error", err)
	}
}

// flaky sits in front of the real stack and answers the first n requests matching match with
// status itself; it counts the requests that reached the stack.
type flaky struct {
	n       atomic.Int32
	status  int
	forward atomic.Int32
	proxy   *httputil.ReverseProxy
}

func newFlaky(t *testing.T, failures int, status int) (*flaky, string) {
	t.Helper()
	u, _ := url.Parse(stack.baseURL)
	f := &flaky{status: status, proxy: httputil.NewSingleHostReverseProxy(u)}
	f.n.Store(int32(failures))
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.n.Add(-1) >= 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(`{"detail":"try again","code":"service_unavailable"}`))
		return
	}
	f.forward.Add(1)
	f.proxy.ServeHTTP(w, r)
}

func TestRetries(t *testing.T) {
	ctx := context.Background()
	opts := &loomipay.Options{RetryBackoff: time.Millisecond, MaxRetries: 3}

	t.Run("create is retried on 503 and lands once", func(t *testing.T) {
		f, base := newFlaky(t, 2, http.StatusServiceUnavailable)
		c := loomipay.New(base, stack.apiKey, stack.appID, opts)
		id := uniqueID("retry")
		o, created, err := c.CreateOrder(ctx, loomipay.CreateOrderParams{MerchantOrderID: id, Amount: 100, OrderType: "payment", Subject: "r"})
		if err != nil || !created || f.forward.Load() != 1 {
			t.Fatalf("create through two 503s: %+v created %v err %v, %d reached the stack; want created, 1", o, created, err, f.forward.Load())
		}
	})
	t.Run("gives up after MaxRetries", func(t *testing.T) {
		f, base := newFlaky(t, 10, http.StatusServiceUnavailable)
		c := loomipay.New(base, stack.apiKey, stack.appID, opts)
		_, err := c.GetOrder(ctx, "x")
		if loomipay.ErrorCode(err) != loomipay.CodeUnavailable || f.n.Load() != 10-4 {
			t.Fatalf("err %v after %d attempts; want service_unavailable after 4", err, 10-f.n.Load())
		}
	})
	t.Run("refund without merchant_refund_id is not retried on 503", func(t *testing.T) {
		paid := paidOrder(t, newClient(t), uniqueID("noretry"), 1000)
		f, base := newFlaky(t, 1, http.StatusServiceUnavailable)
		c := loomipay.New(base, stack.apiKey, stack.appID, opts)
		_, _, err := c.CreateRefund(ctx, loomipay.CreateRefundParams{PaymentOrderID: paid.ID, Amount: 100})
		if loomipay.ErrorCode(err) != loomipay.CodeUnavailable || f.forward.Load() != 0 {
			t.Fatalf("err %v, %d reached the stack; want the 503 returned, none", err, f.forward.Load())
		}
		// With a merchant_refund_id it is retried, and 429 is always retried.
		f, base = newFlaky(t, 1, http.StatusTooManyRequests)
		c = loomipay.New(base, stack.apiKey, stack.appID, opts)
		if _, _, err := c.CreateRefund(ctx, loomipay.CreateRefundParams{PaymentOrderID: paid.ID, Amount: 100}); err != nil || f.forward.Load() != 1 {
			t.Fatalf("refund through a 429: err %v, %d reached the stack", err, f.forward.Load())
		}
		f, base = newFlaky(t, 1, http.StatusBadGateway)
		c = loomipay.New(base, stack.apiKey, stack.appID, opts)
		if _, _, err := c.CreateRefund(ctx, loomipay.CreateRefundParams{PaymentOrderID: paid.ID, Amount: 100, MerchantRefundID: uniqueID("mr")}); err != nil || f.forward.Load() != 1 {
			t.Fatalf("refund with merchant_refund_id through a 502: err %v, %d reached the stack", err, f.forward.Load())
		}
	})
	t.Run("a refused connection is retried, then reported", func(t *testing.T) {
		c := loomipay.New("http://127.0.0.1:1", stack.apiKey, stack.appID, opts)
		_, _, err := c.CreateRefund(ctx, loomipay.CreateRefundParams{PaymentOrderID: "550e8400-e29b-41d4-a716-446655440000", Amount: 1})
		var apiErr *loomipay.Error
		if err == nil || errors.As(err, &apiErr) {
			t.Fatalf("err %v; want a transport error", err)
		}
	})
	t.Run("timeout per attempt", func(t *testing.T) {
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) }))
		t.Cleanup(slow.Close)
		c := loomipay.New(slow.URL, stack.apiKey, stack.appID, &loomipay.Options{Timeout: 50 * time.Millisecond, MaxRetries: -1})
		startAt := time.Now()
		if _, err := c.GetOrder(ctx, "x"); err == nil || time.Since(startAt) > 250*time.Millisecond {
			t.Fatalf("err %v after %s; want a timeout within about 50 ms", err, time.Since(startAt))
		}
	})
}

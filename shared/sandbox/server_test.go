package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
)

func TestPaymentFlow(t *testing.T) {
	h := newHarness(t, Config{})
	created := h.create(t, "order1", 1234)
	if !strings.HasPrefix(created.CounterURL, h.srv.URL+"/counter/") || !strings.HasSuffix(created.CounterURL, created.PayOrderNo) {
		t.Fatalf("counter_url %q is not PublicURL/counter/pay_order_no", created.CounterURL)
	}
	if q := h.query(t, "order1"); q.OrderStatus != lakala.OrderStatusUnpaid || q.TotalAmount != 1234 || len(q.OrderTradeInfoList) != 0 {
		t.Fatalf("fresh order query = %+v", q)
	}

	if status, body := h.press(t, created.CounterURL, "pay"); status != http.StatusOK {
		t.Fatalf("pay: HTTP %d %s", status, body)
	}
	got := h.rc.next(t)
	if _, err := lakala.VerifyNotification(h.sb.PlatformPublicKey(), got.header, got.body); err != nil {
		t.Fatalf("notification does not verify: %v", err)
	}
	var n lakala.CashierNotification
	if err := json.Unmarshal(got.body, &n); err != nil {
		t.Fatal(err)
	}
	tr := n.OrderTradeInfo
	if n.OrderStatus != "2" || n.OutOrderNo != "order1" || n.PayOrderNo != created.PayOrderNo || n.TotalAmount != 1234 ||
		tr.TradeType != "PAY" || tr.TradeStatus != "S" || tr.TradeAmount != 1234 || tr.PayerAmount != 1234 ||
		tr.TradeNo == "" || tr.LogNo == "" || tr.AccTradeNo == "" || tr.PayMode == "" || tr.TradeTime == "" {
		t.Fatalf("notification = %s", got.body)
	}

	q := h.query(t, "order1")
	if q.OrderStatus != lakala.OrderStatusPaid || len(q.OrderTradeInfoList) != 1 || q.OrderTradeInfoList[0].TradeNo != tr.TradeNo {
		t.Fatalf("paid order query = %+v", q)
	}
	h.waitNotifications(t)
	v, _ := h.sb.Order("order1")
	if !v.NotifyAcked || len(v.NotifyAttempts) != 1 {
		t.Fatalf("order view = %+v", v)
	}
}

func TestFailedPaymentNotifies(t *testing.T) {
	h := newHarness(t, Config{})
	created := h.create(t, "order1", 500)
	if status, body := h.press(t, created.CounterURL, "fail"); status != http.StatusOK {
		t.Fatalf("fail: HTTP %d %s", status, body)
	}
	var n lakala.CashierNotification
	if err := json.Unmarshal(h.rc.next(t).body, &n); err != nil {
		t.Fatal(err)
	}
	if n.OrderStatus != "3" || n.OrderTradeInfo.TradeStatus != "F" {
		t.Fatalf("notification = %+v", n)
	}
	if status, _ := h.press(t, created.CounterURL, "pay"); status != http.StatusConflict {
		t.Fatalf("paying a failed order: HTTP %d, want 409", status)
	}
}

func TestRequestSignatureRejected(t *testing.T) {
	h := newHarness(t, Config{})
	body, _ := json.Marshal(lakala.NewRequest(h.createData("order1", 100), time.Now()))
	sign := func(c lakala.Credentials, b []byte) string {
		auth, err := lakala.SignRequest(c, b, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return auth
	}
	stranger := h.creds
	stranger.PrivateKey = strangerKey
	otherApp := h.creds
	otherApp.AppID = "OP99999999"
	tests := []struct {
		name string
		auth string
	}{
		{"missing", ""},
		{"other key", sign(stranger, body)},
		{"body changed after signing", sign(h.creds, append([]byte(" "), body...))},
		{"other appid", sign(otherApp, body)},
		{"garbage", "Bearer abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ans, err := h.post(t, context.Background(), lakala.PathCreateOrder, body, tt.auth)
			if err != nil {
				t.Fatal(err)
			}
			if ans.status != http.StatusUnauthorized || ans.env.Code != CodeBadSignature {
				t.Fatalf("HTTP %d code %s, want 401 %s", ans.status, ans.env.Code, CodeBadSignature)
			}
			if ans.header.Get(lakala.HeaderSignature) != "" {
				t.Fatal("a rejected request got a signed answer")
			}
		})
	}
	if _, ok := h.sb.Order("order1"); ok {
		t.Fatal("a rejected request created an order")
	}
}

func TestCreateOrderValidation(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct {
		name   string
		change func(*lakala.CreateOrderData)
	}{
		{"empty out_order_no", func(d *lakala.CreateOrderData) { d.OutOrderNo = "" }},
		{"out_order_no over 32", func(d *lakala.CreateOrderData) { d.OutOrderNo = strings.Repeat("a", 33) }},
		{"zero amount", func(d *lakala.CreateOrderData) { d.TotalAmount = 0 }},
		{"expiry in the past", func(d *lakala.CreateOrderData) {
			d.OrderEfficientTime = lakala.FormatTime(time.Now().Add(-time.Minute))
		}},
		{"expiry past 7 days", func(d *lakala.CreateOrderData) {
			d.OrderEfficientTime = lakala.FormatTime(time.Now().Add(8 * 24 * time.Hour))
		}},
		{"expiry malformed", func(d *lakala.CreateOrderData) { d.OrderEfficientTime = "2024-12-03" }},
		{"order_info of 66 bytes", func(d *lakala.CreateOrderData) { d.OrderInfo = strings.Repeat("订", 22) }},
		{"notify_url of 129 bytes", func(d *lakala.CreateOrderData) { d.NotifyURL = "https://x/" + strings.Repeat("n", 119) }},
		{"callback_url of 129 bytes", func(d *lakala.CreateOrderData) { d.CallbackURL = "https://x/" + strings.Repeat("页", 39) + "cc" }},
		{"relative callback_url", func(d *lakala.CreateOrderData) { d.CallbackURL = "/done" }},
		{"vpos_id of 33 bytes", func(d *lakala.CreateOrderData) { d.VposID = strings.Repeat("4", 33) }},
		{"amount of 13 digits", func(d *lakala.CreateOrderData) { d.TotalAmount = lakala.MaxAmount + 1 }},
		{"no notify_url", func(d *lakala.CreateOrderData) { d.NotifyURL = "" }},
		{"relative notify_url", func(d *lakala.CreateOrderData) { d.NotifyURL = "/webhooks/lakala" }},
		{"no merchant_no", func(d *lakala.CreateOrderData) { d.MerchantNo = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := h.createData("bad", 100)
			tt.change(&data)
			must[json.RawMessage](t, h, lakala.PathCreateOrder, data, CodeInvalidParam)
		})
	}
	// The sandbox reads String(n) the strictest way Lakala might: n bytes of UTF-8. 21 Chinese
	// characters and an ASCII one are 64 bytes, within the limit.
	ok := h.createData("order64", 100)
	ok.OrderInfo = strings.Repeat("订", 21) + "a"
	ok.NotifyURL = "https://x/" + strings.Repeat("n", 118)
	must[lakala.CreateOrderResult](t, h, lakala.PathCreateOrder, ok, lakala.CodeCashierOK)
}

func TestCreateOrderIdempotent(t *testing.T) {
	h := newHarness(t, Config{})
	first := h.create(t, "order1", 100)
	again := h.create(t, "order1", 100)
	if again != first {
		t.Fatalf("repeat create = %+v, want %+v", again, first)
	}
	must[json.RawMessage](t, h, lakala.PathCreateOrder, h.createData("order1", 200), CodeOrderExists)
	if v, _ := h.sb.Order("order1"); v.TotalAmount != 100 {
		t.Fatalf("amount changed to %d", v.TotalAmount)
	}
}

func TestQueryUnknownOrder(t *testing.T) {
	h := newHarness(t, Config{})
	h.create(t, "order1", 100)
	tests := []struct {
		name string
		data lakala.QueryOrderData
		code string
	}{
		{"unknown", lakala.QueryOrderData{MerchantNo: testMerchant, OutOrderNo: "nope"}, CodeOrderNotFound},
		{"another merchant of the appid", lakala.QueryOrderData{MerchantNo: testSibling, OutOrderNo: "order1"}, CodeOrderNotFound},
		{"a merchant not of the appid", lakala.QueryOrderData{MerchantNo: "other", OutOrderNo: "order1"}, CodeInvalidParam},
		{"no id", lakala.QueryOrderData{MerchantNo: testMerchant}, CodeInvalidParam},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			must[json.RawMessage](t, h, lakala.PathQueryOrder, tt.data, tt.code)
		})
	}
}

func TestCloseThenPay(t *testing.T) {
	for _, payAfterClose := range []bool{false, true} {
		h := newHarness(t, Config{})
		h.sb.SetFaults(Faults{PayAfterClose: payAfterClose})
		created := h.create(t, "order1", 100)
		closed := must[lakala.CloseOrderResult](t, h, lakala.PathCloseOrder,
			lakala.CloseOrderData{MerchantNo: testMerchant, PayOrderNo: created.PayOrderNo}, lakala.CodeCashierOK)
		if closed.OrderStatus != lakala.OrderStatusClosed {
			t.Fatalf("close answered order_status %q", closed.OrderStatus)
		}
		status, body := h.press(t, created.CounterURL, "pay")
		want, wantStatus := http.StatusConflict, lakala.OrderStatusClosed
		if payAfterClose {
			want, wantStatus = http.StatusOK, lakala.OrderStatusPaid
			h.rc.next(t)
		}
		if status != want {
			t.Fatalf("PayAfterClose=%v: pay after close HTTP %d %s, want %d", payAfterClose, status, body, want)
		}
		if q := h.query(t, "order1"); q.OrderStatus != wantStatus {
			t.Fatalf("PayAfterClose=%v: order_status %s, want %s", payAfterClose, q.OrderStatus, wantStatus)
		}
	}
}

func TestClosePaidOrderRefused(t *testing.T) {
	h := newHarness(t, Config{})
	h.paidOrder(t, "order1", 100)
	must[json.RawMessage](t, h, lakala.PathCloseOrder,
		lakala.CloseOrderData{MerchantNo: testMerchant, OutOrderNo: "order1"}, CodeOrderNotClosable)
}

func TestOrderExpires(t *testing.T) {
	clock := time.Now()
	h := newHarness(t, Config{Now: func() time.Time { return clock }})
	created := h.create(t, "order1", 100) // expires in an hour
	clock = clock.Add(2 * time.Hour)
	if q := h.query(t, "order1"); q.OrderStatus != lakala.OrderStatusExpired {
		t.Fatalf("order_status %s, want expired", q.OrderStatus)
	}
	err := h.sb.Pay(context.Background(), created.PayOrderNo)
	if !errors.Is(err, ErrNotPayable) {
		t.Fatalf("paying an expired order: %v, want ErrNotPayable", err)
	}
}

func TestInjectedErrorsAndLatency(t *testing.T) {
	h := newHarness(t, Config{})
	const latency = 50 * time.Millisecond
	h.sb.SetFaults(Faults{ErrorRate: 1, Latency: latency})
	start := time.Now()
	ans, err := h.call(t, context.Background(), lakala.PathCreateOrder, h.createData("order1", 100))
	if err != nil {
		t.Fatal(err)
	}
	// A lower bound, not a speed target: the knob must delay the answer at least this much.
	if took := time.Since(start); took < latency {
		t.Errorf("answer after %v; want at least the injected %v", took, latency)
	}
	if ans.status != http.StatusInternalServerError {
		t.Fatalf("HTTP %d, want 500", ans.status)
	}
	if _, ok := h.sb.Order("order1"); ok {
		t.Fatal("a failed call created an order")
	}
}

package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
)

// The tests in this file play both readings of every behaviour of Lakala's that nobody
// could confirm (docs LAKALA.md), through shared/lakala's client where the caller's view
// matters.

// fakeClock is a sandbox clock tests move by hand, so query lags need no sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// client is shared/lakala's client pointed at the sandbox.
func (h *harness) client(t *testing.T) *lakala.Client {
	t.Helper()
	c, err := lakala.NewClient(lakala.Config{
		BaseURL: h.srv.URL, Credentials: h.creds, MerchantNo: testMerchant, TermNo: testTerm,
		PlatformKey: h.sb.PlatformPublicKey(), HTTPClient: &http.Client{Timeout: 5 * time.Second},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (h *harness) cashierOrder(outOrderNo string, amount int64) lakala.CreateCashierOrder {
	return lakala.CreateCashierOrder{
		OutOrderNo: outOrderNo, Amount: amount, Subject: "Test order",
		NotifyURL: h.rc.srv.URL + "/webhooks/lakala", ExpiresAt: time.Now().Add(time.Hour),
	}
}

func refundRequest(n lakala.CashierNotification, outTradeNo string, amount int64) lakala.RefundRequest {
	return lakala.RefundRequest{
		API: lakala.RefundAPILabs, OutTradeNo: outTradeNo, Amount: amount, Reason: "customer asked", RequestIP: "10.0.0.1",
		OriginOutTradeNo: n.OutOrderNo, OriginTradeNo: n.OrderTradeInfo.TradeNo, OriginLogNo: n.OrderTradeInfo.LogNo,
	}
}

// gatewayCode is the code of a definite rejection, "" for success; anything else fails the test.
func gatewayCode(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var ge *lakala.GatewayError
	if !errors.As(err, &ge) {
		t.Fatalf("error %v is not a definite rejection", err)
	}
	return ge.Code
}

func (h *harness) nextNotification(t *testing.T) lakala.CashierNotification {
	t.Helper()
	var n lakala.CashierNotification
	if err := json.Unmarshal(h.rc.next(t).body, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (h *harness) ledgerOrder(t *testing.T, outOrderNo string) LedgerOrder {
	t.Helper()
	for _, o := range h.sb.Ledger().Orders {
		if o.OutOrderNo == outOrderNo {
			return o
		}
	}
	t.Fatalf("order %s is not in the ledger", outOrderNo)
	return LedgerOrder{}
}

func TestPessimistic(t *testing.T) {
	p := Pessimistic()
	want := Faults{DuplicateCreate: "refuse", DuplicateRefund: "refuse", FailedTradePayable: true, AutoRefundAfterClose: true}
	if p != want {
		t.Fatalf("Pessimistic() = %+v, want %+v", p, want)
	}
	if err := p.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicateCreate(t *testing.T) {
	tests := []struct {
		mode                string
		sameCode, otherCode string // answers to a repeat with the same and another amount
	}{
		{"", "", CodeOrderExists},
		{DuplicateCreateReturn, "", CodeOrderExists},
		{DuplicateCreateRefuse, CodeOrderRepeated, CodeOrderRepeated},
	}
	for _, tt := range tests {
		t.Run("mode "+tt.mode, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.sb.SetFaults(Faults{DuplicateCreate: tt.mode})
			c := h.client(t)
			ctx := context.Background()
			first, err := c.CreateCashierOrder(ctx, h.cashierOrder("order1", 1000))
			if err != nil {
				t.Fatal(err)
			}
			again, err := c.CreateCashierOrder(ctx, h.cashierOrder("order1", 1000))
			if code := gatewayCode(t, err); code != tt.sameCode {
				t.Fatalf("repeat with the same amount: code %q, want %q", code, tt.sameCode)
			}
			if err == nil && again != first {
				t.Fatalf("repeat answered %+v, want the first cashier order %+v", again, first)
			}
			_, err = c.CreateCashierOrder(ctx, h.cashierOrder("order1", 999))
			if code := gatewayCode(t, err); code != tt.otherCode {
				t.Fatalf("repeat with another amount: code %q, want %q", code, tt.otherCode)
			}
			if l := h.sb.Ledger(); len(l.Orders) != 1 || l.Orders[0].PayOrderNo != first.PayOrderNo || l.Orders[0].Amount != 1000 {
				t.Fatalf("ledger = %+v", l)
			}
		})
	}
}

func TestDuplicateRefund(t *testing.T) {
	tests := []struct {
		name          string
		mode          string
		amount        int64 // of the first refund and of its repeat, on a 1000 payment
		wantCode      string
		wantFirstSame bool
	}{
		{"default", "", 300, "", true},
		{"first answer", DuplicateRefundFirstAnswer, 1000, "", true},
		{"refuse", DuplicateRefundRefuse, 300, CodeRefundRepeated, false},
		{"refuse though consumed", DuplicateRefundRefuse, 1000, CodeRefundRepeated, false},
		{"exceeds when consumed", DuplicateRefundExceeds, 1000, CodeRefundExceeds, false},
		{"exceeds, enough left", DuplicateRefundExceeds, 300, CodeRefundRepeated, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			paid := h.paidOrder(t, "order1", 1000)
			h.sb.SetFaults(Faults{DuplicateRefund: tt.mode})
			c := h.client(t)
			ctx := context.Background()
			first, err := c.Refund(ctx, refundRequest(paid, "refund1", tt.amount))
			if err != nil {
				t.Fatal(err)
			}
			again, err := c.Refund(ctx, refundRequest(paid, "refund1", tt.amount))
			if code := gatewayCode(t, err); code != tt.wantCode {
				t.Fatalf("repeat: code %q, want %q", code, tt.wantCode)
			}
			if tt.wantFirstSame && again != first {
				t.Fatalf("repeat answered %+v, want %+v", again, first)
			}
			l := h.sb.Ledger()
			want := []LedgerRefund{{MerchantNo: testMerchant, OutTradeNo: "refund1", OutOrderNo: "order1", Amount: tt.amount, Applied: 1, State: lakala.TradeStateSuccess}}
			if !reflect.DeepEqual(l.Refunds, want) || l.Orders[0].Refunded != tt.amount {
				t.Fatalf("ledger = %+v, want refunds %+v and %d refunded", l, want, tt.amount)
			}
		})
	}
}

func TestFailedTrade(t *testing.T) {
	ctx := context.Background()
	t.Run("optimistic: the order fails", func(t *testing.T) {
		h := newHarness(t, Config{})
		created := h.create(t, "order1", 1000)
		if err := h.sb.Fail(ctx, created.PayOrderNo); err != nil {
			t.Fatal(err)
		}
		n := h.nextNotification(t)
		if n.OrderStatus != lakala.OrderStatusFailed || n.OrderTradeInfo.TradeStatus != lakala.TradeStatusFailed {
			t.Fatalf("notification = %+v", n)
		}
		if err := h.sb.Pay(ctx, created.PayOrderNo); !errors.Is(err, ErrNotPayable) {
			t.Fatalf("pay after a failed trade: %v, want ErrNotPayable", err)
		}
		if o := h.ledgerOrder(t, "order1"); o.Payable || o.Payments != 0 || o.Status != lakala.OrderStatusFailed {
			t.Fatalf("ledger order = %+v", o)
		}
	})
	t.Run("pessimistic: failed, then paid", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.sb.SetFaults(Faults{FailedTradePayable: true})
		c := h.client(t)
		created := h.create(t, "order1", 1000)
		if err := h.sb.Fail(ctx, created.PayOrderNo); err != nil {
			t.Fatal(err)
		}
		failed := h.nextNotification(t)
		if failed.OrderStatus != lakala.OrderStatusPaying || failed.OrderTradeInfo.TradeStatus != lakala.TradeStatusFailed ||
			failed.OrderTradeInfo.TradeType != lakala.TradeTypePay {
			t.Fatalf("failure notification = %+v", failed)
		}
		q, err := c.QueryCashierOrder(ctx, "order1")
		if err != nil || q.OrderStatus != lakala.OrderStatusPaying || len(q.OrderTradeInfoList) != 1 {
			t.Fatalf("query after the failed trade = %+v, %v", q, err)
		}
		if o := h.ledgerOrder(t, "order1"); !o.Payable || o.Payments != 0 || o.Paid != 0 {
			t.Fatalf("ledger order after the failed trade = %+v", o)
		}

		if err := h.sb.Pay(ctx, created.PayOrderNo); err != nil {
			t.Fatalf("pay after a failed trade: %v", err)
		}
		paid := h.nextNotification(t)
		if paid.OrderStatus != lakala.OrderStatusPaid || paid.OrderTradeInfo.TradeStatus != lakala.TradeStatusSuccess ||
			paid.OrderTradeInfo.TradeNo == failed.OrderTradeInfo.TradeNo {
			t.Fatalf("payment notification = %+v", paid)
		}
		q, err = c.QueryCashierOrder(ctx, "order1")
		if err != nil || q.OrderStatus != lakala.OrderStatusPaid || len(q.OrderTradeInfoList) != 2 ||
			q.OrderTradeInfoList[0].TradeNo != paid.OrderTradeInfo.TradeNo {
			t.Fatalf("query after the payment = %+v, %v", q, err)
		}
		if o := h.ledgerOrder(t, "order1"); o.Payable || o.Payments != 1 || o.Paid != 1000 {
			t.Fatalf("ledger order after the payment = %+v", o)
		}
		// Only the successful trade can be refunded.
		if _, err := c.Refund(ctx, refundRequest(failed, "refund1", 100)); gatewayCode(t, err) != CodeOriginNotFound {
			t.Fatalf("refund of the failed trade: %v", err)
		}
		if _, err := c.Refund(ctx, refundRequest(paid, "refund2", 100)); err != nil {
			t.Fatalf("refund of the paid trade: %v", err)
		}
		h.waitNotifications(t)
		v, _ := h.sb.Order("order1")
		if len(v.NotifyAttempts) != 2 || v.NotifyAttempts[0].TradeNo != failed.OrderTradeInfo.TradeNo ||
			v.NotifyAttempts[1].TradeNo != paid.OrderTradeInfo.TradeNo {
			t.Fatalf("notify attempts = %+v", v.NotifyAttempts)
		}
	})
}

func TestOnlyCloseStopsPayment(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Config{})
	h.sb.SetFaults(Pessimistic())
	c := h.client(t)
	created, err := c.CreateCashierOrder(ctx, h.cashierOrder("order1", 1000))
	if err != nil {
		t.Fatal(err)
	}
	// Failed attempts, whatever the merchant makes of them, leave the order payable.
	for range 2 {
		if err := h.sb.Fail(ctx, created.PayOrderNo); err != nil {
			t.Fatal(err)
		}
	}
	if o := h.ledgerOrder(t, "order1"); !o.Payable {
		t.Fatalf("ledger order after failed attempts = %+v", o)
	}
	closed, err := c.CloseCashierOrder(ctx, "order1")
	if err != nil || closed.OrderStatus != lakala.OrderStatusClosed {
		t.Fatalf("close = %+v, %v", closed, err)
	}
	if err := h.sb.Pay(ctx, created.PayOrderNo); !errors.Is(err, ErrNotPayable) {
		t.Fatalf("pay after close: %v, want ErrNotPayable", err)
	}
	if o := h.ledgerOrder(t, "order1"); o.Payable || !o.Closed || o.Payments != 0 || o.Status != lakala.OrderStatusClosed {
		t.Fatalf("ledger order after close = %+v", o)
	}
}

func TestPayAfterClose(t *testing.T) {
	tests := []struct {
		name           string
		autoRefundKnob bool
		askedAutoRef   bool // created with close_order_auto_refund "1"
		wantStatus     string
		wantRefunded   int64
	}{
		{"auto refund", true, true, lakala.OrderStatusRefunded, 1000},
		{"knob off", false, true, lakala.OrderStatusPaid, 0},
		{"order did not ask", true, false, lakala.OrderStatusPaid, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, Config{})
			h.sb.SetFaults(Faults{PayAfterClose: true, AutoRefundAfterClose: tt.autoRefundKnob})
			data := h.createData("order1", 1000)
			if tt.askedAutoRef {
				data.CloseOrderAutoRefund = "1"
			}
			created := must[lakala.CreateOrderResult](t, h, lakala.PathCreateOrder, data, lakala.CodeCashierOK)
			c := h.client(t)
			if _, err := c.CloseCashierOrder(ctx, "order1"); err != nil {
				t.Fatal(err)
			}
			if o := h.ledgerOrder(t, "order1"); !o.Payable {
				t.Fatalf("closed order not payable under PayAfterClose: %+v", o)
			}
			if err := h.sb.Pay(ctx, created.PayOrderNo); err != nil {
				t.Fatal(err)
			}
			// The payment is told of as any payment; the refund is not.
			n := h.nextNotification(t)
			if n.OrderStatus != lakala.OrderStatusPaid || n.OrderTradeInfo.TradeType != lakala.TradeTypePay ||
				n.OrderTradeInfo.TradeStatus != lakala.TradeStatusSuccess {
				t.Fatalf("notification = %+v", n)
			}
			h.waitNotifications(t)
			if extra := len(h.rc.got); extra != 0 {
				t.Fatalf("%d more notifications, want none", extra)
			}
			want := LedgerOrder{
				MerchantNo: testMerchant, OutOrderNo: "order1", PayOrderNo: created.PayOrderNo, Status: tt.wantStatus, Amount: 1000,
				Payments: 1, Paid: 1000, Refunded: tt.wantRefunded, AutoRefunded: tt.wantRefunded, Closed: true,
			}
			if o := h.ledgerOrder(t, "order1"); o != want {
				t.Fatalf("ledger order = %+v, want %+v", o, want)
			}
			q, err := c.QueryCashierOrder(ctx, "order1")
			if err != nil || q.OrderStatus != tt.wantStatus {
				t.Fatalf("query = %+v, %v", q, err)
			}
			if tt.wantRefunded > 0 {
				if len(q.OrderTradeInfoList) != 2 || q.OrderTradeInfoList[0].TradeType != lakala.TradeTypeRefund ||
					q.OrderTradeInfoList[0].TradeAmount != 1000 {
					t.Fatalf("trades = %+v", q.OrderTradeInfoList)
				}
				if _, err := c.Refund(ctx, refundRequest(n, "refund1", 1)); gatewayCode(t, err) != CodeRefundExceeds {
					t.Fatalf("refund after the auto refund: %v, want exceeds", err)
				}
			}
		})
	}
}

func TestQueryLag(t *testing.T) {
	const lag = 50 * time.Millisecond
	ctx := context.Background()
	clock := newFakeClock()
	h := newHarness(t, Config{Now: clock.Now})
	c := h.client(t)

	// Without a lag everything is seen at once.
	if _, err := c.CreateCashierOrder(ctx, h.cashierOrder("order0", 1000)); err != nil {
		t.Fatal(err)
	}
	if q, err := c.QueryCashierOrder(ctx, "order0"); err != nil || q.OrderStatus != lakala.OrderStatusUnpaid {
		t.Fatalf("query without lag = %+v, %v", q, err)
	}

	h.sb.SetFaults(Faults{QueryLag: lag})
	created, err := c.CreateCashierOrder(ctx, h.cashierOrder("order1", 1000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.QueryCashierOrder(ctx, "order1"); gatewayCode(t, err) != CodeOrderNotFound {
		t.Fatalf("query of a new order: %v, want not found", err)
	}
	if _, err := c.CloseCashierOrder(ctx, "order1"); gatewayCode(t, err) != CodeOrderNotFound {
		t.Fatalf("close of a new order: %v, want not found", err)
	}
	if o := h.ledgerOrder(t, "order1"); o.Closed || !o.Payable {
		t.Fatalf("a close that did not see the order changed it: %+v", o)
	}
	clock.Advance(lag)
	if q, err := c.QueryCashierOrder(ctx, "order1"); err != nil || q.OrderStatus != lakala.OrderStatusUnpaid {
		t.Fatalf("query once the lag passed = %+v, %v", q, err)
	}

	// A payment is not seen by the order query nor by tradequery of the order.
	if err := h.sb.Pay(ctx, created.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	paid := h.nextNotification(t)
	if q, err := c.QueryCashierOrder(ctx, "order1"); err != nil || q.OrderStatus != lakala.OrderStatusUnpaid || len(q.OrderTradeInfoList) != 0 {
		t.Fatalf("query right after the payment = %+v, %v", q, err)
	}
	if tq, err := c.QueryRefund(ctx, lakala.RefundAPILabs, "order1"); err != nil || tq.State != lakala.TradeStateUnknown {
		t.Fatalf("tradequery of the order right after the payment = %+v, %v", tq, err)
	}
	clock.Advance(lag)
	if q, err := c.QueryCashierOrder(ctx, "order1"); err != nil || q.OrderStatus != lakala.OrderStatusPaid || len(q.OrderTradeInfoList) != 1 {
		t.Fatalf("query once the lag passed = %+v, %v", q, err)
	}
	if tq, err := c.QueryRefund(ctx, lakala.RefundAPILabs, "order1"); err != nil || tq.State != lakala.TradeStateSuccess {
		t.Fatalf("tradequery of the order once the lag passed = %+v, %v", tq, err)
	}

	// A refund: UNKNOWN, then SUCCESS.
	if _, err := c.Refund(ctx, refundRequest(paid, "refund1", 300)); err != nil {
		t.Fatal(err)
	}
	if tq, err := c.QueryRefund(ctx, lakala.RefundAPILabs, "refund1"); err != nil || tq.State != lakala.TradeStateUnknown {
		t.Fatalf("tradequery right after the refund = %+v, %v", tq, err)
	}
	if q, err := c.QueryCashierOrder(ctx, "order1"); err != nil || q.OrderStatus != lakala.OrderStatusPaid || len(q.OrderTradeInfoList) != 1 {
		t.Fatalf("query right after the refund = %+v, %v", q, err)
	}
	if o := h.ledgerOrder(t, "order1"); o.Refunded != 300 {
		t.Fatalf("the ledger lags too: %+v", o)
	}
	clock.Advance(lag)
	if tq, err := c.QueryRefund(ctx, lakala.RefundAPILabs, "refund1"); err != nil || tq.State != lakala.TradeStateSuccess {
		t.Fatalf("tradequery once the lag passed = %+v, %v", tq, err)
	}
	if q, err := c.QueryCashierOrder(ctx, "order1"); err != nil || q.OrderStatus != lakala.OrderStatusRefunded || len(q.OrderTradeInfoList) != 2 {
		t.Fatalf("query once the lag passed = %+v, %v", q, err)
	}

	// A close of an order old enough is applied, but seen only after the lag.
	if closed, err := c.CloseCashierOrder(ctx, "order0"); err != nil || closed.OrderStatus != lakala.OrderStatusClosed {
		t.Fatalf("close = %+v, %v", closed, err)
	}
	if q, err := c.QueryCashierOrder(ctx, "order0"); err != nil || q.OrderStatus != lakala.OrderStatusUnpaid {
		t.Fatalf("query right after the close = %+v, %v", q, err)
	}
	clock.Advance(lag)
	if q, err := c.QueryCashierOrder(ctx, "order0"); err != nil || q.OrderStatus != lakala.OrderStatusClosed {
		t.Fatalf("query once the lag passed = %+v, %v", q, err)
	}
}

func TestLostAnswers(t *testing.T) {
	for _, mode := range []string{"", LostAnswerDrop, LostAnswer502, LostAnswerTimeout} {
		t.Run("mode "+mode, func(t *testing.T) {
			h := newHarness(t, Config{RefundHold: 5 * time.Second})
			paid := h.paidOrder(t, "paid", 1000)
			h.sb.SetFaults(Faults{LostAnswerRate: 1, LostAnswerMode: mode})
			c := h.client(t)
			lost := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, lakala.ErrOutcomeUnknown) {
					t.Fatalf("%s: %v, want ErrOutcomeUnknown", what, err)
				}
				switch mode {
				case LostAnswer502:
					if !strings.Contains(err.Error(), "HTTP 502") {
						t.Fatalf("%s: %v, want HTTP 502", what, err)
					}
				case LostAnswerTimeout:
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("%s: %v, want the caller's deadline", what, err)
					}
				default:
					if errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("%s: %v, want a dropped connection", what, err)
					}
				}
			}
			call := func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			}

			ctx, cancel := call()
			_, err := c.CreateCashierOrder(ctx, h.cashierOrder("order1", 500))
			cancel()
			lost("create", err)
			if o := h.ledgerOrder(t, "order1"); o.Amount != 500 || o.Status != lakala.OrderStatusUnpaid {
				t.Fatalf("ledger order after the lost create = %+v", o)
			}

			ctx, cancel = call()
			_, err = c.CloseCashierOrder(ctx, "order1")
			cancel()
			lost("close", err)
			if o := h.ledgerOrder(t, "order1"); !o.Closed || o.Status != lakala.OrderStatusClosed {
				t.Fatalf("ledger order after the lost close = %+v", o)
			}

			ctx, cancel = call()
			_, err = c.Refund(ctx, refundRequest(paid, "refund1", 400))
			cancel()
			lost("refund", err)
			l := h.sb.Ledger()
			if len(l.Refunds) != 1 || l.Refunds[0].Applied != 1 || h.ledgerOrder(t, "paid").Refunded != 400 {
				t.Fatalf("ledger after the lost refund = %+v", l)
			}

			// Queries keep their answers; that is how a caller learns what happened.
			if q, err := c.QueryCashierOrder(context.Background(), "order1"); err != nil || q.OrderStatus != lakala.OrderStatusClosed {
				t.Fatalf("query = %+v, %v", q, err)
			}
			if tq, err := c.QueryRefund(context.Background(), lakala.RefundAPILabs, "refund1"); err != nil || tq.State != lakala.TradeStateSuccess {
				t.Fatalf("tradequery = %+v, %v", tq, err)
			}
		})
	}
}

func TestLostAnswerRateIsSeeded(t *testing.T) {
	run := func() []bool {
		h := newHarness(t, Config{})
		h.sb.SetFaults(Faults{LostAnswerRate: 0.5, Seed: 7})
		c := h.client(t)
		var lost []bool
		for i := range 16 {
			_, err := c.CreateCashierOrder(context.Background(), h.cashierOrder("order"+string(rune('a'+i)), 100))
			if err != nil && !errors.Is(err, lakala.ErrOutcomeUnknown) {
				t.Fatal(err)
			}
			lost = append(lost, err != nil)
		}
		if n := len(h.sb.Ledger().Orders); n != 16 {
			t.Fatalf("%d orders in the ledger, want all 16 (lost answers are applied)", n)
		}
		return lost
	}
	first, second := run(), run()
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("the same seed lost different answers: %v, %v", first, second)
	}
	if !slices.Contains(first, true) || !slices.Contains(first, false) {
		t.Fatalf("rate 0.5 lost all or none of 16 answers: %v", first)
	}
}

func TestNotificationSignatureOnRetries(t *testing.T) {
	for _, resign := range []bool{false, true} {
		name := "original signature"
		if resign {
			name = "re-signed"
		}
		t.Run(name, func(t *testing.T) {
			// Copy 1 is refused twice and acknowledged the third time; copy 2 once.
			h := newHarness(t, Config{}, "FAIL", "FAIL")
			h.sb.SetFaults(Faults{DuplicateNotify: true, ResignNotifyRetries: resign})
			created := h.create(t, "order1", 100)
			if err := h.sb.Pay(context.Background(), created.PayOrderNo); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for range 4 {
				n := h.rc.next(t)
				if _, err := lakala.VerifyNotification(h.sb.PlatformPublicKey(), n.header, n.body); err != nil {
					t.Fatalf("notification does not verify: %v", err)
				}
				seen[n.header.Get("Authorization")] = true
			}
			if want := map[bool]int{false: 1, true: 4}[resign]; len(seen) != want {
				t.Fatalf("%d distinct Authorization headers over 4 deliveries, want %d", len(seen), want)
			}
		})
	}
}

func TestLedger(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Config{})
	c := h.client(t)
	paid2 := h.paidOrder(t, "order2", 1000)
	unpaid := h.create(t, "order1", 300)
	failed := h.create(t, "order3", 700)
	if err := h.sb.Fail(ctx, failed.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	h.rc.next(t)
	if _, err := c.Refund(ctx, refundRequest(paid2, "r-b", 300)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refund(ctx, refundRequest(paid2, "r-c", 250)); err != nil {
		t.Fatal(err)
	}
	h.sb.SetFaults(Faults{RefundFail: true})
	if _, err := c.Refund(ctx, refundRequest(paid2, "r-a", 100)); gatewayCode(t, err) != CodeRefundFailed {
		t.Fatalf("failing refund: %v", err)
	}

	want := Ledger{
		Orders: []LedgerOrder{
			{MerchantNo: testMerchant, OutOrderNo: "order1", PayOrderNo: unpaid.PayOrderNo, Status: lakala.OrderStatusUnpaid, Amount: 300, Payable: true},
			{MerchantNo: testMerchant, OutOrderNo: "order2", PayOrderNo: paid2.PayOrderNo, Status: lakala.OrderStatusRefunded, Amount: 1000,
				Payments: 1, Paid: 1000, Refunded: 550},
			{MerchantNo: testMerchant, OutOrderNo: "order3", PayOrderNo: failed.PayOrderNo, Status: lakala.OrderStatusFailed, Amount: 700},
		},
		Refunds: []LedgerRefund{
			{MerchantNo: testMerchant, OutTradeNo: "r-a", OutOrderNo: "order2", Amount: 100, Applied: 0, State: lakala.TradeStateFail},
			{MerchantNo: testMerchant, OutTradeNo: "r-b", OutOrderNo: "order2", Amount: 300, Applied: 1, State: lakala.TradeStateSuccess},
			{MerchantNo: testMerchant, OutTradeNo: "r-c", OutOrderNo: "order2", Amount: 250, Applied: 1, State: lakala.TradeStateSuccess},
		},
		Foreign: []LedgerOrder{},
	}
	if got := h.sb.Ledger(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Ledger() =\n%+v\nwant\n%+v", got, want)
	}
	status, body := adminDo(t, http.MethodGet, h.srv.URL+"/sandbox/ledger", "")
	var served Ledger
	if status != http.StatusOK || json.Unmarshal(body, &served) != nil || !reflect.DeepEqual(served, want) {
		t.Fatalf("GET /sandbox/ledger: HTTP %d %s", status, body)
	}
	for _, key := range []string{`"out_order_no"`, `"order_status"`, `"total_amount"`, `"auto_refunded"`, `"payable"`, `"trade_state"`, `"applied"`} {
		if !strings.Contains(string(body), key) {
			t.Errorf("ledger JSON lacks %s: %s", key, body)
		}
	}

	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/sandbox/ledger", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("ledger page: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{"<td>order2</td>", "<td>10.00</td>", "<td>5.50</td>", "<td>r-b</td>", "<td>SUCCESS</td>", "6 refunded"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("ledger page lacks %q:\n%s", want, page)
		}
	}

	empty := newHarness(t, Config{})
	status, body = adminDo(t, http.MethodGet, empty.srv.URL+"/sandbox/ledger", "")
	if status != http.StatusOK || strings.TrimSpace(string(body)) != `{"orders":[],"refunds":[],"foreign":[]}` {
		t.Fatalf("empty ledger: HTTP %d %s", status, body)
	}
}

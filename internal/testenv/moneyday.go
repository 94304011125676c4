package testenv

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
)

// MoneyDayOptions are the stack options BuildMoneyDay needs: a processing order without a
// notification is queried at once, and a retried task comes back on the next run.
func MoneyDayOptions() StackOptions {
	return StackOptions{Processor: processor.Config{ReconcileAfter: time.Millisecond, SweepGrace: time.Millisecond}}
}

// DayTotals is what a statement must find for one app (or all), in fen.
type DayTotals struct {
	Payments       int
	Paid           int64
	Refunds        int
	Refunded       int64
	ReviewPayments int
	ReviewAmount   int64
}

// Net is paid − refunded.
func (d DayTotals) Net() int64 { return d.Paid - d.Refunded }

// MoneyDay is a day of money made through the whole stack (API, processor, sandbox, webhook):
// what the daily statement of its Beijing day must show.
type MoneyDay struct {
	Day time.Time // the Beijing day's midnight
	// Apps and Total are the expected totals.
	Apps  map[string]DayTotals
	Total DayTotals
	// Trades are the sandbox's numbers of every movement, by our id (payment order or refund)
	// and, for the payment that landed on a closed order, by its out_order_no.
	Trades map[string]Trade
	// LateOutOrderNo is the cashier order paid after its order was closed (a review case).
	LateOutOrderNo string
}

// Trade is the sandbox's record of one movement of money.
type Trade struct {
	Amount         int64
	TradeNo, LogNo string
	Time           time.Time
}

// SecondApp is BuildMoneyDay's other app.
const SecondApp = "shop_b"

// BuildMoneyDay makes, on a stack built with MoneyDayOptions, the day the statement tests hold
// the statement against:
//
//	test_app: D-PAID 100.00 paid (notification), refunded 30.00 (Lakala's answer) and 20.00
//	          (unknown, then settled by query), a refund of 5.00 Lakala refused; D-QUERIED 50.00
//	          paid, its notification lost, settled by the reconciler's query; D-CLOSED 42.00
//	          closed by the main app, then paid at the cashier anyway (a review case);
//	          D-OPEN 7.00 never paid.
//	shop_b:   B-PAID 25.00 paid and refunded in full.
//
// It avoids the last minute before a Beijing midnight, so the whole day is one day.
func (s *Stack) BuildMoneyDay(t testing.TB) MoneyDay {
	t.Helper()
	AvoidBeijingMidnight(t, 2*time.Minute)
	ctx := context.Background()
	day := MoneyDay{Apps: map[string]DayTotals{}, Trades: map[string]Trade{}}
	keyB := s.NewKey(t, SecondApp)

	paidTrade := func(o Order) Trade {
		view, ok := s.Sandbox.Order(o.OutOrderNo())
		if !ok || len(view.Trades) == 0 {
			t.Fatalf("order %s has no trade at the sandbox", o.MerchantOrderID)
		}
		tr := view.Trades[0]
		at, err := time.ParseInLocation("20060102150405", tr.TradeTime, time.FixedZone("CST", 8*3600))
		if err != nil {
			t.Fatalf("sandbox trade time %q: %v", tr.TradeTime, err)
		}
		return Trade{Amount: int64(tr.TradeAmount), TradeNo: tr.TradeNo, LogNo: tr.LogNo, Time: at}
	}
	refundTrade := func(o Order, refundID string) Trade {
		stored, err := s.Store.Refund(ctx, refundID)
		if err != nil {
			t.Fatal(err)
		}
		view, _ := s.Sandbox.Order(o.OutOrderNo())
		for _, r := range view.Refunds {
			if r.OutTradeNo == stored.OutTradeNo {
				return Trade{Amount: r.Amount, TradeNo: r.TradeNo, LogNo: r.LogNo, Time: r.TradeTime.Truncate(time.Second)}
			}
		}
		t.Fatalf("refund %s is not at the sandbox", refundID)
		return Trade{}
	}
	settle := func(refundID string) {
		Eventually(t, 15*time.Second, "refund "+refundID+" to be final", func() bool {
			s.RunOnce(t)
			task, err := s.Store.TaskFor(ctx, postgres.TaskRefund, refundID)
			return err == nil && task.State != postgres.TaskQueued
		})
	}

	// test_app
	paid := s.PaySucceeded(t, "D-PAID", 10000)
	day.Trades[paid.ID] = paidTrade(paid)
	r1 := s.CreateRefund(t, paid.ID, 3000)
	settle(r1.ID)
	s.RequireRefund(t, r1.ID, "succeeded")
	day.Trades[r1.ID] = refundTrade(paid, r1.ID)
	s.SetFaults(sandbox.Faults{RefundUnknown: sandbox.RefundUnknownSuccess, RefundUnknownQueries: 1})
	r2 := s.CreateRefund(t, paid.ID, 2000)
	settle(r2.ID)
	s.RequireRefund(t, r2.ID, "succeeded")
	day.Trades[r2.ID] = refundTrade(paid, r2.ID)
	s.SetFaults(sandbox.Faults{RefundFail: true})
	r3 := s.CreateRefund(t, paid.ID, 500)
	settle(r3.ID)
	s.RequireRefund(t, r3.ID, "failed")
	s.SetFaults(sandbox.Faults{})

	queried, view := s.Checkout(t, "D-QUERIED", 5000)
	s.SetFaults(sandbox.Faults{DropNotify: true})
	if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.SetFaults(sandbox.Faults{})
	Eventually(t, 10*time.Second, "D-QUERIED settled by query", func() bool {
		s.RunOnce(t)
		o, err := s.Store.Order(ctx, queried.ID)
		return err == nil && o.Status == "succeeded"
	})
	day.Trades[queried.ID] = paidTrade(queried)

	closed, view := s.Checkout(t, "D-CLOSED", 4200)
	if code, body := s.Do(t, http.MethodPost, "/api/v1/payment-orders/D-CLOSED/close?app_id="+s.AppID, s.APIKey, ""); code != http.StatusOK {
		t.Fatalf("close D-CLOSED = %d %s", code, body)
	}
	s.RequireOrder(t, "D-CLOSED", "failed", "closed_by_merchant")
	s.SetFaults(sandbox.Faults{PayAfterClose: true})
	if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
		t.Fatalf("pay D-CLOSED after its close: %v", err)
	}
	s.WaitNotifications(t)
	s.SetFaults(sandbox.Faults{})
	var cases int
	if err := s.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM review_cases WHERE payment_order_id = $1 AND kind = 'paid_after_failed'`, closed.ID).Scan(&cases); err != nil || cases != 1 {
		t.Fatalf("D-CLOSED paid after its close: %d paid_after_failed cases, %v; want 1", cases, err)
	}
	day.LateOutOrderNo = closed.OutOrderNo()
	day.Trades[closed.OutOrderNo()] = paidTrade(closed)

	s.CreateOrder(t, "D-OPEN", 700)
	s.RunOnce(t)

	// shop_b
	body := fmt.Sprintf(`{"app_id":%q,"merchant_order_id":"B-PAID","amount":2500,"order_type":"payment","subject":"VIP"}`, SecondApp)
	if code, resp := s.Do(t, http.MethodPost, "/api/v1/payment-orders", keyB, body); code != http.StatusAccepted {
		t.Fatalf("create B-PAID = %d %s", code, resp)
	}
	s.RunOnce(t)
	var b Order
	code, resp := s.Do(t, http.MethodGet, "/api/v1/payment-orders/B-PAID?app_id="+SecondApp, keyB, "")
	if code != http.StatusOK {
		t.Fatalf("get B-PAID = %d %s", code, resp)
	}
	b = Decode[Order](t, resp)
	bView, ok := s.Sandbox.Order(b.OutOrderNo())
	if !ok {
		t.Fatal("B-PAID has no cashier order")
	}
	if err := s.Sandbox.Pay(ctx, bView.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	day.Trades[b.ID] = paidTrade(b)
	body = fmt.Sprintf(`{"app_id":%q,"payment_order_id":%q,"amount":2500,"reason":"returned"}`, SecondApp, b.ID)
	code, resp = s.Do(t, http.MethodPost, "/api/v1/refund-orders", keyB, body)
	if code != http.StatusAccepted {
		t.Fatalf("refund B-PAID = %d %s", code, resp)
	}
	rb := Decode[Refund](t, resp)
	settle(rb.ID)
	day.Trades[rb.ID] = refundTrade(b, rb.ID)

	day.Apps[s.AppID] = DayTotals{Payments: 2, Paid: 15000, Refunds: 2, Refunded: 5000, ReviewPayments: 1, ReviewAmount: 4200}
	day.Apps[SecondApp] = DayTotals{Payments: 1, Paid: 2500, Refunds: 1, Refunded: 2500}
	day.Total = DayTotals{Payments: 3, Paid: 17500, Refunds: 3, Refunded: 7500, ReviewPayments: 1, ReviewAmount: 4200}
	b8 := day.Trades[paid.ID].Time.In(time.FixedZone("CST", 8*3600))
	day.Day = time.Date(b8.Year(), b8.Month(), b8.Day(), 0, 0, 0, 0, b8.Location())
	return day
}

// AvoidBeijingMidnight waits, if a Beijing midnight is less than margin away, until it has
// passed: a test that makes a day of money must not straddle two days.
func AvoidBeijingMidnight(t testing.TB, margin time.Duration) {
	t.Helper()
	now := time.Now().In(time.FixedZone("CST", 8*3600))
	next := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, now.Location())
	if wait := next.Sub(now); wait < margin {
		t.Logf("waiting %s for Beijing midnight to pass", wait.Round(time.Second))
		time.Sleep(wait + time.Second)
	}
}

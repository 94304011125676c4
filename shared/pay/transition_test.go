package pay_test

import (
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/pay"
)

var allStatuses = []pay.Status{pay.StatusPending, pay.StatusProcessing, pay.StatusSucceeded, pay.StatusFailed}

type move struct{ from, to pay.Status }

func TestCanMovePayment(t *testing.T) {
	allowed := map[move]bool{
		{pay.StatusPending, pay.StatusProcessing}:   true,
		{pay.StatusPending, pay.StatusSucceeded}:    true,
		{pay.StatusPending, pay.StatusFailed}:       true,
		{pay.StatusProcessing, pay.StatusSucceeded}: true,
		{pay.StatusProcessing, pay.StatusFailed}:    true,
	}
	for _, from := range allStatuses {
		for _, to := range allStatuses {
			t.Run(string(from)+"→"+string(to), func(t *testing.T) {
				if got, want := pay.CanMovePayment(from, to), allowed[move{from, to}]; got != want {
					t.Errorf("CanMovePayment(%s, %s) = %v; want %v", from, to, got, want)
				}
			})
		}
	}
	if pay.CanMovePayment("", pay.StatusPending) || pay.CanMovePayment(pay.StatusPending, "paid") {
		t.Error("a status outside the contract's words must never be a legal move")
	}
}

func TestCanMoveRefund(t *testing.T) {
	allowed := map[move]bool{
		{pay.StatusPending, pay.StatusProcessing}:   true,
		{pay.StatusPending, pay.StatusFailed}:       true,
		{pay.StatusProcessing, pay.StatusSucceeded}: true,
		{pay.StatusProcessing, pay.StatusFailed}:    true,
	}
	for _, from := range allStatuses {
		for _, to := range allStatuses {
			t.Run(string(from)+"→"+string(to), func(t *testing.T) {
				if got, want := pay.CanMoveRefund(from, to), allowed[move{from, to}]; got != want {
					t.Errorf("CanMoveRefund(%s, %s) = %v; want %v", from, to, got, want)
				}
			})
		}
	}
}

func TestStatusFinal(t *testing.T) {
	want := map[pay.Status]bool{pay.StatusPending: false, pay.StatusProcessing: false, pay.StatusSucceeded: true, pay.StatusFailed: true}
	for s, final := range want {
		if got := s.Final(); got != final {
			t.Errorf("%s.Final() = %v; want %v", s, got, final)
		}
	}
}

// TestDecideReport enumerates the payment-report decision table (docs/DECISIONS.md).
func TestDecideReport(t *testing.T) {
	paid := pay.GatewayReport{Outcome: pay.OutcomePaid, OrderAmount: 10000, TradeAmount: 10000, TradeNo: "LKL_1"}
	paidNoTrade := pay.GatewayReport{Outcome: pay.OutcomePaid, OrderAmount: 10000, TradeNo: "LKL_1"}
	tradeShort := pay.GatewayReport{Outcome: pay.OutcomePaid, OrderAmount: 10000, TradeAmount: 1, TradeNo: "LKL_1"}
	totalShort := pay.GatewayReport{Outcome: pay.OutcomePaid, OrderAmount: 9999, TradeAmount: 9999, TradeNo: "LKL_1"}
	other := pay.GatewayReport{Outcome: pay.OutcomePaid, OrderAmount: 10000, TradeNo: "LKL_2"}
	failed := pay.GatewayReport{Outcome: pay.OutcomeFinalUnpaid, FailReason: pay.ReasonPaymentFailed}
	expired := pay.GatewayReport{Outcome: pay.OutcomeFinalUnpaid, FailReason: pay.ReasonExpired}
	open := pay.GatewayReport{Outcome: pay.OutcomeOpen}
	notFound := pay.GatewayReport{Outcome: pay.OutcomeNotFound}

	tests := []struct {
		name   string
		status pay.Status
		report pay.GatewayReport
		want   pay.ReportDecision
	}{
		{"processing paid", pay.StatusProcessing, paid, pay.ReportDecision{Succeed: true}},
		{"pending paid", pay.StatusPending, paid, pay.ReportDecision{Succeed: true}},
		{"paid without a trade amount", pay.StatusProcessing, paidNoTrade, pay.ReportDecision{Succeed: true}},
		{"trade amount differs from a matching total", pay.StatusProcessing, tradeShort, pay.ReportDecision{Review: pay.ReviewAmountMismatch, WindDown: pay.ReasonAmountMismatch}},
		{"total differs", pay.StatusProcessing, totalShort, pay.ReportDecision{Review: pay.ReviewAmountMismatch, WindDown: pay.ReasonAmountMismatch}},
		{"failed trade on a final cashier order", pay.StatusProcessing, failed, pay.ReportDecision{WindDown: pay.ReasonPaymentFailed}},
		{"expired at the gateway", pay.StatusProcessing, expired, pay.ReportDecision{WindDown: pay.ReasonExpired}},
		{"still payable", pay.StatusProcessing, open, pay.ReportDecision{}},
		{"not found", pay.StatusPending, notFound, pay.ReportDecision{}},
		{"succeeded, same trade again", pay.StatusSucceeded, paid, pay.ReportDecision{}},
		{"succeeded, another trade paid", pay.StatusSucceeded, other, pay.ReportDecision{Review: pay.ReviewDuplicatePayment}},
		{"succeeded then failed", pay.StatusSucceeded, failed, pay.ReportDecision{}},
		{"failed then paid", pay.StatusFailed, paid, pay.ReportDecision{Review: pay.ReviewPaidAfterFailed}},
		{"failed then wrong amount paid", pay.StatusFailed, tradeShort, pay.ReportDecision{Review: pay.ReviewAmountMismatch}},
		{"failed then failed", pay.StatusFailed, failed, pay.ReportDecision{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := pay.Order{ID: "550e8400-e29b-41d4-a716-446655440000", Status: tc.status, Amount: 10000}
			if tc.status == pay.StatusSucceeded {
				o.GatewayTransactionID = "LKL_1"
			}
			if got := pay.DecideReport(&o, tc.report); got != tc.want {
				t.Errorf("DecideReport(%s, %+v) = %+v; want %+v", tc.status, tc.report, got, tc.want)
			}
		})
	}
}

// Payments are told apart by cashier order: a report of another attempt of a succeeded order is a
// duplicate payment whatever its trade number says, or when it has none.
func TestDecideReportTellsPaymentsApartByAttempt(t *testing.T) {
	o := pay.Order{Status: pay.StatusSucceeded, Amount: 100, PaidAttemptNo: 1, GatewayTransactionID: "T1"}
	tests := []struct {
		attempt int
		tradeNo string
		want    pay.ReportDecision
	}{
		{1, "T1", pay.ReportDecision{}},
		{1, "", pay.ReportDecision{}},
		{2, "", pay.ReportDecision{Review: pay.ReviewDuplicatePayment}},
		{2, "T1", pay.ReportDecision{Review: pay.ReviewDuplicatePayment}},
		{2, "T2", pay.ReportDecision{Review: pay.ReviewDuplicatePayment}},
	}
	for _, tc := range tests {
		r := pay.GatewayReport{AttemptNo: tc.attempt, Outcome: pay.OutcomePaid, OrderAmount: 100, TradeNo: tc.tradeNo}
		if got := pay.DecideReport(&o, r); got != tc.want {
			t.Errorf("attempt %d trade %q: %+v; want %+v", tc.attempt, tc.tradeNo, got, tc.want)
		}
	}
	// An order that succeeded before its attempt was recorded falls back to the trade number; with
	// none on either side it is not the same payment.
	legacy := pay.Order{Status: pay.StatusSucceeded, Amount: 100}
	if got := pay.DecideReport(&legacy, pay.GatewayReport{AttemptNo: 1, Outcome: pay.OutcomePaid, OrderAmount: 100}); got.Review != pay.ReviewDuplicatePayment {
		t.Errorf("legacy order without trade numbers: %+v; want a duplicate_payment case", got)
	}
}

// An order fails only with every attempt settled and none paid, but by a payment of the wrong
// amount; amount_mismatch replaces an earlier closing reason so that this holds.
func TestCheckFail(t *testing.T) {
	a := func(state pay.AttemptState) pay.Attempt { return pay.Attempt{OutOrderNo: "X", State: state} }
	tests := []struct {
		name     string
		attempts []pay.Attempt
		reason   string
		ok       bool
	}{
		{"none", nil, pay.ReasonExpired, true},
		{"settled", []pay.Attempt{a(pay.AttemptClosed), a(pay.AttemptAbsent), a(pay.AttemptLapsed)}, pay.ReasonExpired, true},
		{"one open", []pay.Attempt{a(pay.AttemptClosed), a(pay.AttemptOpen)}, pay.ReasonExpired, false},
		{"one being created", []pay.Attempt{a(pay.AttemptCreating)}, pay.ReasonClosedByMerchant, false},
		{"one paid", []pay.Attempt{a(pay.AttemptPaid)}, pay.ReasonExpired, false},
		{"one paid, of the wrong amount", []pay.Attempt{a(pay.AttemptPaid), a(pay.AttemptClosed)}, pay.ReasonAmountMismatch, true},
	}
	for _, tc := range tests {
		err := pay.CheckFail(&pay.Order{}, tc.attempts, tc.reason)
		if (err == nil) != tc.ok {
			t.Errorf("%s: CheckFail = %v; want ok=%v", tc.name, err, tc.ok)
		}
	}
	o := pay.Order{Status: pay.StatusProcessing}
	if !o.RequestWindDown(pay.ReasonExpired) || o.RequestWindDown(pay.ReasonClosedByMerchant) || o.ClosingReason != pay.ReasonExpired {
		t.Errorf("the first reason must stand: %q", o.ClosingReason)
	}
	if !o.RequestWindDown(pay.ReasonAmountMismatch) || o.ClosingReason != pay.ReasonAmountMismatch {
		t.Errorf("amount_mismatch must replace an earlier reason: %q", o.ClosingReason)
	}
}

func TestAttemptOutOrderNo(t *testing.T) {
	id := "0192f5a4-6b1c-7def-8a12-3456789abcde"
	seen := map[string]bool{}
	for n := 1; n <= 200; n++ {
		no := pay.AttemptOutOrderNo(id, n)
		if len(no) > 32 || no == "" {
			t.Fatalf("attempt %d: out_order_no %q is not 1-32 characters", n, no)
		}
		if seen[no] {
			t.Fatalf("attempt %d: out_order_no %q repeats", n, no)
		}
		seen[no] = true
	}
	if got, want := pay.AttemptOutOrderNo(id, 1), "0192f5a46b1c7def8a123456789abcde"; got != want {
		t.Errorf("attempt 1 = %q; want the id without dashes %q", got, want)
	}
}

func TestOrderStartCheckoutAndFail(t *testing.T) {
	at := time.Date(2024, 12, 3, 10, 30, 0, 0, time.UTC)
	expires := at.Add(30 * time.Minute)
	t.Run("pending starts checkout", func(t *testing.T) {
		o := pay.Order{Status: pay.StatusPending}
		if err := o.StartCheckout("https://pay/1", "PAY1", expires, at); err != nil {
			t.Fatal(err)
		}
		if o.Status != pay.StatusProcessing || o.PaymentURL != "https://pay/1" || o.GatewayOrderNo != "PAY1" || o.ExpiresAt == nil || !o.ExpiresAt.Equal(expires) {
			t.Errorf("order = %+v; want processing with the cashier order", o)
		}
	})
	for _, from := range []pay.Status{pay.StatusProcessing, pay.StatusSucceeded, pay.StatusFailed} {
		t.Run(string(from)+" cannot start checkout", func(t *testing.T) {
			o := pay.Order{Status: from}
			if err := o.StartCheckout("https://pay/1", "PAY1", expires, at); err == nil {
				t.Fatal("StartCheckout succeeded; want an error")
			}
			if o.Status != from || o.PaymentURL != "" {
				t.Errorf("order = %+v; want it unchanged", o)
			}
		})
	}
	for _, from := range []pay.Status{pay.StatusSucceeded, pay.StatusFailed} {
		t.Run(string(from)+" cannot fail", func(t *testing.T) {
			o := pay.Order{Status: from, FailureReason: "before"}
			if err := o.Fail(pay.ReasonExpired, at); err == nil {
				t.Fatal("Fail succeeded; want an error")
			}
			if o.Status != from || o.FailureReason != "before" {
				t.Errorf("order = %+v; want it unchanged", o)
			}
		})
	}
}

func TestRefundTransitions(t *testing.T) {
	at := time.Date(2024, 12, 3, 11, 0, 0, 0, time.UTC)
	r := pay.Refund{Status: pay.StatusPending}
	if err := r.Succeed(pay.RefundTrade{TradeNo: "G1"}, at); err == nil || r.Status != pay.StatusPending || r.GatewayRefundID != "" {
		t.Errorf("pending refund succeeded directly: err %v, %+v", err, r)
	}
	if err := r.MoveTo(pay.StatusProcessing, at); err != nil {
		t.Fatal(err)
	}
	if err := r.Succeed(pay.RefundTrade{TradeNo: "G1", LogNo: "L1"}, at); err != nil || r.Status != pay.StatusSucceeded || r.GatewayRefundID != "G1" ||
		r.GatewayLogNo != "L1" || r.GatewayTradeTime == nil || !r.GatewayTradeTime.Equal(at) {
		t.Errorf("Succeed without a trade time: err %v, %+v; want log_no L1 and the time of the success", err, r)
	}
	if err := r.Fail(pay.ReasonRefundRejected, at); err == nil || r.Status != pay.StatusSucceeded || r.FailureReason != "" {
		t.Errorf("succeeded refund failed: err %v, %+v", err, r)
	}
}

// Every payment or refund that succeeds gets a trade time (the day of the daily statement):
// Lakala's when the report has one, else the time it succeeded here — whichever way it succeeds.
func TestSuccessRecordsTheTradeTime(t *testing.T) {
	at := time.Date(2026, 12, 1, 15, 59, 59, 0, time.UTC)
	lakala := time.Date(2026, 12, 1, 23, 59, 58, 0, time.FixedZone("CST", 8*3600))
	o := pay.Order{Status: pay.StatusProcessing, Amount: 100}
	if err := o.Succeed(pay.GatewayReport{Outcome: pay.OutcomePaid, OrderAmount: 100, TradeNo: "T1", LogNo: "L1", TradeTime: lakala}, at); err != nil {
		t.Fatal(err)
	}
	if o.GatewayLogNo != "L1" || o.GatewayTradeTime == nil || !o.GatewayTradeTime.Equal(lakala) || o.GatewayTradeTime.Location() != time.UTC {
		t.Errorf("order after a report with a trade time: log_no %q, trade time %v", o.GatewayLogNo, o.GatewayTradeTime)
	}
	byHand := pay.Order{Status: pay.StatusProcessing}
	if err := byHand.MoveTo(pay.StatusSucceeded, at); err != nil || byHand.GatewayTradeTime == nil || !byHand.GatewayTradeTime.Equal(at) {
		t.Errorf("order confirmed paid by a person: trade time %v, %v; want %v", byHand.GatewayTradeTime, err, at)
	}
	failed := pay.Order{Status: pay.StatusProcessing}
	if err := failed.Fail(pay.ReasonExpired, at); err != nil || failed.GatewayTradeTime != nil {
		t.Errorf("a failed order has a trade time %v", failed.GatewayTradeTime)
	}
	r := pay.Refund{Status: pay.StatusProcessing}
	if err := r.Succeed(pay.RefundTrade{TradeNo: "R1", LogNo: "RL1", Time: lakala}, at); err != nil || !r.GatewayTradeTime.Equal(lakala) || r.GatewayLogNo != "RL1" {
		t.Errorf("refund: %v, %+v", err, r)
	}
}

func TestCheckRefund(t *testing.T) {
	succeeded := &pay.Order{ID: "o", Status: pay.StatusSucceeded, Amount: 10000}
	tests := []struct {
		name        string
		order       *pay.Order
		outstanding int64
		amount      int64
		wantCode    string // empty: allowed
	}{
		{"whole amount", succeeded, 0, 10000, ""},
		{"exactly the remainder", succeeded, 6000, 4000, ""},
		{"one fen over", succeeded, 6000, 4001, pay.CodeRefundExceeds},
		{"nothing left", succeeded, 10000, 1, pay.CodeRefundExceeds},
		{"processing payment", &pay.Order{Status: pay.StatusProcessing, Amount: 10000}, 0, 1, pay.CodePaymentNotRefundable},
		{"pending payment", &pay.Order{Status: pay.StatusPending, Amount: 10000}, 0, 1, pay.CodePaymentNotRefundable},
		{"failed payment", &pay.Order{Status: pay.StatusFailed, Amount: 10000}, 0, 1, pay.CodePaymentNotRefundable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := pay.CheckRefund(tc.order, tc.outstanding, tc.amount)
			if tc.wantCode == "" {
				if err != nil {
					t.Errorf("CheckRefund = %v; want nil", err)
				}
				return
			}
			if got := pay.AsError(err).Code; err == nil || got != tc.wantCode {
				t.Errorf("CheckRefund = %v; want code %s", err, tc.wantCode)
			}
		})
	}
}

package pay_test

import (
	"encoding/json"
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

func TestOrderSettle(t *testing.T) {
	created := time.Date(2024, 12, 3, 10, 30, 0, 0, time.UTC)
	at := created.Add(5 * time.Minute)
	summary := json.RawMessage(`{"payStatus":"S"}`)
	paid := pay.GatewayReport{Outcome: pay.OutcomePaid, Amount: 10000, TradeNo: "LKL_1", Summary: summary}

	tests := []struct {
		name        string
		status      pay.Status
		report      pay.GatewayReport
		wantChanged bool
		wantStatus  pay.Status
		wantReason  string
		wantTradeNo string
	}{
		{"processing paid right amount", pay.StatusProcessing, paid, true, pay.StatusSucceeded, "", "LKL_1"},
		{"pending paid right amount", pay.StatusPending, paid, true, pay.StatusSucceeded, "", "LKL_1"},
		{"processing paid less", pay.StatusProcessing, pay.GatewayReport{Outcome: pay.OutcomePaid, Amount: 9999, TradeNo: "LKL_2"}, true, pay.StatusFailed, pay.ReasonAmountMismatch, "LKL_2"},
		{"processing paid more", pay.StatusProcessing, pay.GatewayReport{Outcome: pay.OutcomePaid, Amount: 10001}, true, pay.StatusFailed, pay.ReasonAmountMismatch, ""},
		{"processing paid zero", pay.StatusProcessing, pay.GatewayReport{Outcome: pay.OutcomePaid}, true, pay.StatusFailed, pay.ReasonAmountMismatch, ""},
		{"processing failed report", pay.StatusProcessing, pay.GatewayReport{Outcome: pay.OutcomeFailed, Amount: 10000}, true, pay.StatusFailed, pay.ReasonPaymentFailed, ""},
		{"pending failed report", pay.StatusPending, pay.GatewayReport{Outcome: pay.OutcomeFailed}, true, pay.StatusFailed, pay.ReasonPaymentFailed, ""},
		{"processing unpaid", pay.StatusProcessing, pay.GatewayReport{Outcome: pay.OutcomeUnpaid, Amount: 10000, TradeNo: "LKL_3"}, false, pay.StatusProcessing, "", ""},
		{"pending unpaid", pay.StatusPending, pay.GatewayReport{Outcome: pay.OutcomeUnpaid}, false, pay.StatusPending, "", ""},
		{"succeeded paid again", pay.StatusSucceeded, paid, false, pay.StatusSucceeded, "", ""},
		{"succeeded then failed report", pay.StatusSucceeded, pay.GatewayReport{Outcome: pay.OutcomeFailed}, false, pay.StatusSucceeded, "", ""},
		{"failed then paid", pay.StatusFailed, paid, false, pay.StatusFailed, "", ""},
		{"failed then wrong amount", pay.StatusFailed, pay.GatewayReport{Outcome: pay.OutcomePaid, Amount: 1}, false, pay.StatusFailed, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := pay.Order{ID: "550e8400-e29b-41d4-a716-446655440000", Status: tc.status, Amount: 10000, CreatedAt: created, UpdatedAt: created}
			changed, err := o.Settle(tc.report, at)
			if err != nil {
				t.Fatalf("Settle: %v", err)
			}
			if changed != tc.wantChanged {
				t.Errorf("changed = %v; want %v", changed, tc.wantChanged)
			}
			if o.Status != tc.wantStatus {
				t.Errorf("status = %s; want %s", o.Status, tc.wantStatus)
			}
			if o.FailureReason != tc.wantReason {
				t.Errorf("failure_reason = %q; want %q", o.FailureReason, tc.wantReason)
			}
			if o.GatewayTransactionID != tc.wantTradeNo {
				t.Errorf("gateway_transaction_id = %q; want %q", o.GatewayTransactionID, tc.wantTradeNo)
			}
			wantUpdated := created
			if tc.wantChanged {
				wantUpdated = at
			}
			if !o.UpdatedAt.Equal(wantUpdated) {
				t.Errorf("updated_at = %s; want %s", o.UpdatedAt, wantUpdated)
			}
			if !tc.wantChanged && len(o.GatewayCallback) != 0 {
				t.Errorf("an unchanged order took the callback %s", o.GatewayCallback)
			}
			if tc.wantChanged && string(o.GatewayCallback) != string(tc.report.Summary) {
				t.Errorf("callback = %s; want %s", o.GatewayCallback, tc.report.Summary)
			}
		})
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
	if err := r.Succeed("G1", at); err == nil || r.Status != pay.StatusPending || r.GatewayRefundID != "" {
		t.Errorf("pending refund succeeded directly: err %v, %+v", err, r)
	}
	if err := r.MoveTo(pay.StatusProcessing, at); err != nil {
		t.Fatal(err)
	}
	if err := r.Succeed("G1", at); err != nil || r.Status != pay.StatusSucceeded || r.GatewayRefundID != "G1" {
		t.Errorf("Succeed: err %v, %+v", err, r)
	}
	if err := r.Fail(pay.ReasonRefundRejected, at); err == nil || r.Status != pay.StatusSucceeded || r.FailureReason != "" {
		t.Errorf("succeeded refund failed: err %v, %+v", err, r)
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

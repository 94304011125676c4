package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
)

func refundData(n lakala.CashierNotification, outTradeNo string, amount int64) lakala.RefundData {
	return lakala.RefundData{
		MerchantNo:       testMerchant,
		TermNo:           testTerm,
		OutTradeNo:       outTradeNo,
		RefundAmount:     lakala.FenString(amount),
		RefundReason:     "customer asked",
		LocationInfo:     lakala.LocationInfo{RequestIP: "10.0.0.1"},
		OriginOutTradeNo: n.OutOrderNo,
		OriginTradeNo:    n.OrderTradeInfo.TradeNo,
		OriginLogNo:      n.OrderTradeInfo.LogNo,
	}
}

func (h *harness) tradeState(t *testing.T, outTradeNo string) string {
	t.Helper()
	res := must[lakala.TradeQueryResult](t, h, lakala.PathTradeQuery,
		lakala.TradeQueryData{MerchantNo: testMerchant, TermNo: testTerm, OutTradeNo: outTradeNo}, lakala.CodeLabsOK)
	return res.TradeState
}

func TestPartialRefunds(t *testing.T) {
	h := newHarness(t, Config{})
	paid := h.paidOrder(t, "order1", 1000)

	r1 := must[lakala.RefundResult](t, h, lakala.PathRefund, refundData(paid, "refund1", 300), lakala.CodeLabsOK)
	if r1.TradeNo == "" || r1.LogNo == "" || r1.RefundAmount != 300 || r1.TradeTime == "" {
		t.Fatalf("refund result = %+v", r1)
	}
	must[json.RawMessage](t, h, lakala.PathRefund, refundData(paid, "refund2", 701), CodeRefundExceeds)

	again := must[lakala.RefundResult](t, h, lakala.PathRefund, refundData(paid, "refund1", 300), lakala.CodeLabsOK)
	if again != r1 {
		t.Fatalf("repeated refund answered %+v, want the first answer %+v", again, r1)
	}
	if n := h.sb.RefundCount("refund1"); n != 1 {
		t.Fatalf("RefundCount = %d, want 1", n)
	}

	must[lakala.RefundResult](t, h, lakala.PathRefund, refundData(paid, "refund3", 700), lakala.CodeLabsOK)
	if got := h.sb.RefundedTotal("order1"); got != 1000 {
		t.Fatalf("RefundedTotal = %d, want 1000", got)
	}
	must[json.RawMessage](t, h, lakala.PathRefund, refundData(paid, "refund4", 1), CodeRefundExceeds)

	q := h.query(t, "order1")
	if q.OrderStatus != lakala.OrderStatusRefunded || len(q.OrderTradeInfoList) != 3 {
		t.Fatalf("query = %+v", q)
	}
	if newest := q.OrderTradeInfoList[0]; newest.TradeType != lakala.TradeTypeRefund || newest.TradeAmount != 700 {
		t.Fatalf("newest trade = %+v", newest)
	}
	if h.tradeState(t, "refund1") != lakala.TradeStateSuccess {
		t.Fatal("tradequery does not report refund1 as SUCCESS")
	}
}

func TestRefundValidation(t *testing.T) {
	h := newHarness(t, Config{})
	paid := h.paidOrder(t, "order1", 1000)
	tests := []struct {
		name   string
		change func(*lakala.RefundData)
		code   string
	}{
		{"no request_ip", func(d *lakala.RefundData) { d.LocationInfo.RequestIP = "" }, CodeLabsInvalidParam},
		{"no term_no", func(d *lakala.RefundData) { d.TermNo = "" }, CodeLabsInvalidParam},
		{"no out_trade_no", func(d *lakala.RefundData) { d.OutTradeNo = "" }, CodeLabsInvalidParam},
		{"zero amount", func(d *lakala.RefundData) { d.RefundAmount = 0 }, CodeLabsInvalidParam},
		{"one origin id", func(d *lakala.RefundData) { d.OriginTradeNo, d.OriginLogNo = "", "" }, CodeLabsInvalidParam},
		{"origin ids disagree", func(d *lakala.RefundData) { d.OriginLogNo = "66999999999999" }, CodeOriginNotFound},
		{"another merchant of the appid", func(d *lakala.RefundData) { d.MerchantNo = testSibling }, CodeOriginNotFound},
		{"a merchant not of the appid", func(d *lakala.RefundData) { d.MerchantNo = "other" }, CodeLabsInvalidParam},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := refundData(paid, "bad", 100)
			tt.change(&data)
			must[json.RawMessage](t, h, lakala.PathRefund, data, tt.code)
		})
	}
	if got := h.sb.RefundedTotal("order1"); got != 0 {
		t.Fatalf("RefundedTotal = %d after refused refunds", got)
	}
}

func TestRefundUnpaidOrderRefused(t *testing.T) {
	h := newHarness(t, Config{})
	h.create(t, "order1", 1000)
	data := refundData(lakala.CashierNotification{OutOrderNo: "order1"}, "refund1", 100)
	data.OriginTradeNo, data.OriginLogNo = "x", ""
	must[json.RawMessage](t, h, lakala.PathRefund, data, CodeOriginNotFound)
}

func TestRefundFail(t *testing.T) {
	h := newHarness(t, Config{})
	paid := h.paidOrder(t, "order1", 1000)
	h.sb.SetFaults(Faults{RefundFail: true})
	must[json.RawMessage](t, h, lakala.PathRefund, refundData(paid, "refund1", 100), CodeRefundFailed)
	if state := h.tradeState(t, "refund1"); state != lakala.TradeStateFail {
		t.Fatalf("trade_state %s, want FAIL", state)
	}
	if h.sb.RefundCount("refund1") != 0 || h.sb.RefundedTotal("order1") != 0 {
		t.Fatal("a failed refund moved money")
	}
}

func TestRefundUnknownResolvesViaTradeQuery(t *testing.T) {
	tests := []struct {
		outcome   string
		wantState string
		wantTotal int64
	}{
		{RefundUnknownSuccess, lakala.TradeStateSuccess, 100},
		{RefundUnknownFail, lakala.TradeStateFail, 0},
	}
	for _, tt := range tests {
		t.Run(tt.outcome, func(t *testing.T) {
			h := newHarness(t, Config{})
			paid := h.paidOrder(t, "order1", 1000)
			h.sb.SetFaults(Faults{RefundUnknown: tt.outcome, RefundUnknownQueries: 2})
			must[json.RawMessage](t, h, lakala.PathRefund, refundData(paid, "refund1", 100), lakala.CodeProcessingRefund)
			// A retry while unknown hears "processing" again and moves nothing more.
			must[json.RawMessage](t, h, lakala.PathRefund, refundData(paid, "refund1", 100), lakala.CodeProcessingRefund)
			for i := range 2 {
				if state := h.tradeState(t, "refund1"); state != lakala.TradeStateDeal {
					t.Fatalf("query %d: trade_state %s, want DEAL", i+1, state)
				}
			}
			if state := h.tradeState(t, "refund1"); state != tt.wantState {
				t.Fatalf("final trade_state %s, want %s", state, tt.wantState)
			}
			if got := h.sb.RefundedTotal("order1"); got != tt.wantTotal {
				t.Fatalf("RefundedTotal = %d, want %d", got, tt.wantTotal)
			}
		})
	}
}

func TestRefundTimeoutAfterApply(t *testing.T) {
	h := newHarness(t, Config{})
	paid := h.paidOrder(t, "order1", 1000)
	h.sb.SetFaults(Faults{RefundTimeoutAfterApply: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := h.call(t, ctx, lakala.PathRefund, refundData(paid, "refund1", 400))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("refund call: %v, want a timeout", err)
	}
	if n := h.sb.RefundCount("refund1"); n != 1 {
		t.Fatalf("RefundCount = %d, want 1 (applied before the hang-up)", n)
	}
	h.sb.SetFaults(Faults{})
	if state := h.tradeState(t, "refund1"); state != lakala.TradeStateSuccess {
		t.Fatalf("trade_state %s, want SUCCESS", state)
	}
	must[lakala.RefundResult](t, h, lakala.PathRefund, refundData(paid, "refund1", 400), lakala.CodeLabsOK)
	if n, total := h.sb.RefundCount("refund1"), h.sb.RefundedTotal("order1"); n != 1 || total != 400 {
		t.Fatalf("after retry: RefundCount %d, RefundedTotal %d; want 1, 400", n, total)
	}
}

func TestRefundServerErrorAppliesNothing(t *testing.T) {
	h := newHarness(t, Config{})
	paid := h.paidOrder(t, "order1", 1000)
	h.sb.SetFaults(Faults{ErrorRate: 1})
	ans, err := h.call(t, context.Background(), lakala.PathRefund, refundData(paid, "refund1", 100))
	if err != nil || ans.status != http.StatusInternalServerError {
		t.Fatalf("refund: HTTP %d, %v; want 500", ans.status, err)
	}
	h.sb.SetFaults(Faults{})
	if state := h.tradeState(t, "refund1"); state != lakala.TradeStateUnknown {
		t.Fatalf("trade_state %s, want UNKNOWN", state)
	}
	if h.sb.RefundCount("refund1") != 0 {
		t.Fatal("a refund answered with 500 moved money")
	}
}

func TestRefundNeedsSupportRefund(t *testing.T) {
	h := newHarness(t, Config{})
	data := h.createData("order1", 1000)
	data.SupportRefund = 0
	created := must[lakala.CreateOrderResult](t, h, lakala.PathCreateOrder, data, lakala.CodeCashierOK)
	if err := h.sb.Pay(context.Background(), created.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	var n lakala.CashierNotification
	if err := json.Unmarshal(h.rc.next(t).body, &n); err != nil {
		t.Fatal(err)
	}
	must[json.RawMessage](t, h, lakala.PathRefund, refundData(n, "refund1", 100), CodeRefundFailed)
}

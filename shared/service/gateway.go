package service

import (
	"context"
	"encoding/json"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
)

// Gateway is what the service asks of Lakala (lakala.Client implements it).
type Gateway interface {
	CreateCashierOrder(ctx context.Context, in lakala.CreateCashierOrder) (lakala.CreateOrderResult, error)
	QueryCashierOrder(ctx context.Context, outOrderNo string) (lakala.QueryOrderResult, error)
	CloseCashierOrder(ctx context.Context, outOrderNo string) (lakala.CloseOrderResult, error)
	Refund(ctx context.Context, in lakala.RefundRequest) (lakala.RefundAnswer, error)
	QueryRefund(ctx context.Context, api, outTradeNo string) (lakala.RefundAnswer, error)
}

// CallbackSummary is what extra_data.lakala_callback shows of the gateway's word on a payment.
type CallbackSummary struct {
	PayStatus  string `json:"payStatus"`         // "S" success, "F" failure
	Timestamp  string `json:"timestamp"`         // when we received it, RFC 3339 UTC
	Source     string `json:"source"`            // "notification" or "query"
	TradeNo    string `json:"tradeNo,omitempty"` // Lakala trade serial (gateway_transaction_id)
	LogNo      string `json:"logNo,omitempty"`   // needed to refund the payment
	PayOrderNo string `json:"payOrderNo,omitempty"`
	AccTradeNo string `json:"accTradeNo,omitempty"` // Alipay / WeChat transaction id
	TradeTime  string `json:"tradeTime,omitempty"`
	Amount     int64  `json:"amount"`
}

// failReasonOf is the failure_reason a final, unpaid cashier order_status leads to.
func failReasonOf(orderStatus string) string {
	switch orderStatus {
	case lakala.OrderStatusExpired:
		return pay.ReasonExpired
	case lakala.OrderStatusCancelled, lakala.OrderStatusClosed:
		return pay.ReasonClosed
	}
	return pay.ReasonPaymentFailed
}

// ReportFromQuery turns a cashier order query into the gateway's word on that cashier order.
// Status 6 (refunded) counts as paid: it was paid before it was refunded.
func ReportFromQuery(q lakala.QueryOrderResult, now time.Time) pay.GatewayReport {
	var r pay.GatewayReport
	switch {
	case q.OrderStatus == lakala.OrderStatusPaid || q.OrderStatus == lakala.OrderStatusRefunded:
		r.Outcome = pay.OutcomePaid
	case lakala.FinalUnpaidStatus(q.OrderStatus):
		r.Outcome, r.FailReason = pay.OutcomeFinalUnpaid, failReasonOf(q.OrderStatus)
		r.ClosedAtGateway = q.OrderStatus == lakala.OrderStatusClosed || q.OrderStatus == lakala.OrderStatusCancelled
		return r
	default:
		return r // unpaid or paying: still payable
	}
	r.OrderAmount = int64(q.TotalAmount)
	summary := CallbackSummary{PayStatus: lakala.TradeStatusSuccess, Timestamp: pay.FormatTime(now), Source: "query",
		PayOrderNo: q.PayOrderNo, Amount: r.OrderAmount}
	// The list is newest first: take the newest successful PAY trade.
	for _, t := range q.OrderTradeInfoList {
		if t.TradeType != lakala.TradeTypePay || t.TradeStatus != lakala.TradeStatusSuccess {
			continue
		}
		r.TradeNo, r.TradeAmount = t.TradeNo, int64(t.TradeAmount)
		summary.TradeNo, summary.LogNo, summary.AccTradeNo = t.TradeNo, t.LogNo, t.AccTradeNo
		r.LogNo = t.LogNo
		if tt, err := lakala.ParseTime(t.TradeTime); err == nil {
			summary.TradeTime = pay.FormatTime(tt)
			r.TradeTime = tt
		}
		break
	}
	r.Summary, _ = json.Marshal(summary)
	return r
}

// reportFromNotification turns a verified notification into the gateway's word on its cashier
// order.
func reportFromNotification(n lakala.Notification, now time.Time) pay.GatewayReport {
	r := pay.GatewayReport{OrderAmount: n.TotalAmount, TradeAmount: n.TradeAmount, TradeNo: n.TradeNo,
		LogNo: n.LogNo, TradeTime: n.TradeTime}
	switch n.Result {
	case lakala.PaySucceeded:
		r.Outcome = pay.OutcomePaid
	case lakala.PayFinalUnpaid:
		r.Outcome, r.FailReason = pay.OutcomeFinalUnpaid, failReasonOf(n.OrderStatus)
		r.ClosedAtGateway = n.OrderStatus == lakala.OrderStatusClosed || n.OrderStatus == lakala.OrderStatusCancelled
	default:
		return r // nothing final: lakala_callback keeps what it had
	}
	r.Summary, _ = json.Marshal(CallbackSummary{
		PayStatus: n.PayStatus, Timestamp: pay.FormatTime(now), Source: "notification",
		TradeNo: n.TradeNo, LogNo: n.LogNo, PayOrderNo: n.PayOrderNo, AccTradeNo: n.AccTradeNo,
		TradeTime: formatOptional(n.TradeTime), Amount: n.TotalAmount,
	})
	return r
}

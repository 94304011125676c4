package httpapi

import (
	"encoding/json"
	"time"

	"github.com/loomipay/loomipay/shared/pay"
)

// orderView is the order object of the contract. Every field is always present; unknown
// values are null.
type orderView struct {
	ID                   string          `json:"id"`
	AppID                string          `json:"app_id"`
	MerchantOrderID      string          `json:"merchant_order_id"`
	Status               pay.Status      `json:"status"`
	OrderType            string          `json:"order_type"`
	Amount               int64           `json:"amount"`
	Currency             string          `json:"currency"`
	PaymentGateway       string          `json:"payment_gateway"`
	GatewayTransactionID *string         `json:"gateway_transaction_id"`
	Subject              string          `json:"subject"`
	ExtraData            json.RawMessage `json:"extra_data"`
	RefundedAmount       int64           `json:"refunded_amount"`
	FailureReason        *string         `json:"failure_reason"`
	ExpiresAt            *string         `json:"expires_at"`
	CreatedAt            string          `json:"created_at"`
	UpdatedAt            string          `json:"updated_at"`
}

func newOrderView(o *pay.Order) orderView {
	return orderView{
		ID: o.ID, AppID: o.AppID, MerchantOrderID: o.MerchantOrderID, Status: o.Status,
		OrderType: o.OrderType, Amount: o.Amount, Currency: o.Currency, PaymentGateway: o.Gateway,
		GatewayTransactionID: nullable(o.GatewayTransactionID), Subject: o.Subject,
		ExtraData: orderExtraData(o), RefundedAmount: o.RefundedAmount,
		FailureReason: nullable(o.FailureReason), ExpiresAt: nullableTime(o.ExpiresAt),
		CreatedAt: pay.FormatTime(o.CreatedAt), UpdatedAt: pay.FormatTime(o.UpdatedAt),
	}
}

// orderExtraData is the merchant's extra_data plus the keys the service adds: payment_url once
// the cashier order exists, lakala_callback once the gateway reported, review_required and
// review_reason while a review case is open.
func orderExtraData(o *pay.Order) json.RawMessage {
	if o.PaymentURL == "" && len(o.GatewayCallback) == 0 && o.ReviewReason == "" {
		return o.ExtraData
	}
	merged := map[string]json.RawMessage{}
	_ = json.Unmarshal(o.ExtraData, &merged) // stored extra_data is always an object
	if o.PaymentURL != "" {
		merged["payment_url"], _ = json.Marshal(o.PaymentURL)
	}
	if len(o.GatewayCallback) > 0 {
		merged["lakala_callback"] = o.GatewayCallback
	}
	addReview(merged, o.ReviewReason)
	out, _ := json.Marshal(merged)
	return out
}

// addReview shows an open review case on an order or refund.
func addReview(extra map[string]json.RawMessage, reason string) {
	if reason == "" {
		return
	}
	extra["review_required"] = json.RawMessage("true")
	extra["review_reason"], _ = json.Marshal(reason)
}

// refundView is the refund object of the contract.
type refundView struct {
	ID               string          `json:"id"`
	AppID            string          `json:"app_id"`
	PaymentOrderID   string          `json:"payment_order_id"`
	MerchantOrderID  string          `json:"merchant_order_id"`
	MerchantRefundID *string         `json:"merchant_refund_id"`
	Status           pay.Status      `json:"status"`
	Amount           int64           `json:"amount"`
	Currency         string          `json:"currency"`
	Reason           *string         `json:"reason"`
	GatewayRefundID  *string         `json:"gateway_refund_id"`
	ExtraData        json.RawMessage `json:"extra_data"`
	FailureReason    *string         `json:"failure_reason"`
	CreatedAt        string          `json:"created_at"`
	UpdatedAt        string          `json:"updated_at"`
}

func newRefundView(r *pay.Refund) refundView {
	extra := r.ExtraData
	if len(extra) == 0 {
		extra = json.RawMessage("{}")
	}
	if r.ReviewReason != "" {
		merged := map[string]json.RawMessage{}
		_ = json.Unmarshal(extra, &merged)
		addReview(merged, r.ReviewReason)
		extra, _ = json.Marshal(merged)
	}
	return refundView{
		ID: r.ID, AppID: r.AppID, PaymentOrderID: r.PaymentOrderID, MerchantOrderID: r.MerchantOrderID,
		MerchantRefundID: nullable(r.MerchantRefundID), Status: r.Status, Amount: r.Amount,
		Currency: r.Currency, Reason: nullable(r.Reason), GatewayRefundID: nullable(r.GatewayRefundID),
		ExtraData: extra, FailureReason: nullable(r.FailureReason),
		CreatedAt: pay.FormatTime(r.CreatedAt), UpdatedAt: pay.FormatTime(r.UpdatedAt),
	}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullableTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := pay.FormatTime(*t)
	return &s
}

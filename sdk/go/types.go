package loomipay

import (
	"encoding/json"
	"time"
)

// Statuses of orders and refunds.
const (
	StatusPending    = "pending"
	StatusProcessing = "processing"
	StatusSucceeded  = "succeeded"
	StatusFailed     = "failed"
)

// Order is a payment order.
type Order struct {
	ID                   string          `json:"id"`
	AppID                string          `json:"app_id"`
	MerchantOrderID      string          `json:"merchant_order_id"`
	Status               string          `json:"status"`
	OrderType            string          `json:"order_type"`
	Amount               int64           `json:"amount"` // fen
	Currency             string          `json:"currency"`
	PaymentGateway       string          `json:"payment_gateway"`
	GatewayTransactionID *string         `json:"gateway_transaction_id"`
	Subject              string          `json:"subject"`
	ExtraData            json.RawMessage `json:"extra_data"`
	RefundedAmount       int64           `json:"refunded_amount"`
	FailureReason        *string         `json:"failure_reason"`
	ExpiresAt            *time.Time      `json:"expires_at"`
	CreatedAt            time.Time       `json:"created_at"`
	UpdatedAt            time.Time       `json:"updated_at"`
}

// PaymentURL is the hosted cashier URL (extra_data.payment_url), once the order is processing.
func (o Order) PaymentURL() string {
	var extra struct {
		PaymentURL string `json:"payment_url"`
	}
	_ = json.Unmarshal(o.ExtraData, &extra)
	return extra.PaymentURL
}

// Final reports whether the order can no longer change status.
func (o Order) Final() bool { return o.Status == StatusSucceeded || o.Status == StatusFailed }

// Refund is a refund order.
type Refund struct {
	ID               string          `json:"id"`
	AppID            string          `json:"app_id"`
	PaymentOrderID   string          `json:"payment_order_id"`
	MerchantOrderID  string          `json:"merchant_order_id"`
	MerchantRefundID *string         `json:"merchant_refund_id"`
	Status           string          `json:"status"`
	Amount           int64           `json:"amount"`
	Currency         string          `json:"currency"`
	Reason           *string         `json:"reason"`
	GatewayRefundID  *string         `json:"gateway_refund_id"`
	ExtraData        json.RawMessage `json:"extra_data"`
	FailureReason    *string         `json:"failure_reason"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
}

// CreateOrderParams is the body of CreateOrder. AppID defaults to the client's.
type CreateOrderParams struct {
	AppID           string         `json:"app_id"`
	MerchantOrderID string         `json:"merchant_order_id"`
	Amount          int64          `json:"amount"`
	OrderType       string         `json:"order_type"` // "payment" or "recharge"
	Subject         string         `json:"subject"`
	Currency        string         `json:"currency,omitempty"`
	ExtraData       map[string]any `json:"extra_data,omitempty"`
	// ExpiresIn is how long the cashier order can be paid (60 s to 7 days; 0: the service's
	// default). Whole seconds.
	ExpiresIn time.Duration `json:"-"`
}

// CreateRefundParams is the body of CreateRefund: name the payment order by exactly one of
// PaymentOrderID and MerchantOrderID. AppID defaults to the client's.
type CreateRefundParams struct {
	AppID            string `json:"app_id"`
	PaymentOrderID   string `json:"payment_order_id,omitempty"`
	MerchantOrderID  string `json:"merchant_order_id,omitempty"`
	Amount           int64  `json:"amount"`
	Reason           string `json:"reason,omitempty"`
	MerchantRefundID string `json:"merchant_refund_id,omitempty"` // makes the call idempotent (and retryable)
}

// ListOrdersParams filters GET /api/v1/payment-orders. Zero values are not sent.
type ListOrdersParams struct {
	Status        string
	OrderType     string
	CreatedGTE    time.Time
	CreatedLT     time.Time
	Limit         int    // 1–100; 0: the service's default (20)
	StartingAfter string // a page's NextCursor
	EndingBefore  string // a page's PrevCursor
}

// ListRefundsParams filters GET /api/v1/refund-orders.
type ListRefundsParams struct {
	PaymentOrderID  string
	MerchantOrderID string
	Status          string
	Limit           int
	StartingAfter   string
	EndingBefore    string
}

// Page is one page of a list, newest first. HasMore says whether more items lie beyond it in
// the direction of travel.
type Page[T any] struct {
	Data       []T     `json:"data"`
	HasMore    bool    `json:"has_more"`
	NextCursor *string `json:"next_cursor"`
	PrevCursor *string `json:"prev_cursor"`
}

package pay

import (
	"encoding/json"
	"strings"
	"time"
)

// Order types accepted by the API.
const (
	OrderTypePayment  = "payment"
	OrderTypeRecharge = "recharge"
)

// GatewayLakala is the only payment gateway so far.
const GatewayLakala = "lakala"

// Order is a payment order.
type Order struct {
	ID                   string
	AppID                string
	MerchantOrderID      string
	Status               Status
	OrderType            string
	Amount               int64 // fen
	Currency             string
	Gateway              string
	GatewayTransactionID string // Lakala trade_no once paid
	GatewayOrderNo       string // Lakala pay_order_no once the cashier order exists
	// PaidAttemptNo is the attempt (cashier order) whose payment the order succeeded with; 0
	// while it has none. A payment of any other attempt is a duplicate.
	PaidAttemptNo   int
	Subject         string
	ExtraData       json.RawMessage // the merchant's object, as given
	PaymentURL      string
	GatewayCallback json.RawMessage // summary of the gateway's notification (lakala_callback)
	RefundedAmount  int64           // sum of succeeded refunds
	FailureReason   string
	// ClosingReason is set while the order winds down: it fails with this reason once every
	// cashier order of it is settled at the gateway.
	ClosingReason string
	// ReviewReason is the open review case's summary, shown as extra_data.review_reason.
	ReviewReason string
	ResultSeq    int        // seq of the last result message written for the order
	ExpiresAt    *time.Time // set at creation (OrderExpiry); nil only for orders created before it was
	ExpiresIn    int        // seconds a cashier order may be paid, as the merchant asked; 0: ORDER_TTL
	// CheckRequestedAt is when a notification that did not bind asked for our own query of the
	// order (nil: never).
	CheckRequestedAt *time.Time
	// MerchantID is the merchant (Lakala identity) the order was created with: its app's merchant
	// then. Every call about the order and its refunds is signed as it, for the order's whole life.
	MerchantID string
	CreatedAt  time.Time
	UpdatedAt  time.Time

	// GatewayLogNo is Lakala's log_no of the payment (its statement's serial number) and
	// GatewayTradeTime the payment's trade time — or, when Lakala gave none, when the order
	// succeeded here: the day of the daily statement. Set once the order succeeds.
	GatewayLogNo     string
	GatewayTradeTime *time.Time
}

// OrderExpiry is when an order created at createdAt stops being payable: expiresIn seconds after
// its creation when the merchant gave expires_in, else defaultTTL (ORDER_TTL) after it, to the
// second (Lakala's order_efficient_time has seconds). It is the one definition: the API stores it
// when it creates the order, and every cashier order of the order ends then.
func OrderExpiry(createdAt time.Time, expiresIn int, defaultTTL time.Duration) time.Time {
	ttl := defaultTTL
	if expiresIn > 0 {
		ttl = time.Duration(expiresIn) * time.Second
	}
	return createdAt.Add(ttl).Truncate(time.Second)
}

// OutOrderNo is the number the gateway knows the order by: the id without dashes (32 chars,
// Lakala's limit), so it is unique, stable across retries and reversible.
func (o *Order) OutOrderNo() string { return OutOrderNo(o.ID) }

// OutOrderNo turns an order id into the gateway's out_order_no.
func OutOrderNo(id string) string { return strings.ReplaceAll(id, "-", "") }

// OrderIDFromOutOrderNo reverses OutOrderNo; ok is false if s is not one of ours.
func OrderIDFromOutOrderNo(s string) (string, bool) {
	if len(s) != 32 {
		return "", false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", false
		}
	}
	s = strings.ToLower(s)
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:], true
}

// ReturnURL is the browser return address the merchant put in extra_data.return_url, if any.
func (o *Order) ReturnURL() string {
	var extra struct {
		ReturnURL string `json:"return_url"`
	}
	_ = json.Unmarshal(o.ExtraData, &extra) // a non-string return_url is simply not used
	return extra.ReturnURL
}

// Refund is a refund order against a succeeded payment order.
type Refund struct {
	ID               string
	AppID            string
	PaymentOrderID   string
	MerchantOrderID  string // the payment order's
	MerchantRefundID string
	Status           Status
	Amount           int64
	Currency         string
	Reason           string
	GatewayRefundID  string
	// GatewayLogNo and GatewayTradeTime are as on Order: Lakala's log_no of the refund and its
	// trade time (else when it succeeded here). Set once the refund succeeds.
	GatewayLogNo     string
	GatewayTradeTime *time.Time
	OutTradeNo       string          // the refund's number at the gateway; never changes
	ExtraData        json.RawMessage // service notes
	FailureReason    string
	ReviewReason     string // the open review case's summary, shown as extra_data.review_reason
	Submissions      int    // refund calls sent under OutTradeNo
	// RefundAPI is the Lakala refund API the refund was sent through (lakala.RefundAPILabs or
	// RefundAPIRfd), chosen at its first call and kept: it is queried through the same one.
	RefundAPI string
	// SubmittedAt is when its last refund call was sent (nil: never).
	SubmittedAt *time.Time
	ResultSeq   int // seq of the last result message written for the refund
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// RefundOutTradeNo derives a refund's gateway number from its id: fixed for the refund's whole
// life, so a retry after an unknown outcome can only ever refer to the same refund.
func RefundOutTradeNo(id string) string { return strings.ReplaceAll(id, "-", "") }

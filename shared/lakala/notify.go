package lakala

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// PayResult is what a notification says about the payment.
type PayResult int

// Payment outcomes carried by a notification.
const (
	// PayPending: nothing final. A failed PAY trade on an order Lakala still lists as unpaid or
	// paying is PayPending too: the payer may try again on the same cashier page.
	PayPending PayResult = iota
	PaySucceeded
	// PayFinalUnpaid: the cashier order itself is failed, expired, cancelled or closed.
	PayFinalUnpaid
)

func (r PayResult) String() string {
	switch r {
	case PaySucceeded:
		return "succeeded"
	case PayFinalUnpaid:
		return "final_unpaid"
	default:
		return "pending"
	}
}

// FinalUnpaidStatus reports whether a cashier order_status means nobody can pay the order any
// more and it was not paid: failed, expired, cancelled or closed.
func FinalUnpaidStatus(orderStatus string) bool {
	switch orderStatus {
	case OrderStatusFailed, OrderStatusExpired, OrderStatusCancelled, OrderStatusClosed:
		return true
	}
	return false
}

// Notification forms.
const (
	FormCashier = "cashier"
	FormLegacy  = "legacy"
)

// Notification is a payment notification reduced to what the service acts on, whichever
// form Lakala sent it in.
type Notification struct {
	OutOrderNo string // our order number (out_order_no / merchantOrderNo)
	PayOrderNo string
	// MerchantNo and TermNo are the merchant and terminal the notification names (merchant_no /
	// term_no, or merchantNo / termId in the legacy form, whose published sample carries them;
	// empty when absent). out_order_no is unique per merchant only, and one platform key
	// signs every merchant's notifications: only a merchant_no of ours binds a notification to
	// our cashier order.
	MerchantNo, TermNo string
	Result             PayResult
	// PayStatus is "S" / "F" / other, as the guide's lakala_callback.payStatus; empty when
	// the notification is about a refund or cancel trade rather than the payment.
	PayStatus string
	// TotalAmount is the order/trade amount in fen, never payer_amount, which a wallet
	// discount can lower.
	TotalAmount int64
	// TradeAmount is the PAY trade's own trade_amount (0 when absent): a paid order must match
	// it as well as the total.
	TradeAmount int64
	// OrderStatus is the cashier order_status ("" in the legacy form); TradeType and TradeStatus
	// describe the trade the notification carries.
	OrderStatus, TradeType, TradeStatus string
	// TradeNo is trade_no in the cashier form and lklOrderNo in the legacy form.
	TradeNo, LogNo, AccTradeNo string
	TradeTime                  time.Time // zero if absent or unreadable
	Form                       string    // FormCashier or FormLegacy
}

// ErrNotNotification is wrapped when a body is valid JSON but is not a payment
// notification in either known form.
var ErrNotNotification = errors.New("lakala: not a payment notification")

// legacyNotification is the older camelCase form, the one in Lakala's published sample.
type legacyNotification struct {
	PayOrderNo            string `json:"payOrderNo"`
	MerchantOrderNo       string `json:"merchantOrderNo"`
	MerchantNo            string `json:"merchantNo"`
	TermID                string `json:"termId"`
	Amount                Fen    `json:"amount"`
	ActualPayAmount       Fen    `json:"actualPayAmount"`
	PayStatus             string `json:"payStatus"`
	TradeType             string `json:"tradeType"`
	TradeTime             string `json:"tradeTime"`
	LklOrderNo            string `json:"lklOrderNo"`
	LogNo                 string `json:"logNo"`
	AccountChannelOrderNo string `json:"accountChannelOrderNo"`
}

// ParseNotification reads a payment notification body in the snake_case cashier form or
// the older camelCase form. Verify the signature on the same raw bytes first.
func ParseNotification(body []byte) (Notification, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return Notification{}, fmt.Errorf("lakala: notification: %w", err)
	}
	_, cashier := keys["out_order_no"]
	_, legacy := keys["merchantOrderNo"]
	switch {
	case cashier:
		return parseCashierNotification(body)
	case legacy:
		return parseLegacyNotification(body)
	default:
		return Notification{}, fmt.Errorf("%w: neither out_order_no nor merchantOrderNo present", ErrNotNotification)
	}
}

func parseCashierNotification(body []byte) (Notification, error) {
	var in CashierNotification
	if err := json.Unmarshal(body, &in); err != nil {
		return Notification{}, fmt.Errorf("lakala: cashier notification: %w", err)
	}
	if in.OutOrderNo == "" {
		return Notification{}, fmt.Errorf("%w: empty out_order_no", ErrNotNotification)
	}
	trade := in.OrderTradeInfo
	// A refund or cancel trade says nothing about whether the payment failed, and its ids are
	// not the payment's (refunds send the payment's trade_no and log_no as origin ids).
	paymentTrade := trade.TradeType == TradeTypePay || trade.TradeType == ""
	n := Notification{
		OutOrderNo:  in.OutOrderNo,
		PayOrderNo:  in.PayOrderNo,
		MerchantNo:  in.MerchantNo,
		TermNo:      in.TermNo,
		TotalAmount: int64(in.TotalAmount),
		OrderStatus: in.OrderStatus,
		TradeType:   trade.TradeType,
		TradeStatus: trade.TradeStatus,
		Form:        FormCashier,
	}
	if paymentTrade {
		n.TradeNo, n.LogNo, n.AccTradeNo = trade.TradeNo, trade.LogNo, trade.AccTradeNo
		n.TradeTime = parseOptionalTime(trade.TradeTime)
		n.TradeAmount = int64(trade.TradeAmount)
	}
	if n.TotalAmount == 0 {
		n.TotalAmount = int64(trade.TradeAmount)
	}
	switch {
	case in.OrderStatus == OrderStatusPaid || (trade.TradeType == TradeTypePay && trade.TradeStatus == TradeStatusSuccess):
		n.Result, n.PayStatus = PaySucceeded, TradeStatusSuccess
	case FinalUnpaidStatus(in.OrderStatus):
		n.Result, n.PayStatus = PayFinalUnpaid, TradeStatusFailed
	case paymentTrade:
		// A failed PAY trade alone is one failed try: the order stays payable.
		n.Result, n.PayStatus = PayPending, trade.TradeStatus
	default:
		n.Result = PayPending
	}
	return n, nil
}

func parseLegacyNotification(body []byte) (Notification, error) {
	var in legacyNotification
	if err := json.Unmarshal(body, &in); err != nil {
		return Notification{}, fmt.Errorf("lakala: legacy notification: %w", err)
	}
	if in.MerchantOrderNo == "" {
		return Notification{}, fmt.Errorf("%w: empty merchantOrderNo", ErrNotNotification)
	}
	n := Notification{
		OutOrderNo:  in.MerchantOrderNo,
		PayOrderNo:  in.PayOrderNo,
		MerchantNo:  in.MerchantNo,
		TermNo:      in.TermID,
		TotalAmount: int64(in.Amount),
		TradeNo:     in.LklOrderNo,
		LogNo:       in.LogNo,
		AccTradeNo:  in.AccountChannelOrderNo,
		TradeTime:   parseOptionalTime(in.TradeTime),
		TradeType:   in.TradeType,
		TradeStatus: in.PayStatus,
		Form:        FormLegacy,
	}
	paymentTrade := in.TradeType == TradeTypePay || in.TradeType == ""
	if paymentTrade {
		n.PayStatus = in.PayStatus
	}
	// The legacy form carries no order status, so a failed payment there is one failed trade:
	// whether the order itself is final is for a query to say.
	if in.TradeType == TradeTypePay && in.PayStatus == TradeStatusSuccess {
		n.Result = PaySucceeded
	} else {
		n.Result = PayPending
	}
	return n, nil
}

// parseOptionalTime tolerates a missing or odd trade time: it is informational, and
// rejecting the notification for it would only make Lakala retry the same body.
func parseOptionalTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := ParseTime(s)
	if err != nil {
		return time.Time{}
	}
	return t
}

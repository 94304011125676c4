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
	PayPending PayResult = iota
	PaySucceeded
	PayFailed
)

func (r PayResult) String() string {
	switch r {
	case PaySucceeded:
		return "succeeded"
	case PayFailed:
		return "failed"
	default:
		return "pending"
	}
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
	Result     PayResult
	// PayStatus is "S" / "F" / other, as the guide's lakala_callback.payStatus; empty when
	// the notification is about a refund or cancel trade rather than the payment.
	PayStatus string
	// TotalAmount is the order/trade amount in fen, never payer_amount, which a wallet
	// discount can lower.
	TotalAmount int64
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
		TotalAmount: int64(in.TotalAmount),
		Form:        FormCashier,
	}
	if paymentTrade {
		n.TradeNo, n.LogNo, n.AccTradeNo = trade.TradeNo, trade.LogNo, trade.AccTradeNo
		n.TradeTime = parseOptionalTime(trade.TradeTime)
	}
	if n.TotalAmount == 0 {
		n.TotalAmount = int64(trade.TradeAmount)
	}
	switch {
	case in.OrderStatus == OrderStatusPaid || (trade.TradeType == TradeTypePay && trade.TradeStatus == TradeStatusSuccess):
		n.Result, n.PayStatus = PaySucceeded, TradeStatusSuccess
	case in.OrderStatus == OrderStatusFailed || (paymentTrade && trade.TradeStatus == TradeStatusFailed):
		n.Result, n.PayStatus = PayFailed, TradeStatusFailed
	case paymentTrade:
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
		TotalAmount: int64(in.Amount),
		TradeNo:     in.LklOrderNo,
		LogNo:       in.LogNo,
		AccTradeNo:  in.AccountChannelOrderNo,
		TradeTime:   parseOptionalTime(in.TradeTime),
		Form:        FormLegacy,
	}
	paymentTrade := in.TradeType == TradeTypePay || in.TradeType == ""
	if paymentTrade {
		n.PayStatus = in.PayStatus
	}
	switch {
	case in.TradeType == TradeTypePay && in.PayStatus == TradeStatusSuccess:
		n.Result = PaySucceeded
	case paymentTrade && in.PayStatus == TradeStatusFailed:
		n.Result = PayFailed
	default:
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

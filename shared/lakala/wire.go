package lakala

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// API paths, appended to the environment's base URL.
const (
	PathCreateOrder = "/api/v3/ccss/counter/order/special_create"
	PathQueryOrder  = "/api/v3/ccss/counter/order/query"
	PathCloseOrder  = "/api/v3/ccss/counter/order/close"
	PathRefund      = "/api/v3/labs/relation/refund"
	PathTradeQuery  = "/api/v3/labs/query/tradequery"
	// 统一退货, the refund API Lakala recommends for new integrations (the labs refund is
	// frozen: "当前接口不再做功能迭代，建议商户对接新退货接口：统一退货").
	PathRfdRefund      = "/api/v3/rfd/refund_front/refund"
	PathRfdRefundQuery = "/api/v3/rfd/refund_front/refund_query"
)

// APIVersion is the envelope version every v3 request carries.
const APIVersion = "3.0"

// Success codes: the cashier (/api/v3/ccss/…) and labs (/api/v3/labs/…) families differ.
const (
	CodeCashierOK = "000000"
	CodeLabsOK    = "BBS00000"
)

// Codes integrators treat as "still processing, query later" (no source gives their text; like
// every code not listed as a refusal in codes.go, they leave the outcome unknown).
const (
	CodeProcessing          = "BBS10000" // 交易状态为支付中 (official PHP SDK)
	CodeProcessingRefund    = "BBS11105"
	CodeProcessingTradeBusy = "BBS11112"
)

// Cashier order_status values.
const (
	OrderStatusUnpaid    = "0"
	OrderStatusPaying    = "1"
	OrderStatusPaid      = "2"
	OrderStatusFailed    = "3"
	OrderStatusExpired   = "4"
	OrderStatusCancelled = "5"
	OrderStatusRefunded  = "6"
	OrderStatusClosed    = "7"
)

// Trade types and statuses in order_trade_info.
const (
	TradeTypePay    = "PAY"
	TradeTypeRefund = "REFUND"
	TradeTypeCancel = "CANCEL"

	TradeStatusSuccess    = "S"
	TradeStatusFailed     = "F"
	TradeStatusReversed   = "C"
	TradeStatusPreRecord  = "U"
	TradeStatusSendFailed = "X"
	TradeStatusTimeout    = "T"
	TradeStatusProcessing = "P"
)

// trade_state values of the labs trade query (the payment's or the refund's, as trade_main_type
// says) and of 统一退货 (SUCCESS, FAIL, INIT, DEAL and the three below).
const (
	TradeStateSuccess    = "SUCCESS"
	TradeStateFail       = "FAIL"
	TradeStateDeal       = "DEAL"
	TradeStateInit       = "INIT"
	TradeStateCreate     = "CREATE"
	TradeStateUnknown    = "UNKNOWN"
	TradeStateClose      = "CLOSE"
	TradeStatePartRefund = "PART_REFUND"
	TradeStateRefund     = "REFUND"
	// 统一退货 only.
	TradeStateProcessing = "PROCESSING" // 交易已受理: query later
	TradeStateTimeout    = "TIMEOUT"    // 超时未知: query later
	TradeStateException  = "EXCEPTION"  // 异常（失败）
)

// trade_main_type values of the labs trade query: what kind of trade the answer describes.
const (
	TradeMainPreorder = "PREORDER"
	TradeMainMicropay = "MICROPAY"
	TradeMainRefund   = "REFUND"
	TradeMainCancel   = "CANCEL"
)

// NotificationAck is the body that tells Lakala a notification was accepted; anything
// else makes it retry.
var NotificationAck = []byte(`{"code":"SUCCESS","message":"执行成功"}`)

// TimeLayout is Lakala's yyyyMMddHHmmss layout.
const TimeLayout = "20060102150405"

// beijing is fixed rather than loaded so the result never depends on the machine's zone
// database or TZ.
var beijing = time.FixedZone("CST", 8*60*60)

// FormatTime renders t as yyyyMMddHHmmss in Beijing time, as every Lakala time field is.
func FormatTime(t time.Time) string {
	return t.In(beijing).Format(TimeLayout)
}

// ParseTime reads a yyyyMMddHHmmss Beijing time.
func ParseTime(s string) (time.Time, error) {
	t, err := time.ParseInLocation(TimeLayout, s, beijing)
	if err != nil {
		return time.Time{}, fmt.Errorf("lakala: time %q: %w", s, err)
	}
	return t, nil
}

// Fen is an amount in fen that is sent as a JSON number (cashier APIs) and decoded from
// a number or a digit string.
type Fen int64

// FenString is an amount in fen that is sent as a JSON digit string (labs APIs) and
// decoded from a number or a digit string.
type FenString int64

// MarshalJSON sends the amount as a JSON number.
func (f Fen) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, int64(f), 10), nil
}

// UnmarshalJSON accepts 123 or "123".
func (f *Fen) UnmarshalJSON(data []byte) error {
	v, null, err := decodeFen(data)
	if err != nil || null {
		return err
	}
	*f = Fen(v)
	return nil
}

// MarshalJSON sends the amount as a JSON digit string.
func (f FenString) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatInt(int64(f), 10)), nil
}

// UnmarshalJSON accepts 123 or "123".
func (f *FenString) UnmarshalJSON(data []byte) error {
	v, null, err := decodeFen(data)
	if err != nil || null {
		return err
	}
	*f = FenString(v)
	return nil
}

// decodeFen accepts only non-negative integers: fractions, exponents or signs in an
// amount mean the message is not what we think it is, so they are errors, not rounded.
func decodeFen(data []byte) (v int64, null bool, err error) {
	data = bytes.TrimSpace(data)
	if string(data) == "null" {
		return 0, true, nil
	}
	digits := data
	if len(data) >= 2 && data[0] == '"' && data[len(data)-1] == '"' {
		digits = data[1 : len(data)-1]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, false, fmt.Errorf("lakala: amount %s is not a whole number of fen", data)
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false, fmt.Errorf("lakala: amount %s is not a whole number of fen", data)
		}
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("lakala: amount %s: %w", data, err)
	}
	return n, false, nil
}

// Request is the v3 request envelope.
type Request[T any] struct {
	ReqTime    string `json:"req_time"`
	Version    string `json:"version"`
	OutOrgCode string `json:"out_org_code,omitempty"`
	ReqData    T      `json:"req_data"`
}

// NewRequest wraps data in an envelope stamped with now.
func NewRequest[T any](data T, now time.Time) Request[T] {
	return Request[T]{ReqTime: FormatTime(now), Version: APIVersion, ReqData: data}
}

// Response is the v3 response envelope. Use Response[json.RawMessage] to look at the
// code before committing to a resp_data shape, since failures may carry a different one.
type Response[T any] struct {
	Code     string `json:"code"`
	Msg      string `json:"msg"`
	RespTime string `json:"resp_time,omitempty"`
	RespData T      `json:"resp_data"`
}

// CreateOrderData is req_data of special_create.
type CreateOrderData struct {
	OutOrderNo         string `json:"out_order_no"`
	MerchantNo         string `json:"merchant_no"`
	TotalAmount        Fen    `json:"total_amount"`
	OrderEfficientTime string `json:"order_efficient_time"`
	OrderInfo          string `json:"order_info"`
	NotifyURL          string `json:"notify_url"`
	CallbackURL        string `json:"callback_url,omitempty"`
	// SupportRefund must be 1: Lakala's default 0 makes the order unrefundable.
	SupportRefund int    `json:"support_refund"`
	VposID        string `json:"vpos_id,omitempty"`
	// CounterParam is a JSON document carried as a string, e.g. {"pay_mode":"ALIPAY"}.
	CounterParam string `json:"counter_param,omitempty"`
	// CloseOrderAutoRefund "1" refunds a payment that lands after the order was closed.
	CloseOrderAutoRefund string `json:"close_order_auto_refund,omitempty"`
}

// CreateOrderResult is resp_data of special_create.
type CreateOrderResult struct {
	CounterURL         string `json:"counter_url"`
	PayOrderNo         string `json:"pay_order_no"`
	OutOrderNo         string `json:"out_order_no"`
	MerchantNo         string `json:"merchant_no"`
	OrderCreateTime    string `json:"order_create_time,omitempty"`
	OrderEfficientTime string `json:"order_efficient_time,omitempty"`
	TotalAmount        Fen    `json:"total_amount"`
	ChannelID          string `json:"channel_id,omitempty"`
}

// QueryOrderData is req_data of the cashier order query; give OutOrderNo or PayOrderNo.
type QueryOrderData struct {
	MerchantNo string `json:"merchant_no"`
	OutOrderNo string `json:"out_order_no,omitempty"`
	PayOrderNo string `json:"pay_order_no,omitempty"`
}

// OrderTradeInfo is one trade (payment, refund, cancel) on a cashier order, as found in
// the order query's list and in the cashier notification.
type OrderTradeInfo struct {
	TradeNo     string `json:"trade_no"`
	LogNo       string `json:"log_no,omitempty"`
	TradeRefNo  string `json:"trade_ref_no,omitempty"`
	TradeType   string `json:"trade_type"`
	TradeStatus string `json:"trade_status"`
	TradeAmount Fen    `json:"trade_amount"`
	// PayerAmount can be below TradeAmount when a wallet discount applies; compare
	// TradeAmount with the order, never PayerAmount.
	PayerAmount Fen    `json:"payer_amount"`
	TradeTime   string `json:"trade_time,omitempty"`
	AccTradeNo  string `json:"acc_trade_no,omitempty"`
	PayMode     string `json:"pay_mode,omitempty"`
	UserID1     string `json:"user_id1,omitempty"`
	UserID2     string `json:"user_id2,omitempty"`
	BusiType    string `json:"busi_type,omitempty"`
}

// QueryOrderResult is resp_data of the cashier order query.
type QueryOrderResult struct {
	PayOrderNo         string `json:"pay_order_no"`
	OutOrderNo         string `json:"out_order_no"`
	MerchantNo         string `json:"merchant_no,omitempty"`
	TermNo             string `json:"term_no,omitempty"`
	OrderStatus        string `json:"order_status"`
	TotalAmount        Fen    `json:"total_amount"`
	OrderInfo          string `json:"order_info,omitempty"`
	OrderCreateTime    string `json:"order_create_time,omitempty"`
	OrderEfficientTime string `json:"order_efficient_time,omitempty"`
	// OrderTradeInfoList is newest first.
	OrderTradeInfoList []OrderTradeInfo `json:"order_trade_info_list"`
}

// CloseOrderData is req_data of the cashier order close; give OutOrderNo or PayOrderNo.
type CloseOrderData struct {
	MerchantNo string `json:"merchant_no"`
	OutOrderNo string `json:"out_order_no,omitempty"`
	PayOrderNo string `json:"pay_order_no,omitempty"`
}

// CloseOrderResult is resp_data of the cashier order close. Lakala does not document
// it; community SDKs show order_status "7". Re-query after closing rather than trust it.
type CloseOrderResult struct {
	PayOrderNo  string `json:"pay_order_no,omitempty"`
	OutOrderNo  string `json:"out_order_no,omitempty"`
	MerchantNo  string `json:"merchant_no,omitempty"`
	OrderStatus string `json:"order_status,omitempty"`
}

// LocationInfo is the required location_info of labs requests.
type LocationInfo struct {
	RequestIP string `json:"request_ip"`
}

// RefundData is req_data of the labs refund. OutTradeNo identifies the refund and must be
// reused on every retry of the same refund.
type RefundData struct {
	MerchantNo       string       `json:"merchant_no"`
	TermNo           string       `json:"term_no"`
	OutTradeNo       string       `json:"out_trade_no"`
	RefundAmount     FenString    `json:"refund_amount"`
	RefundReason     string       `json:"refund_reason,omitempty"`
	LocationInfo     LocationInfo `json:"location_info"`
	OriginOutTradeNo string       `json:"origin_out_trade_no,omitempty"`
	OriginTradeNo    string       `json:"origin_trade_no,omitempty"`
	OriginLogNo      string       `json:"origin_log_no,omitempty"`
}

// RefundResult is resp_data of the labs refund.
type RefundResult struct {
	OutTradeNo   string    `json:"out_trade_no,omitempty"`
	TradeNo      string    `json:"trade_no"`
	LogNo        string    `json:"log_no,omitempty"`
	AccTradeNo   string    `json:"acc_trade_no,omitempty"`
	RefundAmount FenString `json:"refund_amount"`
	TotalAmount  FenString `json:"total_amount,omitempty"`
	PayerAmount  FenString `json:"payer_amount,omitempty"`
	TradeTime    string    `json:"trade_time,omitempty"`
	TradeState   string    `json:"trade_state,omitempty"`
}

// TradeQueryData is req_data of the labs trade query (used for refunds).
type TradeQueryData struct {
	MerchantNo string `json:"merchant_no"`
	TermNo     string `json:"term_no"`
	OutTradeNo string `json:"out_trade_no,omitempty"`
	TradeNo    string `json:"trade_no,omitempty"`
}

// TradeQueryResult is resp_data of the labs trade query. With a refund's out_trade_no it
// describes the refund: trade_main_type REFUND.
type TradeQueryResult struct {
	MerchantNo     string    `json:"merchant_no,omitempty"`
	OutTradeNo     string    `json:"out_trade_no"`
	TradeNo        string    `json:"trade_no,omitempty"`
	LogNo          string    `json:"log_no,omitempty"`
	AccTradeNo     string    `json:"acc_trade_no,omitempty"`
	TradeMainType  string    `json:"trade_main_type,omitempty"`
	TradeState     string    `json:"trade_state"`
	TradeStateDesc string    `json:"trade_state_desc,omitempty"`
	TotalAmount    FenString `json:"total_amount,omitempty"`
	PayerAmount    FenString `json:"payer_amount,omitempty"`
	TradeTime      string    `json:"trade_time,omitempty"`
}

// RfdRefundData is req_data of 统一退货. Its merchant_no is String(15) and term_no String(8).
// It carries the labs refund's fields, and a notify_url.
type RfdRefundData struct {
	RefundData
	NotifyURL string `json:"notify_url,omitempty"`
}

// RfdRefundQueryData is req_data of the 统一退货 query: the refund's own out_trade_no.
type RfdRefundQueryData struct {
	MerchantNo string `json:"merchant_no"`
	TermNo     string `json:"term_no"`
	OutTradeNo string `json:"out_trade_no,omitempty"`
	TradeNo    string `json:"trade_no,omitempty"`
}

// RfdRefundResult is resp_data of 统一退货 and of its query: the refund's state (a refund
// answered 000000 may still be INIT, DEAL, PROCESSING or TIMEOUT).
type RfdRefundResult struct {
	MerchantNo     string    `json:"merchant_no,omitempty"`
	OutTradeNo     string    `json:"out_trade_no"`
	TradeNo        string    `json:"trade_no,omitempty"`
	LogNo          string    `json:"log_no,omitempty"`
	AccTradeNo     string    `json:"acc_trade_no,omitempty"`
	TradeState     string    `json:"trade_state"`
	RefundAmount   FenString `json:"refund_amount,omitempty"`
	PayerAmount    FenString `json:"payer_amount,omitempty"`
	TradeTime      string    `json:"trade_time,omitempty"`
	ChannelRetDesc string    `json:"channel_ret_desc,omitempty"`
}

// CashierNotification is the snake_case body of a cashier payment notification.
type CashierNotification struct {
	PayOrderNo         string         `json:"pay_order_no"`
	OutOrderNo         string         `json:"out_order_no"`
	MerchantNo         string         `json:"merchant_no"`
	TermNo             string         `json:"term_no,omitempty"`
	TransMerchantNo    string         `json:"trans_merchant_no,omitempty"`
	TransTermNo        string         `json:"trans_term_no,omitempty"`
	OrderStatus        string         `json:"order_status"`
	TotalAmount        Fen            `json:"total_amount"`
	OrderCreateTime    string         `json:"order_create_time,omitempty"`
	OrderEfficientTime string         `json:"order_efficient_time,omitempty"`
	OrderInfo          string         `json:"order_info,omitempty"`
	OrderTradeInfo     OrderTradeInfo `json:"order_trade_info,omitzero"`
}

package sandbox

import (
	"slices"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
)

// order is one cashier order; every field is guarded by Sandbox.mu.
type order struct {
	outOrderNo, payOrderNo string
	merchantNo, termNo     string
	totalAmount            int64
	orderInfo              string
	notifyURL, callbackURL string
	supportRefund          bool
	payMode                string
	status                 string
	closed                 bool
	createdAt, expiresAt   time.Time
	createResult           lakala.CreateOrderResult

	trades   []lakala.OrderTradeInfo // oldest first
	payTrade *lakala.OrderTradeInfo  // the PAY trade, once the payer acted
	refunded int64
	refunds  []*refund

	notifyAttempts []NotifyAttempt
	notifyAcked    bool
	notifyDropped  bool
}

// expireIfDue moves an unpaid order past its order_efficient_time to expired.
func (o *order) expireIfDue(now time.Time) {
	if o.status == lakala.OrderStatusUnpaid && now.After(o.expiresAt) {
		o.status = lakala.OrderStatusExpired
	}
}

func (o *order) queryResult() lakala.QueryOrderResult {
	trades := slices.Clone(o.trades)
	slices.Reverse(trades) // Lakala lists newest first
	if trades == nil {
		trades = []lakala.OrderTradeInfo{}
	}
	return lakala.QueryOrderResult{
		PayOrderNo:         o.payOrderNo,
		OutOrderNo:         o.outOrderNo,
		MerchantNo:         o.merchantNo,
		TermNo:             o.termNo,
		OrderStatus:        o.status,
		TotalAmount:        lakala.Fen(o.totalAmount),
		OrderInfo:          o.orderInfo,
		OrderCreateTime:    lakala.FormatTime(o.createdAt),
		OrderEfficientTime: lakala.FormatTime(o.expiresAt),
		OrderTradeInfoList: trades,
	}
}

// refund is one refund request, keyed by its out_trade_no; guarded by Sandbox.mu.
type refund struct {
	outTradeNo string
	order      *order
	amount     int64
	tradeNo    string
	logNo      string
	tradeTime  time.Time
	// state is the refund's real outcome, which tradequery reports once dealQueries
	// answers of DEAL are used up.
	state       string
	dealQueries int
	applied     int // times the money moved; anything but 0 or 1 is a sandbox bug
	// first is the answer to the first request, repeated to every retry.
	first apiResult
}

// OrderView is a snapshot of an order for tests and the admin endpoint.
type OrderView struct {
	OutOrderNo     string                  `json:"out_order_no"`
	PayOrderNo     string                  `json:"pay_order_no"`
	MerchantNo     string                  `json:"merchant_no"`
	Status         string                  `json:"order_status"`
	TotalAmount    int64                   `json:"total_amount"`
	OrderInfo      string                  `json:"order_info"`
	NotifyURL      string                  `json:"notify_url"`
	CounterURL     string                  `json:"counter_url"`
	SupportRefund  bool                    `json:"support_refund"`
	Closed         bool                    `json:"closed"`
	CreatedAt      time.Time               `json:"created_at"`
	ExpiresAt      time.Time               `json:"expires_at"`
	Trades         []lakala.OrderTradeInfo `json:"trades"`
	RefundedAmount int64                   `json:"refunded_amount"`
	Refunds        []RefundView            `json:"refunds"`
	NotifyAttempts []NotifyAttempt         `json:"notify_attempts"`
	NotifyAcked    bool                    `json:"notify_acked"`
	NotifyDropped  bool                    `json:"notify_dropped"`
}

// RefundView is a snapshot of one refund.
type RefundView struct {
	OutTradeNo string `json:"out_trade_no"`
	TradeNo    string `json:"trade_no"`
	Amount     int64  `json:"amount"`
	State      string `json:"trade_state"`
	Applied    int    `json:"applied"`
}

func (o *order) view() OrderView {
	v := OrderView{
		OutOrderNo:     o.outOrderNo,
		PayOrderNo:     o.payOrderNo,
		MerchantNo:     o.merchantNo,
		Status:         o.status,
		TotalAmount:    o.totalAmount,
		OrderInfo:      o.orderInfo,
		NotifyURL:      o.notifyURL,
		CounterURL:     o.createResult.CounterURL,
		SupportRefund:  o.supportRefund,
		Closed:         o.closed,
		CreatedAt:      o.createdAt,
		ExpiresAt:      o.expiresAt,
		Trades:         slices.Clone(o.trades),
		RefundedAmount: o.refunded,
		NotifyAttempts: slices.Clone(o.notifyAttempts),
		NotifyAcked:    o.notifyAcked,
		NotifyDropped:  o.notifyDropped,
	}
	for _, r := range o.refunds {
		v.Refunds = append(v.Refunds, RefundView{
			OutTradeNo: r.outTradeNo, TradeNo: r.tradeNo, Amount: r.amount, State: r.state, Applied: r.applied,
		})
	}
	return v
}

// Order returns a snapshot of the order with this out_order_no.
func (s *Sandbox) Order(outOrderNo string) (OrderView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[outOrderNo]
	if !ok {
		return OrderView{}, false
	}
	o.expireIfDue(s.now())
	return o.view(), true
}

// RefundCount is how many times the refund with this out_trade_no actually moved money.
func (s *Sandbox) RefundCount(outTradeNo string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.refunds[outTradeNo]; ok {
		return r.applied
	}
	return 0
}

// RefundedTotal is the sum of refunds applied against the order with this out_order_no.
func (s *Sandbox) RefundedTotal(outOrderNo string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.orders[outOrderNo]; ok {
		return o.refunded
	}
	return 0
}

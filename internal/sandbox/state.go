package sandbox

import (
	"slices"
	"strings"
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
	autoRefund             bool // created with close_order_auto_refund "1"
	payMode                string
	status                 string
	closed                 bool
	createdAt, expiresAt   time.Time
	createResult           lakala.CreateOrderResult

	trades       []lakala.OrderTradeInfo // oldest first
	payTrade     *lakala.OrderTradeInfo  // the latest PAY trade, once the payer acted
	refunded     int64                   // auto-refunds included
	autoRefunded int64
	refunds      []*refund

	// history holds the order's state after every change, oldest first, so that a
	// query under Faults.QueryLag can answer with the state as it was a while ago.
	history []orderState

	notifyAttempts []NotifyAttempt
	notifyAcked    bool
	notifyDropped  bool
}

// orderState is what a query can see of an order at one moment.
type orderState struct {
	at     time.Time
	status string
	trades []lakala.OrderTradeInfo // oldest first
}

// record appends the order's current state to its history; every change calls it.
func (o *order) record(now time.Time) {
	o.history = append(o.history, orderState{at: now, status: o.status, trades: slices.Clone(o.trades)})
}

// payable reports whether a payer could pay the order now; the caller has called expireIfDue.
func (o *order) payable(f Faults) bool {
	switch o.status {
	case lakala.OrderStatusUnpaid, lakala.OrderStatusPaying:
		return true
	case lakala.OrderStatusClosed, lakala.OrderStatusExpired:
		return f.PayAfterClose
	}
	return false
}

// expireIfDue moves a payable order past its order_efficient_time to expired.
func (o *order) expireIfDue(now time.Time) {
	if (o.status == lakala.OrderStatusUnpaid || o.status == lakala.OrderStatusPaying) && now.After(o.expiresAt) {
		o.status = lakala.OrderStatusExpired
	}
}

// visible is the order's state as a query sees it at now with the given lag: the
// latest recorded state at least lag old. ok is false when the order itself is newer.
func (o *order) visible(now time.Time, lag time.Duration) (st orderState, ok bool) {
	if lag <= 0 {
		return orderState{at: now, status: o.status, trades: o.trades}, true
	}
	cutoff := now.Add(-lag)
	for i := len(o.history) - 1; i >= 0; i-- {
		if !o.history[i].at.After(cutoff) {
			st = o.history[i]
			if (st.status == lakala.OrderStatusUnpaid || st.status == lakala.OrderStatusPaying) && now.After(o.expiresAt) {
				st.status = lakala.OrderStatusExpired
			}
			return st, true
		}
	}
	return orderState{}, false
}

// lastPayTrade is the newest PAY trade in trades (oldest first), or nil.
func lastPayTrade(trades []lakala.OrderTradeInfo) *lakala.OrderTradeInfo {
	for i := len(trades) - 1; i >= 0; i-- {
		if trades[i].TradeType == lakala.TradeTypePay {
			return &trades[i]
		}
	}
	return nil
}

func (o *order) queryResult(st orderState) lakala.QueryOrderResult {
	trades := slices.Clone(st.trades)
	slices.Reverse(trades) // Lakala lists newest first
	if trades == nil {
		trades = []lakala.OrderTradeInfo{}
	}
	return lakala.QueryOrderResult{
		PayOrderNo:         o.payOrderNo,
		OutOrderNo:         o.outOrderNo,
		MerchantNo:         o.merchantNo,
		TermNo:             o.termNo,
		OrderStatus:        st.status,
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
	api        string // lakala.RefundAPILabs or RefundAPIRfd: how it was asked for
	reason     string // refund_reason as received
	order      *order
	amount     int64
	tradeNo    string
	logNo      string
	tradeTime  time.Time // when the sandbox recorded it, which Faults.QueryLag counts from
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
	OutTradeNo string    `json:"out_trade_no"`
	API        string    `json:"api"`
	Reason     string    `json:"refund_reason"`
	TradeNo    string    `json:"trade_no"`
	LogNo      string    `json:"log_no"`
	TradeTime  time.Time `json:"trade_time"`
	Amount     int64     `json:"amount"`
	State      string    `json:"trade_state"`
	Applied    int       `json:"applied"`
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
			OutTradeNo: r.outTradeNo, API: r.api, Reason: r.reason, TradeNo: r.tradeNo, LogNo: r.logNo, TradeTime: r.tradeTime,
			Amount: r.amount, State: r.state, Applied: r.applied,
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

// Ledger is what the sandbox believes happened to the money: every cashier order and
// every refund request, for tests and for people. It ignores Faults.QueryLag.
type Ledger struct {
	Orders  []LedgerOrder  `json:"orders"`
	Refunds []LedgerRefund `json:"refunds"`
	// Foreign are other merchants' paid cashier orders with our numbers (ForeignNotifyRate):
	// money that is not ours, whose notifications reached us.
	Foreign []LedgerOrder `json:"foreign"`
}

// LedgerOrder is one cashier order in the Ledger.
type LedgerOrder struct {
	OutOrderNo string `json:"out_order_no"`
	PayOrderNo string `json:"pay_order_no"`
	Status     string `json:"order_status"`
	Amount     int64  `json:"total_amount"`
	// Payments counts successful PAY trades (0 or 1 per cashier order).
	Payments int `json:"payments"`
	// Paid is the sum of successful PAY trade amounts.
	Paid int64 `json:"paid"`
	// Refunded is the sum of applied refunds, auto-refunds included.
	Refunded     int64 `json:"refunded"`
	AutoRefunded int64 `json:"auto_refunded"`
	// Closed is true once a close call closed the order.
	Closed bool `json:"closed"`
	// Payable is true when a payer could pay the order now.
	Payable bool `json:"payable"`
}

// LedgerRefund is one refund request (one out_trade_no) in the Ledger.
type LedgerRefund struct {
	OutTradeNo string `json:"out_trade_no"`
	OutOrderNo string `json:"out_order_no"`
	Amount     int64  `json:"amount"`
	// Applied is how many times the money moved: 0 or 1.
	Applied int    `json:"applied"`
	State   string `json:"trade_state"`
}

// Ledger returns the sandbox's ledger, orders sorted by out_order_no and refunds by
// out_trade_no.
func (s *Sandbox) Ledger() Ledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	l := Ledger{Orders: make([]LedgerOrder, 0, len(s.orders)), Refunds: make([]LedgerRefund, 0, len(s.refunds)), Foreign: []LedgerOrder{}}
	for _, o := range s.orders {
		o.expireIfDue(now)
		lo := LedgerOrder{
			OutOrderNo: o.outOrderNo, PayOrderNo: o.payOrderNo, Status: o.status, Amount: o.totalAmount,
			Refunded: o.refunded, AutoRefunded: o.autoRefunded, Closed: o.closed, Payable: o.payable(s.faults),
		}
		for _, t := range o.trades {
			if t.TradeType == lakala.TradeTypePay && t.TradeStatus == lakala.TradeStatusSuccess {
				lo.Payments++
				lo.Paid += int64(t.TradeAmount)
			}
		}
		l.Orders = append(l.Orders, lo)
	}
	for _, o := range s.foreign {
		l.Foreign = append(l.Foreign, LedgerOrder{OutOrderNo: o.outOrderNo, PayOrderNo: o.payOrderNo, Status: o.status,
			Amount: o.totalAmount, Payments: 1, Paid: o.totalAmount})
	}
	for _, r := range s.refunds {
		l.Refunds = append(l.Refunds, LedgerRefund{
			OutTradeNo: r.outTradeNo, OutOrderNo: r.order.outOrderNo, Amount: r.amount, Applied: r.applied, State: r.state,
		})
	}
	slices.SortFunc(l.Orders, func(a, b LedgerOrder) int { return strings.Compare(a.OutOrderNo, b.OutOrderNo) })
	slices.SortFunc(l.Refunds, func(a, b LedgerRefund) int { return strings.Compare(a.OutTradeNo, b.OutTradeNo) })
	return l
}

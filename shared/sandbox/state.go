package sandbox

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/lakala"
)

// order is one cashier order, as it is kept (lkl.orders.state) between the calls that change it.
type order struct {
	OutOrderNo    string                   `json:"out_order_no"`
	PayOrderNo    string                   `json:"pay_order_no"`
	MerchantNo    string                   `json:"merchant_no"`
	TermNo        string                   `json:"term_no"`
	TotalAmount   int64                    `json:"total_amount"`
	OrderInfo     string                   `json:"order_info"`
	NotifyURL     string                   `json:"notify_url"`
	CallbackURL   string                   `json:"callback_url,omitempty"`
	SupportRefund bool                     `json:"support_refund"`
	AutoRefund    bool                     `json:"auto_refund"` // created with close_order_auto_refund "1"
	PayMode       string                   `json:"pay_mode"`
	Status        string                   `json:"status"`
	Closed        bool                     `json:"closed"`
	CreatedAt     time.Time                `json:"created_at"`
	ExpiresAt     time.Time                `json:"expires_at"`
	CreateResult  lakala.CreateOrderResult `json:"create_result"`

	Trades       []lakala.OrderTradeInfo `json:"trades"`              // oldest first
	PayTrade     *lakala.OrderTradeInfo  `json:"pay_trade,omitempty"` // the latest PAY trade, once the payer acted
	Refunded     int64                   `json:"refunded"`            // auto-refunds included
	AutoRefunded int64                   `json:"auto_refunded"`
	Refunds      []string                `json:"refunds,omitempty"` // out_trade_nos, oldest first

	// History holds the order's state after every change, oldest first, so that a query under
	// Faults.QueryLag can answer with the state as it was a while ago.
	History []orderState `json:"history"`

	NotifyAttempts []NotifyAttempt `json:"notify_attempts,omitempty"`
	NotifyAcked    bool            `json:"notify_acked"`
	NotifyDropped  bool            `json:"notify_dropped"`
}

// orderState is what a query can see of an order at one moment.
type orderState struct {
	At     time.Time               `json:"at"`
	Status string                  `json:"status"`
	Trades []lakala.OrderTradeInfo `json:"trades"` // oldest first
}

// record appends the order's current state to its history; every change calls it.
func (o *order) record(now time.Time) {
	o.History = append(o.History, orderState{At: now, Status: o.Status, Trades: slices.Clone(o.Trades)})
}

// payable reports whether a payer could pay the order now; the caller has called expireIfDue.
func (o *order) payable(f Faults) bool {
	switch o.Status {
	case lakala.OrderStatusUnpaid, lakala.OrderStatusPaying:
		return true
	case lakala.OrderStatusClosed, lakala.OrderStatusExpired:
		return f.PayAfterClose
	}
	return false
}

// expireIfDue moves a payable order past its order_efficient_time to expired. Expiry follows from
// the clock alone, so it is applied to every order read and need not be written.
func (o *order) expireIfDue(now time.Time) {
	if (o.Status == lakala.OrderStatusUnpaid || o.Status == lakala.OrderStatusPaying) && now.After(o.ExpiresAt) {
		o.Status = lakala.OrderStatusExpired
	}
}

// visible is the order's state as a query sees it at now with the given lag: the
// latest recorded state at least lag old. ok is false when the order itself is newer.
func (o *order) visible(now time.Time, lag time.Duration) (st orderState, ok bool) {
	if lag <= 0 {
		return orderState{At: now, Status: o.Status, Trades: o.Trades}, true
	}
	cutoff := now.Add(-lag)
	for i := len(o.History) - 1; i >= 0; i-- {
		if !o.History[i].At.After(cutoff) {
			st = o.History[i]
			if (st.Status == lakala.OrderStatusUnpaid || st.Status == lakala.OrderStatusPaying) && now.After(o.ExpiresAt) {
				st.Status = lakala.OrderStatusExpired
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
	trades := slices.Clone(st.Trades)
	slices.Reverse(trades) // Lakala lists newest first
	if trades == nil {
		trades = []lakala.OrderTradeInfo{}
	}
	return lakala.QueryOrderResult{
		PayOrderNo:         o.PayOrderNo,
		OutOrderNo:         o.OutOrderNo,
		MerchantNo:         o.MerchantNo,
		TermNo:             o.TermNo,
		OrderStatus:        st.Status,
		TotalAmount:        lakala.Fen(o.TotalAmount),
		OrderInfo:          o.OrderInfo,
		OrderCreateTime:    lakala.FormatTime(o.CreatedAt),
		OrderEfficientTime: lakala.FormatTime(o.ExpiresAt),
		OrderTradeInfoList: trades,
	}
}

// refund is one refund request, keyed by its merchant and out_trade_no (lkl.refunds.state).
type refund struct {
	OutTradeNo string `json:"out_trade_no"`
	API        string `json:"api"`    // lakala.RefundAPILabs or RefundAPIRfd: how it was asked for
	Reason     string `json:"reason"` // refund_reason as received
	MerchantNo string `json:"merchant_no"`
	OutOrderNo string `json:"out_order_no"` // the cashier order it refunds
	// OrderAmount and AccTradeNo are the refunded payment's, as its answers repeat them.
	OrderAmount int64     `json:"order_amount"`
	AccTradeNo  string    `json:"acc_trade_no"`
	Amount      int64     `json:"amount"`
	TradeNo     string    `json:"trade_no"`
	LogNo       string    `json:"log_no"`
	TradeTime   time.Time `json:"trade_time"` // when the sandbox recorded it, which Faults.QueryLag counts from
	// State is the refund's real outcome, which the queries report once DealQueries answers of
	// DEAL are used up.
	State       string `json:"state"`
	DealQueries int    `json:"deal_queries"`
	Applied     int    `json:"applied"` // times the money moved; anything but 0 or 1 is a sandbox bug
	// First is the answer to the first request, repeated to every retry.
	First storedResult `json:"first"`
}

// storedResult is an apiResult as a refund keeps it: the code, message and resp_data.
type storedResult struct {
	Code string `json:"code,omitempty"`
	Msg  string `json:"msg,omitempty"`
	Data any    `json:"data,omitempty"`
}

func (r storedResult) result() apiResult { return apiResult{code: r.Code, msg: r.Msg, data: r.Data} }

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

func (o *order) view(refunds []refund) OrderView {
	v := OrderView{
		OutOrderNo:     o.OutOrderNo,
		PayOrderNo:     o.PayOrderNo,
		MerchantNo:     o.MerchantNo,
		Status:         o.Status,
		TotalAmount:    o.TotalAmount,
		OrderInfo:      o.OrderInfo,
		NotifyURL:      o.NotifyURL,
		CounterURL:     o.CreateResult.CounterURL,
		SupportRefund:  o.SupportRefund,
		Closed:         o.Closed,
		CreatedAt:      o.CreatedAt,
		ExpiresAt:      o.ExpiresAt,
		Trades:         slices.Clone(o.Trades),
		RefundedAmount: o.Refunded,
		NotifyAttempts: slices.Clone(o.NotifyAttempts),
		NotifyAcked:    o.NotifyAcked,
		NotifyDropped:  o.NotifyDropped,
	}
	for _, r := range refunds {
		v.Refunds = append(v.Refunds, RefundView{
			OutTradeNo: r.OutTradeNo, API: r.API, Reason: r.Reason, TradeNo: r.TradeNo, LogNo: r.LogNo, TradeTime: r.TradeTime,
			Amount: r.Amount, State: r.State, Applied: r.Applied,
		})
	}
	return v
}

// Order returns a snapshot of the cashier order with this out_order_no (of whichever merchant the
// sandbox plays has one).
func (s *Sandbox) Order(outOrderNo string) (OrderView, bool) {
	return s.orderView(context.Background(), `SELECT state FROM lkl.orders WHERE out_order_no = $1 ORDER BY created_at LIMIT 1`, outOrderNo)
}

// orderByPayNo returns a snapshot of the order with this pay_order_no.
func (s *Sandbox) orderByPayNo(payOrderNo string) (OrderView, bool) {
	return s.orderView(context.Background(), `SELECT state FROM lkl.orders WHERE pay_order_no = $1`, payOrderNo)
}

func (s *Sandbox) orderView(ctx context.Context, query string, arg string) (OrderView, bool) {
	o, err := readJSON[order](ctx, s.db, s.sql(query), arg)
	if err != nil {
		if err != pgx.ErrNoRows {
			s.log.Error("sandbox cannot read an order", "error", err)
		}
		return OrderView{}, false
	}
	o.expireIfDue(s.now())
	refunds, err := s.refundsOf(ctx, s.db, o.MerchantNo, o.OutOrderNo)
	if err != nil {
		s.log.Error("sandbox cannot read an order's refunds", "error", err)
	}
	return o.view(refunds), true
}

// RefundCount is how many times the refund with this out_trade_no actually moved money.
func (s *Sandbox) RefundCount(outTradeNo string) int {
	r, err := readJSON[refund](context.Background(), s.db, s.sql(`SELECT state FROM lkl.refunds WHERE out_trade_no = $1`), outTradeNo)
	if err != nil {
		return 0
	}
	return r.Applied
}

// RefundedTotal is the sum of refunds applied against the order with this out_order_no.
func (s *Sandbox) RefundedTotal(outOrderNo string) int64 {
	v, ok := s.Order(outOrderNo)
	if !ok {
		return 0
	}
	return v.RefundedAmount
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
	MerchantNo string `json:"merchant_no"`
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
	MerchantNo string `json:"merchant_no"`
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
	ctx := context.Background()
	l := Ledger{Orders: []LedgerOrder{}, Refunds: []LedgerRefund{}, Foreign: []LedgerOrder{}}
	now, faults := s.now(), s.Faults()
	orders, err := readAllJSON[order](ctx, s.db, s.sql(`SELECT state FROM lkl.orders`))
	if err != nil {
		s.log.Error("sandbox cannot read its ledger", "error", err)
	}
	for _, o := range orders {
		o.expireIfDue(now)
		lo := LedgerOrder{
			MerchantNo: o.MerchantNo, OutOrderNo: o.OutOrderNo, PayOrderNo: o.PayOrderNo, Status: o.Status, Amount: o.TotalAmount,
			Refunded: o.Refunded, AutoRefunded: o.AutoRefunded, Closed: o.Closed, Payable: o.payable(faults),
		}
		for _, t := range o.Trades {
			if t.TradeType == lakala.TradeTypePay && t.TradeStatus == lakala.TradeStatusSuccess {
				lo.Payments++
				lo.Paid += int64(t.TradeAmount)
			}
		}
		l.Orders = append(l.Orders, lo)
	}
	foreign, err := readAllJSON[order](ctx, s.db, s.sql(`SELECT state FROM lkl.foreign_orders`))
	if err != nil {
		s.log.Error("sandbox cannot read its ledger", "error", err)
	}
	for _, o := range foreign {
		l.Foreign = append(l.Foreign, LedgerOrder{MerchantNo: o.MerchantNo, OutOrderNo: o.OutOrderNo, PayOrderNo: o.PayOrderNo, Status: o.Status,
			Amount: o.TotalAmount, Payments: 1, Paid: o.TotalAmount})
	}
	refunds, err := readAllJSON[refund](ctx, s.db, s.sql(`SELECT state FROM lkl.refunds`))
	if err != nil {
		s.log.Error("sandbox cannot read its ledger", "error", err)
	}
	for _, r := range refunds {
		l.Refunds = append(l.Refunds, LedgerRefund{
			MerchantNo: r.MerchantNo, OutTradeNo: r.OutTradeNo, OutOrderNo: r.OutOrderNo, Amount: r.Amount, Applied: r.Applied, State: r.State,
		})
	}
	slices.SortFunc(l.Orders, func(a, b LedgerOrder) int { return strings.Compare(a.OutOrderNo, b.OutOrderNo) })
	slices.SortFunc(l.Refunds, func(a, b LedgerRefund) int { return strings.Compare(a.OutTradeNo, b.OutTradeNo) })
	return l
}

package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
)

var (
	// ErrOrderNotFound means no order has that number.
	ErrOrderNotFound = errors.New("sandbox: no such order")
	// ErrNotPayable means the order's state does not allow the payer's action.
	ErrNotPayable = errors.New("sandbox: order cannot be paid or failed now")
)

var statusNames = map[string]string{
	lakala.OrderStatusUnpaid:    "unpaid",
	lakala.OrderStatusPaying:    "paying",
	lakala.OrderStatusPaid:      "paid",
	lakala.OrderStatusFailed:    "failed",
	lakala.OrderStatusExpired:   "expired",
	lakala.OrderStatusCancelled: "cancelled",
	lakala.OrderStatusRefunded:  "refunded",
	lakala.OrderStatusClosed:    "closed",
}

// yuan renders fen as yuan with two decimals, without going through floats.
func yuan(fen int64) string {
	return fmt.Sprintf("%d.%02d", fen/100, fen%100)
}

var counterTemplate = template.Must(template.New("counter").Parse(`<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><title>Lakala sandbox cashier</title></head>
<body>
<h1>Lakala sandbox cashier</h1>
{{if .Message}}<p class="message">{{.Message}}</p>{{end}}
<dl>
<dt>Subject</dt><dd class="subject">{{.Subject}}</dd>
<dt>Amount</dt><dd class="amount">¥{{.Yuan}}</dd>
<dt>Order</dt><dd class="order">{{.OutOrderNo}} / {{.PayOrderNo}}</dd>
<dt>Status</dt><dd class="status">{{.Status}}</dd>
</dl>
{{if .Payable}}<form method="post" action="/counter/{{.PayOrderNo}}">
<button type="submit" name="action" value="pay">Pay</button>
<button type="submit" name="action" value="fail">Fail</button>
</form>{{end}}
{{if .CallbackURL}}<p><a href="{{.CallbackURL}}">Return to the merchant</a></p>{{end}}
</body>
</html>
`))

type counterPageData struct {
	Subject, Yuan, OutOrderNo, PayOrderNo, Status, Message string
	CallbackURL                                            string
	Payable                                                bool // show the Pay and Fail buttons
}

func (s *Sandbox) counterData(payOrderNo, message string) (counterPageData, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.byPayNo[payOrderNo]
	if !ok {
		return counterPageData{}, false
	}
	o.expireIfDue(s.now())
	return counterPageData{
		Subject: o.orderInfo, Yuan: yuan(o.totalAmount), OutOrderNo: o.outOrderNo,
		PayOrderNo: o.payOrderNo, Status: statusNames[o.status], Message: message,
		CallbackURL: o.callbackURL,
		Payable:     o.payable(s.faults),
	}, true
}

func (s *Sandbox) renderCounter(w http.ResponseWriter, status int, payOrderNo, message string) {
	data, ok := s.counterData(payOrderNo, message)
	if !ok {
		http.Error(w, "no such order", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := counterTemplate.Execute(w, data); err != nil {
		s.log.Error("sandbox cannot render cashier page", "error", err)
	}
}

func (s *Sandbox) counterPage(w http.ResponseWriter, r *http.Request) {
	s.renderCounter(w, http.StatusOK, r.PathValue("payOrderNo"), "")
}

// counterAction is what the Pay and Fail buttons post; scripts may post action=pay|fail
// with Accept: application/json to get JSON back.
func (s *Sandbox) counterAction(w http.ResponseWriter, r *http.Request) {
	payOrderNo := r.PathValue("payOrderNo")
	err := s.act(r.Context(), payOrderNo, r.FormValue("action"))
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		s.writeActionJSON(w, err, func() (OrderView, bool) { return s.orderByPayNo(payOrderNo) })
		return
	}
	status, message := actionOutcome(err)
	if message == "" {
		message = "Done."
	}
	s.renderCounter(w, status, payOrderNo, message)
}

func (s *Sandbox) act(ctx context.Context, payOrderNo, action string) error {
	switch action {
	case "pay":
		return s.Pay(ctx, payOrderNo)
	case "fail":
		return s.Fail(ctx, payOrderNo)
	default:
		return errUnknownAction
	}
}

var errUnknownAction = errors.New("sandbox: action must be pay or fail")

// actionOutcome maps a payer action's error to an HTTP status and a message.
func actionOutcome(err error) (int, string) {
	switch {
	case err == nil:
		return http.StatusOK, ""
	case errors.Is(err, ErrOrderNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, ErrNotPayable):
		return http.StatusConflict, err.Error()
	case errors.Is(err, errUnknownAction):
		return http.StatusBadRequest, err.Error()
	default:
		return http.StatusInternalServerError, err.Error()
	}
}

func (s *Sandbox) writeActionJSON(w http.ResponseWriter, err error, view func() (OrderView, bool)) {
	status, message := actionOutcome(err)
	if err != nil {
		writeJSON(w, status, map[string]string{"error": message})
		return
	}
	v, _ := view()
	writeJSON(w, status, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Sandbox) orderByPayNo(payOrderNo string) (OrderView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.byPayNo[payOrderNo]
	if !ok {
		return OrderView{}, false
	}
	return o.view(), true
}

// Pay is the payer pressing Pay: the order becomes paid and its notification is sent.
// Any unpaid or paying order can be paid, whatever the merchant thinks of it; only a
// close (or expiry) stops it, and not even that under Faults.PayAfterClose.
func (s *Sandbox) Pay(ctx context.Context, payOrderNo string) error {
	return s.settle(ctx, payOrderNo, true)
}

// Fail is the payer's payment failing: a failed PAY trade, and the order becomes failed
// (or stays payable, under Faults.FailedTradePayable); its notification is sent.
func (s *Sandbox) Fail(ctx context.Context, payOrderNo string) error {
	return s.settle(ctx, payOrderNo, false)
}

func (s *Sandbox) settle(ctx context.Context, payOrderNo string, paid bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.byPayNo[payOrderNo]
	if !ok {
		return fmt.Errorf("%w: pay_order_no %s", ErrOrderNotFound, payOrderNo)
	}
	now := s.now()
	o.expireIfDue(now)
	faults := s.faults
	afterClose := false
	switch o.status {
	case lakala.OrderStatusUnpaid, lakala.OrderStatusPaying:
	case lakala.OrderStatusClosed, lakala.OrderStatusExpired:
		afterClose = true
		if !paid || !faults.PayAfterClose {
			return fmt.Errorf("%w: order %s is %s", ErrNotPayable, o.outOrderNo, statusNames[o.status])
		}
	default:
		return fmt.Errorf("%w: order %s is already %s", ErrNotPayable, o.outOrderNo, statusNames[o.status])
	}

	logNo := s.nextID("66", 14)
	trade := lakala.OrderTradeInfo{
		TradeNo:     lakala.FormatTime(now)[:8] + logNo,
		LogNo:       logNo,
		TradeType:   lakala.TradeTypePay,
		TradeStatus: lakala.TradeStatusFailed,
		TradeAmount: lakala.Fen(o.totalAmount),
		PayerAmount: lakala.Fen(o.totalAmount),
		TradeTime:   lakala.FormatTime(now),
		AccTradeNo:  s.nextID(lakala.FormatTime(now)[:8]+"2200", 28),
		PayMode:     o.payMode,
		UserID1:     "2088000000000000",
		BusiType:    "SCPAY",
	}
	switch {
	case paid:
		trade.TradeStatus = lakala.TradeStatusSuccess
		o.status = lakala.OrderStatusPaid
	case faults.FailedTradePayable:
		o.status = lakala.OrderStatusPaying
	default:
		o.status = lakala.OrderStatusFailed
	}
	o.trades = append(o.trades, trade)
	o.payTrade = &trade
	o.record(now)
	s.byTradeNo[trade.TradeNo] = o
	s.byLogNo[trade.LogNo] = o
	s.log.InfoContext(ctx, "sandbox payer acted", "out_order_no", o.outOrderNo, "order_status", o.status)

	// Built before any auto-refund: the notification tells of the payment only.
	body, err := notificationBody(o, trade, now, faults.LegacyNotifyForm)
	if err != nil {
		return fmt.Errorf("sandbox: build notification: %w", err)
	}
	if paid && afterClose && o.autoRefund && faults.AutoRefundAfterClose {
		s.autoRefundPayment(o, trade, now)
	}
	s.startDelivery(o, body, trade.TradeNo, faults)
	return nil
}

// autoRefundPayment refunds a payment that landed after close in full, as
// close_order_auto_refund asks; the caller holds s.mu.
func (s *Sandbox) autoRefundPayment(o *order, pay lakala.OrderTradeInfo, now time.Time) {
	logNo := s.nextID("66", 14)
	amount := int64(pay.TradeAmount)
	o.trades = append(o.trades, lakala.OrderTradeInfo{
		TradeNo:     lakala.FormatTime(now)[:8] + logNo,
		LogNo:       logNo,
		TradeType:   lakala.TradeTypeRefund,
		TradeStatus: lakala.TradeStatusSuccess,
		TradeAmount: lakala.Fen(amount),
		PayerAmount: lakala.Fen(amount),
		TradeTime:   lakala.FormatTime(now),
		PayMode:     o.payMode,
	})
	o.refunded += amount
	o.autoRefunded += amount
	o.status = lakala.OrderStatusRefunded
	o.record(now)
	s.log.Info("sandbox refunded a payment after close", "out_order_no", o.outOrderNo, "amount", amount)
}

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

	"github.com/jackc/pgx/v5"

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
{{if .Payable}}<form method="post">
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
	o, err := readJSON[order](context.Background(), s.db, s.sql(`SELECT state FROM lkl.orders WHERE pay_order_no = $1`), payOrderNo)
	if err != nil {
		if !errors.Is(err, pgx.ErrNoRows) {
			s.log.Error("sandbox cannot read an order", "error", err)
		}
		return counterPageData{}, false
	}
	o.expireIfDue(s.now())
	return counterPageData{
		Subject: o.OrderInfo, Yuan: yuan(o.TotalAmount), OutOrderNo: o.OutOrderNo,
		PayOrderNo: o.PayOrderNo, Status: statusNames[o.Status], Message: message,
		CallbackURL: o.CallbackURL,
		Payable:     o.payable(s.Faults()),
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
	faults := s.Faults()
	notified := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		o, err := s.lockOrderByPayNo(ctx, tx, payOrderNo)
		if err != nil {
			return err
		}
		if o == nil {
			return fmt.Errorf("%w: pay_order_no %s", ErrOrderNotFound, payOrderNo)
		}
		now := s.now()
		o.expireIfDue(now)
		afterClose := false
		switch o.Status {
		case lakala.OrderStatusUnpaid, lakala.OrderStatusPaying:
		case lakala.OrderStatusClosed, lakala.OrderStatusExpired:
			afterClose = true
			if !paid || !faults.PayAfterClose {
				return fmt.Errorf("%w: order %s is %s", ErrNotPayable, o.OutOrderNo, statusNames[o.Status])
			}
		default:
			return fmt.Errorf("%w: order %s is already %s", ErrNotPayable, o.OutOrderNo, statusNames[o.Status])
		}

		logNo, err := s.nextID(ctx, tx, "66", 14)
		if err != nil {
			return err
		}
		accTradeNo, err := s.nextID(ctx, tx, lakala.FormatTime(now)[:8]+"2200", 28)
		if err != nil {
			return err
		}
		trade := lakala.OrderTradeInfo{
			TradeNo:     lakala.FormatTime(now)[:8] + logNo,
			LogNo:       logNo,
			TradeType:   lakala.TradeTypePay,
			TradeStatus: lakala.TradeStatusFailed,
			TradeAmount: lakala.Fen(o.TotalAmount),
			PayerAmount: lakala.Fen(o.TotalAmount),
			TradeTime:   lakala.FormatTime(now),
			AccTradeNo:  accTradeNo,
			PayMode:     o.PayMode,
			UserID1:     "2088000000000000",
			BusiType:    "SCPAY",
		}
		switch {
		case paid:
			trade.TradeStatus = lakala.TradeStatusSuccess
			o.Status = lakala.OrderStatusPaid
		case faults.FailedTradePayable:
			o.Status = lakala.OrderStatusPaying
		default:
			o.Status = lakala.OrderStatusFailed
		}
		o.Trades = append(o.Trades, trade)
		o.PayTrade = &trade
		o.record(now)
		if _, err := tx.Exec(ctx, s.sql(`INSERT INTO lkl.trades (trade_no, log_no, merchant_no, out_order_no) VALUES ($1, $2, $3, $4)`),
			trade.TradeNo, trade.LogNo, o.MerchantNo, o.OutOrderNo); err != nil {
			return err
		}
		s.log.InfoContext(ctx, "sandbox payer acted", "merchant_no", o.MerchantNo, "out_order_no", o.OutOrderNo, "order_status", o.Status)

		// Built before any auto-refund: the notification tells of the payment only.
		body, err := notificationBody(o, trade, now, faults.LegacyNotifyForm)
		if err != nil {
			return fmt.Errorf("sandbox: build notification: %w", err)
		}
		if paid && afterClose && o.AutoRefund && faults.AutoRefundAfterClose {
			if err := s.autoRefundPayment(ctx, tx, o, trade, now); err != nil {
				return err
			}
		}
		if notified, err = s.enqueue(ctx, tx, o, false, body, trade.TradeNo, faults, now); err != nil {
			return err
		}
		return s.saveOrder(ctx, tx, o)
	})
	if err != nil {
		return err
	}
	if notified {
		s.deliverSoon(ctx)
	}
	return nil
}

// autoRefundPayment refunds a payment that landed after close in full, as
// close_order_auto_refund asks.
func (s *Sandbox) autoRefundPayment(ctx context.Context, tx pgx.Tx, o *order, pay lakala.OrderTradeInfo, now time.Time) error {
	logNo, err := s.nextID(ctx, tx, "66", 14)
	if err != nil {
		return err
	}
	amount := int64(pay.TradeAmount)
	o.Trades = append(o.Trades, lakala.OrderTradeInfo{
		TradeNo:     lakala.FormatTime(now)[:8] + logNo,
		LogNo:       logNo,
		TradeType:   lakala.TradeTypeRefund,
		TradeStatus: lakala.TradeStatusSuccess,
		TradeAmount: lakala.Fen(amount),
		PayerAmount: lakala.Fen(amount),
		TradeTime:   lakala.FormatTime(now),
		PayMode:     o.PayMode,
	})
	o.Refunded += amount
	o.AutoRefunded += amount
	o.Status = lakala.OrderStatusRefunded
	o.record(now)
	s.log.Info("sandbox refunded a payment after close", "out_order_no", o.OutOrderNo, "amount", amount)
	return nil
}

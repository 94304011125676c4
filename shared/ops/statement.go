package ops

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
)

// Beijing is China Standard Time (UTC+8, no daylight saving), without needing tzdata. A "day"
// of money is a Beijing day: Lakala's statements are in Beijing time.
var Beijing = time.FixedZone("CST", 8*3600)

// Kinds of statement line.
const (
	LinePayment = "payment" // a payment order that succeeded: money in
	LineRefund  = "refund"  // a refund that succeeded: money out
	// LineReviewPayment is money Lakala took that the ledger holds against no succeeded order:
	// a payment on a failed order, a second payment of a paid order, a payment of the wrong
	// amount. Each is a review case; the money is owed back to the payer (Lakala may return it
	// by itself: its refund is on Lakala's statement, not here).
	LineReviewPayment = "review_payment"
)

// StatementLine is one movement of money on the daily statement.
type StatementLine struct {
	Kind             string    `json:"kind"`
	AppID            string    `json:"app_id"`
	PaymentOrderID   string    `json:"payment_order_id"`
	MerchantOrderID  string    `json:"merchant_order_id"`
	RefundOrderID    string    `json:"refund_order_id,omitempty"`
	MerchantRefundID string    `json:"merchant_refund_id,omitempty"`
	OutNo            string    `json:"out_no"` // the cashier order's out_order_no, or the refund's out_trade_no
	Amount           int64     `json:"amount"` // fen
	TradeNo          string    `json:"trade_no"`
	LogNo            string    `json:"log_no"`
	TradeTime        time.Time `json:"trade_time"`
	ReviewCaseID     int64     `json:"review_case_id,omitempty"`
	// Note says what a review line is and where its case stands.
	Note string `json:"note,omitempty"`
	// MerchantID is the merchant the money moved for (its order's): each merchant's lines are
	// held against that merchant's own statement from Lakala.
	MerchantID string `json:"merchant_id"`
}

// StatementTotals sums a statement (or one app's part of it), in fen.
type StatementTotals struct {
	Payments int   `json:"payments"`
	Paid     int64 `json:"paid"`
	Refunds  int   `json:"refunds"`
	Refunded int64 `json:"refunded"`
	// Net is what the day brought in: Paid − Refunded.
	Net int64 `json:"net"`
	// ReviewPayments is money Lakala took outside the ledger (LineReviewPayment), not in Net.
	ReviewPayments int   `json:"review_payments"`
	ReviewAmount   int64 `json:"review_amount"`
}

func (t *StatementTotals) add(l StatementLine) {
	switch l.Kind {
	case LinePayment:
		t.Payments++
		t.Paid += l.Amount
	case LineRefund:
		t.Refunds++
		t.Refunded += l.Amount
	case LineReviewPayment:
		t.ReviewPayments++
		t.ReviewAmount += l.Amount
	}
	t.Net = t.Paid - t.Refunded
}

// AppTotals is one app's totals.
type AppTotals struct {
	AppID string `json:"app_id"`
	StatementTotals
}

// MerchantTotals is one merchant's totals: what its statement from Lakala must show.
type MerchantTotals struct {
	MerchantID string `json:"merchant_id"`
	StatementTotals
}

// Statement is every payment and refund that moved money on one Beijing day, by Lakala's trade
// time, with Lakala's numbers to hold against its merchant statement, and the totals per app
// and overall.
type Statement struct {
	Date  string    `json:"date"` // YYYY-MM-DD, Beijing
	From  time.Time `json:"from"` // the day's midnight, Beijing
	To    time.Time `json:"to"`   // the next midnight
	AppID string    `json:"app_id,omitempty"`
	// MerchantID, when set, limits the statement to one merchant's money.
	MerchantID string `json:"merchant_id,omitempty"`
	// Lines are in trade time order.
	Lines     []StatementLine  `json:"lines"`
	Apps      []AppTotals      `json:"apps"`
	Merchants []MerchantTotals `json:"merchants"`
	Totals    StatementTotals  `json:"totals"`
}

// ParseDay reads a Beijing day, YYYY-MM-DD, and returns its midnight.
func ParseDay(s string) (time.Time, error) {
	d, err := time.ParseInLocation("2006-01-02", s, Beijing)
	if err != nil {
		return time.Time{}, pay.Invalid("date", "date must be a day like 2026-12-01, not %q", s)
	}
	return d, nil
}

// DayOf is the Beijing day (its midnight) t falls on.
func DayOf(t time.Time) time.Time {
	b := t.In(Beijing)
	return time.Date(b.Year(), b.Month(), b.Day(), 0, 0, 0, 0, Beijing)
}

// What moved money in [$1, $2), of app $3 (empty for every app): the one definition the statement's
// lines and the overview's money totals share. gateway_trade_time is set only when a payment or
// a refund succeeds (Lakala's trade time, else the time of the success) and a success is final.
const (
	paymentsOfDay = `FROM payment_orders p
		WHERE p.gateway_trade_time >= $1 AND p.gateway_trade_time < $2 AND p.status = 'succeeded' AND ($3 = '' OR p.app_id = $3)`
	refundsOfDay = `FROM refund_orders r
		WHERE r.gateway_trade_time >= $1 AND r.gateway_trade_time < $2 AND r.status = 'succeeded' AND ($3 = '' OR r.app_id = $3)`
	// A review case about money Lakala took outside the ledger; its time is the payment's trade
	// time (evidence of cases opened since 0009), else when the case was opened. A case resolved
	// as no_money_moved moved none.
	reviewCaseTime      = `coalesce(CASE WHEN c.evidence ->> 'trade_time' ~ '^\d{4}-\d{2}-\d{2}T' THEN (c.evidence ->> 'trade_time')::timestamptz END, c.opened_at)`
	reviewPaymentsOfDay = `FROM review_cases c
		WHERE c.kind IN ('paid_after_failed', 'duplicate_payment', 'amount_mismatch') AND c.refund_order_id IS NULL
		  AND c.resolution IS DISTINCT FROM 'no_money_moved'
		  AND ` + reviewCaseTime + ` >= $1 AND ` + reviewCaseTime + ` < $2 AND ($3 = '' OR c.app_id = $3)`
	// The amount Lakala reported for the trade (the PAY trade's own amount when given).
	reviewAmount = `coalesce(nullif(c.evidence ->> 'reported_trade_amount', '0')::bigint, (c.evidence ->> 'reported_total_amount')::bigint, 0)`
)

// Statement reads the statement of a Beijing day (its midnight), of one app or (”) every app.
func (o *Ops) Statement(ctx context.Context, a Actor, day time.Time, appID string) (Statement, error) {
	return o.StatementOf(ctx, a, day, appID, "")
}

// StatementOf is Statement of one merchant's money only, when merchantID is set: the lines to
// hold against that merchant's statement from Lakala.
func (o *Ops) StatementOf(ctx context.Context, a Actor, day time.Time, appID, merchantID string) (Statement, error) {
	if err := o.authorize(ctx, a, RoleViewer, "statement", ""); err != nil {
		return Statement{}, err
	}
	day = DayOf(day)
	to := day.AddDate(0, 0, 1)
	st := Statement{Date: day.Format("2006-01-02"), From: day, To: to, AppID: appID, MerchantID: merchantID,
		Lines: []StatementLine{}, Apps: []AppTotals{}, Merchants: []MerchantTotals{}}
	pool := o.store.Pool()
	queries := []struct {
		kind, sql string
	}{
		{LinePayment, `SELECT p.app_id, p.id::text, p.merchant_order_id, '', '',
				coalesce((SELECT a.out_order_no FROM payment_attempts a WHERE a.payment_order_id = p.id AND a.state = 'paid' ORDER BY a.attempt_no LIMIT 1), replace(p.id::text, '-', '')),
				p.amount, coalesce(p.gateway_transaction_id, ''), coalesce(p.gateway_log_no, ''), p.gateway_trade_time, 0::bigint, '', p.merchant_id ` + paymentsOfDay},
		{LineRefund, `SELECT r.app_id, r.payment_order_id::text, coalesce(r.merchant_order_id, ''), r.id::text, coalesce(r.merchant_refund_id, ''),
				r.out_trade_no, r.amount, coalesce(r.gateway_refund_id, ''), coalesce(r.gateway_log_no, ''), r.gateway_trade_time, 0::bigint, '',
				(SELECT p.merchant_id FROM payment_orders p WHERE p.id = r.payment_order_id) ` + refundsOfDay},
		{LineReviewPayment, `SELECT c.app_id, c.payment_order_id::text, (SELECT p.merchant_order_id FROM payment_orders p WHERE p.id = c.payment_order_id), '', '',
				coalesce(c.evidence ->> 'out_order_no', ''), ` + reviewAmount + `, coalesce(c.evidence ->> 'trade_no', ''), coalesce(c.evidence ->> 'log_no', ''),
				` + reviewCaseTime + `, c.id, c.kind || CASE WHEN c.resolved_at IS NULL THEN ' (open)' ELSE ' (resolved: ' || c.resolution || ')' END,
				(SELECT p.merchant_id FROM payment_orders p WHERE p.id = c.payment_order_id) ` + reviewPaymentsOfDay},
	}
	for _, q := range queries {
		rows, err := pool.Query(ctx, q.sql, day, to, appID)
		if err != nil {
			return st, fmt.Errorf("statement %s: %w", q.kind, err)
		}
		lines, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (l StatementLine, err error) {
			l.Kind = q.kind
			err = row.Scan(&l.AppID, &l.PaymentOrderID, &l.MerchantOrderID, &l.RefundOrderID, &l.MerchantRefundID, &l.OutNo,
				&l.Amount, &l.TradeNo, &l.LogNo, &l.TradeTime, &l.ReviewCaseID, &l.Note, &l.MerchantID)
			l.TradeTime = l.TradeTime.In(Beijing)
			return l, err
		})
		if err != nil {
			return st, fmt.Errorf("statement %s: %w", q.kind, err)
		}
		for _, l := range lines {
			if merchantID == "" || l.MerchantID == merchantID {
				st.Lines = append(st.Lines, l)
			}
		}
	}
	sort.SliceStable(st.Lines, func(i, j int) bool { return st.Lines[i].TradeTime.Before(st.Lines[j].TradeTime) })
	apps := map[string]*AppTotals{}
	merchants := map[string]*MerchantTotals{}
	for _, l := range st.Lines {
		if apps[l.AppID] == nil {
			apps[l.AppID] = &AppTotals{AppID: l.AppID}
		}
		if merchants[l.MerchantID] == nil {
			merchants[l.MerchantID] = &MerchantTotals{MerchantID: l.MerchantID}
		}
		apps[l.AppID].add(l)
		merchants[l.MerchantID].add(l)
		st.Totals.add(l)
	}
	for _, t := range apps {
		st.Apps = append(st.Apps, *t)
	}
	sort.Slice(st.Apps, func(i, j int) bool { return st.Apps[i].AppID < st.Apps[j].AppID })
	for _, t := range merchants {
		st.Merchants = append(st.Merchants, *t)
	}
	sort.Slice(st.Merchants, func(i, j int) bool { return st.Merchants[i].MerchantID < st.Merchants[j].MerchantID })
	return st, nil
}

// dayGroup says how day totals are grouped: the SQL that names the group (an app, a merchant) of
// a payment, a refund and a review case.
type dayGroup struct{ payment, refund, review string }

var (
	byApp = dayGroup{payment: "p.app_id", refund: "r.app_id", review: "c.app_id"}
	// A refund's or review case's merchant is its order's.
	byMerchant = dayGroup{payment: "p.merchant_id",
		refund: "(SELECT p.merchant_id FROM payment_orders p WHERE p.id = r.payment_order_id)",
		review: "(SELECT p.merchant_id FROM payment_orders p WHERE p.id = c.payment_order_id)"}
)

// dayTotalsBy sums what moved money in [from, to) per group, with the statement's own
// definitions (the overview's money; a test holds it equal to the statement's totals).
func dayTotalsBy(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, from, to time.Time, by dayGroup) (map[string]*StatementTotals, error) {
	groups := map[string]*StatementTotals{}
	for _, part := range []struct {
		sql string
		put func(t *StatementTotals, n int, sum int64)
	}{
		{`SELECT ` + by.payment + `, count(*), coalesce(sum(p.amount), 0) ` + paymentsOfDay + ` GROUP BY 1`,
			func(t *StatementTotals, n int, sum int64) { t.Payments, t.Paid = n, sum }},
		{`SELECT ` + by.refund + `, count(*), coalesce(sum(r.amount), 0) ` + refundsOfDay + ` GROUP BY 1`,
			func(t *StatementTotals, n int, sum int64) { t.Refunds, t.Refunded = n, sum }},
		{`SELECT ` + by.review + `, count(*), coalesce(sum(` + reviewAmount + `), 0) ` + reviewPaymentsOfDay + ` GROUP BY 1`,
			func(t *StatementTotals, n int, sum int64) { t.ReviewPayments, t.ReviewAmount = n, sum }},
	} {
		rows, err := q.Query(ctx, part.sql, from, to, "")
		if err != nil {
			return nil, fmt.Errorf("day totals: %w", err)
		}
		var id string
		var n int
		var sum int64
		if _, err := pgx.ForEachRow(rows, []any{&id, &n, &sum}, func() error {
			if groups[id] == nil {
				groups[id] = &StatementTotals{}
			}
			part.put(groups[id], n, sum)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("day totals: %w", err)
		}
	}
	for _, t := range groups {
		t.Net = t.Paid - t.Refunded
	}
	return groups, nil
}

// merchantDayTotals is dayTotalsBy merchant (the overview's money by merchant), by merchant id.
func merchantDayTotals(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, from, to time.Time) ([]MerchantTotals, error) {
	groups, err := dayTotalsBy(ctx, q, from, to, byMerchant)
	if err != nil {
		return nil, err
	}
	out := make([]MerchantTotals, 0, len(groups))
	for id, t := range groups {
		out = append(out, MerchantTotals{MerchantID: id, StatementTotals: *t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MerchantID < out[j].MerchantID })
	return out, nil
}

// dayTotals is dayTotalsBy app, by app id, and the day's total.
func dayTotals(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, from, to time.Time) ([]AppTotals, StatementTotals, error) {
	groups, err := dayTotalsBy(ctx, q, from, to, byApp)
	if err != nil {
		return nil, StatementTotals{}, err
	}
	var out []AppTotals
	var total StatementTotals
	for id, t := range groups {
		total.Payments += t.Payments
		total.Paid += t.Paid
		total.Refunds += t.Refunds
		total.Refunded += t.Refunded
		total.ReviewPayments += t.ReviewPayments
		total.ReviewAmount += t.ReviewAmount
		out = append(out, AppTotals{AppID: id, StatementTotals: *t})
	}
	total.Net = total.Paid - total.Refunded
	sort.Slice(out, func(i, j int) bool { return out[i].AppID < out[j].AppID })
	return out, total, nil
}

// StatementCSVHeader is the statement CSV's first line.
var StatementCSVHeader = []string{"kind", "trade_time", "app_id", "amount_yuan", "lakala_trade_no", "lakala_log_no", "out_no",
	"payment_order_id", "merchant_order_id", "refund_order_id", "merchant_refund_id", "review_case_id", "note", "merchant_id"}

// WriteStatementCSV writes the statement as CSV: one line per movement (amounts in yuan, times
// in Beijing time, RFC 3339), then the totals per app and overall as lines of kind
// "total_paid", "total_refunded", "total_net" and "total_review" (app_id empty: every app).
func WriteStatementCSV(w io.Writer, st Statement) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(StatementCSVHeader); err != nil {
		return err
	}
	for _, l := range st.Lines {
		rc := ""
		if l.ReviewCaseID != 0 {
			rc = strconv.FormatInt(l.ReviewCaseID, 10)
		}
		if err := cw.Write([]string{l.Kind, l.TradeTime.In(Beijing).Format(time.RFC3339), safeCell(l.AppID), yuan(l.Amount), safeCell(l.TradeNo),
			safeCell(l.LogNo), safeCell(l.OutNo), l.PaymentOrderID, safeCell(l.MerchantOrderID), l.RefundOrderID, safeCell(l.MerchantRefundID), rc, l.Note, l.MerchantID}); err != nil {
			return err
		}
	}
	totals := append([]AppTotals{}, st.Apps...)
	totals = append(totals, AppTotals{StatementTotals: st.Totals})
	for _, t := range totals {
		for _, row := range [][2]string{
			{"total_paid", fmt.Sprintf("%d payment(s)", t.Payments)}, {"total_refunded", fmt.Sprintf("%d refund(s)", t.Refunds)},
			{"total_net", "paid − refunded"}, {"total_review", fmt.Sprintf("%d payment(s) outside the ledger, in review", t.ReviewPayments)},
		} {
			amount := map[string]int64{"total_paid": t.Paid, "total_refunded": t.Refunded, "total_net": t.Net, "total_review": t.ReviewAmount}[row[0]]
			if err := cw.Write([]string{row[0], st.Date, safeCell(t.AppID), yuan(amount), "", "", "", "", "", "", "", "", row[1], st.MerchantID}); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// safeCell guards a CSV cell of text that came from outside (a main app's ids or subject,
// Lakala's numbers) against spreadsheet formulas: one a spreadsheet would evaluate (starting
// with =, +, -, @, a tab or a carriage return) gets a leading apostrophe. Amounts and times are
// ours and are written as they are.
func safeCell(c string) string {
	if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
		return "'" + c
	}
	return c
}

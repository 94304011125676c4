package ops_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/ops"
)

// TestStatementReconcilesWithTheLedger: a day of money made through the whole money path
// (payments by notification and by query, partial refunds answered and settled by query, a
// refused refund, a payment that landed after its order was closed, a second app) is on the
// statement of its Beijing day, line by line with Lakala's own numbers, and every total agrees
// with the ledger to the fen; the overview's money of the day is the statement's totals.
func TestStatementReconcilesWithTheLedger(t *testing.T) {
	s := testenv.NewStack(t, testenv.MoneyDayOptions())
	ctx := context.Background()
	o := ops.New(s.Service).WithPayments(s.Processor.Payments())
	day := s.BuildMoneyDay(t)

	st, err := o.Statement(ctx, viewer, day.Day, "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Date != day.Day.Format("2006-01-02") || !st.From.Equal(day.Day) || st.To.Sub(st.From) != 24*time.Hour {
		t.Errorf("statement of %s covers %s [%v, %v)", day.Day, st.Date, st.From, st.To)
	}
	checkTotals(t, "every app", st.Totals, day.Total)
	if len(st.Apps) != 2 {
		t.Fatalf("apps %+v; want %s and %s", st.Apps, s.AppID, testenv.SecondApp)
	}
	for _, a := range st.Apps {
		checkTotals(t, a.AppID, a.StatementTotals, day.Apps[a.AppID])
	}

	// Each line carries Lakala's numbers of its trade, as the sandbox made them.
	if len(st.Lines) != day.Total.Payments+day.Total.Refunds+day.Total.ReviewPayments {
		t.Fatalf("%d lines: %+v", len(st.Lines), st.Lines)
	}
	for i, l := range st.Lines {
		key := l.PaymentOrderID
		switch l.Kind {
		case ops.LineRefund:
			key = l.RefundOrderID
		case ops.LineReviewPayment:
			key = l.OutNo
			if l.OutNo != day.LateOutOrderNo || l.ReviewCaseID == 0 || l.MerchantOrderID != "D-CLOSED" {
				t.Errorf("review line %+v; want the payment of D-CLOSED after its close", l)
			}
		}
		want, ok := day.Trades[key]
		if !ok {
			t.Errorf("line %+v is no movement of the day", l)
			continue
		}
		if l.Amount != want.Amount || l.TradeNo != want.TradeNo || l.LogNo != want.LogNo || !l.TradeTime.Equal(want.Time) || l.LogNo == "" {
			t.Errorf("line %s %s: amount %d, trade_no %q, log_no %q, time %v; Lakala's: %d, %q, %q, %v",
				l.Kind, key, l.Amount, l.TradeNo, l.LogNo, l.TradeTime, want.Amount, want.TradeNo, want.LogNo, want.Time)
		}
		if i > 0 && l.TradeTime.Before(st.Lines[i-1].TradeTime) {
			t.Errorf("line %d is out of trade time order", i)
		}
		if l.TradeTime.Location() != ops.Beijing {
			t.Errorf("line time %v is not in Beijing time", l.TradeTime)
		}
	}

	// The ledger: every succeeded order's amount, every order's refunded_amount.
	var paid, refunded int64
	if err := s.Store.Pool().QueryRow(ctx, `SELECT coalesce(sum(amount) FILTER (WHERE status = 'succeeded'), 0), coalesce(sum(refunded_amount), 0)
		FROM payment_orders`).Scan(&paid, &refunded); err != nil {
		t.Fatal(err)
	}
	if st.Totals.Paid != paid || st.Totals.Refunded != refunded || st.Totals.Net != paid-refunded {
		t.Errorf("statement paid %d, refunded %d, net %d; the ledger: %d, %d, %d", st.Totals.Paid, st.Totals.Refunded, st.Totals.Net, paid, refunded, paid-refunded)
	}

	// One app's statement has its lines only, with the same totals.
	one, err := o.Statement(ctx, viewer, day.Day, testenv.SecondApp)
	if err != nil {
		t.Fatal(err)
	}
	checkTotals(t, "statement of "+testenv.SecondApp, one.Totals, day.Apps[testenv.SecondApp])
	for _, l := range one.Lines {
		if l.AppID != testenv.SecondApp {
			t.Errorf("line of %s on %s's statement", l.AppID, testenv.SecondApp)
		}
	}

	// The day before holds none of it.
	before, err := o.Statement(ctx, viewer, day.Day.AddDate(0, 0, -1), "")
	if err != nil || len(before.Lines) != 0 || before.Totals != (ops.StatementTotals{}) {
		t.Errorf("the day before: %+v, %v", before, err)
	}

	// The overview's money of today is the statement's totals.
	d, err := o.Dashboard(ctx, viewer)
	if err != nil {
		t.Fatal(err)
	}
	if ops.DayOf(time.Now()).Equal(day.Day) {
		if d.Today.Date != st.Date || d.Today.Total != st.Totals || len(d.Today.Apps) != len(st.Apps) {
			t.Errorf("overview today %+v; the statement's totals %+v", d.Today, st.Totals)
		}
		for i, a := range d.Today.Apps {
			if a != st.Apps[i] {
				t.Errorf("overview today, app %s: %+v; statement %+v", a.AppID, a, st.Apps[i])
			}
		}
		hours, err := o.Window(ctx, viewer, ops.Last24Hours)
		if err != nil {
			t.Fatal(err)
		}
		var sumPaid int64
		for _, v := range hours.Paid {
			sumPaid += v
		}
		if sumPaid != st.Totals.Paid {
			t.Errorf("the 24-hour chart of amounts paid sums to %d; the day paid %d", sumPaid, st.Totals.Paid)
		}
	}

	// The CSV has a line per movement, then the totals, in yuan.
	var buf bytes.Buffer
	if err := ops.WriteStatementCSV(&buf, st); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 1+len(st.Lines)+4*(len(st.Apps)+1) {
		t.Fatalf("%d CSV records", len(records))
	}
	last := records[len(records)-4:]
	for i, want := range [][2]string{{"total_paid", "175.00"}, {"total_refunded", "75.00"}, {"total_net", "100.00"}, {"total_review", "42.00"}} {
		if last[i][0] != want[0] || last[i][2] != "" || last[i][3] != want[1] {
			t.Errorf("CSV total %v; want %s %s for every app", last[i], want[0], want[1])
		}
	}
}

func checkTotals(t *testing.T, what string, got ops.StatementTotals, want testenv.DayTotals) {
	t.Helper()
	if got.Payments != want.Payments || got.Paid != want.Paid || got.Refunds != want.Refunds || got.Refunded != want.Refunded ||
		got.Net != want.Net() || got.ReviewPayments != want.ReviewPayments || got.ReviewAmount != want.ReviewAmount {
		t.Errorf("%s: totals %+v; want %+v (net %d)", what, got, want, want.Net())
	}
}

func TestParseDay(t *testing.T) {
	d, err := ops.ParseDay("2026-12-01")
	if err != nil || !d.Equal(time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC)) {
		t.Errorf("ParseDay = %v, %v; want Beijing midnight", d, err)
	}
	for _, bad := range []string{"", "2026-13-01", "01/12/2026", "2026-12-01T00:00:00Z"} {
		if _, err := ops.ParseDay(bad); err == nil {
			t.Errorf("ParseDay(%q) accepted", bad)
		}
	}
	if got := ops.DayOf(time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC)); !got.Equal(d) {
		t.Errorf("DayOf(Beijing midnight) = %v", got)
	}
	if got := ops.DayOf(time.Date(2026, 11, 30, 15, 59, 59, 0, time.UTC)); !got.Equal(d.AddDate(0, 0, -1)) {
		t.Errorf("DayOf(a second before) = %v", got)
	}
}

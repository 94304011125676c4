package main

import (
	"encoding/csv"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/pay"
)

// useStack points the commands at a stack: its schema, streams and sandbox.
func useStack(t *testing.T, s *testenv.Stack) {
	t.Helper()
	for k, v := range map[string]string{
		"DATABASE_URL": testenv.SchemaURL(s.Schema), "REDIS_URL": testenv.RedisURL(), "STREAM_PREFIX": s.Streams.Name(""),
		"LAKALA_BASE_URL": s.SandboxURL, "LAKALA_APP_ID": testenv.LakalaAppID, "LAKALA_SERIAL_NO": testenv.LakalaSerialNo,
		"LAKALA_MERCHANT_NO": testenv.LakalaMerchantNo, "LAKALA_TERM_NO": testenv.LakalaTermNo,
		"LAKALA_PLATFORM_CERT": string(s.Sandbox.PlatformCertPEM()), "LAKALA_PRIVATE_KEY": string(lakala.MarshalPrivateKeyPEM(s.MerchantKey)),
	} {
		t.Setenv(k, v)
	}
}

// loomipay statement matches a day made through the whole money path to the fen: payments by
// notification and by query, partial refunds, a refused refund, a payment after a close (in
// review), a second app.
func TestStatementCommand(t *testing.T) {
	s := testenv.NewStack(t, testenv.MoneyDayOptions())
	day := s.BuildMoneyDay(t)
	useStack(t, s)
	date := day.Day.Format("2006-01-02")

	stdout, stderr, err := runCmd(t, "statement", "--date", date, "--format", "json")
	if err != nil {
		t.Fatalf("statement: %v\n%s", err, stderr)
	}
	var st ops.Statement
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatal(err)
	}
	want := day.Total
	if got := st.Totals; got.Payments != want.Payments || got.Paid != want.Paid || got.Refunds != want.Refunds || got.Refunded != want.Refunded ||
		got.Net != want.Net() || got.ReviewPayments != want.ReviewPayments || got.ReviewAmount != want.ReviewAmount {
		t.Errorf("statement --format json totals %+v; the day %+v", got, want)
	}
	if len(st.Apps) != 2 || st.Apps[0].AppID != testenv.SecondApp || st.Apps[0].Paid != 2500 || st.Apps[1].Paid != 15000 || st.Apps[1].Refunded != 5000 {
		t.Errorf("apps %+v", st.Apps)
	}
	for _, l := range st.Lines {
		key := l.PaymentOrderID
		switch l.Kind {
		case ops.LineRefund:
			key = l.RefundOrderID
		case ops.LineReviewPayment:
			key = l.OutNo
		}
		if tr := day.Trades[key]; l.Amount != tr.Amount || l.TradeNo != tr.TradeNo || l.LogNo != tr.LogNo || !l.TradeTime.Equal(tr.Time) {
			t.Errorf("line %+v; Lakala's trade %+v", l, tr)
		}
	}

	stdout, _, err = runCmd(t, "statement", "--date", date, "--app", testenv.SecondApp, "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	totals := map[string]string{}
	for _, r := range records[1:] {
		if strings.HasPrefix(r[0], "total_") && r[2] == "" {
			totals[r[0]] = r[3]
		}
	}
	if totals["total_paid"] != "25.00" || totals["total_refunded"] != "25.00" || totals["total_net"] != "0.00" || len(records) != 1+2+8 {
		t.Errorf("statement of %s as CSV:\n%s", testenv.SecondApp, stdout)
	}

	stdout, _, err = runCmd(t, "statement", "--date", date)
	if err != nil || !regexp.MustCompile(`(?m)^total\s+3\s+175\.00\s+3\s+75\.00\s+100\.00\s+42\.00 \(1\)$`).MatchString(stdout) ||
		!strings.Contains(stdout, "D-CLOSED") {
		t.Errorf("statement as text:\n%s%v", stdout, err)
	}
	for _, bad := range [][]string{{"statement", "--date", "01/12/2026"}, {"statement", "--format", "xml"}, {"statement", "extra"}} {
		if _, _, err := runCmd(t, bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// loomipay orders refund and close are the console's actions: the API's operations, the same
// token doing them once, audited under the CLI's name.
func TestOrdersRefundAndCloseCommands(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	paid := s.PaySucceeded(t, "CLI-PAID", 10000)
	s.Checkout(t, "CLI-OPEN", 500)
	useStack(t, s)

	_, stderr, err := runCmd(t, "orders", "refund", "CLI-PAID", "--amount", "12.34", "--reason", "customer called")
	m := regexp.MustCompile(`run it again with --token ([0-9a-f]{32})`).FindStringSubmatch(stderr)
	if err != nil || m == nil {
		t.Fatalf("orders refund: %v\n%s", err, stderr)
	}
	stdout, _, err := runCmd(t, "orders", "refund", "CLI-PAID", "--amount", "12.34", "--reason", "customer called", "--token", m[1])
	if err != nil || !strings.Contains(stdout, "made refund ops-"+m[1]+" already") {
		t.Fatalf("the same refund again: %q, %v", stdout, err)
	}
	stdout, _, err = runCmd(t, "orders", "refund", "CLI-PAID", "--all", "--reason", "cancelled", "--json")
	var res ops.RefundDone
	if err != nil || json.Unmarshal([]byte(stdout), &res) != nil || !res.Created || res.Refund.Amount != 10000-1234 {
		t.Fatalf("refund the rest: %q, %v", stdout, err)
	}
	refunds, _ := s.Store.RefundsOf(t.Context(), paid.ID)
	if len(refunds) != 2 {
		t.Fatalf("%d refunds; want 2", len(refunds))
	}
	if _, _, err := runCmd(t, "orders", "refund", "CLI-PAID", "--amount", "1,00", "--reason", "x"); err == nil {
		t.Error("an amount in another notation was accepted")
	}

	stdout, _, err = runCmd(t, "orders", "close", "CLI-OPEN", "--note", "payer cancelled by phone", "--token", "cli-close-0001")
	if err != nil || !strings.Contains(stdout, "Not paid: closed on purpose") {
		t.Fatalf("orders close: %q, %v", stdout, err)
	}
	s.RequireOrder(t, "CLI-OPEN", "failed", pay.ReasonClosedByMerchant)
	if stdout, _, err = runCmd(t, "orders", "close", "CLI-OPEN", "--note", "again", "--token", "cli-close-0001"); err != nil || !strings.Contains(stdout, "already") {
		t.Errorf("the same close again: %q, %v", stdout, err)
	}
	stdout, _, err = runCmd(t, "audit", "--action", "order.refund")
	if err != nil || strings.Count(stdout, "order.refund") != 2 || !strings.Contains(stdout, "cli:") {
		t.Errorf("audit of the refunds:\n%s", stdout)
	}
}

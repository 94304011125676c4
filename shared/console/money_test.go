package console_test

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/console"
	"github.com/loomipay/loomipay/shared/ops"
)

var (
	tokenField = regexp.MustCompile(`name="token" value="([^"]+)"`)
	olderLink  = regexp.MustCompile(`class="btn older" href="([^"]+)"`)
)

// The overview's money is the day's statement; the orders list pages with its filters in the
// URL; an export downloads what they select; the statement page and CSV show the day.
func TestMoneyListsAndStatement(t *testing.T) {
	testenv.AvoidBeijingMidnight(t, time.Minute)
	e := newEnv(t, console.Config{Dev: true})
	paid := testenv.SeedOrder(t, e.store, "shop", "PAID-1", "succeeded", 12345)
	testenv.SeedRefund(t, e.store, paid, "succeeded", 2345)
	testenv.SeedOrder(t, e.store, "games", "PAID-2", "succeeded", 100000)
	for i := range 55 {
		testenv.SeedOrder(t, e.store, "shop", fmt.Sprintf("PAGE-%02d", i), "failed", 100)
	}
	b := e.browser(t)
	b.login(operatorToken(t, e, "vic", ops.RoleViewer))

	resp, body := b.get("/console")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("overview = %d", resp.StatusCode)
	}
	for _, want := range []string{`id="paid-today-total">¥1,123.45`, `id="refunded-today-total">¥23.45`, `id="paid-today-shop">¥123.45`,
		"count neither way", `<svg viewBox="0 0 240 100"`, `id="chart-orders"`, "The processor has not run yet"} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if _, body := b.get("/console?charts=30d"); !strings.Contains(body, `<svg viewBox="0 0 300 100"`) {
		t.Error("the 30-day charts are not drawn")
	}
	if resp, _ := b.get("/console?charts=1y"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("charts of a year = %d; want 400", resp.StatusCode)
	}

	// Page one of the shop's orders; page two is behind "Older", with the filter kept.
	_, body = b.get("/console/orders?app=shop")
	if strings.Count(body, `<a href="/console/orders/`) != ops.ListPageSize || strings.Contains(body, ">PAGE-00<") {
		t.Fatalf("page one: %d orders", strings.Count(body, `<a href="/console/orders/`))
	}
	m := olderLink.FindStringSubmatch(body)
	if m == nil || !strings.Contains(m[1], "app=shop") || !strings.Contains(m[1], "after=") {
		t.Fatalf("no Older link keeping the filter: %v", m)
	}
	_, body = b.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	if !strings.Contains(body, ">PAGE-00<") || !strings.Contains(body, ">PAID-1<") || strings.Contains(body, ">PAID-2<") {
		t.Fatal("page two lacks the oldest orders of shop, or shows another app's")
	}
	if resp, _ := b.get("/console/orders?after=garbage"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad cursor = %d; want 400", resp.StatusCode)
	}

	// The export of the filters: a CSV download, audited.
	resp, body = b.get("/console/orders.csv?app=shop&status=succeeded")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), `attachment; filename="loomipay-orders-`) {
		t.Fatalf("export = %d %v", resp.StatusCode, resp.Header)
	}
	records, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(records) != 2 || records[1][1] != paid || records[1][7] != "123.45" {
		t.Fatalf("export %q, %v", body, err)
	}
	if got := e.scalar(t, `SELECT count(*)::text FROM audit_log WHERE action = 'orders.export' AND actor = 'vic'`); got != "1" {
		t.Errorf("%s audit rows of the export", got)
	}
	if resp, _ := b.get("/console/refunds.csv"); resp.StatusCode != http.StatusOK {
		t.Errorf("refunds export = %d", resp.StatusCode)
	}
	if resp, _ := b.get("/console/orders.csv?status=paid"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("export with a bad filter = %d; want an error page", resp.StatusCode)
	}

	// The statement of today, and its CSV.
	today := ops.DayOf(time.Now()).Format("2006-01-02")
	_, body = b.get("/console/statement")
	for _, want := range []string{"Daily statement " + today, `id="total-paid">¥1,123.45`, `id="total-refunded">¥23.45`, `id="total-net">¥1,100.00`, ">PAID-1<"} {
		if !strings.Contains(body, want) {
			t.Errorf("statement lacks %q", want)
		}
	}
	resp, body = b.get("/console/statement.csv?date=" + today + "&app=games")
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Disposition"), "loomipay-statement-"+today+"-games.csv") {
		t.Fatalf("statement CSV = %d %v", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(body, "total_paid,"+today+",,1000.00") || strings.Contains(body, "PAID-1") {
		t.Errorf("games' statement CSV:\n%s", body)
	}
	if resp, _ := b.get("/console/statement?date=2026-13-01"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("statement of a bad day = %d", resp.StatusCode)
	}
}

// The refund and close forms are for operators: a viewer sees neither and is refused when
// posting anyway; an operator's refund is made once however often the form is sent.
func TestRefundFormRolesAndToken(t *testing.T) {
	e := newEnv(t, console.Config{Dev: true})
	paid := testenv.SeedOrder(t, e.store, "shop", "PAID-1", "succeeded", 12345)
	live := testenv.SeedOrder(t, e.store, "shop", "LIVE-1", "processing", 500)
	viewer := e.browser(t)
	viewer.login(operatorToken(t, e, "vic", ops.RoleViewer))
	op := e.browser(t)
	op.login(operatorToken(t, e, "olga", ops.RoleOperator))

	_, body := viewer.get("/console/orders/" + paid)
	if strings.Contains(body, `class="refund"`) || strings.Contains(body, `class="close"`) || strings.Contains(body, "/refund\"") {
		t.Fatal("a viewer sees the refund form")
	}
	resp, body := viewer.post("/console/orders/"+paid+"/refund", url.Values{"csrf": {csrfOf(t, body)}, "token": {ops.NewToken()}, "amount": {"1.00"}, "reason": {"x"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "needs the operator role") {
		t.Fatalf("viewer's refund = %d", resp.StatusCode)
	}
	_, body = viewer.get("/console/orders/" + live)
	if strings.Contains(body, `class="close"`) {
		t.Fatal("a viewer sees the close form")
	}

	_, body = op.get("/console/orders/" + paid)
	if !strings.Contains(body, `action="/console/orders/`+paid+`/refund"`) || !strings.Contains(body, "Refund everything left (¥123.45)") {
		t.Fatal("an operator sees no refund form")
	}
	form := url.Values{"csrf": {csrfOf(t, body)}, "token": {tokenField.FindStringSubmatch(body)[1]}, "amount": {"20"}, "reason": {"customer called"}}
	for range 2 { // sent twice
		resp, _ := op.post("/console/orders/"+paid+"/refund", form)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/orders/"+paid {
			t.Fatalf("refund = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if n := e.scalar(t, `SELECT count(*)::text || ' ' || sum(amount)::text FROM refund_orders WHERE payment_order_id = $1`, paid); n != "1 2000" {
		t.Fatalf("refunds after the form was sent twice: %s; want one of 20.00", n)
	}
	_, body = op.get("/console/orders/" + paid)
	if !strings.Contains(body, "This form was already sent") || !strings.Contains(body, `id="refundable">¥103.45`) || !strings.Contains(body, "customer called") {
		t.Error("the order page does not show the refund once, with the remainder")
	}
	for _, bad := range []url.Values{
		{"amount": {"12.345"}, "reason": {"x"}},
		{"amount": {"200"}, "reason": {"x"}},
		{"amount": {"1"}, "reason": {""}},
	} {
		bad.Set("csrf", csrfOf(t, body))
		bad.Set("token", ops.NewToken())
		if resp, _ := op.post("/console/orders/"+paid+"/refund", bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("refund %v = %d; want 400", bad, resp.StatusCode)
		}
	}

	// This console has no Lakala key: no close form, and a forged close is refused.
	_, body = op.get("/console/orders/" + live)
	if strings.Contains(body, `class="close"`) || !strings.Contains(body, "no Lakala key") {
		t.Error("a close form without a Lakala key")
	}
	resp, _ = op.post("/console/orders/"+live+"/close", url.Values{"csrf": {csrfOf(t, body)}, "token": {ops.NewToken()}, "note": {"x"}})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("close without Lakala = %d; want 503", resp.StatusCode)
	}
}

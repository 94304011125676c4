package ops_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/pay"
)

// The console's lists page through every app's orders with the API's cursors, keep their
// filters, and go back as well as forward.
func TestListPages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var ids []string // oldest first
	for i := range 120 {
		app := []string{"shop", "games", "books"}[i%3]
		status := "succeeded"
		if i%4 == 0 {
			status = "failed"
		}
		ids = append(ids, testenv.SeedOrder(t, e.store, app, fmt.Sprintf("M-%03d", i), status, int64(100+i)))
	}
	var seen []string
	p, err := e.ops.ListOrders(ctx, viewer, ops.ListFilter{}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Newer != "" || p.Older == "" || len(p.Rows) != ops.ListPageSize {
		t.Fatalf("first page: %d rows, newer %q, older %q", len(p.Rows), p.Newer, p.Older)
	}
	pages := []ops.Page[ops.OrderRow]{p}
	for {
		for _, r := range p.Rows {
			seen = append(seen, r.ID)
		}
		if p.Older == "" {
			break
		}
		if p, err = e.ops.ListOrders(ctx, viewer, ops.ListFilter{}, p.Older, ""); err != nil {
			t.Fatal(err)
		}
		pages = append(pages, p)
	}
	if len(seen) != len(ids) || len(pages) != 3 {
		t.Fatalf("paging saw %d orders in %d pages; want %d in 3", len(seen), len(pages), len(ids))
	}
	for i, id := range seen {
		if id != ids[len(ids)-1-i] {
			t.Fatalf("order %d of the pages is %s; want %s (newest first, every app)", i, id, ids[len(ids)-1-i])
		}
	}
	// Back from the last page: the page before is the second.
	back, err := e.ops.ListOrders(ctx, viewer, ops.ListFilter{}, "", pages[2].Newer)
	if err != nil || len(back.Rows) != ops.ListPageSize || back.Rows[0].ID != pages[1].Rows[0].ID || back.Older == "" || back.Newer == "" {
		t.Fatalf("back from the last page: %d rows, first %s; want the second page (%s)", len(back.Rows), back.Rows[0].ID, pages[1].Rows[0].ID)
	}

	// Filters hold on every page.
	f := ops.ListFilter{AppID: "games", Status: "succeeded"}
	var n int
	for after := ""; ; {
		p, err := e.ops.ListOrders(ctx, viewer, f, after, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Rows {
			if r.AppID != "games" || r.Status != pay.StatusSucceeded {
				t.Fatalf("filtered page holds %s %s", r.AppID, r.Status)
			}
			n++
		}
		if after = p.Older; after == "" {
			break
		}
	}
	if n != 30 {
		t.Errorf("games' succeeded orders: %d; want 30", n)
	}
	for _, bad := range []struct {
		f             ops.ListFilter
		after, before string
	}{
		{ops.ListFilter{Status: "paid"}, "", ""},
		{ops.ListFilter{AppID: "no spaces"}, "", ""},
		{ops.ListFilter{From: time.Now(), To: time.Now().Add(-time.Hour)}, "", ""},
		{ops.ListFilter{}, "not-a-cursor", ""},
		{ops.ListFilter{}, pages[0].Older, pages[0].Older},
	} {
		if _, err := e.ops.ListOrders(ctx, viewer, bad.f, bad.after, bad.before); pay.AsError(err).Kind != pay.KindInvalid {
			t.Errorf("list %+v: %v; want a 400", bad, err)
		}
	}

	// Refunds page the same way.
	for i := range 60 {
		testenv.SeedRefund(t, e.store, ids[1+i], "succeeded", 1)
	}
	rp, err := e.ops.ListRefunds(ctx, viewer, ops.ListFilter{Status: "succeeded"}, "", "")
	if err != nil || len(rp.Rows) != ops.ListPageSize || rp.Older == "" {
		t.Fatalf("refunds page: %d, %v", len(rp.Rows), err)
	}
	rp, err = e.ops.ListRefunds(ctx, viewer, ops.ListFilter{Status: "succeeded"}, rp.Older, "")
	if err != nil || len(rp.Rows) != 10 || rp.Older != "" {
		t.Fatalf("second refunds page: %d rows, older %q, %v", len(rp.Rows), rp.Older, err)
	}
}

// An export streams what the filters select as CSV, is audited, and refuses more than
// MaxExportRows.
func TestExport(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := testenv.SeedOrder(t, e.store, "shop", "=HYPERLINK(\"x\")", "succeeded", 12345)
	testenv.SeedOrder(t, e.store, "shop", "M-2", "failed", 100)
	testenv.SeedRefund(t, e.store, id, "succeeded", 2345)

	var buf bytes.Buffer
	w, err := ops.NewCSVWriter(&buf, ops.Beijing, ops.OrdersCSVHeader)
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.ops.ExportOrders(ctx, viewer, ops.ListFilter{AppID: "shop", Status: "succeeded"}, w.Order)
	if err != nil || n != 1 || w.Flush() != nil {
		t.Fatalf("export = %d, %v", n, err)
	}
	records, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(records) != 2 {
		t.Fatalf("CSV %q, %v", buf.String(), err)
	}
	row := map[string]string{}
	for i, h := range ops.OrdersCSVHeader {
		row[h] = records[1][i]
	}
	if row["payment_order_id"] != id || row["merchant_order_id"] != `'=HYPERLINK("x")` || row["amount_yuan"] != "123.45" ||
		row["refunded_yuan"] != "23.45" || row["lakala_log_no"] == "" || !strings.HasSuffix(row["created_at"], "+08:00") {
		t.Errorf("exported order %v", row)
	}
	if a := e.audit(t, "orders.export", ""); a.Actor != "vic" || !strings.Contains(string(a.After), `"rows":1`) {
		t.Errorf("export audited as %+v", a)
	}

	buf.Reset()
	rw, _ := ops.NewCSVWriter(&buf, time.UTC, ops.RefundsCSVHeader)
	if n, err := e.ops.ExportRefunds(ctx, viewer, ops.ListFilter{}, rw.Refund); err != nil || n != 1 || rw.Flush() != nil {
		t.Fatalf("refund export = %d, %v", n, err)
	}
	if !strings.Contains(buf.String(), ",23.45,CNY,") {
		t.Errorf("refund CSV %q", buf.String())
	}

	// More than the bound: refused, nothing written.
	if _, err := e.store.Pool().Exec(ctx, `INSERT INTO payment_orders (id, app_id, merchant_order_id, status, order_type, amount, currency, subject)
		SELECT gen_random_uuid(), 'bulk', 'B' || i, 'failed', 'payment', 1, 'CNY', 's' FROM generate_series(1, $1) i`, ops.MaxExportRows+1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Pool().Exec(ctx, `INSERT INTO apps (app_id) VALUES ('bulk')`); err != nil {
		t.Fatal(err)
	}
	called := false
	_, err = e.ops.ExportOrders(ctx, viewer, ops.ListFilter{AppID: "bulk"}, func(ops.OrderRow) error { called = true; return nil })
	if pe := pay.AsError(err); pe.Kind != pay.KindTooLarge || called {
		t.Fatalf("export of %d rows: %v (rows written: %v); want a refusal", ops.MaxExportRows+1, err, called)
	}
}

package postgres_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// TestListPagesAreIndexRangeScans shows (with -v) and checks the plan of every list shape on a
// table big enough that the planner would rather scan and sort if no index fitted: each page
// must be a Limit over one index scan in the list order, with no sort and no sequential scan,
// so its cost is the page size, not the table size (bench row "list page" measures it at 1M).
func TestListPagesAreIndexRangeScans(t *testing.T) {
	store := testenv.Postgres(t)
	ctx := context.Background()
	pool := store.Pool()
	// 60k orders over three apps and four statuses, 6k refunds.
	if _, err := pool.Exec(ctx, `
		INSERT INTO apps (app_id) VALUES ('app_0'), ('app_1'), ('app_2');
		INSERT INTO payment_orders (id, app_id, merchant_order_id, status, order_type, amount, currency, subject, created_at, updated_at)
		SELECT gen_random_uuid(), 'app_' || (i % 3), 'm' || i, (ARRAY['pending','processing','succeeded','failed'])[1 + i % 4],
			(ARRAY['payment','recharge'])[1 + i % 2], 100, 'CNY', 's', now() - i * interval '1 second', now()
		FROM generate_series(1, 60000) i;
		INSERT INTO refund_orders (id, app_id, payment_order_id, status, amount, currency, out_trade_no, created_at, updated_at, merchant_order_id)
		SELECT gen_random_uuid(), app_id, id, 'succeeded', 1, 'CNY', replace(gen_random_uuid()::text, '-', ''), created_at, now(), merchant_order_id
		FROM payment_orders WHERE status = 'succeeded' AND random() < 0.4;
		ANALYZE apps; ANALYZE payment_orders; ANALYZE refund_orders;`); err != nil {
		t.Fatal(err)
	}
	var payment string
	if err := pool.QueryRow(ctx, "SELECT payment_order_id::text FROM refund_orders WHERE app_id = 'app_1' LIMIT 1").Scan(&payment); err != nil {
		t.Fatal(err)
	}
	cursor := &pay.Cursor{CreatedAt: time.Now().Add(-10 * time.Hour), ID: "550e8400-e29b-41d4-a716-446655440000"}
	page := func(after, before *pay.Cursor) pay.Page {
		return pay.Page{Limit: 20, StartingAfter: after, EndingBefore: before}
	}
	gte, lt := time.Now().Add(-12*time.Hour), time.Now().Add(-2*time.Hour)
	orders := []struct {
		name, index string
		q           pay.ListOrdersQuery
	}{
		{"first page", "payment_orders_app_created_idx", pay.ListOrdersQuery{AppID: "app_1", Page: page(nil, nil)}},
		{"starting_after", "payment_orders_app_created_idx", pay.ListOrdersQuery{AppID: "app_1", Page: page(cursor, nil)}},
		{"ending_before", "payment_orders_app_created_idx", pay.ListOrdersQuery{AppID: "app_1", Page: page(nil, cursor)}},
		{"status", "payment_orders_app_status_created_idx", pay.ListOrdersQuery{AppID: "app_1", Status: pay.StatusFailed, Page: page(cursor, nil)}},
		{"order_type and created range", "payment_orders_app_created_idx", pay.ListOrdersQuery{AppID: "app_1", OrderType: "recharge", CreatedGTE: &gte, CreatedLT: &lt, Page: page(cursor, nil)}},
		{"every filter", "payment_orders_app_status_created_idx", pay.ListOrdersQuery{AppID: "app_1", Status: pay.StatusPending, OrderType: "payment", CreatedGTE: &gte, Page: page(nil, cursor)}},
	}
	for _, tc := range orders {
		sql, args, _ := postgres.ListOrdersSQL(tc.q)
		checkPlan(t, store, "orders: "+tc.name, tc.index, sql, args)
	}
	refunds := []struct {
		name, index string
		q           pay.ListRefundsQuery
	}{
		{"first page", "refund_orders_app_created_idx", pay.ListRefundsQuery{AppID: "app_1", Page: page(nil, nil)}},
		{"status, starting_after", "refund_orders_app_created_idx", pay.ListRefundsQuery{AppID: "app_1", Status: pay.StatusSucceeded, Page: page(cursor, nil)}},
		{"one payment", "refund_orders_payment_created_idx", pay.ListRefundsQuery{AppID: "app_1", PaymentOrderID: payment, Page: page(nil, nil)}},
	}
	for _, tc := range refunds {
		sql, args, _ := postgres.ListRefundsSQL(tc.q)
		checkPlan(t, store, "refunds: "+tc.name, tc.index, sql, args)
	}

	// The operators' lists of every app (no app_id): one range scan of the app's index per app.
	everyApp := []struct {
		name, table, index string
		sql                string
		args               []any
	}{}
	for _, tc := range []struct {
		name  string
		index string
		q     pay.ListOrdersQuery
	}{
		{"first page", "payment_orders_app_created_idx", pay.ListOrdersQuery{Page: page(nil, nil)}},
		{"starting_after", "payment_orders_app_created_idx", pay.ListOrdersQuery{Page: page(cursor, nil)}},
		{"ending_before, status", "payment_orders_app_status_created_idx", pay.ListOrdersQuery{Status: pay.StatusSucceeded, Page: page(nil, cursor)}},
		{"created range", "payment_orders_app_created_idx", pay.ListOrdersQuery{CreatedGTE: &gte, CreatedLT: &lt, Page: page(cursor, nil)}},
	} {
		sql, args, _ := postgres.ListOrdersSQL(tc.q)
		everyApp = append(everyApp, struct {
			name, table, index string
			sql                string
			args               []any
		}{"orders of every app: " + tc.name, "payment_orders", tc.index, sql, args})
	}
	sql, args, _ := postgres.ListRefundsSQL(pay.ListRefundsQuery{Status: pay.StatusSucceeded, CreatedGTE: &gte, Page: page(cursor, nil)})
	everyApp = append(everyApp, struct {
		name, table, index string
		sql                string
		args               []any
	}{"refunds of every app", "refund_orders", "refund_orders_app_created_idx", sql, args})
	for _, tc := range everyApp {
		checkEveryAppPlan(t, store, tc.name, tc.table, tc.index, tc.sql, tc.args)
	}
}

// checkEveryAppPlan checks that a page of every app reads its table only through the app's
// index, under a Limit (no sequential scan, no sort of the table).
func checkEveryAppPlan(t *testing.T, store *postgres.Store, name, table, wantIndex, sql string, args []any) {
	t.Helper()
	var raw []byte
	if err := store.Pool().QueryRow(context.Background(), "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
		t.Fatalf("%s: explain: %v", name, err)
	}
	var plans []struct{ Plan planNode }
	if err := json.Unmarshal(raw, &plans); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s", name, raw)
	scans := 0
	var walk func(n planNode, underLimit bool)
	walk = func(n planNode, underLimit bool) {
		if n.RelationName == table {
			scans++
			if (n.NodeType != "Index Scan" && n.NodeType != "Index Scan Backward") || n.IndexName != wantIndex || !underLimit {
				t.Errorf("%s: %s reads %s by %s %q (under a Limit: %v); want an index scan on %s under a Limit", name, n.NodeType, table, n.NodeType, n.IndexName, underLimit, wantIndex)
			}
		}
		for _, c := range n.Plans {
			walk(c, underLimit || n.NodeType == "Limit")
		}
	}
	walk(plans[0].Plan, false)
	if scans != 1 {
		t.Errorf("%s: %d scans of %s; want one (inside the per-app LATERAL)", name, scans, table)
	}
}

type planNode struct {
	NodeType     string     `json:"Node Type"`
	RelationName string     `json:"Relation Name"`
	IndexName    string     `json:"Index Name"`
	IndexCond    string     `json:"Index Cond"`
	Plans        []planNode `json:"Plans"`
}

func checkPlan(t *testing.T, store *postgres.Store, name, wantIndex, sql string, args []any) {
	t.Helper()
	ctx := context.Background()
	var raw []byte
	if err := store.Pool().QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
		t.Fatalf("%s: explain: %v", name, err)
	}
	var plans []struct{ Plan planNode }
	if err := json.Unmarshal(raw, &plans); err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rows, err := store.Pool().Query(ctx, "EXPLAIN "+sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		_ = rows.Scan(&line)
		text.WriteString("    " + line + "\n")
	}
	rows.Close()
	t.Logf("%s:\n%s", name, text.String())

	top := plans[0].Plan
	if top.NodeType != "Limit" || len(top.Plans) != 1 {
		t.Errorf("%s: top node %s with %d children; want Limit over one scan", name, top.NodeType, len(top.Plans))
		return
	}
	scan := top.Plans[0]
	if (scan.NodeType != "Index Scan" && scan.NodeType != "Index Scan Backward") || scan.IndexName != wantIndex || len(scan.Plans) != 0 {
		t.Errorf("%s: under the Limit: %s on %q; want an index scan on %s with nothing under it (no sort, no sequential scan)",
			name, scan.NodeType, scan.IndexName, wantIndex)
	}
	if !strings.Contains(scan.IndexCond, "app_id") && !strings.Contains(scan.IndexCond, "payment_order_id") {
		t.Errorf("%s: index condition %q does not bound the range", name, scan.IndexCond)
	}
}

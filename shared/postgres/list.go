package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
)

// keyset builds the WHERE, ORDER BY and LIMIT of a newest-first page keyed by (created_at, id).
// The row comparison against the cursor is an index condition on the (…, created_at DESC,
// id DESC) indexes of migration 0004, so a page costs limit+1 index entries however deep it is.
type keyset struct {
	where []string
	args  []any
}

func (k *keyset) add(cond string, args ...any) {
	for _, a := range args {
		k.args = append(k.args, a)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(k.args)), 1)
	}
	k.where = append(k.where, cond)
}

// sql returns the statement's tail and whether rows come oldest first (an ending_before page,
// read upwards from its cursor and reversed by the caller).
// table qualifies the ORDER BY columns: unqualified, "id" would name the select list's
// id::text and sort text instead of walking the index.
func (k *keyset) sql(table string, p pay.Page) (string, bool) {
	ascending := false
	switch {
	case p.StartingAfter != nil:
		k.add("(created_at, id) < (?, ?::uuid)", p.StartingAfter.CreatedAt, p.StartingAfter.ID)
	case p.EndingBefore != nil:
		k.add("(created_at, id) > (?, ?::uuid)", p.EndingBefore.CreatedAt, p.EndingBefore.ID)
		ascending = true
	}
	order := table + ".created_at DESC, " + table + ".id DESC"
	if ascending {
		order = table + ".created_at, " + table + ".id"
	}
	// One row more than the page tells whether there is more beyond it.
	return " FROM " + table + " WHERE " + strings.Join(k.where, " AND ") + " ORDER BY " + order + " LIMIT " + strconv.Itoa(p.Limit+1), ascending
}

// everyApp turns a page's statement over one app (whose app condition names apps.app_id) into
// the page over every app: the statement runs once per app, each an index range scan that stops
// at the page size, and the page keeps the newest (oldest, for an ending_before page) of those
// rows. So the operators' lists of every app need no (created_at, id) index of their own, which
// every create would have to write; they cost apps × page size index entries. The outer ORDER BY
// casts the selected id::text back to uuid, so it sorts as the inner scans do.
func everyApp(inner string, p pay.Page, ascending bool) string {
	dir := " DESC"
	if ascending {
		dir = ""
	}
	return "SELECT page.* FROM apps CROSS JOIN LATERAL (" + inner + ") page ORDER BY page.created_at" + dir +
		", page.id::uuid" + dir + " LIMIT " + strconv.Itoa(p.Limit+1)
}

// appCondition restricts a page to one app, or, without one, to the app of the LATERAL's row.
func (k *keyset) appCondition(appID string) {
	if appID == "" {
		k.where = append(k.where, "app_id = apps.app_id")
		return
	}
	k.add("app_id = ?", appID)
}

// ListOrdersSQL is the statement and arguments of a page of ListOrders (tests EXPLAIN it).
func ListOrdersSQL(q pay.ListOrdersQuery) (string, []any, bool) {
	var k keyset
	k.appCondition(q.AppID)
	if q.Status != "" {
		k.add("status = ?", string(q.Status))
	}
	if q.OrderType != "" {
		k.add("order_type = ?", q.OrderType)
	}
	if q.CreatedGTE != nil {
		k.add("created_at >= ?", *q.CreatedGTE)
	}
	if q.CreatedLT != nil {
		k.add("created_at < ?", *q.CreatedLT)
	}
	tail, asc := k.sql("payment_orders", q.Page)
	if q.AppID == "" {
		return everyApp("SELECT "+orderColumns+tail, q.Page, asc), k.args, asc
	}
	return "SELECT " + orderColumns + tail, k.args, asc
}

// ListRefundsSQL is the statement and arguments of a page of ListRefunds. A merchant_order_id
// filter must have been resolved to PaymentOrderID by the caller.
func ListRefundsSQL(q pay.ListRefundsQuery) (string, []any, bool) {
	var k keyset
	if q.PaymentOrderID != "" {
		k.add("payment_order_id = ?::uuid", q.PaymentOrderID)
	}
	k.appCondition(q.AppID)
	if q.Status != "" {
		k.add("status = ?", string(q.Status))
	}
	if q.CreatedGTE != nil {
		k.add("created_at >= ?", *q.CreatedGTE)
	}
	if q.CreatedLT != nil {
		k.add("created_at < ?", *q.CreatedLT)
	}
	tail, asc := k.sql("refund_orders", q.Page)
	if q.AppID == "" {
		return everyApp("SELECT "+refundColumns+tail, q.Page, asc), k.args, asc
	}
	return "SELECT " + refundColumns + tail, k.args, asc
}

// ListOrders returns a page of the app's orders, newest first, and whether more lie beyond it
// in the direction of travel.
func (s *Store) ListOrders(ctx context.Context, q pay.ListOrdersQuery) ([]pay.Order, bool, error) {
	query, args, asc := ListOrdersSQL(q)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list payment orders: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pay.Order, error) { return scanOrder(r) })
	if err != nil {
		return nil, false, fmt.Errorf("list payment orders: %w", err)
	}
	return trimPage(out, q.Limit, asc)
}

// ListRefunds returns a page of the app's refunds, newest first, and whether more lie beyond it.
func (s *Store) ListRefunds(ctx context.Context, q pay.ListRefundsQuery) ([]pay.Refund, bool, error) {
	query, args, asc := ListRefundsSQL(q)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list refunds: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pay.Refund, error) { return scanRefund(r) })
	if err != nil {
		return nil, false, fmt.Errorf("list refunds: %w", err)
	}
	return trimPage(out, q.Limit, asc)
}

func trimPage[T any](rows []T, limit int, ascending bool) ([]T, bool, error) {
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	if ascending {
		slices.Reverse(rows)
	}
	return rows, more, nil
}

// RefundByMerchantID returns the app's refund with this merchant_refund_id, or pay.ErrNotFound.
func (s *Store) RefundByMerchantID(ctx context.Context, appID, merchantRefundID string) (pay.Refund, error) {
	return scanRefund(s.pool.QueryRow(ctx, "SELECT "+refundColumns+" FROM refund_orders WHERE app_id = $1 AND merchant_refund_id = $2", appID, merchantRefundID))
}

// MigrationsPending reports how many embedded migrations the database has not applied yet
// (readiness: a new binary must not serve an old schema).
func (s *Store) MigrationsPending(ctx context.Context) (int, error) {
	versions, err := migrationVersions()
	if err != nil {
		return 0, err
	}
	var applied []int32
	rows, err := s.pool.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return 0, fmt.Errorf("read schema_migrations: %w", err)
	}
	if applied, err = pgx.CollectRows(rows, pgx.RowTo[int32]); err != nil {
		return 0, fmt.Errorf("read schema_migrations: %w", err)
	}
	pending := 0
	for _, v := range versions {
		if !slices.Contains(applied, int32(v)) {
			pending++
		}
	}
	return pending, nil
}

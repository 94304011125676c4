package ops

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"time"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// The console's lists of orders and refunds are the API's lists (shared/postgres/list.go: newest
// first, keyset pages, the same opaque cursors), over every app unless one is chosen.

// ListFilter selects the orders or refunds of a list or an export.
type ListFilter struct {
	AppID    string
	Status   string
	From, To time.Time // created_at in [From, To); zero: unbounded
}

func (f ListFilter) check() error {
	if f.AppID != "" && !pay.ValidIdentifier(f.AppID) {
		return pay.Invalid("app", "app must be an app id (1-64 characters of A-Z, a-z, 0-9, '_', '.', '-')")
	}
	return SearchFilter{Status: f.Status, From: f.From, To: f.To}.check()
}

func (f ListFilter) range_() (gte, lt *time.Time) {
	if !f.From.IsZero() {
		gte = &f.From
	}
	if !f.To.IsZero() {
		lt = &f.To
	}
	return gte, lt
}

// ListPageSize is the size of a page of the console's lists.
const ListPageSize = 50

// MaxExportRows bounds a CSV export: an export that would hold more is refused, and the person
// narrows the filters (a shorter time range, one app, one status).
const MaxExportRows = 100_000

// exportBatch is how many rows an export reads per page while it streams.
const exportBatch = 1000

// Page is one page of a list: its rows, and the cursors of the pages of older and newer rows
// (empty when there is none that way).
type Page[T any] struct {
	Rows  []T    `json:"rows"`
	Older string `json:"older,omitempty"`
	Newer string `json:"newer,omitempty"`
}

// page reads the cursors of a list request: after (older rows) or before (newer rows).
func page(after, before string, limit int) (pay.Page, error) {
	p := pay.Page{Limit: limit}
	if after != "" && before != "" {
		return p, pay.Invalid("after", "give after or before, not both")
	}
	if after != "" {
		c, err := pay.DecodeCursor("after", after)
		if err != nil {
			return p, err
		}
		p.StartingAfter = &c
	}
	if before != "" {
		c, err := pay.DecodeCursor("before", before)
		if err != nil {
			return p, err
		}
		p.EndingBefore = &c
	}
	return p, nil
}

// pageOf makes the page of rows the store answered, more telling whether there are more in the
// direction of travel.
func pageOf[T any](rows []T, more bool, p pay.Page, cursor func(T) pay.Cursor) Page[T] {
	out := Page[T]{Rows: rows}
	if len(rows) == 0 {
		return out
	}
	forward := p.EndingBefore == nil
	if (forward && more) || !forward {
		out.Older = cursor(rows[len(rows)-1]).Encode()
	}
	if (!forward && more) || (forward && p.StartingAfter != nil) {
		out.Newer = cursor(rows[0]).Encode()
	}
	return out
}

func (f ListFilter) ordersQuery(p pay.Page) pay.ListOrdersQuery {
	gte, lt := f.range_()
	return pay.ListOrdersQuery{AppID: f.AppID, Status: pay.Status(f.Status), CreatedGTE: gte, CreatedLT: lt, Page: p}
}

func (f ListFilter) refundsQuery(p pay.Page) pay.ListRefundsQuery {
	gte, lt := f.range_()
	return pay.ListRefundsQuery{AppID: f.AppID, Status: pay.Status(f.Status), CreatedGTE: gte, CreatedLT: lt, Page: p}
}

// ListOrders reads a page of orders, newest first: the first page, or the page after (older) or
// before (newer) a cursor of another page.
func (o *Ops) ListOrders(ctx context.Context, a Actor, f ListFilter, after, before string) (Page[OrderRow], error) {
	if err := o.authorize(ctx, a, RoleViewer, "order.list", ""); err != nil {
		return Page[OrderRow]{}, err
	}
	if err := f.check(); err != nil {
		return Page[OrderRow]{}, err
	}
	p, err := page(after, before, ListPageSize)
	if err != nil {
		return Page[OrderRow]{}, err
	}
	orders, more, err := o.store.ListOrders(ctx, f.ordersQuery(p))
	if err != nil {
		return Page[OrderRow]{}, err
	}
	rows := make([]OrderRow, len(orders))
	for i, ord := range orders {
		rows[i] = orderRowOf(ord)
	}
	return pageOf(rows, more, p, func(r OrderRow) pay.Cursor { return pay.Cursor{CreatedAt: r.CreatedAt, ID: r.ID} }), nil
}

// ListRefunds reads a page of refunds, newest first, as ListOrders does.
func (o *Ops) ListRefunds(ctx context.Context, a Actor, f ListFilter, after, before string) (Page[RefundRow], error) {
	if err := o.authorize(ctx, a, RoleViewer, "refund.list", ""); err != nil {
		return Page[RefundRow]{}, err
	}
	if err := f.check(); err != nil {
		return Page[RefundRow]{}, err
	}
	p, err := page(after, before, ListPageSize)
	if err != nil {
		return Page[RefundRow]{}, err
	}
	refunds, more, err := o.store.ListRefunds(ctx, f.refundsQuery(p))
	if err != nil {
		return Page[RefundRow]{}, err
	}
	rows := make([]RefundRow, len(refunds))
	for i, r := range refunds {
		rows[i] = refundRowOf(r)
	}
	return pageOf(rows, more, p, func(r RefundRow) pay.Cursor { return pay.Cursor{CreatedAt: r.CreatedAt, ID: r.ID} }), nil
}

// ExportOrders streams every order the filter selects, newest first, to each, after checking
// that there are at most MaxExportRows; it returns how many. The export reads what was created
// before it started (To is at most now), so its count holds. It is audited (orders.export): the
// rows leave the console.
func (o *Ops) ExportOrders(ctx context.Context, a Actor, f ListFilter, each func(OrderRow) error) (int, error) {
	return export(ctx, o, a, "orders.export", f,
		func(p pay.Page) (string, []any) {
			sql, args, _ := postgres.ListOrdersSQL(f.ordersQuery(p))
			return sql, args
		},
		func(p pay.Page) ([]OrderRow, bool, error) {
			orders, more, err := o.store.ListOrders(ctx, f.ordersQuery(p))
			rows := make([]OrderRow, len(orders))
			for i, ord := range orders {
				rows[i] = orderRowOf(ord)
			}
			return rows, more, err
		},
		func(r OrderRow) pay.Cursor { return pay.Cursor{CreatedAt: r.CreatedAt, ID: r.ID} }, each)
}

// ExportRefunds streams every refund the filter selects, as ExportOrders does.
func (o *Ops) ExportRefunds(ctx context.Context, a Actor, f ListFilter, each func(RefundRow) error) (int, error) {
	return export(ctx, o, a, "refunds.export", f,
		func(p pay.Page) (string, []any) {
			sql, args, _ := postgres.ListRefundsSQL(f.refundsQuery(p))
			return sql, args
		},
		func(p pay.Page) ([]RefundRow, bool, error) {
			refunds, more, err := o.store.ListRefunds(ctx, f.refundsQuery(p))
			rows := make([]RefundRow, len(refunds))
			for i, r := range refunds {
				rows[i] = refundRowOf(r)
			}
			return rows, more, err
		},
		func(r RefundRow) pay.Cursor { return pay.Cursor{CreatedAt: r.CreatedAt, ID: r.ID} }, each)
}

// export counts (up to the bound), audits, then pages through the list in batches.
func export[T any](ctx context.Context, o *Ops, a Actor, action string, f ListFilter,
	sqlOf func(pay.Page) (string, []any), read func(pay.Page) ([]T, bool, error), cursor func(T) pay.Cursor, each func(T) error) (int, error) {
	if err := o.authorize(ctx, a, RoleViewer, action, ""); err != nil {
		return 0, err
	}
	if now := o.now(); f.To.IsZero() || f.To.After(now) {
		f.To = now
	}
	if err := f.check(); err != nil {
		return 0, err
	}
	sql, args := sqlOf(pay.Page{Limit: MaxExportRows})
	var n int
	if err := o.store.Pool().QueryRow(ctx, "SELECT count(*) FROM ("+sql+") selected", args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: count: %w", action, err)
	}
	if n > MaxExportRows {
		return 0, pay.Errorf(pay.KindTooLarge, "export_too_large",
			"the filters select more than %d rows, the most one export holds: narrow them (a shorter time range, one app, one status)", MaxExportRows)
	}
	filter := map[string]any{"app": f.AppID, "status": f.Status, "from": timeArg(f.From), "to": f.To, "rows": n}
	if err := o.audit(ctx, a, action, "", "ok", nil, filter, ""); err != nil {
		return 0, err
	}
	p := pay.Page{Limit: exportBatch}
	written := 0
	for written < n {
		rows, more, err := read(p)
		if err != nil {
			return written, err
		}
		for _, r := range rows {
			if written == n {
				break
			}
			if err := each(r); err != nil {
				return written, err
			}
			written++
		}
		if !more || len(rows) == 0 {
			break
		}
		c := cursor(rows[len(rows)-1])
		p.StartingAfter = &c
	}
	return written, nil
}

// OrdersCSVHeader and RefundsCSVHeader are the first lines of the exports.
var (
	OrdersCSVHeader = []string{"created_at", "payment_order_id", "app_id", "merchant_order_id", "status", "failure_reason", "order_type",
		"amount_yuan", "refunded_yuan", "currency", "subject", "lakala_trade_no", "lakala_log_no", "lakala_trade_time", "review_reason"}
	RefundsCSVHeader = []string{"created_at", "refund_order_id", "app_id", "payment_order_id", "merchant_order_id", "merchant_refund_id",
		"status", "failure_reason", "amount_yuan", "currency", "reason", "lakala_trade_no", "lakala_log_no", "lakala_trade_time", "out_trade_no"}
)

// CSVWriter writes the rows of an export as CSV (amounts in yuan, times RFC 3339 in loc), the
// header first. Text that came from outside is guarded against spreadsheet formulas.
type CSVWriter struct {
	w   *csv.Writer
	loc *time.Location
}

// NewCSVWriter starts a CSV export with its header.
func NewCSVWriter(w io.Writer, loc *time.Location, header []string) (*CSVWriter, error) {
	c := &CSVWriter{w: csv.NewWriter(w), loc: loc}
	return c, c.w.Write(header)
}

func (c *CSVWriter) time(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.In(c.loc).Format(time.RFC3339)
}

// Order writes one order.
func (c *CSVWriter) Order(r OrderRow) error {
	return c.w.Write([]string{c.time(&r.CreatedAt), r.ID, safeCell(r.AppID), safeCell(r.MerchantOrderID), string(r.Status), r.FailureReason, r.OrderType,
		yuan(r.Amount), yuan(r.RefundedAmount), r.Currency, safeCell(r.Subject), safeCell(r.GatewayTransactionID), safeCell(r.GatewayLogNo),
		c.time(r.GatewayTradeTime), safeCell(r.ReviewReason)})
}

// Refund writes one refund.
func (c *CSVWriter) Refund(r RefundRow) error {
	return c.w.Write([]string{c.time(&r.CreatedAt), r.ID, safeCell(r.AppID), r.PaymentOrderID, safeCell(r.MerchantOrderID), safeCell(r.MerchantRefundID),
		string(r.Status), safeCell(r.FailureReason), yuan(r.Amount), r.Currency, safeCell(r.Reason), safeCell(r.GatewayRefundID), safeCell(r.GatewayLogNo),
		c.time(r.GatewayTradeTime), r.OutTradeNo})
}

// Flush writes out what is buffered and reports a write error.
func (c *CSVWriter) Flush() error {
	c.w.Flush()
	return c.w.Error()
}

package ops

import (
	"github.com/jackc/pgx/v5"

	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// SearchFilter selects orders or refunds. Query matches any identifier exactly: the order or
// refund id, merchant_order_id, merchant_refund_id, the out_order_no of any payment attempt, a
// refund's out_trade_no, Lakala's trade number (gateway_transaction_id), pay order number
// (gateway_order_no) or refund trade number. The other fields narrow the result.
type SearchFilter struct {
	Query    string
	AppID    string
	Status   string
	From, To time.Time // created_at in [From, To); zero: unbounded
	Limit    int       // default 50, at most 500
}

// OrderRow is a payment order as operators see it.
type OrderRow struct {
	ID                   string     `json:"id"`
	AppID                string     `json:"app_id"`
	MerchantOrderID      string     `json:"merchant_order_id"`
	Status               pay.Status `json:"status"`
	OrderType            string     `json:"order_type"`
	Amount               int64      `json:"amount"`
	Currency             string     `json:"currency"`
	Subject              string     `json:"subject"`
	GatewayTransactionID string     `json:"gateway_transaction_id,omitempty"`
	GatewayOrderNo       string     `json:"gateway_order_no,omitempty"`
	RefundedAmount       int64      `json:"refunded_amount"`
	FailureReason        string     `json:"failure_reason,omitempty"`
	ReviewReason         string     `json:"review_reason,omitempty"`
	ResultSeq            int        `json:"result_seq"`
	ExpiresAt            *time.Time `json:"expires_at,omitempty"`
	CreatedAt            time.Time  `json:"created_at"`
	UpdatedAt            time.Time  `json:"updated_at"`

	// ExtraData is the main app's own extra_data, as it gave it; PaymentURL the cashier's URL.
	ExtraData     json.RawMessage `json:"extra_data"`
	PaymentURL    string          `json:"payment_url,omitempty"`
	ClosingReason string          `json:"closing_reason,omitempty"`
	// Lakala's statement numbers of the payment (see the daily statement).
	GatewayLogNo     string     `json:"gateway_log_no,omitempty"`
	GatewayTradeTime *time.Time `json:"gateway_trade_time,omitempty"`
}

func (f SearchFilter) check() error {
	if f.Status != "" && !pay.Status(f.Status).Final() && f.Status != string(pay.StatusPending) && f.Status != string(pay.StatusProcessing) {
		return pay.Invalid("status", "status must be pending, processing, succeeded or failed")
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return pay.Invalid("from", "from must be before to")
	}
	return nil
}

func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

const orderSelect = `id::text, app_id, merchant_order_id, status, order_type, amount, currency, subject,
	coalesce(gateway_transaction_id, ''), coalesce(gateway_order_no, ''), refunded_amount,
	coalesce(failure_reason, ''), coalesce(review_reason, ''), result_seq, expires_at, created_at, updated_at,
	extra_data, coalesce(payment_url, ''), coalesce(closing_reason, ''), coalesce(gateway_log_no, ''), gateway_trade_time`

type scanner interface{ Scan(dest ...any) error }

func scanOrderRow(row scanner) (OrderRow, error) {
	var o OrderRow
	err := row.Scan(&o.ID, &o.AppID, &o.MerchantOrderID, &o.Status, &o.OrderType, &o.Amount, &o.Currency, &o.Subject,
		&o.GatewayTransactionID, &o.GatewayOrderNo, &o.RefundedAmount, &o.FailureReason, &o.ReviewReason, &o.ResultSeq,
		&o.ExpiresAt, &o.CreatedAt, &o.UpdatedAt, &o.ExtraData, &o.PaymentURL, &o.ClosingReason, &o.GatewayLogNo, &o.GatewayTradeTime)
	return o, err
}

// orderRowOf is a payment order of the store (the API's lists) as operators see it.
func orderRowOf(o pay.Order) OrderRow {
	return OrderRow{ID: o.ID, AppID: o.AppID, MerchantOrderID: o.MerchantOrderID, Status: o.Status, OrderType: o.OrderType,
		Amount: o.Amount, Currency: o.Currency, Subject: o.Subject, GatewayTransactionID: o.GatewayTransactionID,
		GatewayOrderNo: o.GatewayOrderNo, RefundedAmount: o.RefundedAmount, FailureReason: o.FailureReason,
		ReviewReason: o.ReviewReason, ResultSeq: o.ResultSeq, ExpiresAt: o.ExpiresAt, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
		ExtraData: o.ExtraData, PaymentURL: o.PaymentURL, ClosingReason: o.ClosingReason,
		GatewayLogNo: o.GatewayLogNo, GatewayTradeTime: o.GatewayTradeTime}
}

// SearchOrders finds payment orders, newest first.
func (o *Ops) SearchOrders(ctx context.Context, a Actor, f SearchFilter) ([]OrderRow, error) {
	if err := o.authorize(ctx, a, RoleViewer, "order.search", ""); err != nil {
		return nil, err
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	q := strings.TrimSpace(f.Query)
	rows, err := o.store.Pool().Query(ctx, `SELECT `+orderSelect+` FROM payment_orders p
		WHERE ($1 = '' OR p.merchant_order_id = $1 OR p.id::text = lower($1) OR replace(p.id::text, '-', '') = lower($1)
		       OR p.gateway_transaction_id = $1 OR p.gateway_order_no = $1
		       OR EXISTS (SELECT 1 FROM payment_attempts a WHERE a.payment_order_id = p.id AND (a.out_order_no = $1 OR a.pay_order_no = $1))
		       OR EXISTS (SELECT 1 FROM refund_orders r WHERE r.payment_order_id = p.id
		                  AND (r.id::text = lower($1) OR r.out_trade_no = $1 OR r.merchant_refund_id = $1 OR r.gateway_refund_id = $1)))
		  AND ($2 = '' OR p.app_id = $2) AND ($3 = '' OR p.status = $3)
		  AND ($4::timestamptz IS NULL OR (p.created_at >= $4 AND p.id >= $7::uuid)) AND ($5::timestamptz IS NULL OR p.created_at < $5)
		ORDER BY p.created_at DESC, p.id DESC LIMIT $6`,
		q, f.AppID, f.Status, timeArg(f.From), timeArg(f.To), clampLimit(f.Limit, 50, 500), IDFloor(f.From))
	if err != nil {
		return nil, fmt.Errorf("search orders: %w", err)
	}
	defer rows.Close()
	var out []OrderRow
	for rows.Next() {
		r, err := scanOrderRow(rows)
		if err != nil {
			return nil, fmt.Errorf("search orders: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RefundRow is a refund as operators see it.
type RefundRow struct {
	ID               string     `json:"id"`
	AppID            string     `json:"app_id"`
	PaymentOrderID   string     `json:"payment_order_id"`
	MerchantOrderID  string     `json:"merchant_order_id"`
	MerchantRefundID string     `json:"merchant_refund_id,omitempty"`
	Status           pay.Status `json:"status"`
	Amount           int64      `json:"amount"`
	Currency         string     `json:"currency"`
	Reason           string     `json:"reason,omitempty"`
	GatewayRefundID  string     `json:"gateway_refund_id,omitempty"`
	OutTradeNo       string     `json:"out_trade_no"`
	FailureReason    string     `json:"failure_reason,omitempty"`
	ReviewReason     string     `json:"review_reason,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`

	// Lakala's statement numbers of the refund (its trade_no is GatewayRefundID).
	GatewayLogNo     string     `json:"gateway_log_no,omitempty"`
	GatewayTradeTime *time.Time `json:"gateway_trade_time,omitempty"`
}

const refundSelect = `r.id::text, r.app_id, r.payment_order_id::text, p.merchant_order_id, coalesce(r.merchant_refund_id, ''), r.status,
	r.amount, r.currency, coalesce(r.reason, ''), coalesce(r.gateway_refund_id, ''), r.out_trade_no,
	coalesce(r.failure_reason, ''), coalesce(r.review_reason, ''), r.created_at, r.updated_at,
	coalesce(r.gateway_log_no, ''), r.gateway_trade_time`

func scanRefundRow(row scanner) (RefundRow, error) {
	var r RefundRow
	err := row.Scan(&r.ID, &r.AppID, &r.PaymentOrderID, &r.MerchantOrderID, &r.MerchantRefundID, &r.Status, &r.Amount,
		&r.Currency, &r.Reason, &r.GatewayRefundID, &r.OutTradeNo, &r.FailureReason, &r.ReviewReason, &r.CreatedAt, &r.UpdatedAt,
		&r.GatewayLogNo, &r.GatewayTradeTime)
	return r, err
}

// refundRowOf is a refund of the store (the API's lists) as operators see it.
func refundRowOf(r pay.Refund) RefundRow {
	return RefundRow{ID: r.ID, AppID: r.AppID, PaymentOrderID: r.PaymentOrderID, MerchantOrderID: r.MerchantOrderID,
		MerchantRefundID: r.MerchantRefundID, Status: r.Status, Amount: r.Amount, Currency: r.Currency, Reason: r.Reason,
		GatewayRefundID: r.GatewayRefundID, OutTradeNo: r.OutTradeNo, FailureReason: r.FailureReason, ReviewReason: r.ReviewReason,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, GatewayLogNo: r.GatewayLogNo, GatewayTradeTime: r.GatewayTradeTime}
}

// SearchRefunds finds refunds, newest first. Query matches the refund's ids, its payment order's
// id or merchant_order_id.
func (o *Ops) SearchRefunds(ctx context.Context, a Actor, f SearchFilter) ([]RefundRow, error) {
	if err := o.authorize(ctx, a, RoleViewer, "refund.search", ""); err != nil {
		return nil, err
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	q := strings.TrimSpace(f.Query)
	rows, err := o.store.Pool().Query(ctx, `SELECT `+refundSelect+` FROM refund_orders r JOIN payment_orders p ON p.id = r.payment_order_id
		WHERE ($1 = '' OR r.id::text = lower($1) OR r.out_trade_no = $1 OR r.merchant_refund_id = $1 OR r.gateway_refund_id = $1
		       OR p.id::text = lower($1) OR p.merchant_order_id = $1)
		  AND ($2 = '' OR r.app_id = $2) AND ($3 = '' OR r.status = $3)
		  AND ($4::timestamptz IS NULL OR r.created_at >= $4) AND ($5::timestamptz IS NULL OR r.created_at < $5)
		ORDER BY r.created_at DESC, r.id DESC LIMIT $6`,
		q, f.AppID, f.Status, timeArg(f.From), timeArg(f.To), clampLimit(f.Limit, 50, 500))
	if err != nil {
		return nil, fmt.Errorf("search refunds: %w", err)
	}
	defer rows.Close()
	var out []RefundRow
	for rows.Next() {
		r, err := scanRefundRow(rows)
		if err != nil {
			return nil, fmt.Errorf("search refunds: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Attempt is one cashier order created at Lakala for a payment order.
type Attempt struct {
	AttemptNo   int       `json:"attempt_no"`
	OutOrderNo  string    `json:"out_order_no"`
	State       string    `json:"state"`
	PayOrderNo  string    `json:"pay_order_no,omitempty"`
	Submissions int       `json:"submissions"`
	LastError   string    `json:"last_error,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
	CreatedAt   time.Time `json:"created_at"`
}

// ResultMessage is a result message from the outbox.
type ResultMessage struct {
	EventID     string            `json:"event_id"`
	Stream      string            `json:"stream"`
	SubjectID   string            `json:"subject_id"`
	Seq         int               `json:"seq"`
	OldStatus   string            `json:"old_status"`
	NewStatus   string            `json:"new_status"`
	Fields      map[string]string `json:"fields"`
	CreatedAt   time.Time         `json:"created_at"`
	PublishedAt *time.Time        `json:"published_at"`
}

// Notification is one notification received from Lakala, as logged by the webhook.
type Notification struct {
	ID          int64     `json:"id"`
	ReceivedAt  time.Time `json:"received_at"`
	Verified    bool      `json:"verified"`
	Result      string    `json:"result"`
	OutOrderNo  string    `json:"out_order_no,omitempty"`
	TradeNo     string    `json:"trade_no,omitempty"`
	TradeStatus string    `json:"trade_status,omitempty"`
	OrderStatus string    `json:"order_status,omitempty"`
	Amount      *int64    `json:"amount,omitempty"`
	// MerchantNo and PayOrderNo are what it named; Binding whether it bound to the cashier order
	// we created (bound) or why not (other_merchant, other_pay_order, no_merchant, other_certificate).
	MerchantNo string `json:"merchant_no,omitempty"`
	PayOrderNo string `json:"pay_order_no,omitempty"`
	Binding    string `json:"binding,omitempty"`
}

// Event is one line of an order's timeline.
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"` // created, status, gateway_call, notification, refund, review, audit
	Subject string    `json:"subject"`
	Summary string    `json:"summary"`
	Detail  string    `json:"detail,omitempty"`
}

// Timeline is everything known about one payment order.
type Timeline struct {
	Order     OrderRow `json:"order"`
	ResultSeq int      `json:"result_seq"`
	// Refundable is what may still be refunded (pay.Refundable).
	Refundable int64 `json:"refundable"`
	// CanClose: the order is live, and this operations layer can call Lakala to close it.
	CanClose      bool                   `json:"can_close"`
	Attempts      []Attempt              `json:"attempts"`
	Refunds       []RefundRow            `json:"refunds"`
	Cases         []ReviewCase           `json:"review_cases"`
	Results       []ResultMessage        `json:"result_messages"`
	GatewayCalls  []postgres.GatewayCall `json:"gateway_calls"`
	Notifications []Notification         `json:"notifications"`
	Audit         []AuditEntry           `json:"audit"`
	Events        []Event                `json:"events"`
	// Notes say what the timeline cannot show (pruned history).
	Notes []string `json:"notes"`
}

// FindOrder resolves any identifier (see SearchFilter.Query) to one order.
func (o *Ops) FindOrder(ctx context.Context, a Actor, ref string) (OrderRow, error) {
	rows, err := o.SearchOrders(ctx, a, SearchFilter{Query: ref, Limit: 2})
	if err != nil {
		return OrderRow{}, err
	}
	switch len(rows) {
	case 0:
		return OrderRow{}, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no payment order matches %q", ref)
	case 1:
		return rows[0], nil
	}
	return OrderRow{}, pay.Errorf(pay.KindConflict, "ambiguous", "%q matches several orders (a merchant_order_id of several apps?); use the order id", ref)
}

// OrderTimeline returns an order with everything that happened to it, oldest first.
func (o *Ops) OrderTimeline(ctx context.Context, a Actor, ref string) (Timeline, error) {
	ord, err := o.FindOrder(ctx, a, ref)
	if err != nil {
		return Timeline{}, err
	}
	t := Timeline{Order: ord}
	pool := o.store.Pool()
	id := ord.ID
	t.ResultSeq = ord.ResultSeq

	rows, err := pool.Query(ctx, `SELECT attempt_no, out_order_no, state, coalesce(pay_order_no, ''), submissions, coalesce(last_error, ''), expires_at, created_at
		FROM payment_attempts WHERE payment_order_id = $1 ORDER BY attempt_no`, id)
	if err != nil {
		return t, fmt.Errorf("timeline attempts: %w", err)
	}
	t.Attempts, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (at Attempt, err error) {
		return at, row.Scan(&at.AttemptNo, &at.OutOrderNo, &at.State, &at.PayOrderNo, &at.Submissions, &at.LastError, &at.ExpiresAt, &at.CreatedAt)
	})
	if err != nil {
		return t, fmt.Errorf("timeline attempts: %w", err)
	}

	t.Refunds, err = o.SearchRefunds(ctx, a, SearchFilter{Query: id, Limit: 500})
	if err != nil {
		return t, err
	}
	// Refunds are listed oldest first on a timeline.
	sort.Slice(t.Refunds, func(i, j int) bool { return t.Refunds[i].CreatedAt.Before(t.Refunds[j].CreatedAt) })
	var outstanding int64
	for _, r := range t.Refunds {
		if r.Status != pay.StatusFailed {
			outstanding += r.Amount
		}
	}
	t.Refundable = pay.Refundable(&pay.Order{Status: ord.Status, Amount: ord.Amount}, outstanding)
	t.CanClose = !ord.Status.Final() && o.payments != nil

	t.Cases, err = o.reviewCases(ctx, reviewFilter{OrderID: id, All: true, Limit: 500})
	if err != nil {
		return t, err
	}

	subjects := []string{id}
	outNos := []string{strings.ReplaceAll(id, "-", "")} // attempt 1's number, also before attempts existed
	for _, at := range t.Attempts {
		outNos = append(outNos, at.OutOrderNo)
	}
	for _, r := range t.Refunds {
		subjects = append(subjects, r.ID)
		outNos = append(outNos, r.OutTradeNo)
	}

	rows, err = pool.Query(ctx, `SELECT event_id::text, stream, coalesce(subject_id::text, coalesce(fields ->> 'refund_order_id', fields ->> 'payment_order_id')),
			coalesce(seq, 0), fields, created_at, published_at
		FROM outbox WHERE subject_id = ANY($1::uuid[])
		   OR (subject_id IS NULL AND coalesce(fields ->> 'refund_order_id', fields ->> 'payment_order_id') = ANY($2))
		ORDER BY id`, subjects, subjects)
	if err != nil {
		return t, fmt.Errorf("timeline results: %w", err)
	}
	t.Results, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (m ResultMessage, err error) {
		var fields []byte
		if err := row.Scan(&m.EventID, &m.Stream, &m.SubjectID, &m.Seq, &fields, &m.CreatedAt, &m.PublishedAt); err != nil {
			return m, err
		}
		_ = json.Unmarshal(fields, &m.Fields)
		m.OldStatus, m.NewStatus = m.Fields["old_status"], m.Fields["new_status"]
		if m.Seq == 0 {
			fmt.Sscan(m.Fields["seq"], &m.Seq)
		}
		return m, nil
	})
	if err != nil {
		return t, fmt.Errorf("timeline results: %w", err)
	}

	rows, err = pool.Query(ctx, `SELECT id, operation, out_no, outcome, coalesce(code, ''), coalesce(message, ''), coalesce(http_status, 0),
			coalesce(trace_id, ''), duration_ms, called_at, coalesce(merchant_id, '')
		FROM gateway_calls WHERE out_no = ANY($1) ORDER BY id LIMIT 1000`, outNos)
	if err != nil {
		return t, fmt.Errorf("timeline gateway calls: %w", err)
	}
	t.GatewayCalls, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (c postgres.GatewayCall, err error) {
		return c, row.Scan(&c.ID, &c.Operation, &c.OutNo, &c.Outcome, &c.Code, &c.Message, &c.HTTPStatus, &c.TraceID, &c.DurationMS, &c.CalledAt, &c.MerchantID)
	})
	if err != nil {
		return t, fmt.Errorf("timeline gateway calls: %w", err)
	}

	rows, err = pool.Query(ctx, `SELECT id, received_at, verified, result, coalesce(out_order_no, ''), coalesce(trade_no, ''),
			coalesce(trade_status, ''), coalesce(order_status, ''), amount, coalesce(merchant_no, ''), coalesce(pay_order_no, ''),
			coalesce(binding, '')
		FROM notifications WHERE payment_order_id = $1 OR out_order_no = ANY($2) ORDER BY id LIMIT 1000`, id, outNos)
	if err != nil {
		return t, fmt.Errorf("timeline notifications: %w", err)
	}
	t.Notifications, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (n Notification, err error) {
		return n, row.Scan(&n.ID, &n.ReceivedAt, &n.Verified, &n.Result, &n.OutOrderNo, &n.TradeNo, &n.TradeStatus, &n.OrderStatus, &n.Amount,
			&n.MerchantNo, &n.PayOrderNo, &n.Binding)
	})
	if err != nil {
		return t, fmt.Errorf("timeline notifications: %w", err)
	}

	auditSubjects := append([]string{}, subjects...)
	for _, c := range t.Cases {
		auditSubjects = append(auditSubjects, fmt.Sprintf("review:%d", c.ID))
	}
	rows, err = pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_log WHERE subject = ANY($1) ORDER BY id LIMIT 500`, auditSubjects)
	if err != nil {
		return t, fmt.Errorf("timeline audit: %w", err)
	}
	if t.Audit, err = pgx.CollectRows(rows, scanAuditEntry); err != nil {
		return t, fmt.Errorf("timeline audit: %w", err)
	}

	t.Events = t.events()
	t.Notes = append(t.Notes, fmt.Sprintf("Published result messages are pruned from the outbox after %s, gateway calls and notifications after their retention (default 30 days): older status changes may be missing here.", o.OutboxRetention))
	if len(t.Results) == 0 && ord.Status != pay.StatusPending {
		t.Notes = append(t.Notes, "No result message is left in the outbox for this order: its history was pruned.")
	}
	return t, nil
}

func (t *Timeline) events() []Event {
	var ev []Event
	ord := t.Order
	ev = append(ev, Event{At: ord.CreatedAt, Kind: "created", Subject: ord.ID,
		Summary: fmt.Sprintf("order created: %s %s, app %s, merchant_order_id %s", yuan(ord.Amount), ord.Currency, ord.AppID, ord.MerchantOrderID)})
	for _, m := range t.Results {
		pub := "not published yet"
		if m.PublishedAt != nil {
			pub = "published " + pay.FormatTime(*m.PublishedAt)
		}
		what := "payment"
		if m.Stream == pay.StreamRefundResults {
			what = "refund " + m.SubjectID
		}
		detail := "event_id " + m.EventID
		if r := m.Fields["failure_reason"]; r != "" {
			detail += ", failure_reason " + r
		}
		ev = append(ev, Event{At: m.CreatedAt, Kind: "status", Subject: m.SubjectID,
			Summary: fmt.Sprintf("%s %s → %s (message %d to the main app, %s)", what, m.OldStatus, m.NewStatus, m.Seq, pub), Detail: detail})
	}
	for _, c := range t.GatewayCalls {
		s := fmt.Sprintf("Lakala %s %s: %s", c.Operation, c.OutNo, c.Outcome)
		if c.Code != "" {
			s += " " + c.Code
		}
		d := fmt.Sprintf("%d ms", c.DurationMS)
		if c.Message != "" {
			d += ", " + c.Message
		}
		if c.HTTPStatus != 0 {
			d += fmt.Sprintf(", HTTP %d", c.HTTPStatus)
		}
		if c.TraceID != "" {
			d += ", trace " + c.TraceID
		}
		ev = append(ev, Event{At: c.CalledAt, Kind: "gateway_call", Subject: c.OutNo, Summary: s, Detail: d})
	}
	for _, n := range t.Notifications {
		v := "verified"
		if !n.Verified {
			v = "NOT verified"
		}
		summary := fmt.Sprintf("notification %s, %s", v, n.Result)
		switch n.Binding {
		case "other_merchant":
			summary += fmt.Sprintf(": another merchant's cashier order (%s) with our number — nothing applied, confirmed by our own query", n.MerchantNo)
		case "other_pay_order":
			summary += fmt.Sprintf(": pay order %s is not ours — nothing applied, confirmed by our own query", n.PayOrderNo)
		case "no_merchant":
			summary += ": names no merchant — nothing applied, confirmed by our own query"
		case "other_certificate":
			summary += ": signed with another merchant's notification certificate — nothing applied, confirmed by our own query"
		}
		ev = append(ev, Event{At: n.ReceivedAt, Kind: "notification", Subject: n.OutOrderNo, Summary: summary,
			Detail: strings.TrimSpace(fmt.Sprintf("trade %s %s %s", n.TradeNo, n.TradeStatus, n.OrderStatus))})
	}
	for _, r := range t.Refunds {
		ev = append(ev, Event{At: r.CreatedAt, Kind: "refund", Subject: r.ID,
			Summary: fmt.Sprintf("refund requested: %s (now %s)", yuan(r.Amount), r.Status), Detail: "out_trade_no " + r.OutTradeNo})
	}
	for _, c := range t.Cases {
		ev = append(ev, Event{At: c.OpenedAt, Kind: "review", Subject: fmt.Sprintf("review:%d", c.ID),
			Summary: fmt.Sprintf("review case %d opened: %s", c.ID, c.Kind), Detail: c.Summary})
		if c.ResolvedAt != nil {
			ev = append(ev, Event{At: *c.ResolvedAt, Kind: "review", Subject: fmt.Sprintf("review:%d", c.ID),
				Summary: fmt.Sprintf("review case %d resolved by %s: %s", c.ID, c.ResolvedBy, c.Resolution), Detail: c.ResolutionNote})
		}
	}
	for _, e := range t.Audit {
		ev = append(ev, Event{At: e.At, Kind: "audit", Subject: e.Subject,
			Summary: fmt.Sprintf("%s by %s (%s): %s", e.Action, e.Actor, e.Via, e.Outcome), Detail: e.Note})
	}
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].At.Before(ev[j].At) })
	return ev
}

// yuan renders fen as yuan with fen precision.
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

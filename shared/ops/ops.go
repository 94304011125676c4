// Package ops is Loomi Pay's operations layer: everything a person does to find and settle the
// states the service cannot settle alone — search and order timelines, review cases, dead
// letters, result republishing, apps and keys, operators. The CLI and the console both call it,
// so each action exists once; every change is checked against the actor's role and written to
// the audit log (who, when, what, before and after, note), refusals included.
package ops

import (
	"github.com/jackc/pgx/v5"

	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/loomipay/loomipay/shared/merchants"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
	"github.com/loomipay/loomipay/shared/webhooks"
)

// Role is what an operator may do. Each role may do everything the one before it may.
type Role string

const (
	RoleViewer   Role = "viewer"   // read everything, change nothing
	RoleOperator Role = "operator" // settle: resolve review cases, redrive or discard dead letters, republish results
	RoleAdmin    Role = "admin"    // also apps, API keys and operators
)

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.rank() > 0 {
		return r, nil
	}
	return "", pay.Invalid("role", "role must be viewer, operator or admin, not %q", s)
}

// Actor is who performs an action and through which door.
type Actor struct {
	Name string
	Role Role
	Via  string // "cli" or "console"
}

// Ops performs operator actions. Safe for concurrent use.
type Ops struct {
	svc     *service.Service
	store   *postgres.Store
	streams *streams.Streams
	hooks   *webhooks.Webhooks // nil: no webhook actions (see WithWebhooks)
	// merchants checks merchants added and keys rotated (see WithMerchants).
	merchants *merchants.Registry
	// payments acts at Lakala for a person (a resolution that closes cashier orders first; an operator's close); nil
	// in a process without a Lakala client, where those actions answer 503.
	payments *service.Payments
	// daysCache keeps the overview's 30-day charts for DaysCacheTTL.
	daysCache daysCache
	log       *slog.Logger
	// OutboxRetention is how long published result messages stay in the outbox (the processor
	// prunes them after it); a timeline or a republish older than this cannot see them.
	OutboxRetention time.Duration
	// ResolutionLease bounds how long a resolution that closes an order's cashier orders holds the
	// order's task (its Lakala calls, two per cashier order, and its transaction): a process that
	// dies meanwhile leaves the task to the processor after it. Default 1 min.
	ResolutionLease time.Duration
	now             func() time.Time
	// logins limits wrong operator tokens (Login).
	logins *service.Throttle
}

// New builds the operations layer on the service's store and streams.
func New(svc *service.Service) *Ops {
	return &Ops{svc: svc, store: svc.Store(), streams: svc.Streams(), log: svc.Logger().With("component", "ops"),
		OutboxRetention: 7 * 24 * time.Hour, ResolutionLease: time.Minute, now: func() time.Time { return time.Now().UTC() },
		logins: service.NewThrottle(svc.Streams(), "login", service.LoginFailures)}
}

// WithPayments lets the operations layer act at Lakala (see Ops.payments).
func (o *Ops) WithPayments(p *service.Payments) *Ops {
	o.payments = p
	return o
}

// Store is the store the operations work on.
func (o *Ops) Store() *postgres.Store { return o.store }

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID      int64           `json:"id"`
	At      time.Time       `json:"at"`
	Actor   string          `json:"actor"`
	Role    string          `json:"role"`
	Via     string          `json:"via"`
	Action  string          `json:"action"`
	Subject string          `json:"subject"`
	Outcome string          `json:"outcome"`
	Before  json.RawMessage `json:"before,omitempty"`
	After   json.RawMessage `json:"after,omitempty"`
	Note    string          `json:"note"`
}

func marshalOrNil(v any) []byte {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

const insertAuditSQL = `INSERT INTO audit_log (actor, role, via, action, subject, outcome, before, after, note)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`

func auditArgs(a Actor, action, subject, outcome string, before, after any, note string) []any {
	via := a.Via
	if via == "" {
		via = "cli"
	}
	return []any{a.Name, string(a.Role), via, action, subject, outcome, marshalOrNil(before), marshalOrNil(after), note}
}

// audit writes an audit row outside any transaction (refusals, and actions whose change is not a
// database transaction of ours, like a Redis publish).
func (o *Ops) audit(ctx context.Context, a Actor, action, subject, outcome string, before, after any, note string) error {
	if _, err := o.store.Pool().Exec(context.WithoutCancel(ctx), insertAuditSQL, auditArgs(a, action, subject, outcome, before, after, note)...); err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

// auditTx writes an audit row in the transaction of the change it records.
func auditTx(ctx context.Context, tx *postgres.Tx, a Actor, action, subject string, before, after any, note string) error {
	if _, err := tx.Exec(ctx, insertAuditSQL, auditArgs(a, action, subject, "ok", before, after, note)...); err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

// authorize checks that the actor may perform an action needing role need. A refusal is itself
// audited, so attempts by the wrong people are visible.
func (o *Ops) authorize(ctx context.Context, a Actor, need Role, action, subject string) error {
	if a.Name == "" || a.Role.rank() == 0 {
		return pay.Errorf(pay.KindUnauthorized, pay.CodeUnauthorized, "no operator: log in first")
	}
	if a.Role.rank() >= need.rank() {
		return nil
	}
	if err := o.audit(ctx, a, action, subject, "refused", nil, nil, fmt.Sprintf("role %s may not %s (needs %s)", a.Role, action, need)); err != nil {
		o.log.ErrorContext(ctx, "audit of a refusal failed", "err", err)
	}
	return pay.Errorf(pay.KindForbidden, pay.CodeForbidden, "%s needs the %s role; %s is %s", action, need, a.Name, a.Role)
}

// requireNote refuses an action without a note: a person settling money must say why.
func requireNote(note string) error {
	if len(note) == 0 {
		return pay.Invalid("note", "a note is required: say what you checked and why")
	}
	if len(note) > 2000 {
		return pay.Invalid("note", "the note is longer than 2000 bytes")
	}
	return nil
}

// AuditFilter selects audit rows.
type AuditFilter struct {
	Subject string // exact subject (an order id, a task id, a key id…)
	Actor   string
	Action  string
	Limit   int // default 100, at most 1000
}

// AuditLog lists audit rows, newest first. Any operator may read it.
func (o *Ops) AuditLog(ctx context.Context, a Actor, f AuditFilter) ([]AuditEntry, error) {
	if err := o.authorize(ctx, a, RoleViewer, "audit.list", ""); err != nil {
		return nil, err
	}
	rows, err := o.store.Pool().Query(ctx, `SELECT `+auditColumns+`
		FROM audit_log WHERE ($1 = '' OR subject = $1) AND ($2 = '' OR actor = $2) AND ($3 = '' OR action = $3)
		ORDER BY id DESC LIMIT $4`, f.Subject, f.Actor, f.Action, clampLimit(f.Limit, 100, 1000))
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return pgx.CollectRows(rows, scanAuditEntry)
}

// auditColumns are the columns scanAuditEntry reads, in its order.
const auditColumns = "id, at, actor, role, via, action, subject, outcome, before, after, note"

func scanAuditEntry(row pgx.CollectableRow) (e AuditEntry, err error) {
	var before, after []byte
	if err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Role, &e.Via, &e.Action, &e.Subject, &e.Outcome, &before, &after, &e.Note); err != nil {
		return e, err
	}
	e.Before, e.After = compact(before), compact(after)
	return e, nil
}

func clampLimit(n, def, max int) int {
	if n <= 0 {
		return def
	}
	if n > max {
		return max
	}
	return n
}

// compact removes the spaces jsonb puts in its text form.
func compact(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
)

const attemptColumns = `payment_order_id::text, attempt_no, out_order_no, state, expires_at,
	coalesce(pay_order_no, ''), coalesce(counter_url, ''), submissions, coalesce(submitted_at, created_at), coalesce(last_error, ''),
	created_at, updated_at`

func scanAttempt(row pgx.Row) (pay.Attempt, error) {
	var a pay.Attempt
	var state string
	err := row.Scan(&a.PaymentOrderID, &a.No, &a.OutOrderNo, &state, &a.ExpiresAt,
		&a.PayOrderNo, &a.CounterURL, &a.Submissions, &a.SubmittedAt, &a.LastError, &a.CreatedAt, &a.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, pay.ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("scan payment attempt: %w", err)
	}
	a.State = pay.AttemptState(state)
	return a, nil
}

// Attempts lists an order's cashier orders, oldest first.
func (s *Store) Attempts(ctx context.Context, orderID string) ([]pay.Attempt, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+attemptColumns+" FROM payment_attempts WHERE payment_order_id = $1 ORDER BY attempt_no", orderID)
	if err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", orderID, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (pay.Attempt, error) { return scanAttempt(row) })
}

// Attempts lists an order's cashier orders inside a transaction (under the order's lock, so no
// report changes them meanwhile).
func (t *Tx) Attempts(ctx context.Context, orderID string) ([]pay.Attempt, error) {
	rows, err := t.tx.Query(ctx, "SELECT "+attemptColumns+" FROM payment_attempts WHERE payment_order_id = $1 ORDER BY attempt_no", orderID)
	if err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", orderID, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (pay.Attempt, error) { return scanAttempt(row) })
}

// AttemptByOutOrderNo finds the attempt Lakala knows by outOrderNo, or pay.ErrNotFound.
func (s *Store) AttemptByOutOrderNo(ctx context.Context, outOrderNo string) (pay.Attempt, error) {
	return scanAttempt(s.pool.QueryRow(ctx, "SELECT "+attemptColumns+" FROM payment_attempts WHERE out_order_no = $1", outOrderNo))
}

// NewAttempt records an attempt before its create call. ErrStale: that attempt number exists
// already (another worker got there first).
func (s *Store) NewAttempt(ctx context.Context, a pay.Attempt) error {
	var submitted *time.Time
	if !a.SubmittedAt.IsZero() {
		submitted = &a.SubmittedAt
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO payment_attempts (payment_order_id, attempt_no, out_order_no, state,
			expires_at, submissions, submitted_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
		a.PaymentOrderID, a.No, a.OutOrderNo, string(a.State), a.ExpiresAt, a.Submissions, submitted, a.CreatedAt)
	if isUniqueViolation(err, "") {
		return fmt.Errorf("new attempt %d of %s: %w", a.No, a.PaymentOrderID, ErrStale)
	}
	if err != nil {
		return fmt.Errorf("new attempt %d of %s: %w", a.No, a.PaymentOrderID, err)
	}
	return nil
}

// saveAttemptSQL never moves an attempt out of paid: a payment is recorded once, with its
// consequence (service.ApplyReport), and a save of an attempt read before it must not undo it.
const saveAttemptSQL = `UPDATE payment_attempts SET state = $3, pay_order_no = nullif($4, ''), counter_url = nullif($5, ''),
		submissions = $6, last_error = nullif($7, ''), updated_at = $8, submitted_at = $9
	WHERE payment_order_id = $1 AND attempt_no = $2 AND (state <> 'paid' OR $3 = 'paid')`

func saveAttemptArgs(a *pay.Attempt) []any {
	var submitted *time.Time
	if !a.SubmittedAt.IsZero() {
		submitted = &a.SubmittedAt
	}
	return []any{a.PaymentOrderID, a.No, string(a.State), a.PayOrderNo, a.CounterURL, a.Submissions, a.LastError, a.UpdatedAt, submitted}
}

// SaveAttempt records what we learned of an attempt. What the gateway said is evidence, not a
// status decision, so it is written unconditionally.
func (s *Store) SaveAttempt(ctx context.Context, a *pay.Attempt) error {
	if _, err := s.pool.Exec(ctx, saveAttemptSQL, saveAttemptArgs(a)...); err != nil {
		return fmt.Errorf("save attempt %s: %w", a.OutOrderNo, err)
	}
	return nil
}

// SaveAttempt is Store.SaveAttempt inside a transaction.
func (t *Tx) SaveAttempt(ctx context.Context, a *pay.Attempt) error {
	if _, err := t.tx.Exec(ctx, saveAttemptSQL, saveAttemptArgs(a)...); err != nil {
		return fmt.Errorf("save attempt %s: %w", a.OutOrderNo, err)
	}
	return nil
}

// CommitCheckout records an attempt Lakala created (open, with its counter_url) and moves the
// order pending → processing with it, finishing the task — one statement, one round trip, for
// the processor's hottest transition. The attempt is recorded whatever happens (it exists at
// Lakala). The order is moved only if it is still pending and not winding down; the result
// message is written only with it; the task is finished only then (otherwise what changed the
// order meanwhile left work for the task's next attempt). applied says whether the order moved.
func (s *Store) CommitCheckout(ctx context.Context, o *pay.Order, a *pay.Attempt, lease Lease) (events []Event, applied bool, err error) {
	args := orderUpdateArgs(o, pay.StatusPending)
	msg := pay.PaymentChanged(newEventID(), o, pay.StatusPending)
	fields, err := json.Marshal(msg.Fields)
	if err != nil {
		return nil, false, err
	}
	args = append(args, msg.EventID, msg.Stream, fields, lease.TaskID, lease.Token,
		a.No, string(a.State), a.PayOrderNo, a.CounterURL, a.Submissions, a.UpdatedAt) // $14 …
	// Data-modifying CTEs all run to completion whether or not the final SELECT reads them.
	var outboxID *int64
	err = s.pool.QueryRow(ctx, `
		WITH att AS (
			UPDATE payment_attempts SET state = $20, pay_order_no = nullif($21, ''), counter_url = nullif($22, ''),
				submissions = $23, last_error = NULL, updated_at = $24
			WHERE payment_order_id = $1 AND attempt_no = $19
		), upd AS (`+updateOrderSQL+` AND closing_reason IS NULL RETURNING id, app_id
		), ev AS (
			INSERT INTO outbox (event_id, stream, fields, subject_id, app_id, seq)
			SELECT $14, $15, $16, upd.id, upd.app_id, $12 FROM upd
			RETURNING id
		), fin AS (
			UPDATE tasks SET state = 'done', leased_until = NULL, lease_token = NULL, updated_at = now()
			WHERE id = $17 AND lease_token = $18 AND state = 'queued' AND EXISTS (SELECT 1 FROM upd)
		)
		SELECT (SELECT id FROM ev), EXISTS (SELECT 1 FROM upd)`, args...).Scan(&outboxID, &applied)
	if err != nil {
		return nil, false, fmt.Errorf("commit checkout of %s: %w", o.ID, err)
	}
	if outboxID != nil {
		events = []Event{{OutboxID: *outboxID, ResultMessage: msg}}
	}
	return events, applied, nil
}

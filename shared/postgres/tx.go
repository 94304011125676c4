package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
)

// Tx is one database transaction in which status changes and their result messages are
// written together (the outbox), so a status change without its message, or the reverse, is
// impossible.
type Tx struct {
	tx     pgx.Tx
	events []Event
}

// Event is a result message stored in the outbox.
type Event struct {
	OutboxID int64
	pay.ResultMessage
}

// ErrStale is returned when a conditional update finds the row no longer in the status it was
// read in: another actor changed it first, and this change must not be applied.
var ErrStale = errors.New("row changed concurrently")

// InTx runs fn in a transaction and commits it if fn returns nil. It returns the result
// messages written, so the caller can publish them right after the commit.
func (s *Store) InTx(ctx context.Context, fn func(*Tx) error) ([]Event, error) {
	var t Tx
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		t = Tx{tx: tx}
		return fn(&t)
	})
	if err != nil {
		return nil, err
	}
	return t.events, nil
}

// LockOrder reads an order and locks its row until the transaction ends.
func (t *Tx) LockOrder(ctx context.Context, id string) (pay.Order, error) {
	return scanOrder(t.tx.QueryRow(ctx, "SELECT "+orderColumns+" FROM payment_orders WHERE id = $1 FOR UPDATE", id))
}

// updateOrderSQL writes an order's mutable fields if the row is still in status $2 (the
// conditional update that lets only one actor apply a change); orderUpdateArgs are its arguments.
//
// refunded_amount is not written: only SaveRefund changes it, with an increment under the
// payment order's lock, so a save of an order read earlier cannot undo a refund. Nor is
// review_reason: only review cases set and clear it.
const updateOrderSQL = `UPDATE payment_orders SET status = $3, gateway_transaction_id = nullif($4, ''),
		gateway_order_no = nullif($5, ''), payment_url = nullif($6, ''), gateway_callback = $7,
		failure_reason = nullif($8, ''), expires_at = $9, updated_at = $10,
		closing_reason = nullif($11, ''), result_seq = $12, paid_attempt_no = nullif($13, 0)
	WHERE id = $1 AND status = $2`

// orderUpdateArgs are updateOrderSQL's arguments. A status change takes the order's next seq.
func orderUpdateArgs(o *pay.Order, old pay.Status) []any {
	if o.Status != old {
		o.ResultSeq++
	}
	return []any{o.ID, string(old), string(o.Status), o.GatewayTransactionID, o.GatewayOrderNo, o.PaymentURL,
		nullJSON(o.GatewayCallback), o.FailureReason, o.ExpiresAt, o.UpdatedAt,
		o.ClosingReason, o.ResultSeq, o.PaidAttemptNo}
}

// SaveOrder writes o's mutable fields, on the condition that the row is still in status old,
// and, when the status changed, adds the payment_results message for the change (with the
// order's next seq: status changes are serialised by the condition, so seqs never repeat).
func (t *Tx) SaveOrder(ctx context.Context, o *pay.Order, old pay.Status) error {
	tag, err := t.tx.Exec(ctx, updateOrderSQL, orderUpdateArgs(o, old)...)
	if err != nil {
		return fmt.Errorf("save payment order %s: %w", o.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("save payment order %s (was %s): %w", o.ID, old, ErrStale)
	}
	if o.Status != old && o.Status == pay.StatusSucceeded {
		// The daily statement's numbers, recorded with the success (a success is final, so they
		// are written once; updateOrderSQL, which the checkout's statement shares, stays as it is).
		if _, err := t.tx.Exec(ctx, `UPDATE payment_orders SET gateway_log_no = nullif($2, ''), gateway_trade_time = $3 WHERE id = $1`,
			o.ID, o.GatewayLogNo, o.GatewayTradeTime); err != nil {
			return fmt.Errorf("save payment order %s: %w", o.ID, err)
		}
	}
	if o.Status != old {
		return t.AddEvent(ctx, pay.PaymentChanged(newEventID(), o, old))
	}
	return nil
}

// AddEvent stores a result message in the outbox.
func (t *Tx) AddEvent(ctx context.Context, m pay.ResultMessage) error {
	fields, err := json.Marshal(m.Fields)
	if err != nil {
		return err
	}
	var id int64
	if err := t.tx.QueryRow(ctx, `INSERT INTO outbox (event_id, stream, fields, subject_id, app_id, seq)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		m.EventID, m.Stream, fields, m.SubjectID, m.AppID, m.Seq).Scan(&id); err != nil {
		return fmt.Errorf("write outbox event: %w", err)
	}
	t.events = append(t.events, Event{OutboxID: id, ResultMessage: m})
	return nil
}

// FinishTask closes a task in the same transaction as the change it produced, if lease still
// holds it.
func (t *Tx) FinishTask(ctx context.Context, lease Lease, state TaskState, note string) error {
	return finishTask(ctx, t.tx, lease, state, note)
}

func nullJSON(b json.RawMessage) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// newEventID makes a time-ordered id for a result message.
func newEventID() string { return uuid.Must(uuid.NewV7()).String() }

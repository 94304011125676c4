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

const orderColumns = `id::text, app_id, merchant_order_id, status, order_type, amount, currency,
	payment_gateway, coalesce(gateway_transaction_id, ''), coalesce(gateway_order_no, ''), subject,
	extra_data, coalesce(payment_url, ''), gateway_callback, refunded_amount,
	coalesce(failure_reason, ''), expires_at, created_at, updated_at,
	coalesce(closing_reason, ''), coalesce(review_reason, ''), result_seq, coalesce(expires_in, 0),
	coalesce(paid_attempt_no, 0), check_requested_at,
	coalesce(gateway_log_no, ''), gateway_trade_time, merchant_id`

// scanOrder reads a row of orderColumns, followed by any extra columns into extra.
func scanOrder(row pgx.Row, extra ...any) (pay.Order, error) {
	var o pay.Order
	var status string
	dest := append([]any{&o.ID, &o.AppID, &o.MerchantOrderID, &status, &o.OrderType, &o.Amount, &o.Currency,
		&o.Gateway, &o.GatewayTransactionID, &o.GatewayOrderNo, &o.Subject,
		&o.ExtraData, &o.PaymentURL, &o.GatewayCallback, &o.RefundedAmount,
		&o.FailureReason, &o.ExpiresAt, &o.CreatedAt, &o.UpdatedAt,
		&o.ClosingReason, &o.ReviewReason, &o.ResultSeq, &o.ExpiresIn, &o.PaidAttemptNo, &o.CheckRequestedAt,
		&o.GatewayLogNo, &o.GatewayTradeTime, &o.MerchantID}, extra...)
	err := row.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, pay.ErrNotFound
	}
	if err != nil {
		return o, fmt.Errorf("scan payment order: %w", err)
	}
	o.Status = pay.Status(status)
	return o, nil
}

// collectOrder scans one row of orderColumns, for pgx.CollectRows.
func collectOrder(row pgx.CollectableRow) (pay.Order, error) { return scanOrder(row) }

// CreateOrder inserts a new pending order and its payment task in one statement (one round trip,
// one transaction). The order records the merchant its app is bound to now, in the same statement,
// and keeps it for life. If the app already has an order with this merchant_order_id, it returns that
// order and created=false; the database's unique key decides between concurrent creates.
func (s *Store) CreateOrder(ctx context.Context, id string, in pay.CreateOrderInput, now, expiresAt time.Time) (o pay.Order, taskID int64, created bool, err error) {
	row := s.pool.QueryRow(ctx, `
		WITH ins AS (
			INSERT INTO payment_orders (id, app_id, merchant_order_id, status, order_type, amount, currency,
				payment_gateway, subject, extra_data, created_at, updated_at, expires_in, expires_at, merchant_id)
			VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10, $10, nullif($11::int, 0), $12,
				coalesce((SELECT merchant_id FROM apps WHERE app_id = $2), '`+DefaultMerchant+`'))
			ON CONFLICT (app_id, merchant_order_id) DO NOTHING
			RETURNING `+orderColumns+`
		), task AS (
			INSERT INTO tasks (kind, subject_id, created_at, updated_at, next_attempt_at)
			SELECT 'payment', id::uuid, $10, $10, $10 FROM ins
			RETURNING id
		)
		SELECT ins.*, task.id FROM ins, task`,
		id, in.AppID, in.MerchantOrderID, in.OrderType, in.Amount, in.Currency, pay.GatewayLakala,
		in.Subject, []byte(in.ExtraData), now, in.ExpiresIn, expiresAt)
	o, err = scanOrder(row, &taskID)
	if err == nil {
		return o, taskID, true, nil
	}
	if !errors.Is(err, pay.ErrNotFound) {
		return o, 0, false, fmt.Errorf("create payment order: %w", err)
	}
	o, err = s.OrderByMerchantID(ctx, in.AppID, in.MerchantOrderID)
	if err != nil {
		return o, 0, false, fmt.Errorf("create payment order: read existing: %w", err)
	}
	return o, 0, false, nil
}

// SameExtraData compares two JSON objects the way the database stores them (jsonb equality:
// key order and white space do not matter).
func (s *Store) SameExtraData(ctx context.Context, a, b json.RawMessage) (bool, error) {
	var same bool
	err := s.pool.QueryRow(ctx, "SELECT $1::jsonb = $2::jsonb", []byte(a), []byte(b)).Scan(&same)
	return same, err
}

// OrderByMerchantID returns the app's order with this merchant_order_id, or pay.ErrNotFound.
func (s *Store) OrderByMerchantID(ctx context.Context, appID, merchantOrderID string) (pay.Order, error) {
	return scanOrder(s.pool.QueryRow(ctx, "SELECT "+orderColumns+" FROM payment_orders WHERE app_id = $1 AND merchant_order_id = $2", appID, merchantOrderID))
}

// Order returns the order with this id, or pay.ErrNotFound.
func (s *Store) Order(ctx context.Context, id string) (pay.Order, error) {
	return scanOrder(s.pool.QueryRow(ctx, "SELECT "+orderColumns+" FROM payment_orders WHERE id = $1", id))
}

// WatchedAttemptSQL is pay.Attempt.Watched in SQL, for an attempt row a of its order's row o (a
// test holds the two equal).
const WatchedAttemptSQL = `(a.state = 'closed' OR (a.state = 'paid' AND (o.status = 'failed' OR o.paid_attempt_no IS DISTINCT FROM a.attempt_no)))`

// checkRequestedSQL: a notification that did not bind asked for our own query of the order, and
// no check was made since (RequestCheck).
const checkRequestedSQL = `(check_requested_at IS NOT NULL AND (checked_at IS NULL OR checked_at < check_requested_at))`

// OrdersToReconcile returns up to limit live orders the reconciler should look at, least
// recently checked first (so orders whose checks keep failing cannot starve the others):
// orders winding down, processing orders without change or check since staleBefore, and
// orders past their expiry. Orders checked after recheckAfter are left for a later pass, unless
// a check of them was requested since.
func (s *Store) OrdersToReconcile(ctx context.Context, staleBefore, recheckAfter, now time.Time, limit int) ([]pay.Order, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+orderColumns+` FROM payment_orders
		WHERE status IN ('pending', 'processing')
		  AND (`+checkRequestedSQL+`
		       OR ((closing_reason IS NOT NULL
		            OR (status = 'processing' AND greatest(updated_at, checked_at) < $1)
		            OR expires_at < $2)
		           AND (checked_at IS NULL OR checked_at < $3)))
		ORDER BY coalesce(checked_at, '-infinity'), updated_at LIMIT $4`, staleBefore, now, recheckAfter, limit)
	if err != nil {
		return nil, fmt.Errorf("orders to reconcile: %w", err)
	}
	return pgx.CollectRows(rows, collectOrder)
}

// FinalOrdersToWatch returns up to limit final orders that have a watched cashier order
// (pay.Attempt.Watched) and changed less than watch ago (but at least spacing ago), due for a
// look at Lakala: a payer may still pay a closed cashier order, and Lakala, refunding it by
// itself, may tell nobody. Each is looked at again when the time since its last check exceeds
// the time from its last change to that check, so the checks of one order thin out: about
// spacing, 2·spacing, 4·spacing … after. A failed look does not count as a look: an order whose
// last check failed is due again spacing after it. A final order whose check was requested is due
// at once.
func (s *Store) FinalOrdersToWatch(ctx context.Context, now time.Time, watch, spacing time.Duration, limit int) ([]pay.Order, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+orderColumns+` FROM payment_orders o
		WHERE status IN ('succeeded', 'failed')
		  AND (`+checkRequestedSQL+`
		       OR (updated_at > $1 AND updated_at < $2
		           AND (checked_at IS NULL OR checked_at <= updated_at OR $3 - checked_at > checked_at - updated_at
		                OR (check_failures > 0 AND checked_at < $5))
		           AND EXISTS (SELECT 1 FROM payment_attempts a WHERE a.payment_order_id = o.id AND `+WatchedAttemptSQL+`)))
		ORDER BY coalesce(checked_at, '-infinity') LIMIT $4`, now.Add(-watch), now.Add(-spacing), now, limit, now.Add(-spacing))
	if err != nil {
		return nil, fmt.Errorf("final orders to watch: %w", err)
	}
	return pgx.CollectRows(rows, collectOrder)
}

// RequestCheck asks the reconciler for our own query of an order at its next pass.
func (s *Store) RequestCheck(ctx context.Context, id string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE payment_orders SET check_requested_at = $2 WHERE id = $1`, id, at); err != nil {
		return fmt.Errorf("request a check of order %s: %w", id, err)
	}
	return nil
}

// RecordCheck records one reconciliation check of an order: when, and whether it failed (err
// non-empty). It returns the number of consecutive failed checks.
func (s *Store) RecordCheck(ctx context.Context, id string, at time.Time, checkErr string) (int, error) {
	var failures int
	err := s.pool.QueryRow(ctx, `UPDATE payment_orders SET checked_at = $2,
			check_failures = CASE WHEN $3 = '' THEN 0 ELSE check_failures + 1 END,
			last_check_error = nullif($3, '')
		WHERE id = $1 RETURNING check_failures`, id, at, checkErr).Scan(&failures)
	if err != nil {
		return 0, fmt.Errorf("record check of order %s: %w", id, err)
	}
	return failures, nil
}

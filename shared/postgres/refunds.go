package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
)

const refundColumns = `id::text, app_id, payment_order_id::text, coalesce(merchant_refund_id, ''), status, amount,
	currency, coalesce(reason, ''), coalesce(gateway_refund_id, ''), out_trade_no, extra_data,
	coalesce(failure_reason, ''), created_at, updated_at, coalesce(review_reason, ''), submissions, result_seq, coalesce(merchant_order_id, ''),
	coalesce(refund_api, ''), submitted_at, coalesce(gateway_log_no, ''), gateway_trade_time`

func scanRefund(row pgx.Row) (pay.Refund, error) {
	var r pay.Refund
	var status string
	var extra []byte
	err := row.Scan(&r.ID, &r.AppID, &r.PaymentOrderID, &r.MerchantRefundID, &status, &r.Amount,
		&r.Currency, &r.Reason, &r.GatewayRefundID, &r.OutTradeNo, &extra,
		&r.FailureReason, &r.CreatedAt, &r.UpdatedAt, &r.ReviewReason, &r.Submissions, &r.ResultSeq, &r.MerchantOrderID,
		&r.RefundAPI, &r.SubmittedAt, &r.GatewayLogNo, &r.GatewayTradeTime)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, pay.ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("scan refund: %w", err)
	}
	r.Status = pay.Status(status)
	r.ExtraData = extra
	return r, nil
}

// Refund returns a refund by id, or pay.ErrNotFound.
func (s *Store) Refund(ctx context.Context, id string) (pay.Refund, error) {
	return scanRefund(s.pool.QueryRow(ctx, "SELECT "+refundColumns+" FROM refund_orders WHERE id = $1", id))
}

// RefundsOf lists the refunds of a payment order, oldest first.
func (s *Store) RefundsOf(ctx context.Context, paymentOrderID string) ([]pay.Refund, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+refundColumns+" FROM refund_orders WHERE payment_order_id = $1 ORDER BY created_at, id", paymentOrderID)
	if err != nil {
		return nil, fmt.Errorf("refunds of %s: %w", paymentOrderID, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (pay.Refund, error) { return scanRefund(row) })
}

// CreateRefund takes a refund against a payment order. Under a row lock on the payment order it
// checks the app, the payment's status and the refundable remainder, so concurrent refunds can
// never overdraw; then it inserts the refund and its task. With a merchant_refund_id that the app
// already used, it returns the existing refund (created=false) if the request is identical and a
// conflict otherwise.
func (s *Store) CreateRefund(ctx context.Context, id string, in pay.CreateRefundInput, now time.Time) (r pay.Refund, taskID int64, created bool, err error) {
	_, err = s.InTx(ctx, func(tx *Tx) error {
		order, err := tx.LockOrder(ctx, in.PaymentOrderID)
		if errors.Is(err, pay.ErrNotFound) || (err == nil && order.AppID != in.AppID) {
			return pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "payment order %s not found", in.PaymentOrderID)
		}
		if err != nil {
			return err
		}
		if in.MerchantRefundID != "" {
			existing, err := scanRefund(tx.tx.QueryRow(ctx, "SELECT "+refundColumns+" FROM refund_orders WHERE app_id = $1 AND merchant_refund_id = $2",
				in.AppID, in.MerchantRefundID))
			if err == nil {
				if diff := refundDifference(existing, in); diff != "" {
					return pay.Errorf(pay.KindConflict, pay.CodeRefundConflict,
						"merchant_refund_id %s already exists with a different %s", in.MerchantRefundID, diff)
				}
				r = existing
				return nil
			}
			if !errors.Is(err, pay.ErrNotFound) {
				return err
			}
		}
		var outstanding int64
		if err := tx.tx.QueryRow(ctx, `SELECT coalesce(sum(amount), 0) FROM refund_orders
			WHERE payment_order_id = $1 AND status IN ('pending', 'processing', 'succeeded')`, order.ID).Scan(&outstanding); err != nil {
			return fmt.Errorf("sum refunds: %w", err)
		}
		if err := pay.CheckRefund(&order, outstanding, in.Amount); err != nil {
			return err
		}
		r, err = scanRefund(tx.tx.QueryRow(ctx, `INSERT INTO refund_orders (id, app_id, payment_order_id, merchant_refund_id,
				status, amount, currency, reason, out_trade_no, created_at, updated_at, merchant_order_id)
			VALUES ($1, $2, $3, nullif($4, ''), 'pending', $5, $6, nullif($7, ''), $8, $9, $9, $10)
			RETURNING `+refundColumns,
			id, in.AppID, order.ID, in.MerchantRefundID, in.Amount, order.Currency, in.Reason, pay.RefundOutTradeNo(id), now, order.MerchantOrderID))
		if err != nil {
			return fmt.Errorf("insert refund: %w", err)
		}
		if err := tx.tx.QueryRow(ctx, `INSERT INTO tasks (kind, subject_id, created_at, updated_at, next_attempt_at)
			VALUES ('refund', $1, $2, $2, $2) RETURNING id`, id, now).Scan(&taskID); err != nil {
			return fmt.Errorf("insert refund task: %w", err)
		}
		created = true
		return nil
	})
	if isUniqueViolation(err, "refund_orders_merchant_key") {
		// The same merchant_refund_id was used concurrently for another payment order.
		return r, 0, false, pay.Errorf(pay.KindConflict, pay.CodeRefundConflict,
			"merchant_refund_id %s already exists with a different payment_order_id", in.MerchantRefundID)
	}
	return r, taskID, created, err
}

func refundDifference(r pay.Refund, in pay.CreateRefundInput) string {
	switch {
	case r.PaymentOrderID != in.PaymentOrderID:
		return "payment_order_id"
	case r.Amount != in.Amount:
		return "amount"
	case r.Reason != in.Reason:
		return "reason"
	}
	return ""
}

// LockRefund reads a refund and locks its row until the transaction ends.
func (t *Tx) LockRefund(ctx context.Context, id string) (pay.Refund, error) {
	return scanRefund(t.tx.QueryRow(ctx, "SELECT "+refundColumns+" FROM refund_orders WHERE id = $1 FOR UPDATE", id))
}

// SaveRefund writes r's mutable fields on the condition that it is still in status old, adds the
// refund_results message (with the refund's next seq) when the status changed, and on success
// adds the amount to the payment order's refunded_amount.
func (t *Tx) SaveRefund(ctx context.Context, r *pay.Refund, old pay.Status) error {
	if r.Status != old {
		r.ResultSeq++
	}
	tag, err := t.tx.Exec(ctx, `UPDATE refund_orders SET status = $3, gateway_refund_id = nullif($4, ''),
			extra_data = $5, failure_reason = nullif($6, ''), updated_at = $7, submissions = $8, result_seq = $9,
			refund_api = nullif($10, ''), submitted_at = $11, gateway_log_no = nullif($12, ''), gateway_trade_time = $13
		WHERE id = $1 AND status = $2`,
		r.ID, string(old), string(r.Status), r.GatewayRefundID, jsonOrEmpty(r.ExtraData), r.FailureReason, r.UpdatedAt,
		r.Submissions, r.ResultSeq, r.RefundAPI, r.SubmittedAt, r.GatewayLogNo, r.GatewayTradeTime)
	if err != nil {
		return fmt.Errorf("save refund %s: %w", r.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("save refund %s (was %s): %w", r.ID, old, ErrStale)
	}
	if r.Status == old {
		return nil
	}
	if r.Status == pay.StatusSucceeded {
		if _, err := t.tx.Exec(ctx, `UPDATE payment_orders SET refunded_amount = refunded_amount + $2, updated_at = $3 WHERE id = $1`,
			r.PaymentOrderID, r.Amount, r.UpdatedAt); err != nil {
			return fmt.Errorf("add refunded amount: %w", err)
		}
	}
	return t.AddEvent(ctx, pay.RefundChanged(newEventID(), r, old))
}

func jsonOrEmpty(b []byte) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}

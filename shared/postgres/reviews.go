package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/loomipay/loomipay/shared/pay"
)

// OpenReviewCase records a case for a person, unless the same case (kind, subject, dedupe key)
// is already open, and shows its summary on the subject (review_reason). It reports whether a
// new case was opened.
func (t *Tx) OpenReviewCase(ctx context.Context, c pay.ReviewCase) (bool, error) {
	evidence, err := json.Marshal(c.Evidence)
	if err != nil {
		return false, err
	}
	if c.Evidence == nil {
		evidence = []byte("{}")
	}
	tag, err := t.tx.Exec(ctx, `INSERT INTO review_cases (kind, app_id, payment_order_id, refund_order_id, dedupe_key, summary, evidence)
		VALUES ($1, $2, $3, nullif($4, '')::uuid, $5, $6, $7) ON CONFLICT DO NOTHING`,
		c.Kind, c.AppID, c.PaymentOrderID, c.RefundOrderID, c.DedupeKey, c.Summary, evidence)
	if err != nil {
		return false, fmt.Errorf("open review case %s: %w", c.Kind, err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	reason := c.Kind + ": " + c.Summary
	if c.RefundOrderID != "" {
		_, err = t.tx.Exec(ctx, `UPDATE refund_orders SET review_reason = $2 WHERE id = $1`, c.RefundOrderID, reason)
	} else {
		_, err = t.tx.Exec(ctx, `UPDATE payment_orders SET review_reason = $2 WHERE id = $1`, c.PaymentOrderID, reason)
	}
	if err != nil {
		return false, fmt.Errorf("show review case on its subject: %w", err)
	}
	return true, nil
}

// OpenReviewCase is Tx.OpenReviewCase in a transaction of its own.
func (s *Store) OpenReviewCase(ctx context.Context, c pay.ReviewCase) (opened bool, err error) {
	_, err = s.InTx(ctx, func(tx *Tx) error {
		opened, err = tx.OpenReviewCase(ctx, c)
		return err
	})
	return opened, err
}

// OpenReviewCases lists the open cases of an order (and of its refunds), oldest first.
func (s *Store) OpenReviewCases(ctx context.Context, paymentOrderID string) ([]pay.ReviewCase, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, kind, app_id, payment_order_id::text, coalesce(refund_order_id::text, ''),
			dedupe_key, summary, evidence
		FROM review_cases WHERE payment_order_id = $1 AND resolved_at IS NULL ORDER BY id`, paymentOrderID)
	if err != nil {
		return nil, fmt.Errorf("review cases of %s: %w", paymentOrderID, err)
	}
	defer rows.Close()
	var out []pay.ReviewCase
	for rows.Next() {
		var c pay.ReviewCase
		var evidence []byte
		if err := rows.Scan(&c.ID, &c.Kind, &c.AppID, &c.PaymentOrderID, &c.RefundOrderID, &c.DedupeKey, &c.Summary, &evidence); err != nil {
			return nil, err
		}
		_ = json.Unmarshal(evidence, &c.Evidence)
		out = append(out, c)
	}
	return out, rows.Err()
}

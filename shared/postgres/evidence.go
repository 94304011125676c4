package postgres

import (
	"context"
	"fmt"
)

// NotificationRecord is one notification received, verified or not, and what became of it. It
// holds no payer data: ids, statuses, the amount and a digest of the body.
type NotificationRecord struct {
	Verified       bool
	Result         string
	OutOrderNo     string
	PaymentOrderID string
	TradeNo        string
	TradeType      string
	TradeStatus    string
	OrderStatus    string
	Amount         int64
	BodySHA256     string
}

// RecordNotification adds a notification to the evidence log.
func (s *Store) RecordNotification(ctx context.Context, r NotificationRecord) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO notifications (verified, result, out_order_no, payment_order_id, trade_no,
			trade_type, trade_status, order_status, amount, body_sha256)
		VALUES ($1, $2, nullif($3, ''), nullif($4, '')::uuid, nullif($5, ''), nullif($6, ''), nullif($7, ''), nullif($8, ''), $9, $10)`,
		r.Verified, r.Result, r.OutOrderNo, r.PaymentOrderID, r.TradeNo, r.TradeType, r.TradeStatus, r.OrderStatus, r.Amount, r.BodySHA256)
	if err != nil {
		return fmt.Errorf("record notification: %w", err)
	}
	return nil
}

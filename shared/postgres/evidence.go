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
	// MerchantNo, TermNo and PayOrderNo are what the notification named; Binding says whether
	// it bound to the cashier order we created (bound) or why not.
	MerchantNo, TermNo, PayOrderNo, Binding string
}

// RecordNotification adds a notification to the evidence log.
func (s *Store) RecordNotification(ctx context.Context, r NotificationRecord) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO notifications (verified, result, out_order_no, payment_order_id, trade_no,
			trade_type, trade_status, order_status, amount, body_sha256, merchant_no, term_no, pay_order_no, binding)
		VALUES ($1, $2, nullif($3, ''), nullif($4, '')::uuid, nullif($5, ''), nullif($6, ''), nullif($7, ''), nullif($8, ''), $9, $10,
			nullif($11, ''), nullif($12, ''), nullif($13, ''), nullif($14, ''))`,
		r.Verified, r.Result, r.OutOrderNo, r.PaymentOrderID, r.TradeNo, r.TradeType, r.TradeStatus, r.OrderStatus, r.Amount, r.BodySHA256,
		r.MerchantNo, r.TermNo, r.PayOrderNo, r.Binding)
	if err != nil {
		return fmt.Errorf("record notification: %w", err)
	}
	return nil
}

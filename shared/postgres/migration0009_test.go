package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
)

// TestMigration0009Backfills: payments and refunds that succeeded before migration 0009 get
// log_no and a trade time — from the notification or query summary the order kept
// (extra_data.lakala_callback), else from when we learned of it, else from updated_at — so they
// are on the daily statement of their day.
func TestMigration0009Backfills(t *testing.T) {
	store := testenv.Postgres(t)
	ctx := context.Background()
	pool := store.Pool()
	// Back to the schema before 0009, as a database upgraded from 0005 has it.
	if _, err := pool.Exec(ctx, `
		ALTER TABLE payment_orders DROP COLUMN gateway_log_no, DROP COLUMN gateway_trade_time;
		ALTER TABLE refund_orders DROP COLUMN gateway_log_no, DROP COLUMN gateway_trade_time;
		DROP INDEX refund_orders_live_idx;
		DROP TABLE task_lag_minutes;
		DELETE FROM schema_migrations WHERE version = 9;
		INSERT INTO apps (app_id) VALUES ('shop');
		INSERT INTO payment_orders (id, app_id, merchant_order_id, status, order_type, amount, currency, subject, gateway_transaction_id, gateway_callback, updated_at) VALUES
			('01900000-0000-7000-8000-000000000001', 'shop', 'notified', 'succeeded', 'payment', 100, 'CNY', 's', 'T1',
			 '{"payStatus":"S","timestamp":"2026-12-01T02:00:05Z","source":"notification","tradeNo":"T1","logNo":"661234","tradeTime":"2026-12-01T02:00:00Z","amount":100}', '2026-12-03T00:00:00Z'),
			('01900000-0000-7000-8000-000000000002', 'shop', 'queried', 'succeeded', 'payment', 200, 'CNY', 's', 'T2',
			 '{"payStatus":"S","timestamp":"2026-12-01T03:00:00Z","source":"query","tradeNo":"T2","amount":200}', '2026-12-03T00:00:00Z'),
			('01900000-0000-7000-8000-000000000003', 'shop', 'confirmed', 'succeeded', 'payment', 300, 'CNY', 's', 'T3', NULL, '2026-12-01T04:00:00Z'),
			('01900000-0000-7000-8000-000000000004', 'shop', 'failed', 'failed', 'payment', 400, 'CNY', 's', NULL,
			 '{"payStatus":"F","timestamp":"2026-12-01T05:00:00Z","source":"notification","amount":400}', '2026-12-01T05:00:00Z');
		INSERT INTO refund_orders (id, app_id, payment_order_id, status, amount, currency, out_trade_no, gateway_refund_id, updated_at) VALUES
			('01900000-0000-7000-8000-0000000000a1', 'shop', '01900000-0000-7000-8000-000000000001', 'succeeded', 50, 'CNY', 'r1', 'RT1', '2026-12-02T01:00:00Z'),
			('01900000-0000-7000-8000-0000000000a2', 'shop', '01900000-0000-7000-8000-000000000001', 'failed', 10, 'CNY', 'r2', NULL, '2026-12-02T01:00:00Z');`); err != nil {
		t.Fatal(err)
	}
	if n, err := store.Migrate(ctx); err != nil || n != 1 {
		t.Fatalf("migrate again: applied %d, %v; want 0009 alone", n, err)
	}
	at := func(s string) time.Time {
		tt, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	for _, tc := range []struct {
		table, merchantID string
		logNo             string
		tradeTime         *time.Time
	}{
		{"payment_orders", "notified", "661234", ptr(at("2026-12-01T02:00:00Z"))}, // Lakala's trade time
		{"payment_orders", "queried", "", ptr(at("2026-12-01T03:00:00Z"))},        // when we learned of it
		{"payment_orders", "confirmed", "", ptr(at("2026-12-01T04:00:00Z"))},      // updated_at
		{"payment_orders", "failed", "", nil},                                     // no money moved
		{"refund_orders", "r1", "", ptr(at("2026-12-02T01:00:00Z"))},              // when it succeeded
		{"refund_orders", "r2", "", nil},
	} {
		key := "merchant_order_id"
		if tc.table == "refund_orders" {
			key = "out_trade_no"
		}
		var logNo string
		var tradeTime *time.Time
		if err := pool.QueryRow(ctx, `SELECT coalesce(gateway_log_no, ''), gateway_trade_time FROM `+tc.table+` WHERE `+key+` = $1`, tc.merchantID).
			Scan(&logNo, &tradeTime); err != nil {
			t.Fatal(err)
		}
		if logNo != tc.logNo || (tradeTime == nil) != (tc.tradeTime == nil) || (tradeTime != nil && !tradeTime.Equal(*tc.tradeTime)) {
			t.Errorf("%s %s: log_no %q, trade time %v; want %q, %v", tc.table, tc.merchantID, logNo, tradeTime, tc.logNo, tc.tradeTime)
		}
	}
}

func ptr[T any](v T) *T { return &v }

package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/streams"
)

// Fixtures for the operations layer: rows written straight into the tables, in the states the
// money path leaves them in, so operator actions can be tested on every such state.

// SeedOrder inserts a payment order in status with its first payment attempt (unless pending)
// and returns its id.
func SeedOrder(t testing.TB, store *postgres.Store, appID, merchantOrderID, status string, amount int64) string {
	t.Helper()
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7()).String()
	outNo := strings.ReplaceAll(id, "-", "")
	var trade, payOrderNo any
	if status == "succeeded" {
		// Lakala's numbers are digits: the id's random tail, spelt in digits.
		trade, payOrderNo = "2026"+digitsOf(outNo[16:]), "PO"+outNo[:12]
	}
	if _, err := store.Pool().Exec(ctx, `INSERT INTO apps (app_id) VALUES ($1) ON CONFLICT DO NOTHING`, appID); err != nil {
		t.Fatal(err)
	}
	// A succeeded order has Lakala's log_no and trade time, as the money path records them.
	_, err := store.Pool().Exec(ctx, `INSERT INTO payment_orders (id, app_id, merchant_order_id, status, order_type, amount, currency, subject,
			gateway_transaction_id, gateway_order_no, failure_reason, expires_at, gateway_log_no, gateway_trade_time)
		VALUES ($1, $2, $3, $4, 'payment', $5, 'CNY', 'VIP', $6, $7, CASE WHEN $4 = 'failed' THEN 'expired' END, now() + interval '30 minutes',
			CASE WHEN $4 = 'succeeded' THEN '66' || translate(substr($8, 21, 12), 'abcdef', '012345') END, CASE WHEN $4 = 'succeeded' THEN now() END)`,
		id, appID, merchantOrderID, status, amount, trade, payOrderNo, outNo)
	if err != nil {
		t.Fatalf("seed order: %v", err)
	}
	if status != "pending" {
		state := map[string]string{"processing": "open", "succeeded": "paid", "failed": "closed"}[status]
		if _, err := store.Pool().Exec(ctx, `INSERT INTO payment_attempts (payment_order_id, attempt_no, out_order_no, state, expires_at, pay_order_no, submissions)
			VALUES ($1, 1, $2, $3, now() + interval '30 minutes', $4, 1)`, id, outNo, state, payOrderNo); err != nil {
			t.Fatalf("seed attempt: %v", err)
		}
	}
	if _, err := store.Pool().Exec(ctx, `INSERT INTO tasks (kind, subject_id, state) VALUES ('payment', $1, CASE WHEN $2 = 'pending' THEN 'queued' ELSE 'done' END)`, id, status); err != nil {
		t.Fatalf("seed task: %v", err)
	}
	return id
}

// SeedRefund inserts a refund of an order in status and returns its id.
func SeedRefund(t testing.TB, store *postgres.Store, orderID, status string, amount int64) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	_, err := store.Pool().Exec(context.Background(), `INSERT INTO refund_orders (id, app_id, payment_order_id, status, amount, currency, out_trade_no, submissions,
			merchant_order_id, gateway_refund_id, gateway_log_no, gateway_trade_time)
		SELECT $1, app_id, id, $3, $4, currency, $5, 1, merchant_order_id,
			CASE WHEN $3 = 'succeeded' THEN '2026' || translate(substr($5, 17, 16), 'abcdef', '012345') END,
			CASE WHEN $3 = 'succeeded' THEN '66' || translate(substr($5, 21, 12), 'abcdef', '012345') END,
			CASE WHEN $3 = 'succeeded' THEN now() END
		FROM payment_orders WHERE id = $2`,
		id, orderID, status, amount, strings.ReplaceAll(id, "-", ""))
	if err != nil {
		t.Fatalf("seed refund: %v", err)
	}
	if _, err := store.Pool().Exec(context.Background(), `UPDATE payment_orders SET refunded_amount = refunded_amount + $2 WHERE id = $1 AND $3 = 'succeeded'`,
		orderID, amount, status); err != nil {
		t.Fatalf("seed refund: %v", err)
	}
	if _, err := store.Pool().Exec(context.Background(), `INSERT INTO tasks (kind, subject_id, state) VALUES ('refund', $1, CASE WHEN $2 IN ('succeeded', 'failed') THEN 'done' ELSE 'queued' END)`,
		id, status); err != nil {
		t.Fatalf("seed refund task: %v", err)
	}
	return id
}

// SeedReviewCase opens a review case of kind on an order (and a refund, if refundID is set)
// through the store, as the money path does (which also sets the subject's review_reason). A
// refund_outcome_unknown case also puts the refund's task in review, as the processor does.
func SeedReviewCase(t testing.TB, store *postgres.Store, kind, orderID, refundID, summary string) int64 {
	t.Helper()
	ctx := context.Background()
	var appID string
	if err := store.Pool().QueryRow(ctx, `SELECT app_id FROM payment_orders WHERE id = $1`, orderID).Scan(&appID); err != nil {
		t.Fatalf("seed review case: %v", err)
	}
	dedupe := uuid.NewString()
	opened, err := store.OpenReviewCase(ctx, pay.ReviewCase{Kind: kind, AppID: appID, PaymentOrderID: orderID, RefundOrderID: refundID,
		DedupeKey: dedupe, Summary: summary, Evidence: map[string]any{"seeded": true}})
	if err != nil || !opened {
		t.Fatalf("seed review case: opened %v, %v", opened, err)
	}
	if refundID != "" {
		if _, err := store.Pool().Exec(ctx, `UPDATE tasks SET state = 'review' WHERE kind = 'refund' AND subject_id = $1`, refundID); err != nil {
			t.Fatal(err)
		}
	}
	var id int64
	if err := store.Pool().QueryRow(ctx, `SELECT id FROM review_cases WHERE dedupe_key = $1`, dedupe).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// SeedDeadTask marks the task of a subject dead, as the processor does when it gives up, and
// writes its dead-letter stream entry. It returns the task id.
func SeedDeadTask(t testing.TB, store *postgres.Store, st *streams.Streams, kind, subjectID, reason string) int64 {
	t.Helper()
	ctx := context.Background()
	var id int64
	err := store.Pool().QueryRow(ctx, `INSERT INTO tasks (kind, subject_id, state, attempts, last_error, published_at)
		VALUES ($1, $2, 'dead', 8, $3, now())
		ON CONFLICT (kind, subject_id) DO UPDATE SET state = 'dead', attempts = 8, last_error = $3
		RETURNING id`, kind, subjectID, reason).Scan(&id)
	if err != nil {
		t.Fatalf("seed dead task: %v", err)
	}
	d := streams.Delivery{ID: "0-1", Task: streams.TaskMessage{TaskID: id, Kind: kind, SubjectID: subjectID}}
	if err := st.DeadLetter(ctx, d, 8, reason); err != nil {
		t.Fatalf("seed dead letter: %v", err)
	}
	return id
}

// SeedNotification logs a notification for an order, as the webhook does.
func SeedNotification(t testing.TB, store *postgres.Store, orderID, outOrderNo, result string, verified bool) {
	t.Helper()
	_, err := store.Pool().Exec(context.Background(), `INSERT INTO notifications (verified, result, out_order_no, payment_order_id, trade_no, trade_status, amount, body_sha256)
		VALUES ($1, $2, $3, nullif($4, '')::uuid, 'T123', 'SUCCESS', 100, 'deadbeef')`, verified, result, outOrderNo, orderID)
	if err != nil {
		t.Fatalf("seed notification: %v", err)
	}
}

// SeedOutboxAge backdates an order's result messages (as if written long ago).
func SeedOutboxAge(t testing.TB, store *postgres.Store, subjectID string, age time.Duration) {
	t.Helper()
	_, err := store.Pool().Exec(context.Background(), `UPDATE outbox SET created_at = created_at - make_interval(secs => $2)
		WHERE coalesce(subject_id::text, fields ->> 'refund_order_id', fields ->> 'payment_order_id') = $1`, subjectID, age.Seconds())
	if err != nil {
		t.Fatal(err)
	}
}

// digitsOf spells hex in decimal digits (a → 0 … f → 5), for numbers shaped like Lakala's.
func digitsOf(hex string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'f' {
			return '0' + (r - 'a')
		}
		return r
	}, hex)
}

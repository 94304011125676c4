package consolee2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/ops"
)

// history is 30 days of orders, refunds, Lakala calls and task lag written straight into the
// tables, as the money path leaves them, so the overview's charts have something to draw (and
// the screenshots show what they look like in use). A payment's and a refund's trade time is
// when they were created, so a day's money and its lists filtered by creation agree.
type history struct {
	// What of it lies in today's Beijing day: succeeded orders and refunds, payments in review.
	paidToday, refundsToday, reviewsToday int
}

// seedHistory writes the history, up to 10 minutes ago, deterministically.
func seedHistory(t *testing.T, s *testenv.Stack, apps []string, now time.Time) history {
	t.Helper()
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(21, 2026))
	today := ops.DayOf(now)
	end := now.Add(-10 * time.Minute)
	incident := now.Add(-9 * time.Hour).Truncate(time.Hour) // an hour in which Lakala often did not answer
	var h history
	batch := &pgx.Batch{}
	n := 0
	for t0 := today.AddDate(0, 0, -29); t0.Before(end); t0 = t0.Add(time.Hour) {
		// Busier in Beijing's day than at night, busier on some days.
		hour := t0.In(ops.Beijing).Hour()
		rate := 1.2 + 1.0*math.Sin(float64(hour-6)/24*2*math.Pi) + 0.4*math.Sin(float64(t0.YearDay()))
		orders := int(math.Max(0, rate+rnd.Float64()*1.5))
		for range orders {
			at := t0.Add(time.Duration(rnd.Int64N(int64(time.Hour))))
			if at.After(end) {
				continue
			}
			n++
			id := idAt(at, rnd)
			app := apps[0]
			if rnd.IntN(5) == 0 {
				app = apps[1]
			}
			amount := int64(500 + rnd.IntN(30000))
			status, reason := "succeeded", ""
			switch r := rnd.IntN(100); {
			case r < 7:
				status, reason = "failed", "expired"
			case r < 11:
				status, reason = "failed", "closed_by_merchant"
			case r < 13:
				status, reason = "failed", "payment_failed"
			}
			outNo := uuidHex(id)
			var trade, logNo, tradeTime any
			if status == "succeeded" {
				trade, logNo, tradeTime = at.In(ops.Beijing).Format("20060102")+digits(outNo[20:], 12), "66"+digits(outNo[20:], 12), at
				if !at.Before(today) {
					h.paidToday++
				}
			}
			batch.Queue(`INSERT INTO payment_orders (id, app_id, merchant_order_id, status, order_type, amount, currency, subject, failure_reason,
					gateway_transaction_id, gateway_log_no, gateway_trade_time, expires_at, created_at, updated_at)
				VALUES ($1, $2, $3, $4, 'payment', $5, 'CNY', 'VIP', nullif($6, ''), $7, $8, $9, $10::timestamptz + interval '30 minutes', $10, $10)`,
				id, app, fmt.Sprintf("H-%05d", n), status, amount, reason, trade, logNo, tradeTime, at)
			for c := range 2 + rnd.IntN(3) {
				outcome := "ok"
				if x := rnd.IntN(100); (at.Truncate(time.Hour).Equal(incident) && x < 40) || x < 1 {
					outcome = "unknown"
				}
				batch.Queue(`INSERT INTO gateway_calls (operation, out_no, outcome, code, duration_ms, called_at) VALUES ($1, $2, $3, $4, $5, $6)`,
					[]string{"create", "query", "query", "query"}[c%4], outNo, outcome, map[string]string{"ok": "000000", "unknown": ""}[outcome],
					40+rnd.IntN(200), at.Add(time.Duration(c)*time.Second))
			}
			if status == "succeeded" && rnd.IntN(12) == 0 {
				refundAt := at.Add(time.Duration(rnd.Int64N(int64(3 * time.Hour))))
				if refundAt.After(end) {
					continue
				}
				refund := amount
				if rnd.IntN(2) == 0 {
					refund = amount / 2
				}
				rid := idAt(refundAt, rnd)
				batch.Queue(`INSERT INTO refund_orders (id, app_id, payment_order_id, merchant_order_id, merchant_refund_id, status, amount, currency, reason,
						gateway_refund_id, gateway_log_no, gateway_trade_time, out_trade_no, submissions, created_at, updated_at)
					VALUES ($1, $2, $3, $4, $5, 'succeeded', $6, 'CNY', 'customer returned it', $7, $8, $9, $10, 1, $9, $9)`,
					rid, app, id, fmt.Sprintf("H-%05d", n), fmt.Sprintf("R-%05d", n), refund,
					refundAt.In(ops.Beijing).Format("20060102")+digits(uuidHex(rid)[20:], 12), "66"+digits(uuidHex(rid)[18:], 12), refundAt, uuidHex(rid))
				batch.Queue(`UPDATE payment_orders SET refunded_amount = refunded_amount + $2 WHERE id = $1`, id, refund)
				if !refundAt.Before(today) {
					h.refundsToday++
				}
			}
		}
	}
	// A payment Lakala took for an order that had expired shortly before (its review case resolved:
	// Lakala refunded it by itself): the statement's line "in review".
	{
		late := end.Add(-20 * time.Minute)
		id := idAt(late.Add(-40*time.Minute), rnd)
		outNo := uuidHex(id)
		evidence := fmt.Sprintf(`{"source":"notification","out_order_no":%q,"trade_no":%q,"log_no":%q,"trade_time":%q,
			"order_amount":6800,"reported_total_amount":6800,"reported_trade_amount":6800,"order_status":"failed","failure_reason":"expired"}`,
			outNo, late.In(ops.Beijing).Format("20060102")+digits(outNo[20:], 12), "66"+digits(outNo[16:], 12), late.UTC().Format(time.RFC3339))
		batch.Queue(`INSERT INTO payment_orders (id, app_id, merchant_order_id, status, order_type, amount, currency, subject, failure_reason,
				expires_at, created_at, updated_at)
			VALUES ($1, $2, 'H-LATE', 'failed', 'payment', 6800, 'CNY', 'VIP', 'expired', $3::timestamptz + interval '30 minutes', $3, $4)`,
			id, apps[0], late.Add(-40*time.Minute), late.Add(-9*time.Minute))
		batch.Queue(`INSERT INTO review_cases (kind, app_id, payment_order_id, dedupe_key, summary, evidence, opened_at, resolved_at, resolution, resolved_by, resolution_note)
			VALUES ('paid_after_failed', $1, $2, $3, $4, $5, $6, $6::timestamptz + interval '6 minutes', 'confirmed_auto_refunded', 'olga',
				'Lakala''s portal shows its automatic refund of the late payment')`,
			apps[0], id, outNo, "Lakala reports cashier order "+outNo+" paid but the order is failed (expired); the payer's money must be returned", evidence, late)
		if !late.Before(today) {
			h.reviewsToday++
		}
	}
	// The processor's task lag, every five minutes of the last day, and now and then before.
	for at := now.Add(-24 * time.Hour).Truncate(time.Minute); at.Before(end); at = at.Add(5 * time.Minute) {
		lag := rnd.Float64() * 2
		if at.Truncate(time.Hour).Equal(incident) {
			lag = 30 + rnd.Float64()*90
		}
		batch.Queue(`INSERT INTO task_lag_minutes (minute, lag_seconds) VALUES ($1, $2) ON CONFLICT DO NOTHING`, at, lag)
	}
	for at := today.AddDate(0, 0, -29); at.Before(now.Add(-24 * time.Hour)); at = at.Add(time.Duration(2+rnd.IntN(5)) * time.Hour) {
		batch.Queue(`INSERT INTO task_lag_minutes (minute, lag_seconds) VALUES ($1, $2) ON CONFLICT DO NOTHING`, at.Truncate(time.Minute), rnd.Float64()*4)
	}
	if err := s.Store.Pool().SendBatch(ctx, batch).Close(); err != nil {
		t.Fatalf("seed history: %v", err)
	}
	return h
}

// idAt is a UUIDv7 made at t (its first 48 bits are t in ms), as the service makes them: the
// overview reads a day's rows by id range.
func idAt(t time.Time, rnd *rand.Rand) string {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[8:], rnd.Uint64())
	binary.BigEndian.PutUint16(u[6:], uint16(rnd.Uint32()))
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // RFC 4122 variant
	return u.String()
}

// uuidHex is an id without its dashes (an out_order_no, an out_trade_no).
func uuidHex(id string) string { return strings.ReplaceAll(id, "-", "") }

// digits spells hex as decimal digits (Lakala's numbers are digits), n of them.
func digits(hex string, n int) string {
	out := make([]byte, 0, n)
	for i := 0; len(out) < n; i++ {
		c := hex[i%len(hex)]
		if c >= 'a' {
			c = '0' + (c-'a')%10
		}
		out = append(out, c)
	}
	return string(out)
}

// payWithExtra creates an order through the API with the main app's extra_data, and pays it at
// the sandbox's cashier.
func payWithExtra(t *testing.T, s *testenv.Stack, merchantOrderID string, amount int64, extra string) testenv.Order {
	t.Helper()
	body := fmt.Sprintf(`{"app_id":%q,"merchant_order_id":%q,"amount":%d,"order_type":"payment","subject":"VIP membership, 1 year","extra_data":%s}`,
		s.AppID, merchantOrderID, amount, extra)
	if code, resp := s.Do(t, http.MethodPost, "/api/v1/payment-orders", s.APIKey, body); code != http.StatusAccepted {
		t.Fatalf("create %s = %d %s", merchantOrderID, code, resp)
	}
	s.RunOnce(t)
	o := s.RequireOrder(t, merchantOrderID, "processing", "")
	view, ok := s.Sandbox.Order(o.OutOrderNo())
	if !ok {
		t.Fatalf("%s has no cashier order", merchantOrderID)
	}
	if err := s.Sandbox.Pay(context.Background(), view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	return s.RequireOrder(t, merchantOrderID, "succeeded", "")
}

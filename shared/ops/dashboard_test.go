package ops_test

import (
	"context"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/postgres"
)

// The overview for people: a success rate that leaves out orders closed on purpose and orders
// not final, stuck orders and refunds, the charts' numbers, the last processor run in words.
func TestDashboard(t *testing.T) {
	testenv.AvoidBeijingMidnight(t, time.Minute)
	if wait := time.Until(time.Now().Truncate(time.Hour).Add(time.Hour)); wait < 20*time.Second {
		time.Sleep(wait + time.Second) // the rows below must fall in one hour
	}
	e := newEnv(t)
	ctx := context.Background()
	pool := e.store.Pool()
	testenv.SeedOrder(t, e.store, "shop", "PAID-1", "succeeded", 1000)
	testenv.SeedOrder(t, e.store, "shop", "PAID-2", "succeeded", 2000)
	testenv.SeedOrder(t, e.store, "shop", "PAID-3", "succeeded", 3000)
	testenv.SeedOrder(t, e.store, "shop", "EXPIRED", "failed", 100)
	closed := testenv.SeedOrder(t, e.store, "shop", "CLOSED", "failed", 100)
	live := testenv.SeedOrder(t, e.store, "shop", "LIVE", "processing", 100)
	stuck := testenv.SeedOrder(t, e.store, "games", "STUCK", "processing", 100)
	refund := testenv.SeedRefund(t, e.store, stuck, "processing", 50)
	if _, err := pool.Exec(ctx, `UPDATE payment_orders SET failure_reason = 'closed_by_merchant' WHERE id = $1;`, closed); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE payment_orders SET expires_at = now() - interval '11 minutes' WHERE id = $1`, stuck); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE payment_orders SET expires_at = now() - interval '1 minute' WHERE id = $1`, live); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE refund_orders SET created_at = now() - interval '11 minutes' WHERE id = $1`, refund); err != nil {
		t.Fatal(err)
	}
	for _, outcome := range []string{"ok", "ok", "ok", "unknown"} {
		if err := e.store.RecordGatewayCall(ctx, postgres.GatewayCall{Operation: "query", OutNo: "X", Outcome: outcome, DurationMS: 1, CalledAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO task_lag_minutes (minute, lag_seconds) VALUES (date_trunc('minute', now()), 42), (date_trunc('minute', now()) - interval '1 minute', 7)`); err != nil {
		t.Fatal(err)
	}
	if err := ops.RecordHeartbeat(ctx, e.store, ops.HeartbeatProcessor, map[string]any{
		"stats": map[string]int{"Handled": 2, "Relayed": 1, "Retried": 0}, "error": "maintenance: redis: connection refused"}); err != nil {
		t.Fatal(err)
	}

	d, err := e.ops.Dashboard(ctx, viewer)
	if err != nil {
		t.Fatal(err)
	}
	// 3 paid, 1 failed (expired); the closed order and the two live ones do not count.
	if d.SuccessRate == nil || *d.SuccessRate != 0.75 || d.FailedToday["closed_by_merchant"] != 1 || d.FailedToday["expired"] != 1 {
		t.Errorf("success rate %v, failed %v; want 3 of 4", d.SuccessRate, d.FailedToday)
	}
	if d.StuckOrderCount != 1 || len(d.StuckOrders) != 1 || d.StuckOrders[0].MerchantOrderID != "STUCK" ||
		d.StuckRefundCount != 1 || len(d.StuckRefunds) != 1 || d.StuckRefunds[0].ID != refund {
		t.Errorf("stuck: %d orders %+v, %d refunds %+v", d.StuckOrderCount, d.StuckOrders, d.StuckRefundCount, d.StuckRefunds)
	}
	if d.Today.Total.Paid != 6000 || d.Today.Total.Payments != 3 || len(d.Today.Apps) != 1 || d.Yesterday.Total != (ops.StatementTotals{}) {
		t.Errorf("money today %+v, yesterday %+v", d.Today, d.Yesterday)
	}
	h, err := e.ops.Window(ctx, viewer, ops.Last24Hours)
	if err != nil {
		t.Fatal(err)
	}
	last := h.N - 1
	if h.N != 24 || h.Step != time.Hour || !h.BucketStart(h.N).After(time.Now()) || h.BucketStart(last).After(time.Now()) {
		t.Fatalf("24-hour window %v + %d × %v", h.Start, h.N, h.Step)
	}
	if h.Orders["paid"][last] != 3 || h.Orders["failed"][last] != 1 || h.Orders["closed"][last] != 1 || h.Orders["open"][last] != 2 ||
		h.Paid[last] != 6000 || h.LakalaCalls[last] != 4 || h.LakalaErrors[last] != 1 || h.TaskLag[last] < 42 || h.TaskLag[0] != -1 {
		t.Errorf("this hour: orders %v/%v/%v/%v, paid %d, calls %d (%d unknown), lag %v (first hour %v)", h.Orders["paid"][last], h.Orders["failed"][last],
			h.Orders["closed"][last], h.Orders["open"][last], h.Paid[last], h.LakalaCalls[last], h.LakalaErrors[last], h.TaskLag[last], h.TaskLag[0])
	}
	days, err := e.ops.Window(ctx, viewer, ops.Last30Days)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ops.Window(ctx, viewer, "1y"); err == nil {
		t.Error("a year of charts was read")
	}
	if days.N != 30 || !days.BucketStart(29).Equal(ops.DayOf(time.Now())) || days.Paid[29] != 6000 || days.Orders["paid"][29] != 3 {
		t.Errorf("30-day window from %v: today %v paid %d", days.Start, days.BucketStart(29), days.Paid[29])
	}
	p := d.Processor
	if p == nil || p.Did != "handled 2 tasks, published 1 result message late" || p.Error != "maintenance: redis: connection refused" || p.Late {
		t.Errorf("processor run %+v", p)
	}
}

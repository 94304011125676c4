package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// Dashboard is the console's overview for people: the Overview's numbers for the Beijing day,
// the money of today and yesterday, the orders and refunds that are stuck, and the last
// processor run in words. Its charts are read apart (Window).
type Dashboard struct {
	Overview
	Today     MoneyDay `json:"today"`
	Yesterday MoneyDay `json:"yesterday"`
	// StuckAfter is N: live orders more than N past their expiry, refunds at Lakala for more
	// than N, are stuck (the processor settles both within a minute or two when it runs).
	StuckAfter   Seconds     `json:"stuck_after_seconds"`
	StuckOrders  []OrderRow  `json:"stuck_orders"`
	StuckRefunds []RefundRow `json:"stuck_refunds"`
	// The counts, when more are stuck than listed.
	StuckOrderCount  int64         `json:"stuck_order_count"`
	StuckRefundCount int64         `json:"stuck_refund_count"`
	Processor        *ProcessorRun `json:"processor"`
	// LakalaCallsByMerchant counts the last hour's Lakala calls of each merchant.
	LakalaCallsByMerchant map[string]CallCounts `json:"lakala_calls_by_merchant"`
}

// CallCounts counts Lakala calls, and those whose outcome stayed unknown.
type CallCounts struct {
	Calls   int64 `json:"calls"`
	Unknown int64 `json:"unknown"`
}

// MoneyDay is what moved money on one Beijing day, per app and in total: the daily statement's
// totals.
type MoneyDay struct {
	Date      string           `json:"date"`
	Apps      []AppTotals      `json:"apps"`
	Merchants []MerchantTotals `json:"merchants"`
	Total     StatementTotals  `json:"total"`
}

// Window is a run of equal buckets (hours or Beijing days) ending with the current one, with
// what happened in each. Index i of every series is the bucket starting at Start + i·Step.
type Window struct {
	Start time.Time     `json:"start"`
	Step  time.Duration `json:"step"`
	N     int           `json:"n"`
	// Orders created in each bucket, by what became of them: paid, failed, closed (by the main
	// app or an operator), open (pending or processing now).
	Orders map[string][]int64 `json:"orders"`
	// Paid and Refunded are the money moved in each bucket (fen), by trade time, as on the
	// statement.
	Paid     []int64 `json:"paid"`
	Refunded []int64 `json:"refunded"`
	// LakalaCalls and LakalaErrors count the calls made to Lakala and those whose outcome stayed
	// unknown (timeout, connection error, 5xx, unverifiable answer): the error rate's alarm.
	LakalaCalls  []int64 `json:"lakala_calls"`
	LakalaErrors []int64 `json:"lakala_errors"`
	// TaskLag is the largest task lag seen in each bucket (seconds); -1 where the processor
	// recorded none.
	TaskLag []float64 `json:"task_lag"`
}

// Order outcomes of Window.Orders.
var WindowOutcomes = []string{"paid", "failed", "closed", "open"}

// BucketStart is the start of bucket i.
func (w Window) BucketStart(i int) time.Time { return w.Start.Add(time.Duration(i) * w.Step) }

// StuckAfter is how long past its expiry a live order, or how long at Lakala a refund, must be
// before the overview lists it as stuck.
const StuckAfter = 10 * time.Minute

// ProcessorRun is the processor's last maintenance pass, in words.
type ProcessorRun struct {
	At  time.Time `json:"at"`
	Age Seconds   `json:"age_seconds"`
	// Did says what the pass did, in words.
	Did   string `json:"did"`
	Error string `json:"error,omitempty"`
	// Late: no pass for 5 minutes (the processor alarm fires).
	Late bool `json:"late"`
}

// Dashboard reads the console's overview. "Today" is the Beijing day.
func (o *Ops) Dashboard(ctx context.Context, a Actor) (Dashboard, error) {
	if err := o.authorize(ctx, a, RoleViewer, "overview", ""); err != nil {
		return Dashboard{}, err
	}
	now := o.now()
	ov, err := ReadOverview(ctx, o.store, o.streams, now, Beijing)
	if err != nil {
		return Dashboard{}, err
	}
	d := Dashboard{Overview: ov, StuckAfter: Seconds(StuckAfter.Seconds())}
	pool := o.store.Pool()
	today := DayOf(now)
	for _, day := range []struct {
		into *MoneyDay
		from time.Time
	}{{&d.Today, today}, {&d.Yesterday, today.AddDate(0, 0, -1)}} {
		apps, total, err := dayTotals(ctx, pool, day.from, day.from.AddDate(0, 0, 1))
		if err != nil {
			return d, err
		}
		merchants, err := merchantDayTotals(ctx, pool, day.from, day.from.AddDate(0, 0, 1))
		if err != nil {
			return d, err
		}
		*day.into = MoneyDay{Date: day.from.Format("2006-01-02"), Apps: apps, Merchants: merchants, Total: total}
	}
	// The last hour's Lakala calls of each merchant, and how many had no answer: a merchant whose
	// key or certificate Lakala refuses shows here first.
	d.LakalaCallsByMerchant = map[string]CallCounts{}
	rows, err := pool.Query(ctx, `SELECT coalesce(merchant_id, 'default'), count(*), count(*) FILTER (WHERE outcome = 'unknown')
		FROM gateway_calls WHERE called_at >= $1 GROUP BY 1`, now.Add(-time.Hour))
	if err != nil {
		return d, fmt.Errorf("overview calls by merchant: %w", err)
	}
	var merchantID string
	var calls, unknown int64
	if _, err := pgx.ForEachRow(rows, []any{&merchantID, &calls, &unknown}, func() error {
		d.LakalaCallsByMerchant[merchantID] = CallCounts{Calls: calls, Unknown: unknown}
		return nil
	}); err != nil {
		return d, fmt.Errorf("overview calls by merchant: %w", err)
	}
	if err := o.stuck(ctx, now, &d); err != nil {
		return d, err
	}
	if ov.LastProcessorRun != nil {
		d.Processor = describeRun(*ov.LastProcessorRun, now)
	}
	return d, nil
}

// DaysCacheTTL is how long a process reuses the 30 days' numbers: reading them scans a month of
// orders and Lakala calls (about 1 s per million rows), and a day's bars barely move in minutes.
const DaysCacheTTL = 5 * time.Minute

// daysCache is the last 30 days' Window, read at.
type daysCache struct {
	sync.Mutex
	window Window
	at     time.Time
}

// Spans of Window.
const (
	Last24Hours = "24h" // the last 24 hours, by hour (the current one last)
	Last30Days  = "30d" // the last 30 Beijing days, by day (today last)
)

// Window reads the numbers of the overview's charts over a span (Last24Hours or Last30Days).
func (o *Ops) Window(ctx context.Context, a Actor, span string) (Window, error) {
	if err := o.authorize(ctx, a, RoleViewer, "overview", ""); err != nil {
		return Window{}, err
	}
	now := o.now()
	switch span {
	case Last24Hours:
		return o.window(ctx, now.Truncate(time.Hour).Add(-23*time.Hour), time.Hour, 24)
	case Last30Days:
		start := DayOf(now).AddDate(0, 0, -29)
		o.daysCache.Lock()
		defer o.daysCache.Unlock()
		if c := &o.daysCache; c.window.Start.Equal(start) && now.Sub(c.at) < DaysCacheTTL {
			return c.window, nil
		}
		w, err := o.window(ctx, start, 24*time.Hour, 30)
		if err == nil {
			o.daysCache.window, o.daysCache.at = w, now
		}
		return w, err
	}
	return Window{}, pay.Invalid("span", "the charts cover %q or %q, not %q", Last24Hours, Last30Days, span)
}

// window reads n buckets of step from start. Each query groups one range of an index by bucket.
func (o *Ops) window(ctx context.Context, start time.Time, step time.Duration, n int) (Window, error) {
	w := Window{Start: start, Step: step, N: n, Orders: map[string][]int64{},
		Paid: make([]int64, n), Refunded: make([]int64, n), LakalaCalls: make([]int64, n), LakalaErrors: make([]int64, n), TaskLag: make([]float64, n)}
	for _, oc := range WindowOutcomes {
		w.Orders[oc] = make([]int64, n)
	}
	for i := range w.TaskLag {
		w.TaskLag[i] = -1
	}
	end := w.BucketStart(n)
	// The bucket of a row: whole steps (parameter step, in seconds) since the window's start ($1).
	bucket := func(col, step string) string {
		return "floor(extract(epoch from (" + col + " - $1::timestamptz)) / " + step + ")::int"
	}
	pool := o.store.Pool()
	for _, q := range []struct {
		name string
		sql  string
		args []any
		put  func(i int, key string, a, b float64)
	}{
		{"orders", `SELECT ` + bucket("created_at", "$3") + `, CASE WHEN status = 'succeeded' THEN 'paid'
				WHEN status = 'failed' AND failure_reason = '` + pay.ReasonClosedByMerchant + `' THEN 'closed'
				WHEN status = 'failed' THEN 'failed' ELSE 'open' END, count(*), 0
			FROM payment_orders WHERE id >= $4::uuid AND created_at >= $1 AND created_at < $2 GROUP BY 1, 2`,
			[]any{start, end, step.Seconds(), IDFloor(start)},
			func(i int, k string, a, _ float64) { w.Orders[k][i] = int64(a) }},
		// The statement's own definitions ($1 from, $2 to, $3 app), every app.
		{"paid", `SELECT ` + bucket("p.gateway_trade_time", "$4") + `, '', sum(p.amount), 0 ` + paymentsOfDay + ` GROUP BY 1`,
			[]any{start, end, "", step.Seconds()},
			func(i int, _ string, a, _ float64) { w.Paid[i] = int64(a) }},
		{"refunded", `SELECT ` + bucket("r.gateway_trade_time", "$4") + `, '', sum(r.amount), 0 ` + refundsOfDay + ` GROUP BY 1`,
			[]any{start, end, "", step.Seconds()},
			func(i int, _ string, a, _ float64) { w.Refunded[i] = int64(a) }},
		{"lakala", `SELECT ` + bucket("called_at", "$3") + `, '', count(*), count(*) FILTER (WHERE outcome = 'unknown')
			FROM gateway_calls WHERE called_at >= $1 AND called_at < $2 GROUP BY 1`,
			[]any{start, end, step.Seconds()},
			func(i int, _ string, a, b float64) { w.LakalaCalls[i], w.LakalaErrors[i] = int64(a), int64(b) }},
		{"task lag", `SELECT ` + bucket("minute", "$3") + `, '', max(lag_seconds), 0
			FROM task_lag_minutes WHERE minute >= $1 AND minute < $2 GROUP BY 1`,
			[]any{start, end, step.Seconds()},
			func(i int, _ string, a, _ float64) { w.TaskLag[i] = a }},
	} {
		rows, err := pool.Query(ctx, q.sql, q.args...)
		if err != nil {
			return w, fmt.Errorf("overview %s: %w", q.name, err)
		}
		for rows.Next() {
			var i int
			var key string
			var a, b float64
			if err := rows.Scan(&i, &key, &a, &b); err != nil {
				rows.Close()
				return w, fmt.Errorf("overview %s: %w", q.name, err)
			}
			if i >= 0 && i < n {
				q.put(i, key, a, b)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return w, fmt.Errorf("overview %s: %w", q.name, err)
		}
	}
	return w, nil
}

// stuck lists live orders more than StuckAfter past their expiry and refunds at Lakala for
// more than StuckAfter (both through the indexes of live rows), oldest first.
func (o *Ops) stuck(ctx context.Context, now time.Time, d *Dashboard) error {
	pool := o.store.Pool()
	before := now.Add(-StuckAfter)
	if err := pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM payment_orders WHERE status IN ('pending', 'processing') AND expires_at < $1),
			(SELECT count(*) FROM refund_orders WHERE status IN ('pending', 'processing') AND created_at < $1)`, before).
		Scan(&d.StuckOrderCount, &d.StuckRefundCount); err != nil {
		return fmt.Errorf("overview stuck: %w", err)
	}
	rows, err := pool.Query(ctx, `SELECT `+orderSelect+` FROM payment_orders p
		WHERE status IN ('pending', 'processing') AND expires_at < $1 ORDER BY expires_at LIMIT 50`, before)
	if err != nil {
		return fmt.Errorf("overview stuck orders: %w", err)
	}
	for rows.Next() {
		r, err := scanOrderRow(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("overview stuck orders: %w", err)
		}
		d.StuckOrders = append(d.StuckOrders, r)
	}
	rows.Close()
	rows, err = pool.Query(ctx, `SELECT `+refundSelect+` FROM refund_orders r JOIN payment_orders p ON p.id = r.payment_order_id
		WHERE r.status IN ('pending', 'processing') AND r.created_at < $1 ORDER BY r.created_at LIMIT 50`, before)
	if err != nil {
		return fmt.Errorf("overview stuck refunds: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRefundRow(rows)
		if err != nil {
			return fmt.Errorf("overview stuck refunds: %w", err)
		}
		d.StuckRefunds = append(d.StuckRefunds, r)
	}
	return rows.Err()
}

// processorWords names what a maintenance pass counted (processor.Stats, as its heartbeat
// records it), in the order a person reads them.
var processorWords = []struct{ field, one, many string }{
	{"Handled", "handled 1 task", "handled %d tasks"},
	{"Retried", "put 1 task back for a later attempt", "put %d tasks back for a later attempt"},
	{"Dead", "gave up 1 task (dead letter)", "gave up %d tasks (dead letters)"},
	{"Review", "stopped 1 task for a review case", "stopped %d tasks for review cases"},
	{"Republished", "woke 1 task that missed the stream", "woke %d tasks that missed the stream"},
	{"Reclaimed", "took over 1 message from a crashed run", "took over %d messages from a crashed run"},
	{"Reconciled", "settled or expired 1 order by asking Lakala", "settled or expired %d orders by asking Lakala"},
	{"Relayed", "published 1 result message late", "published %d result messages late"},
	{"Webhooks", "made 1 webhook delivery attempt", "made %d webhook delivery attempts"},
}

// describeRun puts a processor heartbeat in words.
func describeRun(hb Heartbeat, now time.Time) *ProcessorRun {
	run := &ProcessorRun{At: hb.At, Age: Seconds(max(0, now.Sub(hb.At).Seconds())), Late: now.Sub(hb.At) > 5*time.Minute}
	var detail struct {
		Stats map[string]int64 `json:"stats"`
		Error string           `json:"error"`
	}
	if err := json.Unmarshal(hb.Detail, &detail); err != nil {
		run.Did = "its record could not be read"
		return run
	}
	var did []string
	for _, w := range processorWords {
		switch n := detail.Stats[w.field]; {
		case n == 1:
			did = append(did, w.one)
		case n > 1:
			did = append(did, fmt.Sprintf(w.many, n))
		}
	}
	if len(did) == 0 {
		run.Did = "found nothing to do"
	} else {
		run.Did = strings.Join(did, ", ")
	}
	run.Error = detail.Error
	return run
}

// TaskLagRetention is how long the task lag of each minute is kept: the overview's 30 days.
const TaskLagRetention = 31 * 24 * time.Hour

// RecordTaskLag keeps the task lag of this minute (the largest seen in it) for the overview's
// charts, and drops what is older than keep. The processor calls it after each maintenance pass.
func RecordTaskLag(ctx context.Context, store *postgres.Store, now time.Time, keep time.Duration) error {
	lag, err := store.OldestDueTask(ctx, now)
	if err != nil {
		return err
	}
	if _, err := store.Pool().Exec(ctx, `INSERT INTO task_lag_minutes (minute, lag_seconds) VALUES ($1, $2)
		ON CONFLICT (minute) DO UPDATE SET lag_seconds = greatest(task_lag_minutes.lag_seconds, excluded.lag_seconds)`,
		now.Truncate(time.Minute), lag.Seconds()); err != nil {
		return fmt.Errorf("record task lag: %w", err)
	}
	if _, err := store.Pool().Exec(ctx, `DELETE FROM task_lag_minutes WHERE minute < $1`, now.Add(-keep)); err != nil {
		return fmt.Errorf("prune task lag: %w", err)
	}
	return nil
}

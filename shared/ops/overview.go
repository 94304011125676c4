package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/streams"
)

// Overview is the state of the service at a glance: the console's first page and the metrics the
// processor emits are the same numbers.
type Overview struct {
	At       time.Time `json:"at"`
	DayStart time.Time `json:"day_start"`
	// Orders created since DayStart, by their status now.
	OrdersToday  map[string]int64 `json:"orders_today"`
	CreatedToday int64            `json:"created_today"`
	// FailedToday counts today's failed orders by failure_reason.
	FailedToday map[string]int64 `json:"failed_today"`
	// SuccessRate is paid ÷ (paid + failed) among today's final orders, where orders the main app
	// (or an operator) closed itself (closed_by_merchant) count neither way and pending or
	// processing ones are left out until final; nil when no order counts.
	SuccessRate         *float64         `json:"success_rate"`
	RefundsToday        map[string]int64 `json:"refunds_today"`
	RefundsCreatedToday int64            `json:"refunds_created_today"`
	OpenReviewCases     int64            `json:"open_review_cases"`
	// DeadLetters counts dead tasks; DeadLetterEntries the dead-letter stream's length (−1 if
	// Redis did not answer).
	DeadLetters       int64 `json:"dead_letters"`
	DeadLetterEntries int64 `json:"dead_letter_entries"`
	// OldestUnpublished is the creation time of the oldest result message not yet on its stream.
	OldestUnpublished    *time.Time `json:"oldest_unpublished"`
	OldestUnpublishedAge Seconds    `json:"oldest_unpublished_age_seconds"`
	// TaskLag is the age of the oldest task that is due and not leased.
	TaskLag          Seconds    `json:"task_lag_seconds"`
	LastProcessorRun *Heartbeat `json:"last_processor_run"`
	// The last hour's Lakala calls by outcome and notifications by result.
	LakalaCallsLastHour   map[string]int64 `json:"lakala_calls_last_hour"`
	NotificationsLastHour map[string]int64 `json:"notifications_last_hour"`
}

// Seconds is a duration shown in whole seconds.
type Seconds float64

// Heartbeat is the last run of a piece of background work.
type Heartbeat struct {
	Name   string          `json:"name"`
	At     time.Time       `json:"at"`
	Detail json.RawMessage `json:"detail"`
}

// Overview reads the overview; the day starts at midnight in loc.
func (o *Ops) Overview(ctx context.Context, a Actor, loc *time.Location) (Overview, error) {
	if err := o.authorize(ctx, a, RoleViewer, "overview", ""); err != nil {
		return Overview{}, err
	}
	return ReadOverview(ctx, o.store, o.streams, o.now(), loc)
}

// ReadOverview computes the overview (the processor's metrics use it without an operator).
func ReadOverview(ctx context.Context, store *postgres.Store, st *streams.Streams, now time.Time, loc *time.Location) (Overview, error) {
	if loc == nil {
		loc = time.UTC
	}
	local := now.In(loc)
	ov := Overview{At: now, DayStart: time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc),
		OrdersToday: map[string]int64{}, FailedToday: map[string]int64{}, RefundsToday: map[string]int64{},
		LakalaCallsLastHour: map[string]int64{}, NotificationsLastHour: map[string]int64{}}
	pool := store.Pool()
	count := func(q string, into map[string]int64, args ...any) error {
		rows, err := pool.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("overview: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			var n int64
			if err := rows.Scan(&k, &n); err != nil {
				return err
			}
			into[k] = n
		}
		return rows.Err()
	}
	// Order and refund ids are UUIDv7, time-ordered, so "since" is also a range of the primary
	// key: the counts read the day's rows through the index instead of scanning the table (there
	// is no created_at index, to keep the create path's inserts cheap).
	// Failed orders are counted by reason ("failed/expired"), then folded into OrdersToday.
	byOutcome := map[string]int64{}
	if err := count(`SELECT status || coalesce('/' || failure_reason, ''), count(*) FROM payment_orders
		WHERE id >= $2::uuid AND created_at >= $1 GROUP BY 1`, byOutcome, ov.DayStart, IDFloor(ov.DayStart)); err != nil {
		return ov, err
	}
	for k, n := range byOutcome {
		status, reason, _ := strings.Cut(k, "/")
		ov.OrdersToday[status] += n
		if status == string(pay.StatusFailed) {
			ov.FailedToday[reason] += n
		}
		ov.CreatedToday += n
	}
	ov.SuccessRate = SuccessRate(ov.OrdersToday[string(pay.StatusSucceeded)], ov.OrdersToday[string(pay.StatusFailed)]-ov.FailedToday[pay.ReasonClosedByMerchant])

	if err := count(`SELECT status, count(*) FROM refund_orders WHERE id >= $2::uuid AND created_at >= $1 GROUP BY status`,
		ov.RefundsToday, ov.DayStart, IDFloor(ov.DayStart)); err != nil {
		return ov, err
	}
	for _, n := range ov.RefundsToday {
		ov.RefundsCreatedToday += n
	}
	hourAgo := now.Add(-time.Hour)
	if err := count(`SELECT outcome, count(*) FROM gateway_calls WHERE called_at >= $1 GROUP BY outcome`, ov.LakalaCallsLastHour, hourAgo); err != nil {
		return ov, err
	}
	if err := count(`SELECT result, count(*) FROM notifications WHERE received_at >= $1 GROUP BY result`, ov.NotificationsLastHour, hourAgo); err != nil {
		return ov, err
	}
	err := pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM review_cases WHERE resolved_at IS NULL),
			(SELECT count(*) FROM tasks WHERE state = 'dead'),
			(SELECT min(created_at) FROM outbox WHERE published_at IS NULL)`).
		Scan(&ov.OpenReviewCases, &ov.DeadLetters, &ov.OldestUnpublished)
	if err != nil {
		return ov, fmt.Errorf("overview: %w", err)
	}
	if ov.OldestUnpublished != nil {
		ov.OldestUnpublishedAge = Seconds(max(0, now.Sub(*ov.OldestUnpublished).Seconds()))
	}
	// The same backlog the scale-out reads.
	lag, err := store.OldestDueTask(ctx, now)
	if err != nil {
		return ov, err
	}
	ov.TaskLag = Seconds(lag.Seconds())
	if st != nil {
		n, err := st.DeadLetterCount(ctx)
		if err != nil {
			n = -1
		}
		ov.DeadLetterEntries = n
	}
	hb, err := ReadHeartbeat(ctx, store, HeartbeatProcessor)
	if err == nil {
		ov.LastProcessorRun = &hb
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return ov, err
	}
	return ov, nil
}

// SuccessRate is paid ÷ (paid + failed), nil when both are 0. Callers leave out what does not
// count (orders closed on purpose, orders not final).
func SuccessRate(paid, failed int64) *float64 {
	if paid+failed == 0 {
		return nil
	}
	r := float64(paid) / float64(paid+failed)
	return &r
}

// HeartbeatProcessor is the heartbeat the processor's maintenance writes.
const HeartbeatProcessor = "processor"

// RecordHeartbeat notes that a piece of background work ran now, with what it did.
func RecordHeartbeat(ctx context.Context, store *postgres.Store, name string, detail any) error {
	b, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	_, err = store.Pool().Exec(ctx, `INSERT INTO heartbeats (name, at, detail) VALUES ($1, now(), $2)
		ON CONFLICT (name) DO UPDATE SET at = excluded.at, detail = excluded.detail`, name, b)
	if err != nil {
		return fmt.Errorf("record heartbeat %s: %w", name, err)
	}
	return nil
}

// ReadHeartbeat reads a heartbeat; pgx.ErrNoRows if it never ran.
func ReadHeartbeat(ctx context.Context, store *postgres.Store, name string) (Heartbeat, error) {
	var h Heartbeat
	var d []byte
	err := store.Pool().QueryRow(ctx, `SELECT name, at, detail FROM heartbeats WHERE name = $1`, name).Scan(&h.Name, &h.At, &d)
	h.Detail = d
	return h, err
}

// IDFloor is the smallest UUIDv7 of time t (its first 48 bits are the Unix time in ms): every id
// made at or after t sorts at or after it. A small margin covers clocks a little apart.
func IDFloor(t time.Time) string {
	ms := uint64(max(0, t.Add(-time.Minute).UnixMilli()))
	return fmt.Sprintf("%08x-%04x-0000-0000-000000000000", ms>>16, ms&0xffff)
}

package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// FanOut turns result events not yet fanned out into one delivery per enabled endpoint of the
// event's app that subscribes to its type, and marks the events fanned out, in one statement
// per batch. It goes by a mark on each outbox row, not by a cursor over ids, because ids are
// taken at insert and committed in any order. It returns how many events it handled.
func (w *Webhooks) FanOut(ctx context.Context, batch int) (int, error) {
	total := 0
	for {
		now := w.now()
		var n int
		err := w.pool.QueryRow(ctx, `WITH ev AS (
				SELECT o.id, o.event_id, o.stream, o.fields FROM outbox o WHERE o.webhooks_at IS NULL
				-- never ahead of an earlier event of the same order that is not fanned out yet
				-- (skipped below because a publisher holds its lock, or in another batch)
				AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.subject_id = o.subject_id
					AND e.webhooks_at IS NULL AND e.id < o.id)
				ORDER BY o.id LIMIT $1 FOR UPDATE OF o SKIP LOCKED),
			ins AS (
				INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, subject_id, seq, payload, next_attempt_at, created_at)
				SELECT e.id, ev.event_id, ev.fields->>'event_type',
					CASE WHEN ev.stream = 'refund_results' THEN ev.fields->>'refund_order_id' ELSE ev.fields->>'payment_order_id' END,
					CASE WHEN ev.fields->>'seq' ~ '^[0-9]{1,18}$' THEN (ev.fields->>'seq')::bigint ELSE 0 END,
					ev.fields, $2, $2
				FROM ev
				JOIN webhook_endpoints e ON e.app_id = ev.fields->>'app_id' AND e.disabled_at IS NULL
					AND ev.fields->>'event_type' = ANY (e.events)
				JOIN apps a ON a.app_id = e.app_id AND a.disabled_at IS NULL
				ON CONFLICT (endpoint_id, event_id) DO NOTHING),
			upd AS (UPDATE outbox SET webhooks_at = $2 FROM ev WHERE outbox.id = ev.id RETURNING 1)
			SELECT count(*) FROM upd`, batch, now).Scan(&n)
		if err != nil {
			return total, fmt.Errorf("webhook fan-out: %w", err)
		}
		total += n
		// Until a pass finds nothing: an order's next event waits for a pass after its previous one.
		if n == 0 {
			if total > 0 {
				w.poke()
			}
			return total, nil
		}
	}
}

// Run fans out and delivers until ctx ends, then waits for the deliveries in flight. An attempt
// still running at ctx's deadline (the end of a Lambda run) is cut short there and recorded as a
// failure, to be retried by the schedule; so attempts keep starting until a second before it.
//
// wake (may be nil) signals newly committed results (streams.ResultWakeups), so they go out at
// once rather than at the next poll.
func (w *Webhooks) Run(ctx context.Context, wake <-chan struct{}) {
	w.RunUntil(ctx, nil, wake)
}

// RunUntil is Run with a graceful stop: once stop is closed it starts nothing new (no fan-out,
// no claim, no attempt) and returns when the attempts in flight have ended, each within the
// webhook timeout. The end of ctx still cuts them short, as in Run.
func (w *Webhooks) RunUntil(ctx context.Context, stop, wake <-chan struct{}) {
	work := ctx // attempts run under it
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadline(ctx, deadline.Add(-time.Second))
		defer cancel()
	}
	// Nothing starts once intake ends: with work, or at the stop.
	intake, closeIntake := context.WithCancel(work)
	defer closeIntake()
	go func() {
		select {
		case <-stop:
			closeIntake()
		case <-intake.Done():
		}
	}()
	t := time.NewTicker(w.cfg.PollEvery)
	defer t.Stop()
	warnedNoKey := false
	var pruned time.Time
	for intake.Err() == nil {
		if time.Since(pruned) >= 10*time.Minute {
			if _, err := w.Prune(work, w.now().Add(-Retention), 10_000); err != nil && work.Err() == nil {
				w.log.ErrorContext(ctx, "webhook prune failed", "err", err)
			}
			pruned = time.Now()
		}
		if intake.Err() != nil {
			break
		}
		if _, err := w.FanOut(work, 500); err != nil && work.Err() == nil {
			w.log.ErrorContext(ctx, "webhook fan-out failed", "err", err)
		}
		_, err := w.dispatch(work, intake)
		switch {
		case errors.Is(err, errNoKey):
			if !warnedNoKey { // once per run: it will not change until the configuration does
				w.log.ErrorContext(ctx, "webhooks are due but cannot be signed", "err", err)
				warnedNoKey = true
			}
		case err != nil && work.Err() == nil:
			w.log.ErrorContext(ctx, "webhook dispatch failed", "err", err)
		}
		select {
		case <-intake.Done():
		case <-t.C:
		case <-w.wake:
		case <-wake:
		}
	}
	w.wg.Wait()
}

// Retention is how long finished deliveries and their attempts are kept (webhooks deliveries).
const Retention = 30 * 24 * time.Hour

// Prune deletes up to limit finished (delivered or failed) deliveries created before cutoff,
// with their attempts, and returns how many.
func (w *Webhooks) Prune(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	tag, err := w.pool.Exec(ctx, `DELETE FROM webhook_deliveries WHERE id IN (
		SELECT id FROM webhook_deliveries WHERE state <> 'pending' AND created_at < $1 LIMIT $2)`, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("prune webhook deliveries: %w", err)
	}
	return tag.RowsAffected(), nil
}

// RunOnce fans out, starts every due delivery it has room for, and waits for them: one pass,
// for tests and `loomipay process`. It returns how many attempts it made.
func (w *Webhooks) RunOnce(ctx context.Context) (int, error) {
	if _, err := w.FanOut(ctx, 500); err != nil {
		return 0, err
	}
	n, err := w.dispatch(ctx, ctx)
	w.wg.Wait()
	return n, err
}

// dispatch starts attempts for due deliveries, endpoint by endpoint, within the global and the
// per-endpoint limits; it does not wait for them. The attempts run under ctx; none starts once
// intake has ended. Per subject (order or refund) and endpoint,
// only the lowest-seq pending delivery is ever eligible, so an order's events arrive in seq
// order even under retries.
func (w *Webhooks) dispatch(ctx, intake context.Context) (int, error) {
	now := w.now()
	// The endpoints with due work, with what it takes to sign for them: one index probe per
	// enabled endpoint, whatever the backlog.
	rows, err := w.pool.Query(ctx, `SELECT e.id, e.url, e.secret_enc, e.previous_secret_enc, e.previous_until
		FROM webhook_endpoints e WHERE e.disabled_at IS NULL
		AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'pending' AND d.next_attempt_at <= $1)`, now)
	if err != nil {
		return 0, fmt.Errorf("due endpoints: %w", err)
	}
	var targets []target
	for rows.Next() {
		var t target
		var cur, prev []byte
		var until *time.Time
		if err := rows.Scan(&t.id, &t.url, &cur, &prev, &until); err != nil {
			rows.Close()
			return 0, err
		}
		if w.box == nil {
			rows.Close()
			return 0, errNoKey
		}
		s, err := w.box.open(cur)
		if err != nil {
			rows.Close()
			return 0, err
		}
		t.secrets = []string{s}
		if prev != nil && until != nil && now.Before(*until) {
			if s, err := w.box.open(prev); err == nil {
				t.secrets = append(t.secrets, s)
			}
		}
		targets = append(targets, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	started := 0
	for _, t := range targets {
		if intake.Err() != nil {
			break
		}
		w.mu.Lock()
		free := min(w.cfg.EndpointConcurrency-w.inflight[t.id], w.cfg.Concurrency-w.total)
		w.mu.Unlock()
		if free <= 0 {
			continue
		}
		n, err := w.startEndpoint(ctx, intake, t, free, now)
		started += n
		if err != nil {
			return started, err
		}
	}
	return started, nil
}

type claimed struct {
	id        int64
	attempts  int // including this one
	eventID   string
	eventType string
	payload   map[string]string
	createdAt time.Time
}

type target struct {
	id, url string
	secrets []string
}

// workerRun is how many attempts in a row a slot makes for one endpoint before it is handed back
// to the dispatcher: claiming the endpoint's next delivery directly costs one query instead of a
// dispatch pass, and handing back now and then keeps the slots fair between endpoints.
const workerRun = 16

// startEndpoint claims up to n due deliveries of one endpoint and starts them, each in a slot
// that goes on with the endpoint's next due delivery (up to workerRun, and while intake lasts).
func (w *Webhooks) startEndpoint(ctx, intake context.Context, tgt target, n int, now time.Time) (int, error) {
	batch, err := w.claim(ctx, tgt.id, n, now)
	if err != nil {
		return 0, err
	}
	for _, c := range batch {
		w.mu.Lock()
		w.inflight[tgt.id]++
		w.total++
		w.mu.Unlock()
		w.wg.Go(func() {
			defer func() {
				w.mu.Lock()
				w.inflight[tgt.id]--
				w.total--
				w.mu.Unlock()
				w.poke() // a slot is free: let the dispatcher look again
			}()
			for i := 1; ; i++ {
				// After a failure the slot goes back: a failing endpoint keeps none for itself.
				if !w.attempt(ctx, tgt, c) || i >= workerRun || intake.Err() != nil {
					return
				}
				next, err := w.claim(ctx, tgt.id, 1, w.now())
				if err != nil || len(next) == 0 {
					return // the dispatcher retries on its next pass
				}
				c = next[0]
			}
		})
	}
	return len(batch), nil
}

// claim takes up to n due deliveries of an enabled endpoint. A claim counts the attempt and
// pushes next_attempt_at past the attempt's timeout (a lease): a crashed run's claims come due
// again. The due rows are read in index order and the scan stops at the limit. "OFFSET 0" keeps
// the NOT EXISTS a per-row probe of the subject index: as an anti-join, with stale statistics the
// planner may compare every pending row with every other (quadratic in the backlog).
func (w *Webhooks) claim(ctx context.Context, endpointID string, n int, now time.Time) ([]claimed, error) {
	lease := now.Add(w.cfg.Timeout + 30*time.Second)
	rows, err := w.pool.Query(ctx, `UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = $3
		FROM (SELECT c.id FROM webhook_deliveries c
			WHERE c.endpoint_id = $1 AND c.state = 'pending' AND c.next_attempt_at <= $2
			AND NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = $1 AND e.disabled_at IS NOT NULL)
			AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
				WHERE p.endpoint_id = c.endpoint_id AND p.subject_id = c.subject_id AND p.state = 'pending'
				AND (p.seq, p.id) < (c.seq, c.id) OFFSET 0)
			ORDER BY c.next_attempt_at, c.id LIMIT $4 FOR UPDATE OF c SKIP LOCKED) due
		WHERE d.id = due.id
		RETURNING d.id, d.attempts, d.event_id::text, d.event_type, d.payload, d.created_at`, endpointID, now, lease, n)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	defer rows.Close()
	var batch []claimed
	for rows.Next() {
		var c claimed
		if err := rows.Scan(&c.id, &c.attempts, &c.eventID, &c.eventType, &c.payload, &c.createdAt); err != nil {
			return nil, err
		}
		batch = append(batch, c)
	}
	return batch, rows.Err()
}

// attempt POSTs one delivery and records the outcome; it reports whether it was delivered.
func (w *Webhooks) attempt(ctx context.Context, tgt target, c claimed) bool {
	body, err := json.Marshal(c.payload) // map keys sorted: the same bytes on every attempt
	if err != nil {
		w.log.ErrorContext(ctx, "webhook payload", "delivery", c.id, "err", err)
		return false
	}
	start, began := w.now(), time.Now() // the clock may be a test's; latency is real
	status, sendErr := w.send(ctx, tgt, c, body, start)
	latency := time.Since(began)
	// Recorded even when ctx has ended: otherwise the attempt would be lost from the history.
	if err := w.record(context.WithoutCancel(ctx), tgt.id, c, start, status, latency, sendErr); err != nil {
		w.log.ErrorContext(ctx, "recording a webhook attempt failed; the delivery is retried when its lease ends",
			"delivery", c.id, "err", err)
		return false
	}
	return sendErr == nil
}

func (w *Webhooks) send(ctx context.Context, tgt target, c claimed, body []byte, at time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tgt.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "LoomiPay-Webhooks/1")
	req.Header.Set("Loomi-Event-Id", c.eventID)
	req.Header.Set("Loomi-Event-Type", c.eventType)
	req.Header.Set(SignatureHeader, SignatureValue(at.Unix(), body, tgt.secrets...))
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// record stores an attempt and moves the delivery on — delivered; retried after the schedule's
// next wait; or given up past the horizon — in one statement. An endpoint failing without a
// success for the horizon is disabled.
func (w *Webhooks) record(ctx context.Context, endpointID string, c claimed, at time.Time, status int, latency time.Duration, sendErr error) error {
	var errText *string
	if sendErr != nil {
		s := sendErr.Error()
		if len(s) > 500 {
			s = s[:500]
		}
		errText = &s
	}
	var code *int
	if status != 0 {
		code = &status
	}
	now := w.now()
	if sendErr == nil {
		_, err := w.pool.Exec(ctx, `WITH a AS (
				INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms, error) VALUES ($1, $2, $3, $4, NULL)),
			d AS (UPDATE webhook_deliveries SET state = 'delivered', delivered_at = $5, last_error = NULL WHERE id = $1)
			UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $6 AND failing_since IS NOT NULL`,
			c.id, at, code, latency.Milliseconds(), now, endpointID)
		if err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		return nil
	}
	next := now.Add(w.cfg.Schedule[min(c.attempts, len(w.cfg.Schedule))-1])
	state := "pending"
	if next.Sub(c.createdAt) > w.cfg.Horizon {
		state = "failed"
	}
	var since time.Time
	err := w.pool.QueryRow(ctx, `WITH a AS (
			INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms, error) VALUES ($1, $2, $3, $4, $5)),
		d AS (UPDATE webhook_deliveries SET state = $6, next_attempt_at = $7, last_error = $5 WHERE id = $1)
		UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, $2) WHERE id = $8 RETURNING failing_since`,
		c.id, at, code, latency.Milliseconds(), errText, state, next, endpointID).Scan(&since)
	if err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	if now.Sub(since) >= w.cfg.Horizon {
		reason := "failing since " + since.UTC().Format(time.RFC3339) + " (" + strconv.Itoa(int(w.cfg.Horizon.Hours())) + " h without a success)"
		w.log.WarnContext(ctx, "webhook endpoint disabled", "endpoint", endpointID, "reason", reason)
		return w.disable(ctx, endpointID, reason)
	}
	return nil
}

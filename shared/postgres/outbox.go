package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// UnpublishedEvents returns up to limit outbox events not yet relayed, oldest first.
func (s *Store) UnpublishedEvents(ctx context.Context, limit int) ([]Event, error) {
	return scanEvents(s.pool.Query(ctx, `SELECT `+eventColumns+` FROM outbox
		WHERE published_at IS NULL ORDER BY id LIMIT $1`, limit))
}

const eventColumns = `id, event_id::text, stream, fields, coalesce(subject_id::text, ''), coalesce(app_id, ''), coalesce(seq, 0)`

func scanEvents(rows pgx.Rows, err error) ([]Event, error) {
	if err != nil {
		return nil, fmt.Errorf("outbox events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var fields []byte
		if err := rows.Scan(&e.OutboxID, &e.EventID, &e.Stream, &fields, &e.SubjectID, &e.AppID, &e.Seq); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(fields, &e.Fields); err != nil {
			return nil, fmt.Errorf("outbox event %d: %w", e.OutboxID, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// PublishSubjects publishes every unpublished event of the given subjects (orders, refunds),
// oldest first, and marks them published. PublishOldest does the same for the oldest unpublished
// events of any subject, up to limit.
//
// Both lock the rows they publish (in id order, so they cannot deadlock) until the events are
// marked published: a second publisher waits, then finds them published and skips them. So no
// event of a subject reaches its stream while an older one of the same subject is unpublished
// or being published, and a slow publisher can never put an older message after a newer one.
// (An older event of a subject always has the smaller id: status changes of a subject are
// serialised by its row, so the older one committed first.)
func (s *Store) PublishSubjects(ctx context.Context, subjectIDs []string, now time.Time, publish func(context.Context, []Event) error) (int, error) {
	return s.publishLocked(ctx, now, publish, `SELECT `+eventColumns+` FROM outbox
		WHERE published_at IS NULL AND subject_id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`, subjectIDs)
}

// PublishOldest: see PublishSubjects.
func (s *Store) PublishOldest(ctx context.Context, limit int, now time.Time, publish func(context.Context, []Event) error) (int, error) {
	return s.publishLocked(ctx, now, publish, `SELECT `+eventColumns+` FROM outbox
		WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE`, limit)
}

func (s *Store) publishLocked(ctx context.Context, now time.Time, publish func(context.Context, []Event) error, query string, arg any) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		events, err := scanEvents(tx.Query(ctx, query, arg))
		if err != nil || len(events) == 0 {
			return err
		}
		if err := publish(ctx, events); err != nil {
			return err
		}
		ids := make([]int64, len(events))
		for i, e := range events {
			ids[i] = e.OutboxID
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox SET published_at = $2 WHERE id = ANY($1)`, ids, now); err != nil {
			return fmt.Errorf("mark events published: %w", err)
		}
		n = len(events)
		return nil
	})
	return n, err
}

// PruneEvents deletes events published before cutoff and already fanned out to webhooks, at most
// limit of them, and returns how many it deleted. An event the webhook fan-out has not reached
// (its engine stopped, failing) stays however old it is: deleting it would lose its deliveries.
func (s *Store) PruneEvents(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM outbox WHERE id IN (
		SELECT id FROM outbox WHERE published_at < $1 AND webhooks_at IS NOT NULL
		ORDER BY published_at LIMIT $2)`, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	return tag.RowsAffected(), nil
}

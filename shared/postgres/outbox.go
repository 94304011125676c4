package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// UnpublishedEvents returns up to limit outbox events not yet relayed, oldest first.
func (s *Store) UnpublishedEvents(ctx context.Context, limit int) ([]Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, event_id::text, stream, fields FROM outbox
		WHERE published_at IS NULL ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("unpublished events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var fields []byte
		if err := rows.Scan(&e.OutboxID, &e.EventID, &e.Stream, &fields); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(fields, &e.Fields); err != nil {
			return nil, fmt.Errorf("outbox event %d: %w", e.OutboxID, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// MarkEventsPublished records that events reached their stream.
func (s *Store) MarkEventsPublished(ctx context.Context, ids []int64, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `UPDATE outbox SET published_at = $2 WHERE id = ANY($1) AND published_at IS NULL`, ids, now)
	if err != nil {
		return fmt.Errorf("mark events published: %w", err)
	}
	return nil
}

// PruneEvents deletes events published before cutoff, at most limit of them, and returns how
// many it deleted.
func (s *Store) PruneEvents(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM outbox WHERE id IN (
		SELECT id FROM outbox WHERE published_at < $1 ORDER BY published_at LIMIT $2)`, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	return tag.RowsAffected(), nil
}

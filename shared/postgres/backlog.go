package postgres

import (
	"context"
	"fmt"
	"time"
)

// OldestDueTask returns how long the oldest task that is due and not leased has been waiting
// (0 when there is none): the processor's backlog, which decides whether to add runs.
func (s *Store) OldestDueTask(ctx context.Context, now time.Time) (time.Duration, error) {
	var oldest *time.Time
	err := s.pool.QueryRow(ctx, `SELECT min(next_attempt_at) FROM tasks
		WHERE state = 'queued' AND next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until < $1)`, now).Scan(&oldest)
	if err != nil {
		return 0, fmt.Errorf("oldest due task: %w", err)
	}
	if oldest == nil {
		return 0, nil
	}
	return max(now.Sub(*oldest), 0), nil
}

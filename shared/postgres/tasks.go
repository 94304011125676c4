package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
)

// TaskKind says what a task works on.
type TaskKind string

const (
	TaskPayment TaskKind = "payment" // create the cashier order of a payment order
	TaskRefund  TaskKind = "refund"  // submit (or confirm) a refund at the gateway
)

// TaskState is where a task is in its life.
type TaskState string

const (
	TaskQueued TaskState = "queued"
	TaskDone   TaskState = "done"
	TaskDead   TaskState = "dead"   // gave up after the attempt budget; moved to the dead-letter stream
	TaskReview TaskState = "review" // needs a person: the gateway's answer stayed unknown
)

// Task is a unit of processor work.
type Task struct {
	ID        int64
	Kind      TaskKind
	SubjectID string
	State     TaskState
	Attempts  int
	LastError string
}

// ClaimTask leases a queued task for lease and counts the attempt. ok is false if the task is
// finished, not due yet, or leased by another worker: then it must not be worked on now.
// Counting the attempt before the work means a task that crashes its worker every time still
// reaches the dead-letter stream.
func (s *Store) ClaimTask(ctx context.Context, id int64, now time.Time, lease time.Duration) (Task, bool, error) {
	var t Task
	var kind, state string
	err := s.pool.QueryRow(ctx, `UPDATE tasks SET attempts = attempts + 1, leased_until = $2, updated_at = $3
		WHERE id = $1 AND state = 'queued' AND next_attempt_at <= $3 AND (leased_until IS NULL OR leased_until < $3)
		RETURNING id, kind, subject_id::text, state, attempts, coalesce(last_error, '')`,
		id, now.Add(lease), now).Scan(&t.ID, &kind, &t.SubjectID, &state, &t.Attempts, &t.LastError)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, false, nil
	}
	if err != nil {
		return t, false, fmt.Errorf("claim task %d: %w", id, err)
	}
	t.Kind, t.State = TaskKind(kind), TaskState(state)
	return t, true, nil
}

// Task reads a task.
func (s *Store) Task(ctx context.Context, id int64) (Task, error) {
	var t Task
	var kind, state string
	err := s.pool.QueryRow(ctx, `SELECT id, kind, subject_id::text, state, attempts, coalesce(last_error, '') FROM tasks WHERE id = $1`, id).
		Scan(&t.ID, &kind, &t.SubjectID, &state, &t.Attempts, &t.LastError)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, pay.ErrNotFound
	}
	t.Kind, t.State = TaskKind(kind), TaskState(state)
	return t, err
}

// TaskFor returns the task of a given subject.
func (s *Store) TaskFor(ctx context.Context, kind TaskKind, subjectID string) (Task, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT id FROM tasks WHERE kind = $1 AND subject_id = $2`, string(kind), subjectID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Task{}, pay.ErrNotFound
	}
	if err != nil {
		return Task{}, err
	}
	return s.Task(ctx, id)
}

// RetryTask releases a task to be tried again at next, recording why the attempt failed.
func (s *Store) RetryTask(ctx context.Context, id int64, next time.Time, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE tasks SET next_attempt_at = $2, leased_until = NULL, last_error = $3, updated_at = now()
		WHERE id = $1 AND state = 'queued'`, id, next, reason)
	if err != nil {
		return fmt.Errorf("retry task %d: %w", id, err)
	}
	return nil
}

// FinishTask closes a task outside of any other change.
func (s *Store) FinishTask(ctx context.Context, id int64, state TaskState, note string) error {
	return finishTask(ctx, s.pool, id, state, note)
}

func finishTask(ctx context.Context, q querier, id int64, state TaskState, note string) error {
	_, err := q.Exec(ctx, `UPDATE tasks SET state = $2, leased_until = NULL, last_error = coalesce(nullif($3, ''), last_error), updated_at = now()
		WHERE id = $1 AND state = 'queued'`, id, string(state), note)
	if err != nil {
		return fmt.Errorf("finish task %d: %w", id, err)
	}
	return nil
}

// DueTasks returns queued tasks that need (re)publishing to the task stream:
//   - never attempted and older than grace: the publish at create time may have failed (the create
//     path does not record its publish, to keep creates at one round trip);
//   - attempted, and due for a retry since their last publish (a failed attempt acks its message);
//   - published so long ago (stale) that the stream entry may have been lost.
func (s *Store) DueTasks(ctx context.Context, now time.Time, grace, stale time.Duration, limit int) ([]Task, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, kind, subject_id::text, state, attempts, coalesce(last_error, '') FROM tasks
		WHERE state = 'queued' AND next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until < $1)
		  AND ((attempts = 0 AND published_at IS NULL AND created_at < $2)
		       OR (attempts > 0 AND (published_at IS NULL OR published_at < next_attempt_at))
		       OR published_at < $3)
		ORDER BY next_attempt_at LIMIT $4`, now, now.Add(-grace), now.Add(-stale), limit)
	if err != nil {
		return nil, fmt.Errorf("due tasks: %w", err)
	}
	defer rows.Close()
	var out []Task
	for rows.Next() {
		var t Task
		var kind, state string
		if err := rows.Scan(&t.ID, &kind, &t.SubjectID, &state, &t.Attempts, &t.LastError); err != nil {
			return nil, err
		}
		t.Kind, t.State = TaskKind(kind), TaskState(state)
		out = append(out, t)
	}
	return out, rows.Err()
}

// MarkTasksPublished records that tasks were put on the stream at now.
func (s *Store) MarkTasksPublished(ctx context.Context, ids []int64, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `UPDATE tasks SET published_at = $2 WHERE id = ANY($1)`, ids, now)
	if err != nil {
		return fmt.Errorf("mark tasks published: %w", err)
	}
	return nil
}

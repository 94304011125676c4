package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
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
	// Lease is set on a task returned by ClaimTask: it proves the claim when the task is
	// finished or retried.
	Lease Lease
}

// Lease is one claim of a task. A worker whose lease ran out (another worker reclaimed the task)
// can no longer finish or retry it: the token no longer matches.
type Lease struct {
	TaskID int64
	Token  string
}

// ErrLeaseLost is returned when a task is finished or retried by a worker that no longer holds it.
var ErrLeaseLost = errors.New("task lease lost")

// ClaimTask leases a queued task for lease and counts the attempt. ok is false if the task is
// finished, not due yet, or leased by another worker: then it must not be worked on now.
// Counting the attempt before the work means a task that crashes its worker every time still
// reaches the dead-letter stream.
func (s *Store) ClaimTask(ctx context.Context, id int64, now time.Time, lease time.Duration) (Task, bool, error) {
	return s.claimTask(ctx, id, now, lease, true)
}

// ClaimIdleTask is ClaimTask for a merchant's close or an operator's action: the task need not be
// due yet (they do not wait out a retry's backoff), it only has to be queued and held by nobody,
// and the claim does not count an attempt: the processor's budget is for the processor's own
// failures, and a close during a short Lakala outage must not spend it.
func (s *Store) ClaimIdleTask(ctx context.Context, id int64, now time.Time, lease time.Duration) (Task, bool, error) {
	return s.claimTask(ctx, id, now, lease, false)
}

// claimTask leases a task; by the processor (scheduled) only when it is due, counting the attempt.
func (s *Store) claimTask(ctx context.Context, id int64, now time.Time, lease time.Duration, scheduled bool) (Task, bool, error) {
	var t Task
	var kind, state string
	token := uuid.NewString()
	err := s.pool.QueryRow(ctx, `UPDATE tasks SET attempts = attempts + CASE WHEN $5 THEN 1 ELSE 0 END, leased_until = $2,
			updated_at = $3, lease_token = $4
		WHERE id = $1 AND state = 'queued' AND (NOT $5 OR next_attempt_at <= $3) AND (leased_until IS NULL OR leased_until < $3)
		RETURNING id, kind, subject_id::text, state, attempts, coalesce(last_error, '')`,
		id, now.Add(lease), now, token, scheduled).Scan(&t.ID, &kind, &t.SubjectID, &state, &t.Attempts, &t.LastError)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, false, nil
	}
	if err != nil {
		return t, false, fmt.Errorf("claim task %d: %w", id, err)
	}
	t.Kind, t.State = TaskKind(kind), TaskState(state)
	t.Lease = Lease{TaskID: t.ID, Token: token}
	return t, true, nil
}

// ClaimForPerson leases a subject's task for an operator's action (a review resolution that must
// close the order's cashier orders first) whatever its state, as long as no worker holds it: a
// task stopped for review, finished or dead is queued again under the new lease. No attempt is
// counted. ok is false when a worker holds it. The Task returned carries the state it was in, so
// a refused action can put it back (FinishTask with that state).
func (s *Store) ClaimForPerson(ctx context.Context, kind TaskKind, subjectID string, now time.Time, lease time.Duration) (Task, bool, error) {
	var t Task
	var state string
	token := uuid.NewString()
	err := s.pool.QueryRow(ctx, `WITH old AS (
			SELECT id, state FROM tasks WHERE kind = $1 AND subject_id = $2 FOR UPDATE
		)
		UPDATE tasks SET state = 'queued', leased_until = $3, lease_token = $4, updated_at = $5
		FROM old WHERE tasks.id = old.id AND (tasks.leased_until IS NULL OR tasks.leased_until < $5 OR tasks.state <> 'queued')
		RETURNING tasks.id, tasks.subject_id::text, old.state, tasks.attempts, coalesce(tasks.last_error, '')`,
		string(kind), subjectID, now.Add(lease), token, now).Scan(&t.ID, &t.SubjectID, &state, &t.Attempts, &t.LastError)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, false, nil
	}
	if err != nil {
		return t, false, fmt.Errorf("claim %s task of %s: %w", kind, subjectID, err)
	}
	t.Kind, t.State = kind, TaskState(state)
	t.Lease = Lease{TaskID: t.ID, Token: token}
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

// RetryTask releases a task held by lease to be tried again at next, recording why the attempt
// failed. ErrLeaseLost: the lease ran out and another worker holds the task now.
func (s *Store) RetryTask(ctx context.Context, lease Lease, next time.Time, reason string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tasks SET next_attempt_at = $3, leased_until = NULL, lease_token = NULL,
			last_error = $4, updated_at = now()
		WHERE id = $1 AND lease_token = $2 AND state = 'queued'`, lease.TaskID, lease.Token, next, reason)
	if err != nil {
		return fmt.Errorf("retry task %d: %w", lease.TaskID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("retry task %d: %w", lease.TaskID, ErrLeaseLost)
	}
	return nil
}

// FinishTask closes a task held by lease outside of any other change.
func (s *Store) FinishTask(ctx context.Context, lease Lease, state TaskState, note string) error {
	return finishTask(ctx, s.pool, lease, state, note)
}

func finishTask(ctx context.Context, q querier, lease Lease, state TaskState, note string) error {
	tag, err := q.Exec(ctx, `UPDATE tasks SET state = $3, leased_until = NULL, lease_token = NULL,
			last_error = coalesce(nullif($4, ''), last_error), updated_at = now()
		WHERE id = $1 AND lease_token = $2 AND state = 'queued'`, lease.TaskID, lease.Token, string(state), note)
	if err != nil {
		return fmt.Errorf("finish task %d: %w", lease.TaskID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish task %d: %w", lease.TaskID, ErrLeaseLost)
	}
	return nil
}

// RequeueTask puts a subject's finished task back in the queue with a fresh attempt budget,
// due now, so that the processor takes it up again (an order that must wind down). A queued
// task is left as it is: its next attempt sees the new state of its subject; a task stopped for
// review waits for a person. It returns the task requeued, if any.
func (s *Store) RequeueTask(ctx context.Context, kind TaskKind, subjectID, why string) (taskID int64, requeued bool, err error) {
	err = s.pool.QueryRow(ctx, `UPDATE tasks SET state = 'queued', attempts = 0, next_attempt_at = now(),
			leased_until = NULL, lease_token = NULL, published_at = NULL, last_error = $3, updated_at = now()
		WHERE kind = $1 AND subject_id = $2 AND state = 'done' RETURNING id`, string(kind), subjectID, why).Scan(&taskID)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("requeue %s task of %s: %w", kind, subjectID, err)
	}
	return taskID, true, nil
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

// RestartTask gives a task held by lease a fresh attempt budget, due now (an order that must now
// wind down after its create attempts ran out).
func (s *Store) RestartTask(ctx context.Context, lease Lease, reason string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tasks SET attempts = 0, next_attempt_at = now(), leased_until = NULL,
			lease_token = NULL, published_at = NULL, last_error = $3, updated_at = now()
		WHERE id = $1 AND lease_token = $2 AND state = 'queued'`, lease.TaskID, lease.Token, reason)
	if err != nil {
		return fmt.Errorf("restart task %d: %w", lease.TaskID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("restart task %d: %w", lease.TaskID, ErrLeaseLost)
	}
	return nil
}

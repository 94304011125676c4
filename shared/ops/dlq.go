package ops

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/streams"
)

// DeadLetter is a task the processor gave up on (tasks.state = 'dead') with its entries on the
// payment_tasks_dead stream.
type DeadLetter struct {
	TaskID          int64                     `json:"task_id"`
	Kind            string                    `json:"kind"`
	SubjectID       string                    `json:"subject_id"`
	Attempts        int                       `json:"attempts"`
	LastError       string                    `json:"last_error"`
	DeadSince       time.Time                 `json:"dead_since"`
	AppID           string                    `json:"app_id"`
	MerchantOrderID string                    `json:"merchant_order_id"`
	PaymentOrderID  string                    `json:"payment_order_id"`
	SubjectStatus   string                    `json:"subject_status"`
	Entries         []streams.DeadLetterEntry `json:"stream_entries"`
}

// Redrivable says whether a redrive can do anything: only while the task's subject is not final.
func (d DeadLetter) Redrivable() bool {
	return d.SubjectStatus != "" && !pay.Status(d.SubjectStatus).Final()
}

// DeadLetters is the dead-letter queue: dead tasks, and stream entries no dead task explains
// (malformed messages, or entries of tasks already redriven or discarded).
type DeadLetters struct {
	Tasks   []DeadLetter  `json:"tasks"`
	Orphans []OrphanEntry `json:"orphan_entries"`
}

// OrphanEntry is a dead-letter stream entry without a dead task: its task is in review (a review
// case settles it, and the resolution removes the entry), was already redriven or discarded, or
// the message was malformed.
type OrphanEntry struct {
	streams.DeadLetterEntry
	TaskState string `json:"task_state"` // review, queued, done, discarded, or "" (no such task)
}

const deadSelect = `SELECT t.id, t.kind, t.subject_id::text, t.attempts, coalesce(t.last_error, ''), t.updated_at,
		coalesce(p.app_id, r.app_id, ''), coalesce(p.merchant_order_id, rp.merchant_order_id, ''),
		coalesce(p.id, rp.id)::text, coalesce(p.status, r.status, '')
	FROM tasks t
	LEFT JOIN payment_orders p ON t.kind = 'payment' AND p.id = t.subject_id
	LEFT JOIN refund_orders r ON t.kind = 'refund' AND r.id = t.subject_id
	LEFT JOIN payment_orders rp ON rp.id = r.payment_order_id`

func scanDead(row scanner) (DeadLetter, error) {
	var d DeadLetter
	var orderID *string
	err := row.Scan(&d.TaskID, &d.Kind, &d.SubjectID, &d.Attempts, &d.LastError, &d.DeadSince, &d.AppID, &d.MerchantOrderID, &orderID, &d.SubjectStatus)
	if orderID != nil {
		d.PaymentOrderID = *orderID
	}
	return d, err
}

// maxDeadEntries bounds how much of the dead-letter stream is read at once.
const maxDeadEntries = 10_000

// ListDeadLetters lists dead tasks (of kind, if given), oldest first, with their stream entries.
func (o *Ops) ListDeadLetters(ctx context.Context, a Actor, kind string, limit int) (DeadLetters, error) {
	if err := o.authorize(ctx, a, RoleViewer, "dlq.list", ""); err != nil {
		return DeadLetters{}, err
	}
	if kind != "" && kind != string(postgres.TaskPayment) && kind != string(postgres.TaskRefund) {
		return DeadLetters{}, pay.Invalid("kind", "kind must be payment or refund")
	}
	rows, err := o.store.Pool().Query(ctx, deadSelect+` WHERE t.state = 'dead' AND ($1 = '' OR t.kind = $1) ORDER BY t.updated_at, t.id LIMIT $2`,
		kind, clampLimit(limit, 200, 5000))
	if err != nil {
		return DeadLetters{}, fmt.Errorf("dead tasks: %w", err)
	}
	var out DeadLetters
	byTask := map[int64]int{}
	for rows.Next() {
		d, err := scanDead(rows)
		if err != nil {
			rows.Close()
			return out, err
		}
		byTask[d.TaskID] = len(out.Tasks)
		out.Tasks = append(out.Tasks, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, err
	}
	entries, err := o.streams.DeadLetters(ctx, maxDeadEntries)
	if err != nil {
		return out, err
	}
	var orphanIDs []int64
	for _, e := range entries {
		if i, ok := byTask[e.TaskID]; ok {
			out.Tasks[i].Entries = append(out.Tasks[i].Entries, e)
		} else if kind == "" || e.Kind == kind {
			out.Orphans = append(out.Orphans, OrphanEntry{DeadLetterEntry: e})
			orphanIDs = append(orphanIDs, e.TaskID)
		}
	}
	if len(orphanIDs) > 0 {
		states := map[int64]string{}
		rows, err := o.store.Pool().Query(ctx, `SELECT id, state FROM tasks WHERE id = ANY($1)`, orphanIDs)
		if err != nil {
			return out, fmt.Errorf("orphan entries: %w", err)
		}
		var id int64
		var st string
		if _, err := pgx.ForEachRow(rows, []any{&id, &st}, func() error { states[id] = st; return nil }); err != nil {
			return out, fmt.Errorf("orphan entries: %w", err)
		}
		for i := range out.Orphans {
			out.Orphans[i].TaskState = states[out.Orphans[i].TaskID]
		}
	}
	return out, nil
}

// DeadLetter shows one dead task.
func (o *Ops) DeadLetter(ctx context.Context, a Actor, taskID int64) (DeadLetter, error) {
	if err := o.authorize(ctx, a, RoleViewer, "dlq.show", ""); err != nil {
		return DeadLetter{}, err
	}
	d, err := scanDead(o.store.Pool().QueryRow(ctx, deadSelect+` WHERE t.id = $1 AND t.state = 'dead'`, taskID))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "task %d is not a dead letter", taskID)
	}
	if err != nil {
		return d, fmt.Errorf("dead task: %w", err)
	}
	entries, err := o.streams.DeadLetters(ctx, maxDeadEntries)
	if err != nil {
		return d, err
	}
	for _, e := range entries {
		if e.TaskID == taskID {
			d.Entries = append(d.Entries, e)
		}
	}
	return d, nil
}

func taskSubject(id int64) string { return "task:" + strconv.FormatInt(id, 10) }

// RedriveResult says what a redrive did.
type RedriveResult struct {
	TaskID    int64  `json:"task_id"`
	Published bool   `json:"published"` // false: Redis refused; the processor's sweep republishes it
	Warning   string `json:"warning,omitempty"`
}

// Redrive puts a dead task back in the queue with a fresh attempt budget and publishes it, and
// removes its dead-letter entries. Only a task whose subject is still live (not final) can be
// redriven: for a final one there is nothing left to do, so discard it instead.
func (o *Ops) Redrive(ctx context.Context, a Actor, taskID int64, note string) (RedriveResult, error) {
	subject := taskSubject(taskID)
	if err := o.authorize(ctx, a, RoleOperator, "dlq.redrive", subject); err != nil {
		return RedriveResult{}, err
	}
	if err := requireNote(note); err != nil {
		return RedriveResult{}, err
	}
	return o.redrive(ctx, a, taskID, note)
}

func (o *Ops) redrive(ctx context.Context, a Actor, taskID int64, note string) (RedriveResult, error) {
	var d DeadLetter
	_, err := o.store.InTx(ctx, func(tx *postgres.Tx) error {
		var err error
		d, err = scanDead(tx.QueryRow(ctx, deadSelect+` WHERE t.id = $1 FOR UPDATE OF t`, taskID))
		if errors.Is(err, pgx.ErrNoRows) {
			return pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no task %d", taskID)
		}
		if err != nil {
			return fmt.Errorf("lock task: %w", err)
		}
		var state string
		if err := tx.QueryRow(ctx, `SELECT state FROM tasks WHERE id = $1`, taskID).Scan(&state); err != nil {
			return err
		}
		if state != string(postgres.TaskDead) {
			return pay.Errorf(pay.KindConflict, "not_dead", "task %d is %s, not dead", taskID, state)
		}
		if !d.Redrivable() {
			return pay.Errorf(pay.KindConflict, "subject_final",
				"the task's %s %s is %s: a redrive would do nothing; discard the dead letter instead", d.Kind, d.SubjectID, orUnknown(d.SubjectStatus))
		}
		// published_at NULL and attempts 0 make the sweep republish it if the publish below fails.
		if _, err := tx.Exec(ctx, `UPDATE tasks SET state = 'queued', attempts = 0, next_attempt_at = now(), leased_until = NULL,
				lease_token = NULL, published_at = NULL, updated_at = now() WHERE id = $1`, taskID); err != nil {
			return fmt.Errorf("requeue task: %w", err)
		}
		before := map[string]any{"state": "dead", "attempts": d.Attempts, "last_error": d.LastError, "subject_status": d.SubjectStatus}
		after := map[string]any{"state": "queued", "attempts": 0, "subject_status": d.SubjectStatus}
		return auditTx(ctx, tx, a, "dlq.redrive", taskSubject(taskID), before, after, note)
	})
	if err != nil {
		return RedriveResult{}, err
	}
	res := RedriveResult{TaskID: taskID, Published: true}
	msg := streams.TaskMessage{TaskID: taskID, Kind: d.Kind, SubjectID: d.SubjectID}
	if err := o.streams.PublishTasks(ctx, msg); err != nil {
		res.Published, res.Warning = false, "publish failed ("+err.Error()+"); the processor's sweep republishes the task within a minute"
	} else if err := o.store.MarkTasksPublished(ctx, []int64{taskID}, time.Now()); err != nil {
		o.log.WarnContext(ctx, "mark redriven task published", "task_id", taskID, "err", err)
	}
	o.dropEntries(ctx, taskID)
	return res, nil
}

// dropEntries removes a task's entries from the dead-letter stream; a failure leaves them as
// orphans, which the list shows and which can be discarded by stream id.
func (o *Ops) dropEntries(ctx context.Context, taskID int64) {
	entries, err := o.streams.DeadLetters(ctx, maxDeadEntries)
	if err != nil {
		o.log.WarnContext(ctx, "read dead letters", "err", err)
		return
	}
	var ids []string
	for _, e := range entries {
		if e.TaskID == taskID {
			ids = append(ids, e.ID)
		}
	}
	if err := o.streams.DeleteDeadLetters(ctx, ids...); err != nil {
		o.log.WarnContext(ctx, "delete dead letters", "task_id", taskID, "err", err)
	}
}

// RedriveAllResult says what a redrive of a whole kind did.
type RedriveAllResult struct {
	Redriven []RedriveResult  `json:"redriven"`
	Skipped  map[int64]string `json:"skipped"` // task id → why (its subject is final)
}

// RedriveKind redrives every dead task of a kind whose subject is still live; the others are
// listed as skipped (discard them).
func (o *Ops) RedriveKind(ctx context.Context, a Actor, kind, note string) (RedriveAllResult, error) {
	if err := o.authorize(ctx, a, RoleOperator, "dlq.redrive", "kind:"+kind); err != nil {
		return RedriveAllResult{}, err
	}
	if err := requireNote(note); err != nil {
		return RedriveAllResult{}, err
	}
	if kind != string(postgres.TaskPayment) && kind != string(postgres.TaskRefund) {
		return RedriveAllResult{}, pay.Invalid("kind", "kind must be payment or refund")
	}
	list, err := o.ListDeadLetters(ctx, a, kind, 5000)
	if err != nil {
		return RedriveAllResult{}, err
	}
	out := RedriveAllResult{Skipped: map[int64]string{}}
	for _, d := range list.Tasks {
		if !d.Redrivable() {
			out.Skipped[d.TaskID] = fmt.Sprintf("%s %s is %s", d.Kind, d.SubjectID, orUnknown(d.SubjectStatus))
			continue
		}
		r, err := o.redrive(ctx, a, d.TaskID, note)
		if err != nil {
			out.Skipped[d.TaskID] = err.Error()
			continue
		}
		out.Redriven = append(out.Redriven, r)
	}
	return out, nil
}

// Discard closes a dead task for good (state discarded) with a note, and removes its entries
// from the dead-letter stream.
func (o *Ops) Discard(ctx context.Context, a Actor, taskID int64, note string) error {
	subject := taskSubject(taskID)
	if err := o.authorize(ctx, a, RoleOperator, "dlq.discard", subject); err != nil {
		return err
	}
	if err := requireNote(note); err != nil {
		return err
	}
	_, err := o.store.InTx(ctx, func(tx *postgres.Tx) error {
		d, err := scanDead(tx.QueryRow(ctx, deadSelect+` WHERE t.id = $1 AND t.state = 'dead' FOR UPDATE OF t`, taskID))
		if errors.Is(err, pgx.ErrNoRows) {
			return pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "task %d is not a dead letter", taskID)
		}
		if err != nil {
			return fmt.Errorf("lock task: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE tasks SET state = 'discarded', updated_at = now() WHERE id = $1`, taskID); err != nil {
			return fmt.Errorf("discard task: %w", err)
		}
		return auditTx(ctx, tx, a, "dlq.discard", subject,
			map[string]any{"state": "dead", "attempts": d.Attempts, "last_error": d.LastError, "subject_status": d.SubjectStatus},
			map[string]any{"state": "discarded"}, note)
	})
	if err != nil {
		return err
	}
	o.dropEntries(ctx, taskID)
	return nil
}

// DiscardEntry removes one dead-letter stream entry that no dead task explains (an orphan: a
// malformed message, or an entry left by a redrive whose clean-up failed).
func (o *Ops) DiscardEntry(ctx context.Context, a Actor, streamID, note string) error {
	subject := "dead-entry:" + streamID
	if err := o.authorize(ctx, a, RoleOperator, "dlq.discard", subject); err != nil {
		return err
	}
	if err := requireNote(note); err != nil {
		return err
	}
	entries, err := o.streams.DeadLetters(ctx, maxDeadEntries)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.ID != streamID {
			continue
		}
		if err := o.streams.DeleteDeadLetters(ctx, streamID); err != nil {
			return err
		}
		return o.audit(ctx, a, "dlq.discard", subject, "ok", e, nil, note)
	}
	return pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no dead-letter entry %s", streamID)
}

func orUnknown(s string) string {
	if s == "" {
		return "missing"
	}
	return s
}

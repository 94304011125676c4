package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/crash"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/streams"
)

// Review case kinds opened by the money path (the same words as shared/pay's constants).
const (
	KindPaidAfterFailed      = pay.ReviewPaidAfterFailed      // a payment landed on an order already failed
	KindAmountMismatch       = pay.ReviewAmountMismatch       // Lakala reported a paid amount other than the order's
	KindDuplicatePayment     = pay.ReviewDuplicatePayment     // a second attempt of a succeeded order was paid too
	KindRefundOutcomeUnknown = pay.ReviewRefundOutcomeUnknown // a refund's outcome stayed unknown at Lakala
	KindReconcileFailing     = pay.ReviewReconcileFailing     // the reconciler cannot learn an order's state
)

// Resolution outcomes. Only the refund and reconcile ones change a status, and they go through
// shared/pay's transition rules and the outbox like any other change.
const (
	OutcomeRefundSucceeded       = "refund_succeeded"        // Lakala confirms the refund went through: processing → succeeded
	OutcomeRefundFailed          = "refund_failed"           // Lakala confirms it did not: processing → failed
	OutcomeRefundedByHand        = "refunded_by_hand"        // the payer's money was returned by hand (Lakala merchant portal)
	OutcomeConfirmedAutoRefunded = "confirmed_auto_refunded" // Lakala's automatic refund of a late payment is confirmed
	OutcomeNoMoneyMoved          = "no_money_moved"          // checked: the payer was not charged
	OutcomeAcceptedAsIs          = "accepted_as_is"          // the difference is known and accepted (e.g. settled with the merchant)
	OutcomeConfirmedPaid         = "confirmed_paid"          // Lakala confirms the order paid: → succeeded
	OutcomeConfirmedUnpaid       = "confirmed_unpaid"        // Lakala confirms it unpaid and closed: → failed (closed)
	OutcomeChecksRecovered       = "checks_recovered"        // the checks work again; the reconciler carries on
)

// OutcomesFor lists the outcomes a case of kind may be resolved with.
func OutcomesFor(kind string) []string {
	switch kind {
	case KindRefundOutcomeUnknown:
		return []string{OutcomeRefundSucceeded, OutcomeRefundFailed}
	case KindPaidAfterFailed, KindDuplicatePayment:
		return []string{OutcomeConfirmedAutoRefunded, OutcomeRefundedByHand, OutcomeNoMoneyMoved}
	case KindAmountMismatch:
		return []string{OutcomeConfirmedAutoRefunded, OutcomeRefundedByHand, OutcomeNoMoneyMoved, OutcomeAcceptedAsIs}
	case KindReconcileFailing:
		return []string{OutcomeConfirmedPaid, OutcomeConfirmedUnpaid, OutcomeChecksRecovered}
	}
	// A kind this code does not know yet can still be closed, without touching any status.
	return []string{OutcomeNoMoneyMoved, OutcomeRefundedByHand}
}

// ReviewCase is money that moved against a final state, or an outcome nobody could establish.
type ReviewCase struct {
	ID              int64           `json:"id"`
	Kind            string          `json:"kind"`
	AppID           string          `json:"app_id"`
	PaymentOrderID  string          `json:"payment_order_id"`
	RefundOrderID   string          `json:"refund_order_id,omitempty"`
	MerchantOrderID string          `json:"merchant_order_id"`
	Summary         string          `json:"summary"`
	Evidence        json.RawMessage `json:"evidence"`
	OpenedAt        time.Time       `json:"opened_at"`
	ResolvedAt      *time.Time      `json:"resolved_at,omitempty"`
	Resolution      string          `json:"resolution,omitempty"`
	ResolvedBy      string          `json:"resolved_by,omitempty"`
	ResolutionNote  string          `json:"resolution_note,omitempty"`
	// SubjectStatus is the status of the refund (refund cases) or the order, when read.
	SubjectStatus string   `json:"subject_status"`
	Outcomes      []string `json:"outcomes"`
}

const caseSelect = `c.id, c.kind, c.app_id, c.payment_order_id::text, coalesce(c.refund_order_id::text, ''), p.merchant_order_id,
	c.summary, c.evidence, c.opened_at, c.resolved_at, coalesce(c.resolution, ''), coalesce(c.resolved_by, ''),
	coalesce(c.resolution_note, ''), coalesce(r.status, p.status)
	FROM review_cases c JOIN payment_orders p ON p.id = c.payment_order_id LEFT JOIN refund_orders r ON r.id = c.refund_order_id`

func scanCase(row scanner) (ReviewCase, error) {
	var c ReviewCase
	var ev []byte
	err := row.Scan(&c.ID, &c.Kind, &c.AppID, &c.PaymentOrderID, &c.RefundOrderID, &c.MerchantOrderID, &c.Summary, &ev,
		&c.OpenedAt, &c.ResolvedAt, &c.Resolution, &c.ResolvedBy, &c.ResolutionNote, &c.SubjectStatus)
	c.Evidence = ev
	c.Outcomes = OutcomesFor(c.Kind)
	return c, err
}

type reviewFilter struct {
	OrderID string
	AppID   string
	Kind    string
	All     bool // resolved ones too
	Limit   int
}

func (o *Ops) reviewCases(ctx context.Context, f reviewFilter) ([]ReviewCase, error) {
	var orderID any
	if f.OrderID != "" {
		orderID = f.OrderID
	}
	rows, err := o.store.Pool().Query(ctx, `SELECT `+caseSelect+`
		WHERE ($1::uuid IS NULL OR c.payment_order_id = $1) AND ($2 = '' OR c.app_id = $2) AND ($3 = '' OR c.kind = $3)
		  AND ($4 OR c.resolved_at IS NULL)
		ORDER BY c.opened_at, c.id LIMIT $5`, orderID, f.AppID, f.Kind, f.All, clampLimit(f.Limit, 200, 1000))
	if err != nil {
		return nil, fmt.Errorf("review cases: %w", err)
	}
	defer rows.Close()
	var out []ReviewCase
	for rows.Next() {
		c, err := scanCase(rows)
		if err != nil {
			return nil, fmt.Errorf("review cases: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ReviewFilter selects review cases.
type ReviewFilter struct {
	AppID string
	Kind  string
	All   bool // include resolved cases
	Limit int
}

// ReviewCases lists review cases, oldest first (open ones only unless All).
func (o *Ops) ReviewCases(ctx context.Context, a Actor, f ReviewFilter) ([]ReviewCase, error) {
	if err := o.authorize(ctx, a, RoleViewer, "review.list", ""); err != nil {
		return nil, err
	}
	return o.reviewCases(ctx, reviewFilter{AppID: f.AppID, Kind: f.Kind, All: f.All, Limit: f.Limit})
}

// ReviewCase reads one case.
func (o *Ops) ReviewCase(ctx context.Context, a Actor, id int64) (ReviewCase, error) {
	if err := o.authorize(ctx, a, RoleViewer, "review.show", ""); err != nil {
		return ReviewCase{}, err
	}
	c, err := scanCase(o.store.Pool().QueryRow(ctx, `SELECT `+caseSelect+` WHERE c.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no review case %d", id)
	}
	return c, err
}

// Resolution is what an operator decided about a case.
type Resolution struct {
	CaseID  int64
	Outcome string
	Note    string
	// GatewayRefundID is Lakala's refund trade number, recorded with refund_succeeded if the
	// refund has none yet (optional). confirmed_paid takes its trade number from Lakala's own
	// answer, found by the wind-down that comes first.
	GatewayRefundID string
}

// ResolveResult is what a resolution did.
type ResolveResult struct {
	Case ReviewCase `json:"case"`
	// StatusChange is "processing → succeeded" and the like, or empty.
	StatusChange string `json:"status_change,omitempty"`
	// EventIDs are the result messages written for the main app.
	EventIDs []string `json:"event_ids,omitempty"`
}

type subjectState struct {
	Status         string `json:"status"`
	ReviewReason   string `json:"review_reason,omitempty"`
	RefundedAmount *int64 `json:"refunded_amount,omitempty"`
}

type caseState struct {
	CaseID     int64        `json:"case_id"`
	Kind       string       `json:"kind"`
	Resolved   bool         `json:"resolved"`
	Resolution string       `json:"resolution,omitempty"`
	Subject    string       `json:"subject"`
	State      subjectState `json:"subject_state"`
}

// ResolveReview settles a review case with an outcome and a note. An outcome that changes a
// status applies it through shared/pay's transitions (a change they forbid is refused) and writes
// the result message through the outbox in the same transaction as the resolution and its audit
// row, then publishes it; the case's subject loses its review_reason once no case of it is open.
func (o *Ops) ResolveReview(ctx context.Context, a Actor, res Resolution) (ResolveResult, error) {
	subject := fmt.Sprintf("review:%d", res.CaseID)
	if err := o.authorize(ctx, a, RoleOperator, "review.resolve", subject); err != nil {
		return ResolveResult{}, err
	}
	if err := requireNote(res.Note); err != nil {
		return ResolveResult{}, err
	}
	var out ResolveResult
	// An outcome that moves an order (confirmed_paid, confirmed_unpaid) goes through the wind-down
	// first: under the order's task's lease, every cashier order is closed at Lakala and queried
	// again, so none is left payable behind the status the person sets, and a payment found on the
	// way is applied as any other (docs/DECISIONS.md, "Review case outcomes").
	var lease *postgres.Lease
	if res.Outcome == OutcomeConfirmedPaid || res.Outcome == OutcomeConfirmedUnpaid {
		l, err := o.windDownForResolution(ctx, a, res)
		if err != nil {
			return ResolveResult{}, err
		}
		lease = &l
	}
	now := o.now()
	// Tasks the resolution ends or restarts: their dead-letter stream entries go, and a restarted
	// one is published.
	var endedTasks []int64
	var restarted *streams.TaskMessage
	closeTask := func(tx *postgres.Tx, kind, subjectID string) error {
		rows, err := tx.Query(ctx, `UPDATE tasks SET state = 'done', leased_until = NULL, updated_at = now()
			WHERE kind = $1 AND subject_id = $2 AND state IN ('review', 'queued') RETURNING id`, kind, subjectID)
		if err != nil {
			return fmt.Errorf("close %s task: %w", kind, err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			endedTasks = append(endedTasks, id)
		}
		return rows.Err()
	}
	events, err := o.store.InTx(ctx, func(tx *postgres.Tx) error {
		c, err := scanCase(tx.QueryRow(ctx, `SELECT `+caseSelect+` WHERE c.id = $1 FOR UPDATE OF c`, res.CaseID))
		if errors.Is(err, pgx.ErrNoRows) {
			return pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no review case %d", res.CaseID)
		}
		if err != nil {
			return fmt.Errorf("lock review case: %w", err)
		}
		if c.ResolvedAt != nil {
			return pay.Errorf(pay.KindConflict, "already_resolved", "review case %d was already resolved by %s as %s", c.ID, c.ResolvedBy, c.Resolution)
		}
		allowed := false
		for _, oc := range c.Outcomes {
			allowed = allowed || oc == res.Outcome
		}
		if !allowed {
			return pay.Invalid("outcome", "a %s case is resolved with one of %v, not %q", c.Kind, c.Outcomes, res.Outcome)
		}
		before := caseState{CaseID: c.ID, Kind: c.Kind}
		after := caseState{CaseID: c.ID, Kind: c.Kind, Resolved: true, Resolution: res.Outcome}

		switch res.Outcome {
		case OutcomeRefundSucceeded, OutcomeRefundFailed:
			if c.RefundOrderID == "" {
				return pay.Errorf(pay.KindConflict, "no_refund", "review case %d names no refund", c.ID)
			}
			r, err := tx.LockRefund(ctx, c.RefundOrderID)
			if err != nil {
				return fmt.Errorf("lock refund: %w", err)
			}
			before.Subject, before.State = r.ID, subjectState{Status: string(r.Status)}
			old := r.Status
			target := pay.StatusSucceeded
			if res.Outcome == OutcomeRefundFailed {
				target = pay.StatusFailed
			}
			if old != target {
				if target == pay.StatusSucceeded {
					gid := r.GatewayRefundID
					if gid == "" {
						gid = res.GatewayRefundID
					}
					err = r.Succeed(pay.RefundTrade{TradeNo: gid}, now)
				} else {
					err = r.Fail(pay.ReasonRefundRejected, now)
				}
				if err != nil {
					// The rules forbid it (the refund is already final the other way): refuse.
					return pay.Errorf(pay.KindConflict, "transition_refused", "refund %s is %s; it cannot become %s", r.ID, old, target)
				}
				r.ExtraData = withReviewResolved(r.ExtraData, res.Outcome)
				if err := tx.SaveRefund(ctx, &r, old); err != nil {
					return err
				}
				out.StatusChange = fmt.Sprintf("refund %s → %s", old, target)
			}
			if err := closeTask(tx, "refund", r.ID); err != nil {
				return err
			}
			after.Subject, after.State = r.ID, subjectState{Status: string(r.Status)}
		case OutcomeConfirmedPaid, OutcomeConfirmedUnpaid:
			ord, err := tx.LockOrder(ctx, c.PaymentOrderID)
			if err != nil {
				return fmt.Errorf("lock order: %w", err)
			}
			// The case was read before the wind-down; its status then is the one the person saw.
			before.Subject, before.State = ord.ID, subjectState{Status: c.SubjectStatus}
			old := ord.Status
			switch {
			case res.Outcome == OutcomeConfirmedPaid && old != pay.StatusSucceeded:
				return pay.Errorf(pay.KindConflict, "not_paid_at_lakala",
					"Lakala reports no payment on any cashier order of order %s (it is %s): resolve it confirmed_unpaid", ord.ID, old)
			case res.Outcome == OutcomeConfirmedUnpaid && old == pay.StatusSucceeded:
				return pay.Errorf(pay.KindConflict, "paid_at_lakala",
					"Lakala reports order %s paid (it succeeded while its cashier orders were settled): resolve it confirmed_paid", ord.ID)
			case res.Outcome == OutcomeConfirmedUnpaid && !old.Final():
				reason := pay.ReasonClosed
				if ord.ClosingReason != "" {
					reason = ord.ClosingReason // the wind-down's reason (e.g. retries_exhausted: …)
				}
				attempts, err := tx.Attempts(ctx, ord.ID)
				if err != nil {
					return err
				}
				if err := pay.CheckFail(&ord, attempts, reason); err != nil {
					return pay.Errorf(pay.KindConflict, "transition_refused", "payment order %s cannot fail: %v", ord.ID, err)
				}
				if err := ord.Fail(reason, now); err != nil {
					return pay.Errorf(pay.KindConflict, "transition_refused", "payment order %s is %s; it cannot fail", ord.ID, old)
				}
				if err := tx.SaveOrder(ctx, &ord, old); err != nil {
					return err
				}
			}
			if ord.Status != pay.Status(c.SubjectStatus) {
				out.StatusChange = fmt.Sprintf("payment %s → %s", c.SubjectStatus, ord.Status)
			}
			if err := tx.FinishTask(ctx, *lease, postgres.TaskDone, "review resolved: "+res.Outcome); err != nil {
				return err
			}
			endedTasks = append(endedTasks, lease.TaskID)
			after.Subject, after.State = ord.ID, subjectState{Status: string(ord.Status)}
		case OutcomeChecksRecovered:
			// The order's task stopped for review goes on with a fresh budget (its wind-down or
			// checkout resumes); a queued one is left as it is.
			var id int64
			err := tx.QueryRow(ctx, `UPDATE tasks SET state = 'queued', attempts = 0, next_attempt_at = now(), leased_until = NULL,
					lease_token = NULL, published_at = NULL, updated_at = now()
				WHERE kind = 'payment' AND subject_id = $1 AND state = 'review' RETURNING id`, c.PaymentOrderID).Scan(&id)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("restart payment task: %w", err)
			}
			if err == nil {
				restarted = &streams.TaskMessage{TaskID: id, Kind: "payment", SubjectID: c.PaymentOrderID}
				endedTasks = append(endedTasks, id)
			}
			before.Subject, before.State.Status = c.PaymentOrderID, c.SubjectStatus
			after.Subject, after.State.Status = c.PaymentOrderID, c.SubjectStatus
		default:
			// No status changes: the case records what a person found and did outside the system.
			before.Subject, before.State.Status = c.PaymentOrderID, c.SubjectStatus
			after.Subject, after.State.Status = c.PaymentOrderID, c.SubjectStatus
			if c.RefundOrderID != "" {
				before.Subject, after.Subject = c.RefundOrderID, c.RefundOrderID
			}
		}

		if _, err := tx.Exec(ctx, `UPDATE review_cases SET resolved_at = $2, resolution = $3, resolved_by = $4, resolution_note = $5
			WHERE id = $1 AND resolved_at IS NULL`, c.ID, now, res.Outcome, a.Name, res.Note); err != nil {
			return fmt.Errorf("resolve review case: %w", err)
		}
		// A subject keeps its review_reason while any case of it is open.
		if _, err := tx.Exec(ctx, `UPDATE payment_orders SET review_reason = NULL WHERE id = $1 AND review_reason IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM review_cases WHERE payment_order_id = $1 AND refund_order_id IS NULL AND resolved_at IS NULL)`, c.PaymentOrderID); err != nil {
			return fmt.Errorf("clear review reason: %w", err)
		}
		if c.RefundOrderID != "" {
			if _, err := tx.Exec(ctx, `UPDATE refund_orders SET review_reason = NULL WHERE id = $1 AND review_reason IS NOT NULL
				AND NOT EXISTS (SELECT 1 FROM review_cases WHERE refund_order_id = $1 AND resolved_at IS NULL)`, c.RefundOrderID); err != nil {
				return fmt.Errorf("clear review reason: %w", err)
			}
		}
		c.ResolvedAt, c.Resolution, c.ResolvedBy, c.ResolutionNote = &now, res.Outcome, a.Name, res.Note
		c.SubjectStatus = after.State.Status
		out.Case = c
		return auditTx(ctx, tx, a, "review.resolve", subject, before, after, res.Note)
	})
	if err != nil {
		if lease != nil {
			o.releaseAfterRefusal(ctx, *lease)
		}
		return ResolveResult{}, err
	}
	crash.Here(ctx, crash.ReviewResolved)
	for _, e := range events {
		out.EventIDs = append(out.EventIDs, e.EventID)
	}
	// Publish now; if Redis is down the relay sweep does it later (the messages are committed).
	o.svc.PublishEvents(ctx, events)
	if restarted != nil {
		// If this publish fails the processor's sweep republishes the task (published_at is NULL).
		if err := o.streams.PublishTasks(ctx, *restarted); err == nil {
			_ = o.store.MarkTasksPublished(ctx, []int64{restarted.TaskID}, time.Now())
		}
	}
	for _, id := range endedTasks {
		o.dropEntries(ctx, id)
	}
	return out, nil
}

// windDownForResolution claims the order's payment task for a person (whatever state it stopped
// in, unless a processor holds it) and settles every cashier order at Lakala under that lease. It
// returns the lease when every one is settled; otherwise it puts the task back and refuses.
func (o *Ops) windDownForResolution(ctx context.Context, a Actor, res Resolution) (postgres.Lease, error) {
	c, err := o.ReviewCase(ctx, a, res.CaseID)
	if err != nil {
		return postgres.Lease{}, err
	}
	if c.ResolvedAt != nil {
		return postgres.Lease{}, pay.Errorf(pay.KindConflict, "already_resolved", "review case %d was already resolved by %s as %s", c.ID, c.ResolvedBy, c.Resolution)
	}
	if o.payments == nil {
		return postgres.Lease{}, pay.Errorf(pay.KindUnavailable, pay.CodeUnavailable,
			"%s closes and queries the order's cashier orders at Lakala first, and this process has no Lakala client (LAKALA_PRIVATE_KEY): use loomipay reviews resolve where it has one", res.Outcome)
	}
	task, ok, err := o.store.ClaimForPerson(ctx, postgres.TaskPayment, c.PaymentOrderID, o.now(), o.ResolutionLease)
	if err != nil {
		return postgres.Lease{}, err
	}
	if !ok {
		return postgres.Lease{}, pay.Errorf(pay.KindConflict, "order_busy",
			"a processor is working on order %s now; try again in a minute", c.PaymentOrderID)
	}
	// The wind-down ends well before the lease, leaving it for the resolution's transaction.
	workCtx, cancel := context.WithTimeout(ctx, o.ResolutionLease*5/6)
	defer cancel()
	_, unsettled, err := o.payments.SettleAttempts(workCtx, c.PaymentOrderID)
	if err == nil && len(unsettled) > 0 {
		err = pay.Errorf(pay.KindConflict, "not_settled_at_lakala",
			"Lakala did not confirm every cashier order of order %s closed: %s; nothing was changed, try again later", c.PaymentOrderID, strings.Join(unsettled, "; "))
	}
	if err != nil {
		if ferr := o.store.FinishTask(context.WithoutCancel(ctx), task.Lease, task.State, "review resolution refused"); ferr != nil {
			o.log.WarnContext(ctx, "task not put back after a refused resolution; its lease runs out", "task_id", task.ID, "err", ferr)
		}
		return postgres.Lease{}, err
	}
	return task.Lease, nil
}

// releaseAfterRefusal puts a task claimed for a resolution that was then refused back in the
// queue (the processor takes it up again).
func (o *Ops) releaseAfterRefusal(ctx context.Context, lease postgres.Lease) {
	if err := o.store.RetryTask(context.WithoutCancel(ctx), lease, o.now(), "review resolution refused"); err != nil && !errors.Is(err, postgres.ErrLeaseLost) {
		o.log.WarnContext(ctx, "task not released after a refused resolution; its lease runs out", "task_id", lease.TaskID, "err", err)
	}
}

// withReviewResolved marks a refund's extra_data review flag as settled, keeping its history.
func withReviewResolved(extra []byte, outcome string) []byte {
	m := map[string]any{}
	if len(extra) > 0 {
		_ = json.Unmarshal(extra, &m)
	}
	if _, flagged := m["review_required"]; !flagged {
		return extra // the review shows through review_reason alone
	}
	m["review_required"] = false
	m["review_resolution"] = outcome
	b, err := json.Marshal(m)
	if err != nil {
		return extra
	}
	return b
}

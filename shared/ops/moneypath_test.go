package ops_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
)

// A review case opened by the real money path (a refund whose outcome Lakala never confirms) is
// found and settled through the operations layer: the refund succeeds through the transition
// rules, the main app gets refund_status_changed with the next seq, the refund's dead-letter entry
// goes, and the API no longer shows a review reason.
func TestResolveACaseTheMoneyPathOpened(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{MaxAttempts: 3}})
	ctx := context.Background()
	o := ops.New(s.Service)
	paid := s.PaySucceeded(t, "REAL-1", 5000)
	s.SetFaults(sandbox.Faults{RefundUnknown: sandbox.RefundUnknownSuccess, RefundUnknownQueries: 1000})
	r := s.CreateRefund(t, paid.ID, 2500)
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.RunOnce(t)
		task, err := s.Store.TaskFor(ctx, postgres.TaskRefund, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if task.State == postgres.TaskReview {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refund task %+v never reached review", task)
		}
		time.Sleep(20 * time.Millisecond)
	}

	cases, err := o.ReviewCases(ctx, viewer, ops.ReviewFilter{})
	if err != nil || len(cases) != 1 || cases[0].Kind != ops.KindRefundOutcomeUnknown || cases[0].RefundOrderID != r.ID || cases[0].SubjectStatus != "processing" {
		t.Fatalf("open cases %+v, %v", cases, err)
	}
	dl, err := o.ListDeadLetters(ctx, viewer, "", 0)
	if err != nil || len(dl.Tasks) != 0 || len(dl.Orphans) != 1 || dl.Orphans[0].TaskState != "review" {
		t.Fatalf("dead letters %+v, %v", dl, err)
	}
	tl, err := o.OrderTimeline(ctx, viewer, "REAL-1")
	if err != nil {
		t.Fatal(err)
	}
	var refundCalls int
	for _, c := range tl.GatewayCalls {
		if c.Operation == "refund" || c.Operation == "tradequery" || c.Operation == "refund_query" {
			refundCalls++
		}
	}
	if refundCalls < 2 || len(tl.Notifications) == 0 || len(tl.Attempts) != 1 {
		t.Fatalf("timeline: %d refund calls, %d notifications, %d attempts", refundCalls, len(tl.Notifications), len(tl.Attempts))
	}

	res, err := o.ResolveReview(ctx, operator, ops.Resolution{CaseID: cases[0].ID, Outcome: ops.OutcomeRefundSucceeded, Note: "Lakala portal: refund done"})
	if err != nil {
		t.Fatal(err)
	}
	got := s.RequireRefund(t, r.ID, "succeeded")
	if _, shown := got.ExtraData["review_reason"]; shown {
		t.Errorf("refund still shows a review reason: %v", got.ExtraData)
	}
	if ord := s.Order(t, "REAL-1"); ord.RefundedAmount != 2500 {
		t.Errorf("refunded_amount %d; want 2500", ord.RefundedAmount)
	}
	msgs := s.Results(t, pay.StreamRefundResults)
	last := msgs[len(msgs)-1]
	if last["event_id"] != res.EventIDs[0] || last["old_status"] != "processing" || last["new_status"] != "succeeded" || last["seq"] != "2" {
		t.Fatalf("last refund_results message %v; want processing → succeeded, seq 2, event %s", last, res.EventIDs[0])
	}
	dl, _ = o.ListDeadLetters(ctx, viewer, "", 0)
	if len(dl.Orphans) != 0 {
		t.Fatalf("the refund's dead-letter entry is still there: %+v", dl.Orphans)
	}
	if task, _ := s.Store.TaskFor(ctx, postgres.TaskRefund, r.ID); task.State != postgres.TaskDone {
		t.Fatalf("refund task %s after the resolution; want done", task.State)
	}
	if !strings.Contains(res.StatusChange, "processing → succeeded") {
		t.Errorf("status change %q", res.StatusChange)
	}
}

// checks_recovered restarts an order's task stopped for review and publishes it.
func TestChecksRecoveredRestartsTheTask(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := testenv.SeedOrder(t, e.store, "shop", "M-5", "processing", 100)
	taskID := testenv.SeedDeadTask(t, e.store, e.streams, "payment", id, "close keeps failing")
	if _, err := e.store.Pool().Exec(ctx, `UPDATE tasks SET state = 'review' WHERE id = $1`, taskID); err != nil {
		t.Fatal(err)
	}
	c := testenv.SeedReviewCase(t, e.store, ops.KindReconcileFailing, id, "", "close keeps failing")
	if _, err := e.ops.ResolveReview(ctx, operator, ops.Resolution{CaseID: c, Outcome: ops.OutcomeChecksRecovered, Note: "Lakala fixed the close API"}); err != nil {
		t.Fatal(err)
	}
	if s := e.scalar(t, `SELECT state || '/' || attempts FROM tasks WHERE id = $1`, taskID); s != "queued/0" {
		t.Fatalf("task %s; want queued/0", s)
	}
	if msgs := e.stream(t, "payment_tasks"); len(msgs) != 1 || msgs[0]["subject_id"] != id {
		t.Fatalf("task stream %v", msgs)
	}
	if msgs := e.stream(t, "payment_tasks_dead"); len(msgs) != 0 {
		t.Fatalf("dead-letter entries left %v", msgs)
	}
	if s := e.scalar(t, `SELECT status || '/' || coalesce(review_reason, 'none') FROM payment_orders WHERE id = $1`, id); s != "processing/none" {
		t.Fatalf("order %s", s)
	}
}

package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/sandbox"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

var (
	admin    = ops.Actor{Name: "cli:root", Role: ops.RoleAdmin, Via: "cli"}
	operator = ops.Actor{Name: "olga", Role: ops.RoleOperator, Via: "console"}
	viewer   = ops.Actor{Name: "vic", Role: ops.RoleViewer, Via: "console"}
)

type env struct {
	ops     *ops.Ops
	store   *postgres.Store
	streams *streams.Streams
}

func newEnv(t *testing.T) env {
	t.Helper()
	store := testenv.Postgres(t)
	st := testenv.Streams(t)
	svc := service.New(store, st, testenv.Logger(), service.Config{})
	return env{ops: ops.New(svc), store: store, streams: st}
}

func errKind(t *testing.T, err error, want pay.Kind) {
	t.Helper()
	var pe *pay.Error
	if !errors.As(err, &pe) || pe.Kind != want {
		t.Fatalf("err = %v; want a pay.Error of kind %d", err, want)
	}
}

// audit returns the newest audit row of an action on a subject.
func (e env) audit(t *testing.T, action, subject string) ops.AuditEntry {
	t.Helper()
	rows, err := e.ops.AuditLog(context.Background(), admin, ops.AuditFilter{Subject: subject, Action: action, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("no audit row for %s on %s", action, subject)
	}
	return rows[0]
}

func (e env) scalar(t *testing.T, q string, args ...any) string {
	t.Helper()
	var s *string
	if err := e.store.Pool().QueryRow(context.Background(), q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if s == nil {
		return "<null>"
	}
	return *s
}

func (e env) stream(t *testing.T, name string) []map[string]any {
	t.Helper()
	msgs, err := e.streams.Client().XRange(context.Background(), e.streams.Name(name), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, m := range msgs {
		out = append(out, m.Values)
	}
	return out
}

func TestOperatorsTokensAndSessions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	token, op, err := e.ops.CreateOperator(ctx, admin, "olga", ops.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, "lpo_"+op.ID+"_") {
		t.Fatalf("token %q does not carry the id %s", token, op.ID)
	}
	if got := e.scalar(t, `SELECT count(*)::text FROM operators WHERE token_hash = sha256($1::bytea)`, []byte(token)); got != "1" {
		t.Fatalf("stored hash of the token: %s rows", got)
	}
	if got := e.scalar(t, `SELECT count(*)::text FROM operators WHERE position($1 in encode(token_hash, 'escape')) > 0`, token); got != "0" {
		t.Fatal("the token itself is stored")
	}
	a := e.audit(t, "operator.create", "olga")
	if a.Actor != "cli:root" || a.Outcome != "ok" || !strings.Contains(string(a.After), `"role":"operator"`) {
		t.Fatalf("audit row %+v", a)
	}

	_, _, err = e.ops.CreateOperator(ctx, admin, "olga", ops.RoleViewer)
	errKind(t, err, pay.KindConflict)
	_, _, err = e.ops.CreateOperator(ctx, admin, "bad name!", ops.RoleViewer)
	errKind(t, err, pay.KindInvalid)
	_, _, err = e.ops.CreateOperator(ctx, operator, "eve", ops.RoleAdmin)
	errKind(t, err, pay.KindForbidden)
	if r := e.audit(t, "operator.create", "eve"); r.Outcome != "refused" || r.Actor != "olga" {
		t.Fatalf("refusal audit %+v", r)
	}
	if _, err := ops.ParseRole("root"); err == nil {
		t.Fatal("ParseRole accepted root")
	}

	got, err := e.ops.AuthenticateToken(ctx, token)
	if err != nil || got.Name != "olga" || got.Role != ops.RoleOperator {
		t.Fatalf("AuthenticateToken = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "lpo_", token + "x", "lpo_" + op.ID + "_wrong", strings.Replace(token, "lpo_", "lp_", 1)} {
		_, err := e.ops.AuthenticateToken(ctx, bad)
		errKind(t, err, pay.KindUnauthorized)
	}

	secret, sess, err := e.ops.Login(ctx, token, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := e.ops.Session(ctx, secret)
	if err != nil || s2.Operator.Name != "olga" || s2.CSRF != sess.CSRF || s2.CSRF == "" {
		t.Fatalf("Session = %+v, %v", s2, err)
	}
	if err := e.ops.Logout(ctx, secret); err != nil {
		t.Fatal(err)
	}
	_, err = e.ops.Session(ctx, secret)
	errKind(t, err, pay.KindUnauthorized)

	// An expired session no longer works.
	secret, _, err = e.ops.Login(ctx, token, "", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	_, err = e.ops.Session(ctx, secret)
	errKind(t, err, pay.KindUnauthorized)

	// A disabled operator's token and sessions stop working.
	secret, _, _ = e.ops.Login(ctx, token, "", time.Hour)
	if err := e.ops.DisableOperator(ctx, admin, "olga", "left the team"); err != nil {
		t.Fatal(err)
	}
	_, err = e.ops.AuthenticateToken(ctx, token)
	errKind(t, err, pay.KindUnauthorized)
	_, err = e.ops.Session(ctx, secret)
	errKind(t, err, pay.KindUnauthorized)
	_, _, err = e.ops.Login(ctx, "lpo_nope_nope", "", time.Hour)
	errKind(t, err, pay.KindUnauthorized)
	if r := e.audit(t, "session.login", ""); r.Outcome != "refused" {
		t.Fatalf("failed login audit %+v", r)
	}
}

func TestSearchAndTimeline(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := testenv.SeedOrder(t, e.store, "shop", "M-1", "succeeded", 10000)
	other := testenv.SeedOrder(t, e.store, "game", "M-1", "pending", 500)
	refundID := testenv.SeedRefund(t, e.store, id, "processing", 3000)
	outNo := strings.ReplaceAll(id, "-", "")
	if err := e.store.RecordGatewayCall(ctx, postgres.GatewayCall{Operation: "create", OutNo: outNo, Outcome: "ok", Code: "000000", HTTPStatus: 200, TraceID: "trace-1", DurationMS: 42}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.RecordGatewayCall(ctx, postgres.GatewayCall{Operation: "refund", OutNo: strings.ReplaceAll(refundID, "-", ""), Outcome: "unknown", DurationMS: 10000}); err != nil {
		t.Fatal(err)
	}
	testenv.SeedNotification(t, e.store, id, outNo, "applied", true)
	// A status change through the store, as the service makes it: it writes the outbox row.
	_, err := e.store.InTx(ctx, func(tx *postgres.Tx) error {
		r, err := tx.LockRefund(ctx, refundID)
		if err != nil {
			return err
		}
		r.ExtraData = []byte(`{}`)
		return tx.SaveRefund(ctx, &r, r.Status) // no change: no message
	})
	if err != nil {
		t.Fatal(err)
	}
	caseID := testenv.SeedReviewCase(t, e.store, ops.KindRefundOutcomeUnknown, id, refundID, "refund unknown after 8 queries")

	var trade string
	_ = e.store.Pool().QueryRow(ctx, `SELECT gateway_transaction_id FROM payment_orders WHERE id = $1`, id).Scan(&trade)
	for _, q := range []string{id, outNo, trade, refundID, strings.ReplaceAll(refundID, "-", "")} {
		rows, err := e.ops.SearchOrders(ctx, viewer, ops.SearchFilter{Query: q})
		if err != nil || len(rows) != 1 || rows[0].ID != id {
			t.Errorf("search %q = %d rows, %v; want order %s", q, len(rows), err, id)
		}
	}
	rows, _ := e.ops.SearchOrders(ctx, viewer, ops.SearchFilter{Query: "M-1"})
	if len(rows) != 2 {
		t.Errorf("search M-1 = %d rows; want 2 (two apps)", len(rows))
	}
	rows, _ = e.ops.SearchOrders(ctx, viewer, ops.SearchFilter{Query: "M-1", AppID: "game"})
	if len(rows) != 1 || rows[0].ID != other {
		t.Errorf("search M-1 app game = %+v", rows)
	}
	rows, _ = e.ops.SearchOrders(ctx, viewer, ops.SearchFilter{Status: "pending"})
	if len(rows) != 1 || rows[0].ID != other {
		t.Errorf("search status pending = %d rows", len(rows))
	}
	rows, _ = e.ops.SearchOrders(ctx, viewer, ops.SearchFilter{From: time.Now().Add(time.Hour)})
	if len(rows) != 0 {
		t.Errorf("search from the future = %d rows", len(rows))
	}
	_, err = e.ops.SearchOrders(ctx, viewer, ops.SearchFilter{Status: "lost"})
	errKind(t, err, pay.KindInvalid)
	refunds, err := e.ops.SearchRefunds(ctx, viewer, ops.SearchFilter{Query: "M-1", AppID: "shop"})
	if err != nil || len(refunds) != 1 || refunds[0].ID != refundID || !strings.HasPrefix(refunds[0].ReviewReason, ops.KindRefundOutcomeUnknown+": ") {
		t.Errorf("search refunds = %+v, %v", refunds, err)
	}
	_, err = e.ops.FindOrder(ctx, viewer, "M-1")
	errKind(t, err, pay.KindConflict)
	_, err = e.ops.FindOrder(ctx, viewer, "nothing")
	errKind(t, err, pay.KindNotFound)
	_, err = e.ops.SearchOrders(ctx, ops.Actor{}, ops.SearchFilter{})
	errKind(t, err, pay.KindUnauthorized)

	// Resolve the case to have a status change with a result message on the timeline.
	if _, err := e.ops.ResolveReview(ctx, operator, ops.Resolution{CaseID: caseID, Outcome: ops.OutcomeRefundSucceeded, Note: "checked in the Lakala portal"}); err != nil {
		t.Fatal(err)
	}
	tl, err := e.ops.OrderTimeline(ctx, viewer, outNo)
	if err != nil {
		t.Fatal(err)
	}
	if tl.Order.ID != id || len(tl.Attempts) != 1 || len(tl.Refunds) != 1 || len(tl.Cases) != 1 || len(tl.GatewayCalls) != 2 || len(tl.Notifications) != 1 {
		t.Fatalf("timeline: order %s, %d attempts, %d refunds, %d cases, %d calls, %d notifications",
			tl.Order.ID, len(tl.Attempts), len(tl.Refunds), len(tl.Cases), len(tl.GatewayCalls), len(tl.Notifications))
	}
	if len(tl.Results) != 1 || tl.Results[0].NewStatus != "succeeded" || tl.Results[0].PublishedAt == nil || tl.Results[0].SubjectID != refundID {
		t.Fatalf("timeline results %+v", tl.Results)
	}
	kinds := map[string]int{}
	for _, ev := range tl.Events {
		kinds[ev.Kind]++
	}
	for k, n := range map[string]int{"created": 1, "status": 1, "gateway_call": 2, "notification": 1, "refund": 1, "review": 2, "audit": 1} {
		if kinds[k] != n {
			t.Errorf("timeline has %d %s events; want %d (%v)", kinds[k], k, n, kinds)
		}
	}
	for i := 1; i < len(tl.Events); i++ {
		if tl.Events[i].At.Before(tl.Events[i-1].At) {
			t.Fatalf("timeline not in time order at %d", i)
		}
	}
	if len(tl.Notes) == 0 || !strings.Contains(tl.Notes[0], "pruned") {
		t.Errorf("timeline notes %v do not say history is pruned", tl.Notes)
	}
}

func TestResolveRefundOutcomeUnknown(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		outcome, status string
		refunded        int64
	}{
		{ops.OutcomeRefundSucceeded, "succeeded", 3000},
		{ops.OutcomeRefundFailed, "failed", 0},
	} {
		t.Run(tc.outcome, func(t *testing.T) {
			e := newEnv(t)
			id := testenv.SeedOrder(t, e.store, "shop", "M-1", "succeeded", 10000)
			refundID := testenv.SeedRefund(t, e.store, id, "processing", 3000)
			caseID := testenv.SeedReviewCase(t, e.store, ops.KindRefundOutcomeUnknown, id, refundID, "unknown")

			// Refusals change nothing.
			_, err := e.ops.ResolveReview(ctx, viewer, ops.Resolution{CaseID: caseID, Outcome: tc.outcome, Note: "x"})
			errKind(t, err, pay.KindForbidden)
			_, err = e.ops.ResolveReview(ctx, operator, ops.Resolution{CaseID: caseID, Outcome: tc.outcome})
			errKind(t, err, pay.KindInvalid)
			_, err = e.ops.ResolveReview(ctx, operator, ops.Resolution{CaseID: caseID, Outcome: ops.OutcomeRefundedByHand, Note: "x"})
			errKind(t, err, pay.KindInvalid)
			_, err = e.ops.ResolveReview(ctx, operator, ops.Resolution{CaseID: caseID + 100, Outcome: tc.outcome, Note: "x"})
			errKind(t, err, pay.KindNotFound)
			if s := e.scalar(t, `SELECT status FROM refund_orders WHERE id = $1`, refundID); s != "processing" {
				t.Fatalf("refused resolutions changed the refund to %s", s)
			}

			res, err := e.ops.ResolveReview(ctx, operator, ops.Resolution{CaseID: caseID, Outcome: tc.outcome, Note: "Lakala support confirmed", GatewayRefundID: "R777"})
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusChange != "refund processing → "+tc.status || len(res.EventIDs) != 1 || res.Case.ResolvedBy != "olga" {
				t.Fatalf("result %+v", res)
			}
			if s := e.scalar(t, `SELECT status FROM refund_orders WHERE id = $1`, refundID); s != tc.status {
				t.Fatalf("refund status %s; want %s", s, tc.status)
			}
			if s := e.scalar(t, `SELECT refunded_amount::text FROM payment_orders WHERE id = $1`, id); s != fmt.Sprint(tc.refunded) {
				t.Fatalf("refunded_amount %s; want %d", s, tc.refunded)
			}
			if s := e.scalar(t, `SELECT review_reason FROM refund_orders WHERE id = $1`, refundID); s != "<null>" {
				t.Fatalf("review_reason %s; want cleared", s)
			}
			if s := e.scalar(t, `SELECT state FROM tasks WHERE subject_id = $1`, refundID); s != "done" {
				t.Fatalf("refund task %s; want done", s)
			}
			if s := e.scalar(t, `SELECT resolution || '/' || resolved_by || '/' || resolution_note FROM review_cases WHERE id = $1`, caseID); s != tc.outcome+"/olga/Lakala support confirmed" {
				t.Fatalf("case row %s", s)
			}
			// The main app's result message: in the outbox, published, on refund_results.
			msgs := e.stream(t, pay.StreamRefundResults)
			if len(msgs) != 1 || msgs[0]["event_id"] != res.EventIDs[0] || msgs[0]["refund_order_id"] != refundID ||
				msgs[0]["old_status"] != "processing" || msgs[0]["new_status"] != tc.status {
				t.Fatalf("refund_results = %v", msgs)
			}
			if s := e.scalar(t, `SELECT (published_at IS NOT NULL)::text FROM outbox WHERE event_id = $1`, res.EventIDs[0]); s != "true" {
				t.Fatalf("outbox row published = %s", s)
			}
			a := e.audit(t, "review.resolve", fmt.Sprintf("review:%d", caseID))
			if a.Actor != "olga" || a.Via != "console" || a.Note != "Lakala support confirmed" ||
				!strings.Contains(string(a.Before), `"status":"processing"`) || !strings.Contains(string(a.After), `"status":"`+tc.status+`"`) {
				t.Fatalf("audit %+v before %s after %s", a, a.Before, a.After)
			}
			_, err = e.ops.ResolveReview(ctx, operator, ops.Resolution{CaseID: caseID, Outcome: tc.outcome, Note: "again"})
			errKind(t, err, pay.KindConflict)
			if n := len(e.stream(t, pay.StreamRefundResults)); n != 1 {
				t.Fatalf("a second resolution published %d messages", n)
			}
		})
	}
}

func TestResolveRefusesWhatTheRulesForbid(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := testenv.SeedOrder(t, e.store, "shop", "M-1", "succeeded", 10000)
	refundID := testenv.SeedRefund(t, e.store, id, "failed", 3000)
	caseID := testenv.SeedReviewCase(t, e.store, ops.KindRefundOutcomeUnknown, id, refundID, "unknown")
	_, err := e.ops.ResolveReview(ctx, operator, ops.Resolution{CaseID: caseID, Outcome: ops.OutcomeRefundSucceeded, Note: "portal says ok"})
	errKind(t, err, pay.KindConflict)
	if s := e.scalar(t, `SELECT coalesce(resolution, 'open') FROM review_cases WHERE id = $1`, caseID); s != "open" {
		t.Fatalf("case %s after a refused resolution", s)
	}
	if s := e.scalar(t, `SELECT count(*)::text FROM outbox`); s != "0" {
		t.Fatalf("%s outbox rows after a refused resolution", s)
	}
}

func TestResolvePaymentCases(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := testenv.SeedOrder(t, e.store, "shop", "M-1", "failed", 10000)
	c1 := testenv.SeedReviewCase(t, e.store, ops.KindPaidAfterFailed, id, "", "paid after expiry")
	c2 := testenv.SeedReviewCase(t, e.store, ops.KindAmountMismatch, id, "", "paid 99.00 for 100.00")

	if _, err := e.ops.ResolveReview(ctx, operator, ops.Resolution{CaseID: c1, Outcome: ops.OutcomeConfirmedAutoRefunded, Note: "auto refund seen"}); err != nil {
		t.Fatal(err)
	}
	if s := e.scalar(t, `SELECT review_reason FROM payment_orders WHERE id = $1`, id); s == "<null>" {
		t.Fatal("review_reason cleared while a case of the order is still open")
	}
	if _, err := e.ops.ResolveReview(ctx, operator, ops.Resolution{CaseID: c2, Outcome: ops.OutcomeRefundedByHand, Note: "refunded 99.00 in the portal"}); err != nil {
		t.Fatal(err)
	}
	if s := e.scalar(t, `SELECT status || '/' || coalesce(review_reason, 'none') FROM payment_orders WHERE id = $1`, id); s != "failed/none" {
		t.Fatalf("order %s; want failed/none", s)
	}
	if s := e.scalar(t, `SELECT count(*)::text FROM outbox`); s != "0" {
		t.Fatalf("%s outbox rows; a payment case resolution changes no status", s)
	}
	open, err := e.ops.ReviewCases(ctx, viewer, ops.ReviewFilter{})
	if err != nil || len(open) != 0 {
		t.Fatalf("open cases %d, %v", len(open), err)
	}
	all, _ := e.ops.ReviewCases(ctx, viewer, ops.ReviewFilter{All: true})
	if len(all) != 2 {
		t.Fatalf("all cases %d", len(all))
	}
}

// A resolution that moves an order goes through the wind-down first: under the order's task's
// lease its cashier orders are closed at Lakala and queried, so none stays payable behind the
// status a person sets, and what Lakala reports wins over what the person chose.
func TestResolveReconcileFailing(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	o := ops.New(s.Service).WithPayments(s.Processor.Payments())
	caseOf := func(orderID string) int64 {
		return testenv.SeedReviewCase(t, s.Store, ops.KindReconcileFailing, orderID, "", "query fails for 2h")
	}

	// An open cashier order: confirmed_unpaid closes it at Lakala first, then fails the order.
	open, view := s.Checkout(t, "open", 1000)
	c := caseOf(open.ID)
	res, err := o.ResolveReview(ctx, operator, ops.Resolution{CaseID: c, Outcome: ops.OutcomeConfirmedUnpaid, Note: "portal: unpaid"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Sandbox.Order(view.OutOrderNo); !v.Closed {
		t.Errorf("cashier order %+v; want it closed at Lakala before the order failed", v)
	}
	if got := s.RequireOrder(t, "open", "failed", pay.ReasonClosed); res.StatusChange != "payment processing → failed" || len(res.EventIDs) != 1 {
		t.Errorf("resolution %+v for %+v", res, got)
	}
	task, err := s.Store.TaskFor(ctx, postgres.TaskPayment, open.ID)
	if err != nil || task.State != postgres.TaskDone {
		t.Errorf("task %+v, %v; want done", task, err)
	}

	// Paid at Lakala, the notification lost: confirmed_unpaid is refused — Lakala's query found
	// the payment and the order succeeded — and confirmed_paid then closes the case.
	paid, pview := s.Checkout(t, "paid", 2000)
	s.SetFaults(sandbox.Faults{DropNotify: true})
	if err := s.Sandbox.Pay(ctx, pview.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	pview, _ = s.Sandbox.Order(pview.OutOrderNo)
	c = caseOf(paid.ID)
	_, err = o.ResolveReview(ctx, operator, ops.Resolution{CaseID: c, Outcome: ops.OutcomeConfirmedUnpaid, Note: "portal: unpaid"})
	errKind(t, err, pay.KindConflict)
	got := s.RequireOrder(t, "paid", "succeeded", "")
	if got.GatewayTransactionID == nil || *got.GatewayTransactionID != pview.Trades[0].TradeNo {
		t.Errorf("gateway_transaction_id %v; want Lakala's trade %s", got.GatewayTransactionID, pview.Trades[0].TradeNo)
	}
	if _, err := o.ResolveReview(ctx, operator, ops.Resolution{CaseID: c, Outcome: ops.OutcomeConfirmedPaid, Note: "portal: paid"}); err != nil {
		t.Fatal(err)
	}

	// Unpaid at Lakala: confirmed_paid is refused, nothing changes.
	unpaid, _ := s.Checkout(t, "unpaid", 3000)
	c = caseOf(unpaid.ID)
	_, err = o.ResolveReview(ctx, operator, ops.Resolution{CaseID: c, Outcome: ops.OutcomeConfirmedPaid, Note: "portal: paid?"})
	errKind(t, err, pay.KindConflict)
	s.RequireOrder(t, "unpaid", "processing", "")

	// A processor holds the order's task: the resolution waits for it.
	busy, _ := s.Checkout(t, "busy", 4000)
	c = caseOf(busy.ID)
	task, err = s.Store.TaskFor(ctx, postgres.TaskPayment, busy.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Store.ClaimForPerson(ctx, postgres.TaskPayment, busy.ID, time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	_, err = o.ResolveReview(ctx, operator, ops.Resolution{CaseID: c, Outcome: ops.OutcomeConfirmedUnpaid, Note: "portal: unpaid"})
	errKind(t, err, pay.KindConflict)
	s.RequireOrder(t, "busy", "processing", "")

	// Without a Lakala client the resolution is unavailable, not applied blind.
	_, err = ops.New(s.Service).ResolveReview(ctx, operator, ops.Resolution{CaseID: c, Outcome: ops.OutcomeConfirmedUnpaid, Note: "portal: unpaid"})
	errKind(t, err, pay.KindUnavailable)
}

func TestDeadLetters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	live := testenv.SeedOrder(t, e.store, "shop", "LIVE", "pending", 100)
	final := testenv.SeedOrder(t, e.store, "shop", "FINAL", "failed", 100)
	liveTask := testenv.SeedDeadTask(t, e.store, e.streams, "payment", live, "lakala down")
	finalTask := testenv.SeedDeadTask(t, e.store, e.streams, "payment", final, "lakala down")
	// A malformed entry no task explains.
	if err := e.streams.Client().XAdd(ctx, &redis.XAddArgs{Stream: e.streams.Name(streams.DeadLetterStream), Values: []string{"task_id", "x", "reason", "malformed"}}).Err(); err != nil {
		t.Fatal(err)
	}

	list, err := e.ops.ListDeadLetters(ctx, viewer, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Tasks) != 2 || len(list.Orphans) != 1 || len(list.Tasks[0].Entries) != 1 || list.Tasks[0].MerchantOrderID != "LIVE" {
		t.Fatalf("list %+v", list)
	}
	d, err := e.ops.DeadLetter(ctx, viewer, liveTask)
	if err != nil || d.SubjectStatus != "pending" || !d.Redrivable() || d.Entries[0].Reason != "lakala down" {
		t.Fatalf("show %+v, %v", d, err)
	}

	_, err = e.ops.Redrive(ctx, viewer, liveTask, "retry")
	errKind(t, err, pay.KindForbidden)
	_, err = e.ops.Redrive(ctx, operator, liveTask, "")
	errKind(t, err, pay.KindInvalid)
	_, err = e.ops.Redrive(ctx, operator, finalTask, "retry")
	errKind(t, err, pay.KindConflict)

	res, err := e.ops.Redrive(ctx, operator, liveTask, "Lakala is back")
	if err != nil || !res.Published {
		t.Fatalf("redrive %+v, %v", res, err)
	}
	if s := e.scalar(t, `SELECT state || '/' || attempts || '/' || (published_at IS NOT NULL) FROM tasks WHERE id = $1`, liveTask); s != "queued/0/true" {
		t.Fatalf("task after redrive %s", s)
	}
	tasks := e.stream(t, streams.TaskStream)
	if len(tasks) != 1 || tasks[0]["task_id"] != fmt.Sprint(liveTask) || tasks[0]["subject_id"] != live {
		t.Fatalf("task stream %v", tasks)
	}
	a := e.audit(t, "dlq.redrive", fmt.Sprintf("task:%d", liveTask))
	if !strings.Contains(string(a.Before), `"state":"dead"`) || !strings.Contains(string(a.After), `"state":"queued"`) || a.Note != "Lakala is back" {
		t.Fatalf("audit %+v", a)
	}
	_, err = e.ops.Redrive(ctx, operator, liveTask, "again")
	errKind(t, err, pay.KindConflict)

	all, err := e.ops.RedriveKind(ctx, operator, "payment", "bulk")
	if err != nil || len(all.Redriven) != 0 || all.Skipped[finalTask] == "" {
		t.Fatalf("redrive kind %+v, %v", all, err)
	}

	err = e.ops.Discard(ctx, operator, finalTask, "")
	errKind(t, err, pay.KindInvalid)
	if err := e.ops.Discard(ctx, operator, finalTask, "order already failed; customer informed"); err != nil {
		t.Fatal(err)
	}
	if s := e.scalar(t, `SELECT state FROM tasks WHERE id = $1`, finalTask); s != "discarded" {
		t.Fatalf("task after discard %s", s)
	}
	list, _ = e.ops.ListDeadLetters(ctx, viewer, "", 0)
	if len(list.Tasks) != 0 || len(list.Orphans) != 1 {
		t.Fatalf("after redrive and discard: %+v", list)
	}
	if err := e.ops.DiscardEntry(ctx, operator, list.Orphans[0].ID, "malformed"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.stream(t, streams.DeadLetterStream)); n != 0 {
		t.Fatalf("%d dead-letter entries left", n)
	}
	err = e.ops.DiscardEntry(ctx, operator, "1-1", "x")
	errKind(t, err, pay.KindNotFound)
	if r := e.audit(t, "dlq.discard", fmt.Sprintf("task:%d", finalTask)); r.Outcome != "ok" || r.Actor != "olga" {
		t.Fatalf("discard audit %+v", r)
	}
}

func TestRepublishResults(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	svc := service.New(e.store, e.streams, testenv.Logger(), service.Config{})
	var want, wantSeq []string
	for i, app := range []string{"shop", "shop", "game"} {
		id := testenv.SeedOrder(t, e.store, app, fmt.Sprint("R-", i), "processing", 100)
		events, err := e.store.InTx(ctx, func(tx *postgres.Tx) error {
			o, err := tx.LockOrder(ctx, id)
			if err != nil {
				return err
			}
			if err := o.MoveTo(pay.StatusSucceeded, time.Now()); err != nil {
				return err
			}
			return tx.SaveOrder(ctx, &o, pay.StatusProcessing)
		})
		if err != nil {
			t.Fatal(err)
		}
		svc.PublishEvents(ctx, events)
		if app == "shop" {
			want = append(want, events[0].EventID)
			wantSeq = append(wantSeq, events[0].Fields["seq"])
		}
	}
	if n := len(e.stream(t, pay.StreamPaymentResults)); n != 3 {
		t.Fatalf("%d messages before republish", n)
	}
	e.streams.Client().Del(ctx, e.streams.Name(pay.StreamPaymentResults)) // the app lost its stream

	_, err := e.ops.RepublishResults(ctx, viewer, "shop", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "lost group")
	errKind(t, err, pay.KindForbidden)
	_, err = e.ops.RepublishResults(ctx, operator, "shop", time.Now(), time.Now().Add(-time.Hour), "x")
	errKind(t, err, pay.KindInvalid)

	res, err := e.ops.RepublishResults(ctx, operator, "shop", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "shop lost its consumer group")
	if err != nil || res.Published != 2 {
		t.Fatalf("republish %+v, %v", res, err)
	}
	msgs := e.stream(t, pay.StreamPaymentResults)
	if len(msgs) != 2 || msgs[0]["event_id"] != want[0] || msgs[1]["event_id"] != want[1] || msgs[0]["app_id"] != "shop" ||
		wantSeq[0] == "" || msgs[0]["seq"] != wantSeq[0] || msgs[1]["seq"] != wantSeq[1] {
		t.Fatalf("republished %v; want event ids %v", msgs, want)
	}
	if a := e.audit(t, "results.republish", "app:shop"); !strings.Contains(string(a.After), `"published":2`) {
		t.Fatalf("audit %+v", a)
	}
	res, err = e.ops.RepublishResults(ctx, operator, "shop", time.Now().Add(-10*24*time.Hour), time.Now().Add(-9*24*time.Hour), "old range")
	if err != nil || res.Published != 0 || res.Warning == "" {
		t.Fatalf("old range %+v, %v", res, err)
	}
}

func TestAppsAndKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, _, err := e.ops.CreateKey(ctx, operator, "shop", "ci")
	errKind(t, err, pay.KindForbidden)
	_, _, err = e.ops.CreateKey(ctx, admin, "shop", "ci") // apps are created first
	errKind(t, err, pay.KindNotFound)
	if err := e.store.EnsureApp(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	key, k, err := e.ops.CreateKey(ctx, admin, "shop", "ci")
	if err != nil || !strings.HasPrefix(key, "lp_"+k.ID+"_") {
		t.Fatalf("create key %q %+v %v", key, k, err)
	}
	apps, err := e.ops.Apps(ctx, viewer)
	if err != nil || len(apps) != 1 || apps[0].ActiveKeys != 1 || len(apps[0].Keys) != 1 {
		t.Fatalf("apps %+v, %v", apps, err)
	}
	_, err = e.ops.RevokeKey(ctx, viewer, k.ID, "leaked")
	errKind(t, err, pay.KindForbidden)
	got, err := e.ops.RevokeKey(ctx, admin, k.ID, "leaked in a log")
	if err != nil || got.RevokedAt == nil {
		t.Fatalf("revoke %+v, %v", got, err)
	}
	_, err = e.ops.RevokeKey(ctx, admin, k.ID, "again")
	errKind(t, err, pay.KindConflict)
	_, err = e.ops.RevokeKey(ctx, admin, "nokey", "x")
	errKind(t, err, pay.KindNotFound)
	a := e.audit(t, "key.revoke", "key:"+k.ID)
	if a.Note != "leaked in a log" || !strings.Contains(string(a.After), "revoked_at") {
		t.Fatalf("audit %+v", a)
	}
	if strings.Contains(string(a.After), key) {
		t.Fatal("the key is in the audit log")
	}
	var after struct {
		RevokedAt *time.Time `json:"revoked_at"`
	}
	if err := json.Unmarshal(a.After, &after); err != nil || after.RevokedAt == nil {
		t.Fatalf("audit after %s", a.After)
	}
}

func TestOverview(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	testenv.SeedOrder(t, e.store, "shop", "A", "succeeded", 100)
	testenv.SeedOrder(t, e.store, "shop", "B", "failed", 100)
	testenv.SeedOrder(t, e.store, "shop", "C", "succeeded", 100)
	p := testenv.SeedOrder(t, e.store, "shop", "D", "pending", 100)
	testenv.SeedDeadTask(t, e.store, e.streams, "payment", p, "x")
	testenv.SeedReviewCase(t, e.store, ops.KindPaidAfterFailed, p, "", "x")
	if err := ops.RecordHeartbeat(ctx, e.store, ops.HeartbeatProcessor, map[string]int{"handled": 3}); err != nil {
		t.Fatal(err)
	}
	ov, err := e.ops.Overview(ctx, viewer, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if ov.CreatedToday != 4 || ov.OrdersToday["succeeded"] != 2 || ov.SuccessRate == nil || *ov.SuccessRate < 0.66 || *ov.SuccessRate > 0.67 ||
		ov.OpenReviewCases != 1 || ov.DeadLetters != 1 || ov.DeadLetterEntries != 1 || ov.LastProcessorRun == nil {
		t.Fatalf("overview %+v", ov)
	}
}

func TestIDFloorOrdersBeforeEveryLaterID(t *testing.T) {
	for _, at := range []time.Time{time.Now(), time.Now().Add(-24 * time.Hour), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} {
		floor := ops.IDFloor(at)
		later := uuid.Must(uuid.NewV7()).String() // made now, at or after every at above
		if at.After(time.Now()) || !(floor < later) {
			t.Errorf("IDFloor(%v) = %s does not sort before %s", at, floor, later)
		}
		if floor > ops.IDFloor(at.Add(time.Hour)) {
			t.Errorf("IDFloor is not monotonic at %v", at)
		}
	}
}

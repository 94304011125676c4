package processor_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

func TestPaymentSucceeds(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	created := s.CreateOrder(t, "o1", 10000)
	if created.Status != "pending" {
		t.Fatalf("new order status %q, want pending", created.Status)
	}

	s.RunOnce(t)
	o := s.RequireOrder(t, "o1", "processing", "")
	view, _ := s.Sandbox.Order(o.OutOrderNo())
	url, _ := o.ExtraData["payment_url"].(string)
	if url == "" || url != view.CounterURL {
		t.Fatalf("extra_data.payment_url = %q, want the sandbox's counter_url %q", url, view.CounterURL)
	}
	if view.TotalAmount != 10000 || view.NotifyURL != s.API.URL+"/webhooks/lakala" {
		t.Fatalf("sandbox order %+v: want total 10000 and the stack's notify_url", view)
	}

	if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	o = s.RequireOrder(t, "o1", "succeeded", "")

	view, _ = s.Sandbox.Order(o.OutOrderNo())
	if !view.NotifyAcked || len(view.NotifyAttempts) != 1 {
		t.Errorf("sandbox notification: acked %v after %d attempts, want acked at the first", view.NotifyAcked, len(view.NotifyAttempts))
	}
	tradeNo := view.Trades[0].TradeNo
	if o.GatewayTransactionID == nil || *o.GatewayTransactionID != tradeNo {
		t.Errorf("gateway_transaction_id = %v, want the sandbox trade_no %s", o.GatewayTransactionID, tradeNo)
	}
	cb := o.Callback()
	if cb["payStatus"] != "S" {
		t.Errorf("lakala_callback.payStatus = %v, want S", cb["payStatus"])
	}
	if ts, _ := cb["timestamp"].(string); !isRFC3339(ts) {
		t.Errorf("lakala_callback.timestamp = %q, want RFC 3339", ts)
	}

	processing := testenv.ProcessingMessage(o)
	succeeded := testenv.PaymentMessage(o, "processing", "succeeded")
	succeeded["gateway_transaction_id"] = tradeNo
	testenv.CheckMessages(t, s.Results(t, "payment_results"), processing, succeeded)
}

// TestPaymentFails: with a Lakala that makes a cashier order final when its payment fails (the
// optimistic reading), the order fails — after its task closed and queried the cashier order.
func TestPaymentFails(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{Optimistic: true})
	processing, view := s.Checkout(t, "o1", 5000)
	if err := s.Sandbox.Fail(context.Background(), view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	// The notification says the cashier order failed: the order winds down (its cashier order is
	// closed and queried again by its task) before it fails.
	s.RequireOrder(t, "o1", "processing", "")
	s.RunOnce(t)
	o := s.RequireOrder(t, "o1", "failed", pay.ReasonPaymentFailed)
	if cb := o.Callback(); cb["payStatus"] != "F" {
		t.Errorf("lakala_callback.payStatus = %v, want F", cb["payStatus"])
	}
	view, _ = s.Sandbox.Order(o.OutOrderNo())
	failed := testenv.PaymentMessage(o, "processing", "failed")
	failed["failure_reason"] = pay.ReasonPaymentFailed
	failed["gateway_transaction_id"] = view.Trades[0].TradeNo
	testenv.CheckMessages(t, s.Results(t, "payment_results"), testenv.ProcessingMessage(processing), failed)
}

// TestNotificationFaults: whatever the sandbox does to its notifications, the order moves once,
// and only on a notification that verifies.
func TestNotificationFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults sandbox.Faults
		want   string // order status after the payment
	}{
		{"duplicate", sandbox.Faults{DuplicateNotify: true}, "succeeded"},
		{"forged", sandbox.Faults{ForgeNotify: true}, "processing"},
		{"legacy form", sandbox.Faults{LegacyNotifyForm: true}, "succeeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := testenv.NewStack(t, testenv.StackOptions{})
			processing, view := s.Checkout(t, "o1", 2500)
			s.SetFaults(tt.faults)
			if err := s.Sandbox.Pay(context.Background(), view.PayOrderNo); err != nil {
				t.Fatal(err)
			}
			s.WaitNotifications(t)
			o := s.RequireOrder(t, "o1", tt.want, "")
			view, _ = s.Sandbox.Order(o.OutOrderNo())
			msgs := s.Results(t, "payment_results")

			if tt.want == "processing" {
				if view.NotifyAcked || len(view.NotifyAttempts) == 0 {
					t.Fatalf("forged notification: acked %v after %d attempts, want refused", view.NotifyAcked, len(view.NotifyAttempts))
				}
				for _, a := range view.NotifyAttempts {
					if a.StatusCode != 401 {
						t.Errorf("forged notification answered %d, want 401", a.StatusCode)
					}
				}
				testenv.CheckMessages(t, msgs, testenv.ProcessingMessage(processing))
				return
			}
			if !view.NotifyAcked {
				t.Fatal("sandbox notification not acknowledged")
			}
			if tt.faults.DuplicateNotify {
				acked := 0
				for _, a := range view.NotifyAttempts {
					if a.Acked {
						acked++
					}
				}
				if acked != 2 {
					t.Errorf("%d copies acknowledged, want both", acked)
				}
			}
			if cb := o.Callback(); cb["payStatus"] != "S" {
				t.Errorf("lakala_callback.payStatus = %v, want S", cb["payStatus"])
			}
			succeeded := testenv.PaymentMessage(o, "processing", "succeeded")
			succeeded["gateway_transaction_id"] = view.Trades[0].TradeNo
			testenv.CheckMessages(t, msgs, testenv.ProcessingMessage(processing), succeeded)
		})
	}
}

// TestCrashedRunIsReclaimed: task messages a run read but never acknowledged are taken over
// after the lease, and each order gets exactly one cashier order and one message.
func TestCrashedRunIsReclaimed(t *testing.T) {
	t.Parallel()
	const lease = time.Second
	s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{Lease: lease}})
	ctx := context.Background()
	rdb := s.Streams.Client()
	if err := s.Streams.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	ids := []string{"o1", "o2", "o3", "o4", "o5"}
	orders := map[string]testenv.Order{}
	for _, id := range ids {
		orders[id] = s.CreateOrder(t, id, 1000)
	}
	// The crashed run: it read every task and died before acknowledging any.
	read, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: s.Streams.Group(), Consumer: "crashed-run", Streams: []string{s.Streams.Name(streams.TaskStream), ">"}, Count: 100,
	}).Result()
	if err != nil || len(read) != 1 || len(read[0].Messages) != len(ids) {
		t.Fatalf("crashed run read %v (err %v), want %d messages", read, err, len(ids))
	}
	testenv.Eventually(t, 5*time.Second, "the crashed run's messages to idle past the lease", func() bool {
		pending, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: s.Streams.Name(streams.TaskStream), Group: s.Streams.Group(), Start: "-", End: "+", Count: 100, Idle: lease,
		}).Result()
		return err == nil && len(pending) == len(ids)
	})
	if st := s.RunOnce(t); st.Reclaimed != len(ids) {
		t.Fatalf("reclaimed %d messages, want %d", st.Reclaimed, len(ids))
	}
	s.RunOnce(t) // nothing left to do: must not create anything again

	pending, err := rdb.XPending(ctx, s.Streams.Name(streams.TaskStream), s.Streams.Group()).Result()
	if err != nil || pending.Count != 0 {
		t.Fatalf("pending after reclaim = %+v (err %v), want none", pending, err)
	}
	var want []map[string]string
	for _, id := range ids {
		o := s.RequireOrder(t, id, "processing", "")
		view, ok := s.Sandbox.Order(o.OutOrderNo())
		if !ok || view.CounterURL != o.ExtraData["payment_url"] {
			t.Errorf("order %s: sandbox order %+v does not match payment_url %v", id, view, o.ExtraData["payment_url"])
		}
		task, err := s.Store.TaskFor(ctx, postgres.TaskPayment, o.ID)
		if err != nil || task.State != postgres.TaskDone || task.Attempts != 1 {
			t.Errorf("order %s: task %+v (err %v), want done after one attempt", id, task, err)
		}
		want = append(want, testenv.ProcessingMessage(o))
	}
	msgs := s.Results(t, "payment_results")
	byOrder := map[string]map[string]string{}
	for _, m := range msgs {
		byOrder[m["payment_order_id"]] = m
	}
	if len(byOrder) != len(msgs) {
		t.Fatalf("an order has more than one message:\n%v", msgs)
	}
	var got []map[string]string
	for _, id := range ids {
		got = append(got, byOrder[orders[id].ID])
	}
	if len(msgs) != len(ids) {
		t.Fatalf("got %d messages, want %d", len(msgs), len(ids))
	}
	testenv.CheckMessages(t, got, want...)
}

// unanswered is a stack whose sandbox answers every call with HTTP 500, whose tasks have
// maxAttempts attempts, with one order created and its task.
func unanswered(t *testing.T, maxAttempts int) (*testenv.Stack, testenv.Order, postgres.Task) {
	t.Helper()
	s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{
		MaxAttempts: maxAttempts, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond, SweepGrace: time.Millisecond,
		VisibilityLag: time.Millisecond,
	}})
	s.SetFaults(sandbox.Faults{ErrorRate: 1})
	o := s.CreateOrder(t, "o1", 1000)
	task, err := s.Store.TaskFor(context.Background(), postgres.TaskPayment, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	return s, o, task
}

// TestCreateAttemptsExhaustedWindDown: a create whose every call fails uses its attempts; the
// order then winds down — its cashier order is closed and queried (a failed call may still have
// created it). Lakala publishes no code for "not found", so once neither finds it for longer than
// its visibility lag it is created again under its number and closed: then nobody can pay it, and
// the order fails with retries_exhausted. Nothing needs a person, so nothing is dead-lettered.
func TestCreateAttemptsExhaustedWindDown(t *testing.T) {
	t.Parallel()
	s, o, task := unanswered(t, 3)
	ctx := context.Background()
	testenv.Eventually(t, 10*time.Second, "the create attempts to be used", func() bool {
		s.RunOnce(t)
		o = s.Order(t, "o1")
		return o.Status == "pending" && closingReason(t, s, o.ID) != ""
	})
	s.SetFaults(sandbox.Faults{})
	testenv.Eventually(t, 10*time.Second, "the wind-down", func() bool {
		s.RunOnce(t)
		return s.Order(t, "o1").Status == "failed"
	})
	o = s.Order(t, "o1")
	if !strings.HasPrefix(deref(o.FailureReason), pay.ReasonRetriesExceeded) {
		t.Errorf("failure_reason %q, want it to start with %s", deref(o.FailureReason), pay.ReasonRetriesExceeded)
	}
	if view, ok := s.Sandbox.Order(o.OutOrderNo()); !ok || !view.Closed || len(view.Trades) != 0 {
		t.Errorf("cashier order %+v (found %v); want it created again and closed, never paid", view, ok)
	}
	if task, err := s.Store.Task(ctx, task.ID); err != nil || task.State != postgres.TaskDone {
		t.Errorf("task %+v (err %v), want done", task, err)
	}
	if dead := s.Results(t, streams.DeadLetterStream); len(dead) != 0 {
		t.Errorf("dead-letter stream has %v, want nothing", dead)
	}
	failed := testenv.PaymentMessage(o, "pending", "failed")
	failed["failure_reason"] = deref(o.FailureReason)
	testenv.CheckMessages(t, s.Results(t, "payment_results"), failed)
}

// TestCreateOutcomeNeverSettledIsReviewed: when Lakala never answers, neither the create nor the
// close nor the query, nobody can say whether a cashier order exists: the order is not failed
// (a payer might be paying it), a review case says so, and the task waits for a person.
func TestCreateOutcomeNeverSettledIsReviewed(t *testing.T) {
	t.Parallel()
	s, o, task := unanswered(t, 2)
	ctx := context.Background()
	var err error
	testenv.Eventually(t, 10*time.Second, "the task to stop for review", func() bool {
		s.RunOnce(t)
		task, err = s.Store.Task(ctx, task.ID)
		return err == nil && task.State != postgres.TaskQueued
	})
	if task.State != postgres.TaskReview {
		t.Fatalf("task %+v, want review", task)
	}
	o = s.RequireOrder(t, "o1", "pending", "")
	if o.ExtraData["review_required"] != true || !strings.HasPrefix(fmt.Sprint(o.ExtraData["review_reason"]), pay.ReviewReconcileFailing) {
		t.Errorf("extra_data %v; want review_required and a %s review_reason", o.ExtraData, pay.ReviewReconcileFailing)
	}
	cases, err := s.Store.OpenReviewCases(ctx, o.ID)
	if err != nil || len(cases) != 1 || cases[0].Kind != pay.ReviewReconcileFailing {
		t.Fatalf("review cases %+v (err %v), want one %s", cases, err, pay.ReviewReconcileFailing)
	}
	dead := s.Results(t, streams.DeadLetterStream)
	if len(dead) != 1 || dead[0]["task_id"] != itoa(task.ID) || dead[0]["kind"] != "payment" || dead[0]["reason"] == "" {
		t.Errorf("dead-letter stream %v, want the task with its reason", dead)
	}
	if msgs := s.Results(t, "payment_results"); len(msgs) != 0 {
		t.Errorf("payment_results %v, want nothing (no status changed)", msgs)
	}
	// Nothing comes back to life: more runs change nothing.
	s.RunOnce(t)
	if n := len(s.Results(t, streams.DeadLetterStream)); n != 1 {
		t.Errorf("dead-letter stream grew to %d entries", n)
	}
}

// TestLostNotificationReconciled: an order paid whose notification never came is settled by
// querying Lakala.
func TestLostNotificationReconciled(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{ReconcileAfter: time.Millisecond}})
	processing, view := s.Checkout(t, "o1", 3000)
	s.SetFaults(sandbox.Faults{DropNotify: true})
	if err := s.Sandbox.Pay(context.Background(), view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	if view, _ = s.Sandbox.Order(processing.OutOrderNo()); !view.NotifyDropped || len(view.NotifyAttempts) != 0 {
		t.Fatalf("sandbox sent a notification: %+v", view)
	}
	s.RequireOrder(t, "o1", "processing", "")

	testenv.Eventually(t, 5*time.Second, "reconciliation", func() bool {
		return s.RunOnce(t).Reconciled == 1
	})
	o := s.RequireOrder(t, "o1", "succeeded", "")
	tradeNo := view.Trades[0].TradeNo
	if deref(o.GatewayTransactionID) != tradeNo {
		t.Errorf("gateway_transaction_id %v, want %s", o.GatewayTransactionID, tradeNo)
	}
	cb := o.Callback()
	if cb["payStatus"] != "S" || cb["source"] != "query" || cb["tradeNo"] != tradeNo || cb["logNo"] != view.Trades[0].LogNo {
		t.Errorf("lakala_callback %v, want payStatus S from a query with the trade's numbers", cb)
	}
	succeeded := testenv.PaymentMessage(o, "processing", "succeeded")
	succeeded["gateway_transaction_id"] = tradeNo
	testenv.CheckMessages(t, s.Results(t, "payment_results"), testenv.ProcessingMessage(processing), succeeded)

	// Settled orders are not queried again.
	if st := s.RunOnce(t); st.Reconciled != 0 {
		t.Errorf("second run reconciled %d orders", st.Reconciled)
	}
}

// orderTTL is the shortest cashier order life that Lakala's second-resolution expiry time
// reliably keeps in the future.
const orderTTL = 2 * time.Second

func TestUnpaidOrderExpires(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{Service: service.Config{OrderTTL: orderTTL}})
	processing, _ := s.Checkout(t, "o1", 3000)
	testenv.Eventually(t, 10*time.Second, "the order to expire", func() bool {
		return s.RunOnce(t).Reconciled == 1
	})
	o := s.RequireOrder(t, "o1", "failed", pay.ReasonExpired)
	failed := testenv.PaymentMessage(o, "processing", "failed")
	failed["failure_reason"] = pay.ReasonExpired
	testenv.CheckMessages(t, s.Results(t, "payment_results"), testenv.ProcessingMessage(processing), failed)

	view, _ := s.Sandbox.Order(o.OutOrderNo())
	if !view.Closed || view.Status != lakala.OrderStatusClosed {
		t.Errorf("sandbox order closed=%v status=%s, want closed by the processor", view.Closed, view.Status)
	}
	// A payment can no longer land (PayAfterClose is off).
	if err := s.Sandbox.Pay(context.Background(), view.PayOrderNo); err == nil {
		t.Error("the sandbox took a payment for the expired order")
	}
}

// TestUnpaidOrderClosedAtGateway: the processor closes an unpaid order at Lakala once our
// expiry passes, even when Lakala's own clock has not expired it.
func TestUnpaidOrderClosedAtGateway(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	o, _ := s.Checkout(t, "o1", 3000)
	expireInDB(t, s, o.ID)
	if st := s.RunOnce(t); st.Reconciled != 1 {
		t.Fatalf("run reconciled %d orders, want 1", st.Reconciled)
	}
	s.RequireOrder(t, "o1", "failed", pay.ReasonExpired)
	view, _ := s.Sandbox.Order(o.OutOrderNo())
	if !view.Closed || view.Status != lakala.OrderStatusClosed {
		t.Errorf("sandbox order closed=%v status=%s, want closed by the processor", view.Closed, view.Status)
	}
}

// payOnClose is Lakala where the payer pays just after the processor closed the order.
type payOnClose struct {
	processor.Gateway
	pay func()
}

func (g payOnClose) CloseCashierOrder(ctx context.Context, outOrderNo string) (lakala.CloseOrderResult, error) {
	res, err := g.Gateway.CloseCashierOrder(ctx, outOrderNo)
	g.pay()
	return res, err
}

// TestPaidAfterClose: an expired order whose payment lands as the processor closes it is found
// paid on the query after the close, and succeeds instead of failing.
func TestPaidAfterClose(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	processing, view := s.Checkout(t, "o1", 3000)
	expireInDB(t, s, processing.ID)
	s.SetFaults(sandbox.Faults{PayAfterClose: true, DropNotify: true})
	gw := payOnClose{Gateway: s.Lakala, pay: func() {
		if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
			t.Errorf("pay after close: %v", err)
		}
	}}
	p := processor.New(s.Service, service.SameGateway(gw), processor.Config{Consumer: "paid-after-close", NotifyURL: view.NotifyURL})
	if st := testenv.RunOnce(t, p); st.Reconciled != 1 {
		t.Fatalf("run reconciled %d orders, want 1", st.Reconciled)
	}
	o := s.RequireOrder(t, "o1", "succeeded", "")
	view, _ = s.Sandbox.Order(o.OutOrderNo())
	if !view.Closed {
		t.Error("the processor did not close the order at the sandbox")
	}
	succeeded := testenv.PaymentMessage(o, "processing", "succeeded")
	succeeded["gateway_transaction_id"] = view.Trades[0].TradeNo
	testenv.CheckMessages(t, s.Results(t, "payment_results"), testenv.ProcessingMessage(processing), succeeded)
}

// expireInDB moves the order's expiry (ours, not the sandbox's) into the past.
func expireInDB(t *testing.T, s *testenv.Stack, orderID string) {
	t.Helper()
	ctx := context.Background()
	past := time.Now().Add(-time.Second)
	if _, err := s.Store.InTx(ctx, func(tx *postgres.Tx) error {
		stored, err := tx.LockOrder(ctx, orderID)
		if err != nil {
			return err
		}
		stored.ExpiresAt = &past
		return tx.SaveOrder(ctx, &stored, stored.Status)
	}); err != nil {
		t.Fatal(err)
	}
}

func isRFC3339(s string) bool {
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// closingReason is the order's wind-down reason, which the API does not show.
func closingReason(t *testing.T, s *testenv.Stack, id string) string {
	t.Helper()
	o, err := s.Store.Order(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return o.ClosingReason
}

// settleDuringCreate is Lakala where the order is settled (a verified payment report) while the
// processor is still waiting for the cashier order it asked for.
type settleDuringCreate struct {
	processor.Gateway
	settle func(outOrderNo string)
}

func (g settleDuringCreate) CreateCashierOrder(ctx context.Context, in lakala.CreateCashierOrder) (lakala.CreateOrderResult, error) {
	res, err := g.Gateway.CreateCashierOrder(ctx, in)
	g.settle(in.OutOrderNo)
	return res, err
}

// TestCheckoutLosesToAConcurrentSettlement: the pending → processing change is conditional, so a
// settlement that lands during the Lakala call wins; the checkout changes nothing, writes no
// message, and still finishes its task.
func TestCheckoutLosesToAConcurrentSettlement(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	o := s.CreateOrder(t, "o1", 4200)
	gw := settleDuringCreate{Gateway: s.Lakala, settle: func(outOrderNo string) {
		a, err := s.Store.AttemptByOutOrderNo(ctx, outOrderNo)
		if err != nil {
			t.Fatalf("attempt %s: %v", outOrderNo, err)
		}
		res, err := s.Service.ApplyReport(ctx, a, pay.GatewayReport{Outcome: pay.OutcomePaid, OrderAmount: 4200, TradeNo: "T1"}, "test", nil)
		if err != nil || res != service.NotificationApplied {
			t.Errorf("ApplyReport = %v, %v; want applied", res, err)
		}
	}}
	p := processor.New(s.Service, service.SameGateway(gw), processor.Config{Consumer: "loser", NotifyURL: s.API.URL + "/webhooks/lakala",
		BackoffBase: time.Millisecond, BackoffMax: time.Millisecond})
	testenv.RunOnce(t, p)
	// The order succeeded through another channel while the cashier order was being created:
	// the task's next attempt closes that cashier order, which nobody must pay now.
	time.Sleep(20 * time.Millisecond)
	testenv.RunOnce(t, p)
	if v, ok := s.Sandbox.Order(o.OutOrderNo()); !ok || !v.Closed {
		t.Errorf("cashier order = %+v; want it closed", v)
	}

	got := s.RequireOrder(t, "o1", "succeeded", "")
	if got.ExtraData["payment_url"] != nil {
		t.Errorf("extra_data.payment_url = %v; want none (the checkout lost)", got.ExtraData["payment_url"])
	}
	task, err := s.Store.TaskFor(ctx, postgres.TaskPayment, o.ID)
	if err != nil || task.State != postgres.TaskDone {
		t.Errorf("task = %+v, %v; want done", task, err)
	}
	succeeded := testenv.PaymentMessage(got, "pending", "succeeded")
	succeeded["gateway_transaction_id"] = "T1"
	testenv.CheckMessages(t, s.Results(t, "payment_results"), succeeded)
}

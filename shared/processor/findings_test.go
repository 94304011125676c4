package processor_test

// One test per finding of the money-path review: each reproduces a way the money path
// broke under the pessimistic reading of Lakala, and failed before the fix.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
	"github.com/loomipay/loomipay/shared/service"
)

// ledgerOrder is what the sandbox believes of one cashier order.
func ledgerOrder(t *testing.T, s *testenv.Stack, outOrderNo string) sandbox.LedgerOrder {
	t.Helper()
	for _, o := range s.Sandbox.Ledger().Orders {
		if o.OutOrderNo == outOrderNo {
			return o
		}
	}
	t.Fatalf("cashier order %s is not in the sandbox's ledger", outOrderNo)
	return sandbox.LedgerOrder{}
}

// attempts is the order's cashier orders as the service recorded them.
func attempts(t *testing.T, s *testenv.Stack, orderID string) []pay.Attempt {
	t.Helper()
	as, err := s.Store.Attempts(context.Background(), orderID)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// runUntil runs the processor until cond holds.
func runUntil(t *testing.T, s *testenv.Stack, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, what, func() bool {
		s.RunOnce(t)
		return cond()
	})
}

// Finding 1: a refund applied at Lakala whose answer is lost, while queries do not see it yet,
// is resubmitted; the resubmission is refused as a duplicate. That refusal proves nothing: the
// refund must end succeeded, once, never failed (a failed refund frees its amount for another).
func TestFinding1LostRefundAnswerIsNotARefusal(t *testing.T) {
	t.Parallel()
	// Eight attempts spaced 20 ms, 40 ms … 100 ms outlast the 300 ms in which queries do not see
	// the refund, as minutes of backoff outlast Lakala's lag in production.
	s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{
		SweepGrace: time.Millisecond, BackoffBase: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond}})
	o := s.PaySucceeded(t, "o1", 5000)
	s.SetFaults(sandbox.Faults{LostAnswerRate: 1, QueryLag: 300 * time.Millisecond})
	r := s.CreateRefund(t, o.ID, 2000)
	task := runUntilFinal(t, s, r.ID)
	if task.State != postgres.TaskDone {
		t.Fatalf("refund task %+v; want done", task)
	}
	refundOutcome(t, s, o, r, "succeeded", 2000)
	// The main app's retry of a new refund for the rest is all that is left to refund.
	if code, body := s.CreateRefundRaw(t, o.ID, 3001); code != http.StatusBadRequest || !strings.Contains(string(body), "refund_exceeds_refundable") {
		t.Errorf("refund of 3001 after 2000 of 5000 = %d %s; want 400 refund_exceeds_refundable", code, body)
	}
	for _, lr := range s.Sandbox.Ledger().Refunds {
		if lr.Applied > 1 {
			t.Errorf("sandbox applied refund %s %d times", lr.OutTradeNo, lr.Applied)
		}
	}
}

// Finding 2: a failed PAY trade on a cashier order that stays payable is one failed try, not a
// failed order; the payer pays on the same page and the order succeeds.
func TestFinding2FailedTradeOnAPayableOrder(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{Processor: retryFast})
	ctx := context.Background()
	processing, view := s.Checkout(t, "o1", 4200)
	if err := s.Sandbox.Fail(ctx, view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	s.RunOnce(t)
	s.RequireOrder(t, "o1", "processing", "")
	if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
		t.Fatalf("the payer could not try again: %v", err)
	}
	s.WaitNotifications(t)
	o := s.RequireOrder(t, "o1", "succeeded", "")
	if got := ledgerOrder(t, s, processing.OutOrderNo()); got.Payments != 1 || got.Paid != 4200 {
		t.Errorf("ledger %+v; want one payment of 4200", got)
	}
	succeeded := testenv.PaymentMessage(o, "processing", "succeeded")
	succeeded["gateway_transaction_id"] = *o.GatewayTransactionID
	testenv.CheckMessages(t, s.Results(t, "payment_results"), testenv.ProcessingMessage(processing), succeeded)
}

// Finding 3: a cashier order created at Lakala whose answer was lost, at a Lakala that refuses a
// repeated out_order_no. The order must not end failed with the cashier order left open: the
// lost one is closed and a new cashier order (a new out_order_no, the same expiry) takes over.
func TestFinding3LostCreateAnswer(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{Processor: retryFast})
	s.SetFaults(sandbox.Faults{LostAnswerRate: 1})
	o := s.CreateOrder(t, "o1", 3000)
	s.RunOnce(t) // the create is applied at Lakala, its answer lost
	s.SetFaults(sandbox.Faults{})
	runUntil(t, s, "the order to be processing", func() bool { return s.Order(t, "o1").Status == "processing" })

	as := attempts(t, s, o.ID)
	if len(as) != 2 || as[0].State != pay.AttemptClosed || as[1].State != pay.AttemptOpen {
		t.Fatalf("attempts %+v; want the lost one closed and a second one open", as)
	}
	first, second := ledgerOrder(t, s, as[0].OutOrderNo), ledgerOrder(t, s, as[1].OutOrderNo)
	if first.Payable || !first.Closed {
		t.Errorf("first cashier order %+v; want it closed, not payable", first)
	}
	if !second.Payable {
		t.Errorf("second cashier order %+v; want it payable", second)
	}
	if !as[0].ExpiresAt.Equal(as[1].ExpiresAt) {
		t.Errorf("expiry %s then %s; want one order_efficient_time for the order", as[0].ExpiresAt, as[1].ExpiresAt)
	}
	got := s.Order(t, "o1")
	if got.ExtraData["payment_url"] != as[1].CounterURL {
		t.Errorf("payment_url %v; want the second cashier order's %s", got.ExtraData["payment_url"], as[1].CounterURL)
	}
}

// Finding 3, second part: a definite rejection of a fresh cashier order fails the order at once
// (gateway_rejected), instead of retrying for minutes.
func TestFinding3DefiniteRejectionFailsFast(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{NotifyURL: "not-a-url", SweepGrace: time.Millisecond}})
	o := s.CreateOrder(t, "o1", 3000)
	s.RunOnce(t)
	got := s.Order(t, "o1")
	if got.Status != "failed" || !strings.HasPrefix(deref(got.FailureReason), pay.ReasonGatewayRejected) {
		t.Fatalf("order %s %v after one run; want failed %s…", got.Status, deref(got.FailureReason), pay.ReasonGatewayRejected)
	}
	task, err := s.Store.TaskFor(context.Background(), postgres.TaskPayment, o.ID)
	if err != nil || task.Attempts != 1 || task.State != postgres.TaskDone {
		t.Errorf("task %+v (err %v); want done after one attempt", task, err)
	}
}

// Finding 4: the message of an earlier transition must never reach the stream after a later
// one. Here the processor's own publish of pending → processing fails (Redis is too slow for
// it), and the payment's notification arrives before the relay runs.
func TestFinding4ResultsInTransitionOrder(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	slowPublish := service.New(s.Store, s.Streams, testenv.Logger(), service.Config{PublishTimeout: time.Nanosecond, PlatformKey: s.Sandbox.PlatformPublicKey(), MerchantNo: testenv.LakalaMerchantNo})
	p := processor.New(slowPublish, s.Merchants, processor.Config{Consumer: "slow-publisher", NotifyURL: s.API.URL + "/webhooks/lakala"})
	created := s.CreateOrder(t, "o1", 1000)
	if _, err := p.Drain(ctx, 0); err != nil {
		t.Fatal(err)
	}
	processing := s.RequireOrder(t, "o1", "processing", "")
	if msgs := s.Results(t, "payment_results"); len(msgs) != 0 {
		t.Fatalf("the slow publish got through: %v", msgs)
	}
	view, _ := s.Sandbox.Order(created.OutOrderNo())
	if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	o := s.RequireOrder(t, "o1", "succeeded", "")
	s.RunOnce(t) // the relay
	succeeded := testenv.PaymentMessage(o, "processing", "succeeded")
	succeeded["gateway_transaction_id"] = *o.GatewayTransactionID
	testenv.CheckMessages(t, s.Results(t, "payment_results"), testenv.ProcessingMessage(processing), succeeded)
}

// failingQueries is Lakala where queries of some cashier orders always fail.
type failingQueries struct {
	processor.Gateway
	mu   sync.Mutex
	fail map[string]bool
}

func (g *failingQueries) QueryCashierOrder(ctx context.Context, outOrderNo string) (lakala.QueryOrderResult, error) {
	g.mu.Lock()
	fail := g.fail[outOrderNo]
	g.mu.Unlock()
	if fail {
		return lakala.QueryOrderResult{}, errors.New("lakala: outcome unknown: injected query failure")
	}
	return g.Gateway.QueryCashierOrder(ctx, outOrderNo)
}

// Finding 5: orders whose checks keep failing must not starve the others; every check is
// recorded, and an order that keeps failing becomes a review case.
func TestFinding5ReconcilerIsFair(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	gw := &failingQueries{Gateway: s.Lakala, fail: map[string]bool{}}
	cfg := processor.Config{Consumer: "fair", NotifyURL: s.API.URL + "/webhooks/lakala", ReconcileAfter: time.Millisecond,
		ReconcileBatch: 2, ReviewAfterFailedChecks: 3, MaintenanceEvery: time.Millisecond}
	p := processor.New(s.Service, service.SameGateway(gw), cfg)
	var stuck []testenv.Order
	for _, id := range []string{"stuck1", "stuck2", "stuck3"} {
		o, _ := s.Checkout(t, id, 1000)
		gw.fail[o.OutOrderNo()] = true
		stuck = append(stuck, o)
	}
	_, view := s.Checkout(t, "paid", 2000)
	s.SetFaults(sandbox.Faults{DropNotify: true})
	if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the paid order to be reconciled past the failing ones", func() bool {
		testenv.RunOnce(t, p)
		return s.Order(t, "paid").Status == "succeeded"
	})
	testenv.Eventually(t, 10*time.Second, "review cases for the orders whose checks keep failing", func() bool {
		testenv.RunOnce(t, p)
		for _, o := range stuck {
			cases, err := s.Store.OpenReviewCases(ctx, o.ID)
			if err != nil || len(cases) != 1 || cases[0].Kind != pay.ReviewReconcileFailing {
				return false
			}
		}
		return true
	})
	var failures int
	var lastErr string
	if err := s.Store.Pool().QueryRow(ctx, "SELECT check_failures, last_check_error FROM payment_orders WHERE id = $1", stuck[0].ID).Scan(&failures, &lastErr); err != nil {
		t.Fatal(err)
	}
	if failures < 3 || !strings.Contains(lastErr, "injected query failure") {
		t.Errorf("check_failures %d, last_check_error %q; want ≥ 3 and the error recorded", failures, lastErr)
	}
}

// Finding 6: the lease must cover the longest handling, and a worker whose lease ran out can no
// longer finish or retry the task its successor holds.
func TestFinding6Leases(t *testing.T) {
	t.Parallel()
	t.Run("a lease shorter than the longest handling is refused", func(t *testing.T) {
		tests := []struct {
			lease, timeout time.Duration
			ok             bool
		}{
			{60 * time.Second, 10 * time.Second, true},
			{30 * time.Second, 10 * time.Second, false}, // a refund's query + resubmission alone is 20 s
			{20 * time.Second, 10 * time.Second, false},
			{2 * time.Second, 500 * time.Millisecond, true},
		}
		for _, tt := range tests {
			err := processor.Config{Lease: tt.lease}.Validate(tt.timeout)
			if (err == nil) != tt.ok {
				t.Errorf("Validate(lease %s, timeout %s) = %v; want ok=%v", tt.lease, tt.timeout, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "PROCESSOR_LEASE") {
				t.Errorf("error %q does not name PROCESSOR_LEASE", err)
			}
		}
	})
	t.Run("finish and retry check the lease holder", func(t *testing.T) {
		s := testenv.NewStack(t, testenv.StackOptions{})
		ctx := context.Background()
		o := s.CreateOrder(t, "o1", 1000)
		stored, err := s.Store.TaskFor(ctx, postgres.TaskPayment, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		first, ok, err := s.Store.ClaimTask(ctx, stored.ID, now, time.Millisecond)
		if err != nil || !ok {
			t.Fatalf("first claim: %v %v", ok, err)
		}
		second, ok, err := s.Store.ClaimTask(ctx, stored.ID, now.Add(time.Second), time.Minute)
		if err != nil || !ok {
			t.Fatalf("second claim after the first lease ran out: %v %v", ok, err)
		}
		if err := s.Store.FinishTask(ctx, first.Lease, postgres.TaskDone, ""); !errors.Is(err, postgres.ErrLeaseLost) {
			t.Errorf("finish by the first worker = %v; want ErrLeaseLost", err)
		}
		if err := s.Store.RetryTask(ctx, first.Lease, now, "late"); !errors.Is(err, postgres.ErrLeaseLost) {
			t.Errorf("retry by the first worker = %v; want ErrLeaseLost", err)
		}
		if got, _ := s.Store.Task(ctx, stored.ID); got.State != postgres.TaskQueued || got.LastError == "late" {
			t.Errorf("task %+v; want it still the second worker's", got)
		}
		if err := s.Store.FinishTask(ctx, second.Lease, postgres.TaskDone, ""); err != nil {
			t.Errorf("finish by the holder: %v", err)
		}
	})
}

// Finding 8: a signed notification whose total matches the order but whose PAY trade is for
// 1 fen is not a payment of the order: it must not succeed, a review case records the money,
// and the cashier order is closed before the order fails.
func TestFinding8TradeAmountIsChecked(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	processing, view := s.Checkout(t, "o1", 4000)
	body := []byte(`{"pay_order_no":"` + view.PayOrderNo + `","out_order_no":"` + processing.OutOrderNo() + `","merchant_no":"` +
		testenv.LakalaMerchantNo + `","order_status":"2","total_amount":4000,"order_trade_info":{"trade_no":"T1","log_no":"L1",` +
		`"trade_type":"PAY","trade_status":"S","trade_amount":1,"payer_amount":1}}`)
	if code, answer := s.Notify(t, body, s.SignNotification(t, body, time.Now())); code != http.StatusOK {
		t.Fatalf("webhook = %d %s; want 200", code, answer)
	}
	if got := s.Order(t, "o1"); got.Status == "succeeded" {
		t.Fatal("an order for 4000 fen succeeded on a trade of 1 fen")
	}
	cases, err := s.Store.OpenReviewCases(ctx, processing.ID)
	if err != nil || len(cases) != 1 || cases[0].Kind != pay.ReviewAmountMismatch {
		t.Fatalf("review cases %+v (err %v); want one %s", cases, err, pay.ReviewAmountMismatch)
	}
	runUntil(t, s, "the order to fail", func() bool { return s.Order(t, "o1").Status == "failed" })
	s.RequireOrder(t, "o1", "failed", pay.ReasonAmountMismatch)
	if got := ledgerOrder(t, s, processing.OutOrderNo()); got.Payable || !got.Closed {
		t.Errorf("cashier order %+v; want it closed before the order failed", got)
	}
}

// A merchant's close winds the order down under its task's lease: the cashier order is closed
// at Lakala, then the order fails closed_by_merchant; an order the payer paid just before the
// close succeeds instead.
func TestCloseOrder(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	open, _ := s.Checkout(t, "open", 1000)
	got, err := s.Processor.Payments().CloseOrder(ctx, open.ID)
	if err != nil || got.Status != pay.StatusFailed || got.FailureReason != pay.ReasonClosedByMerchant {
		t.Fatalf("close = %s %q, %v; want failed %s", got.Status, got.FailureReason, err, pay.ReasonClosedByMerchant)
	}
	if lo := ledgerOrder(t, s, open.OutOrderNo()); !lo.Closed || lo.Payable {
		t.Errorf("cashier order %+v; want it closed", lo)
	}
	failed := testenv.PaymentMessage(s.Order(t, "open"), "processing", "failed")
	failed["failure_reason"] = pay.ReasonClosedByMerchant
	testenv.CheckMessages(t, s.Results(t, "payment_results"), testenv.ProcessingMessage(open), failed)

	paid, view := s.Checkout(t, "paid", 2000)
	s.SetFaults(sandbox.Faults{DropNotify: true})
	if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	got, err = s.Processor.Payments().CloseOrder(ctx, paid.ID)
	if err != nil || got.Status != pay.StatusSucceeded {
		t.Fatalf("close of a paid order = %s, %v; want succeeded", got.Status, err)
	}
	// Closing a final order changes nothing.
	if again, err := s.Processor.Payments().CloseOrder(ctx, open.ID); err != nil || again.Status != pay.StatusFailed || again.ResultSeq != 2 {
		t.Errorf("second close = %+v, %v; want the failed order unchanged", again, err)
	}
}

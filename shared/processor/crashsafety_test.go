package processor_test

// One test per finding of the crash-safety review (docs/DECISIONS.md, "An attempt's life"): each
// reproduces a window in which one invariant depended on several places agreeing, and fails when
// its fix is reverted.

import (
	"context"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
)

// Finding 1: the wind-down's query finds the cashier order paid, and the handling's deadline
// expires while the order's row is held by someone else, before the payment's consequence is
// written. The payment must not be half-recorded: the next pass finds it again and the order
// succeeds — it never fails with the payer charged and no review case.
func TestPaidAttemptIsRecordedWithItsConsequence(t *testing.T) {
	t.Parallel()
	// A 1.5 s lease cuts each handling off 150 ms before it ends.
	s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{Lease: 1500 * time.Millisecond, SweepGrace: time.Millisecond}})
	ctx := context.Background()
	o, view := s.Checkout(t, "o1", 3100)
	s.SetFaults(sandbox.Faults{DropNotify: true})
	if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	if err := s.Service.RequestWindDown(ctx, o.ID, pay.ReasonExpired); err != nil {
		t.Fatal(err)
	}
	held, err := s.Store.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback(context.Background()) //nolint:errcheck // released below; this is for a failing test
	if _, err := held.Exec(ctx, `SELECT 1 FROM payment_orders WHERE id = $1 FOR UPDATE`, o.ID); err != nil {
		t.Fatal(err)
	}
	// The task alone (maintenance would wait for the row too): close, query: paid; the payment's
	// consequence waits for the row until the handling's deadline.
	drainCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = s.Processor.Drain(drainCtx, 0)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if err := held.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if as := attempts(t, s, o.ID); as[0].State == pay.AttemptPaid {
		t.Fatalf("attempt %+v recorded paid without its consequence", as[0])
	}
	runUntil(t, s, "the order to be final", func() bool { return s.Order(t, "o1").Status != "processing" })
	s.RequireOrder(t, "o1", "succeeded", "")
	if as := attempts(t, s, o.ID); as[0].State != pay.AttemptPaid {
		t.Errorf("attempt %+v; want paid", as[0])
	}
}

// Finding 2: a merchant's close does not spend the processor's attempt budget. Eight closes
// during a Lakala outage, then one failure of the processor, used to stop the order in review
// with its cashier order open.
func TestMerchantCloseSpendsNoAttempt(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{MaxAttempts: 3, SweepGrace: time.Millisecond,
		BackoffBase: time.Millisecond, BackoffMax: time.Millisecond}})
	ctx := context.Background()
	o, view := s.Checkout(t, "o1", 900)
	s.SetFaults(sandbox.Faults{ErrorRate: 1})
	for range 8 {
		if got, err := s.Processor.Payments().CloseOrder(ctx, o.ID); err != nil || got.Status.Final() {
			t.Fatalf("close during the outage = %s, %v", got.Status, err)
		}
	}
	task, err := s.Store.TaskFor(ctx, postgres.TaskPayment, o.ID)
	if err != nil || task.Attempts != 0 || task.State != postgres.TaskQueued {
		t.Fatalf("task %+v (%v); want queued with no attempt spent by the closes", task, err)
	}
	s.SetFaults(sandbox.Faults{})
	runUntil(t, s, "the order to fail", func() bool { return s.Order(t, "o1").Status == "failed" })
	s.RequireOrder(t, "o1", "failed", pay.ReasonClosedByMerchant)
	if lo := ledgerOrder(t, s, view.OutOrderNo); !lo.Closed || lo.Payable {
		t.Errorf("cashier order %+v; want it closed", lo)
	}
}

// Finding 4: a second paid cashier order behind a succeeded order is a duplicate payment even
// when the report carries no trade number: payments are told apart by cashier order.
func TestDuplicatePaymentWithoutTradeNumber(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	o := s.PaySucceeded(t, "o1", 2500)
	second := pay.Attempt{PaymentOrderID: o.ID, No: 2, OutOrderNo: pay.AttemptOutOrderNo(o.ID, 2), State: pay.AttemptOpen,
		ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Second), Submissions: 1, SubmittedAt: time.Now(), CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := s.Store.NewAttempt(ctx, second); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"out_order_no":"` + second.OutOrderNo + `","merchant_no":"` + testenv.LakalaMerchantNo +
		`","order_status":"2","total_amount":2500}`)
	if code, answer := s.Notify(t, body, s.SignNotification(t, body, time.Now())); code != 200 {
		t.Fatalf("webhook = %d %s", code, answer)
	}
	cases, err := s.Store.OpenReviewCases(ctx, o.ID)
	if err != nil || len(cases) != 1 || cases[0].Kind != pay.ReviewDuplicatePayment {
		t.Fatalf("review cases %+v (%v); want one %s", cases, err, pay.ReviewDuplicatePayment)
	}
	// The payment the order succeeded with, reported again without a trade number, is not one.
	first := pay.AttemptOutOrderNo(o.ID, 1)
	body = []byte(`{"out_order_no":"` + first + `","merchant_no":"` + testenv.LakalaMerchantNo + `","order_status":"2","total_amount":2500}`)
	if code, answer := s.Notify(t, body, s.SignNotification(t, body, time.Now())); code != 200 {
		t.Fatalf("webhook = %d %s", code, answer)
	}
	if cases, _ := s.Store.OpenReviewCases(ctx, o.ID); len(cases) != 1 {
		t.Errorf("review cases %+v; the order's own payment opened one", cases)
	}
}

// Finding 5: a refund query that Lakala refuses says nothing of the refund. A refund whose only
// call never reached Lakala, and whose every query is refused, is sent again under its number
// (no reading of Lakala applies one number twice) instead of waiting for a query that never
// answers.
func TestRefusedRefundQueriesLeadToAResubmission(t *testing.T) {
	t.Parallel()
	for _, api := range []string{lakala.RefundAPIRfd, lakala.RefundAPILabs} {
		t.Run(api, func(t *testing.T) {
			t.Parallel()
			s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{SweepGrace: time.Millisecond, RefundAPI: api,
				VisibilityLag: time.Millisecond, MaxAttempts: 4, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond}})
			o := s.PaySucceeded(t, "o1", 5000)
			s.SetFaults(sandbox.Faults{ErrorRate: 1})
			r := s.CreateRefund(t, o.ID, 1200)
			s.RunOnce(t) // the call fails before Lakala applies it
			s.SetFaults(sandbox.Faults{RefundQueryRefusals: 1_000})
			if task := runUntilFinal(t, s, r.ID); task.State != postgres.TaskDone {
				t.Fatalf("task %+v; want done", task)
			}
			refundOutcome(t, s, o, r, "succeeded", 1200)
		})
	}
}

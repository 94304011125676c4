package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
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
)

// retryFast lets a retried task come back on the next run.
var retryFast = processor.Config{SweepGrace: time.Millisecond}

// runUntilFinal runs the processor until the refund's task is no longer queued.
func runUntilFinal(t *testing.T, s *testenv.Stack, refundID string) postgres.Task {
	t.Helper()
	var task postgres.Task
	testenv.Eventually(t, 15*time.Second, "the refund task to finish", func() bool {
		s.RunOnce(t)
		var err error
		task, err = s.Store.TaskFor(context.Background(), postgres.TaskRefund, refundID)
		return err == nil && task.State != postgres.TaskQueued
	})
	return task
}

// refundOutcome checks the order's refunded amount (succeeded still), the sandbox's count of the
// refund, and the refund's messages: pending→processing, then processing→want if final.
func refundOutcome(t *testing.T, s *testenv.Stack, order testenv.Order, r testenv.Refund, want string, wantRefunded int64) testenv.Refund {
	t.Helper()
	got := s.RequireRefund(t, r.ID, want)
	stored, err := s.Store.Refund(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	o := s.RequireOrder(t, order.MerchantOrderID, "succeeded", "")
	if o.RefundedAmount != wantRefunded {
		t.Errorf("order refunded_amount %d, want %d", o.RefundedAmount, wantRefunded)
	}
	wantCount := 0
	if wantRefunded > 0 {
		wantCount = 1
	}
	if n := s.Sandbox.RefundCount(stored.OutTradeNo); n != wantCount {
		t.Errorf("sandbox applied the refund %d times, want %d", n, wantCount)
	}
	if total := s.Sandbox.RefundedTotal(order.OutOrderNo()); total != wantRefunded {
		t.Errorf("sandbox refunded total %d, want %d", total, wantRefunded)
	}
	msgs := []map[string]string{testenv.RefundMessage(r, "pending", "processing")}
	switch want {
	case "succeeded":
		m := testenv.RefundMessage(r, "processing", "succeeded")
		m["gateway_refund_id"] = deref(got.GatewayRefundID)
		msgs = append(msgs, m)
		if got.GatewayRefundID == nil || !hasRefundTrade(s, order, *got.GatewayRefundID) {
			t.Errorf("gateway_refund_id %v is not the sandbox's refund trade_no", got.GatewayRefundID)
		}
	case "failed":
		m := testenv.RefundMessage(r, "processing", "failed")
		m["failure_reason"] = deref(got.FailureReason)
		msgs = append(msgs, m)
		if !strings.HasPrefix(deref(got.FailureReason), pay.ReasonRefundRejected) {
			t.Errorf("failure_reason %v, want %s…", got.FailureReason, pay.ReasonRefundRejected)
		}
	}
	testenv.CheckMessages(t, s.Results(t, "refund_results"), msgs...)
	// A refund never changes the payment's status: no payment message beyond the two of paying.
	if n := len(s.Results(t, "payment_results")); n != 2 {
		t.Errorf("%d payment_results messages, want 2", n)
	}
	return got
}

func hasRefundTrade(s *testenv.Stack, order testenv.Order, tradeNo string) bool {
	view, _ := s.Sandbox.Order(order.OutOrderNo())
	for _, r := range view.Refunds {
		if r.TradeNo == tradeNo {
			return true
		}
	}
	return false
}

func TestRefundSucceeds(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	o := s.PaySucceeded(t, "o1", 10000)
	r := s.CreateRefund(t, o.ID, 3000)
	if r.Status != "pending" {
		t.Fatalf("new refund status %q, want pending", r.Status)
	}
	s.RunOnce(t)
	refundOutcome(t, s, o, r, "succeeded", 3000)

	// The rest stays refundable, and no more.
	if code, body := s.CreateRefundRaw(t, o.ID, 7001); code != http.StatusBadRequest || !strings.Contains(string(body), "refund_exceeds_refundable") {
		t.Errorf("refund over the remainder = %d %s, want 400 refund_exceeds_refundable", code, body)
	}
}

// TestRefundOutcomes: whatever Lakala answers, the refund ends as the money did, and the money
// moves at most once.
func TestRefundOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		faults   sandbox.Faults
		timeout  time.Duration
		want     string
		refunded int64
		attempts int // the answer is known after the refund call and this many queries
	}{
		{"definite failure", sandbox.Faults{RefundFail: true}, 0, "failed", 0, 1},
		{"unknown, then success by query", sandbox.Faults{RefundUnknown: sandbox.RefundUnknownSuccess, RefundUnknownQueries: 2}, 0, "succeeded", 2000, 4},
		{"unknown, then failure by query", sandbox.Faults{RefundUnknown: sandbox.RefundUnknownFail, RefundUnknownQueries: 1}, 0, "failed", 0, 3},
		{"timeout after Lakala applied it", sandbox.Faults{RefundTimeoutAfterApply: true}, 300 * time.Millisecond, "succeeded", 2000, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := testenv.NewStack(t, testenv.StackOptions{Processor: retryFast, LakalaTimeout: tt.timeout})
			o := s.PaySucceeded(t, "o1", 5000)
			s.SetFaults(tt.faults)
			r := s.CreateRefund(t, o.ID, 2000)
			if task := runUntilFinal(t, s, r.ID); task.State != postgres.TaskDone || task.Attempts != tt.attempts {
				t.Fatalf("task %+v, want done after %d attempts", task, tt.attempts)
			}
			refundOutcome(t, s, o, r, tt.want, tt.refunded)
		})
	}
}

// markProcessing does what the processor does before calling Lakala — the refund processing and
// its call counted, in one commit — as a run that crashes right after would leave it.
func markProcessing(t *testing.T, s *testenv.Stack, id string) pay.Refund {
	t.Helper()
	ctx := context.Background()
	var r pay.Refund
	events, err := s.Store.InTx(ctx, func(tx *postgres.Tx) error {
		var err error
		if r, err = tx.LockRefund(ctx, id); err != nil {
			return err
		}
		if err := r.MoveTo(pay.StatusProcessing, time.Now()); err != nil {
			return err
		}
		// Its call was counted well before the crash: longer ago than Lakala takes to show a refund.
		r.Submissions, r.RefundAPI = 1, lakala.RefundAPIRfd
		sent := time.Now().Add(-time.Hour)
		r.SubmittedAt = &sent
		return tx.SaveRefund(ctx, &r, pay.StatusPending)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Service.PublishEvents(ctx, events)
	return r
}

// TestRefundAfterCrash: a run that died after marking the refund processing, before or after
// calling Lakala, is followed by exactly one refund at Lakala.
func TestRefundAfterCrash(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		calledLakala bool
	}{
		{"before the gateway call", false},
		{"after the gateway call", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := testenv.NewStack(t, testenv.StackOptions{})
			ctx := context.Background()
			o := s.PaySucceeded(t, "o1", 5000)
			r := s.CreateRefund(t, o.ID, 1500)
			stored := markProcessing(t, s, r.ID)
			var lakalaRefund lakala.RefundAnswer
			if tt.calledLakala {
				view, _ := s.Sandbox.Order(o.OutOrderNo())
				var err error
				lakalaRefund, err = s.Lakala.Refund(ctx, lakala.RefundRequest{
					API: lakala.RefundAPIRfd, OutTradeNo: stored.OutTradeNo, Amount: stored.Amount, Reason: "test refund", RequestIP: "127.0.0.1",
					OriginOutTradeNo: o.OutOrderNo(), OriginTradeNo: view.Trades[0].TradeNo, OriginLogNo: view.Trades[0].LogNo,
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if task := runUntilFinal(t, s, r.ID); task.State != postgres.TaskDone || task.Attempts != 1 {
				t.Fatalf("task %+v, want done at the first attempt", task)
			}
			got := refundOutcome(t, s, o, r, "succeeded", 1500)
			if tt.calledLakala && deref(got.GatewayRefundID) != lakalaRefund.TradeNo {
				t.Errorf("gateway_refund_id %v, want the crashed call's %s", got.GatewayRefundID, lakalaRefund.TradeNo)
			}
		})
	}
}

// TestRefundNeedsReview: a refund whose outcome stays unknown through every attempt is neither
// failed nor sent again; it is flagged for a person.
func TestRefundNeedsReview(t *testing.T) {
	t.Parallel()
	cfg := retryFast
	cfg.MaxAttempts = 3
	s := testenv.NewStack(t, testenv.StackOptions{Processor: cfg})
	o := s.PaySucceeded(t, "o1", 5000)
	s.SetFaults(sandbox.Faults{RefundUnknown: sandbox.RefundUnknownSuccess, RefundUnknownQueries: 1000})
	r := s.CreateRefund(t, o.ID, 2500)
	task := runUntilFinal(t, s, r.ID)
	if task.State != postgres.TaskReview || task.Attempts != 3 {
		t.Fatalf("task %+v, want review after 3 attempts", task)
	}
	got := s.RequireRefund(t, r.ID, "processing")
	if got.ExtraData["review_required"] != true {
		t.Errorf("extra_data %v, want review_required true", got.ExtraData)
	}
	stored, err := s.Store.Refund(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Sandbox.RefundCount(stored.OutTradeNo); n != 1 {
		t.Errorf("sandbox applied the refund %d times, want once", n)
	}
	testenv.CheckMessages(t, s.Results(t, "refund_results"), testenv.RefundMessage(r, "pending", "processing"))
	// Later runs leave it to the person.
	s.RunOnce(t)
	s.RequireRefund(t, r.ID, "processing")
}

// TestConcurrentRefundsCannotOverdraw: twenty concurrent refunds of a tenth each: ten are
// taken, ten refused, and Lakala refunds exactly the payment.
func TestConcurrentRefundsCannotOverdraw(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	o := s.PaySucceeded(t, "o1", 10000)

	type answer struct {
		code int
		body string
		err  error
	}
	answers := make([]answer, 20)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"app_id":%q,"payment_order_id":%q,"amount":1000}`, s.AppID, o.ID)
			req, err := http.NewRequest(http.MethodPost, s.API.URL+"/api/v1/refund-orders", strings.NewReader(body))
			if err != nil {
				answers[i].err = err
				return
			}
			req.Header.Set("Authorization", "Bearer "+s.APIKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			var e struct {
				Code string `json:"code"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&e)
			answers[i] = answer{code: resp.StatusCode, body: e.Code}
		}()
	}
	wg.Wait()
	accepted := 0
	for _, a := range answers {
		switch {
		case a.err != nil:
			t.Fatal(a.err)
		case a.code == http.StatusAccepted:
			accepted++
		case a.code != http.StatusBadRequest || a.body != pay.CodeRefundExceeds:
			t.Errorf("refund answered %d %s, want 202 or 400 %s", a.code, a.body, pay.CodeRefundExceeds)
		}
	}
	if accepted != 10 {
		t.Fatalf("%d refunds accepted, want 10", accepted)
	}
	s.RunOnce(t)
	if total := s.Sandbox.RefundedTotal(o.OutOrderNo()); total != 10000 {
		t.Errorf("sandbox refunded %d, want 10000", total)
	}
	if got := s.RequireOrder(t, "o1", "succeeded", ""); got.RefundedAmount != 10000 {
		t.Errorf("refunded_amount %d, want 10000", got.RefundedAmount)
	}
	succeeded := 0
	for _, m := range s.Results(t, "refund_results") {
		if m["new_status"] == "succeeded" {
			succeeded++
		}
	}
	if succeeded != 10 {
		t.Errorf("%d refunds succeeded, want 10", succeeded)
	}
}

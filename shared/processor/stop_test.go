package processor_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
	"github.com/loomipay/loomipay/shared/streams"
)

// stopConfig is the processor of the stop tests: a consumer name of its own, so that the test
// can tell whether the run removed it, and a visibility lag longer than the sandbox's latency but
// short enough for a test. The sandbox applies a call whose caller gave up once its latency is
// over (as Lakala may apply a call cut after it was sent): a create cut short by a stop may still
// create its cashier order, seconds later, and the next run must not take it for never created.
var stopConfig = processor.Config{Consumer: "stopping-run", VisibilityLag: 10 * time.Second}

// startStoppable runs the stack's processor with a graceful stop; close the channel to stop it.
func startStoppable(t *testing.T, s *testenv.Stack, grace time.Duration) (stop chan struct{}, result <-chan runResult) {
	t.Helper()
	stop = make(chan struct{})
	done := make(chan runResult, 1)
	go func() {
		st, err := s.Processor.RunUntil(context.Background(), stop, grace)
		done <- runResult{st, err}
	}()
	return stop, done
}

type runResult struct {
	stats processor.Stats
	err   error
}

func waitRun(t *testing.T, done <-chan runResult) runResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not end within 30 s of the stop")
		return runResult{}
	}
}

// waitCreating waits until every order has a cashier order whose create call has been sent and
// not answered: its task is claimed and in the middle of its Lakala call.
func waitCreating(t *testing.T, s *testenv.Stack, orders ...testenv.Order) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, "every order's create call to be under way", func() bool {
		for _, o := range orders {
			as := attempts(t, s, o.ID)
			if len(as) != 1 || as[0].State != pay.AttemptCreating || as[0].Submissions != 1 {
				return false
			}
		}
		return true
	})
}

// nextRun is another worker, with a consumer name of its own. Its retries are spaced (and
// plentiful) enough to outlast the visibility lag: the test's usual millisecond backoff would
// spend every attempt while the cut cashier order may still appear.
func nextRun(s *testenv.Stack) *processor.Processor {
	return processor.New(s.Service, s.Merchants, processor.Config{Consumer: "next-run", NotifyURL: s.API.URL + "/webhooks/lakala",
		VisibilityLag: stopConfig.VisibilityLag, MaxAttempts: 20, BackoffBase: 500 * time.Millisecond, BackoffMax: 2 * time.Second})
}

func consumers(t *testing.T, s *testenv.Stack) []string {
	t.Helper()
	list, err := s.Streams.Consumers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Name)
	}
	return names
}

func pendingCount(t *testing.T, s *testenv.Stack) int64 {
	t.Helper()
	p, err := s.Streams.Client().XPending(context.Background(), s.Streams.Name(streams.TaskStream), s.Streams.Group()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

// TestGracefulStopFinishesTasksInFlight: tasks whose Lakala calls are under way when the stop
// comes are finished — their cashier orders answered and recorded — while a task added after the
// stop is not claimed and waits on the stream for the next worker; the run leaves no consumer
// behind and reports no error.
func TestGracefulStopFinishesTasksInFlight(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{Processor: stopConfig, LakalaTimeout: 15 * time.Second})
	ctx := context.Background()
	s.SetFaults(sandbox.Faults{Latency: 4 * time.Second}) // each create call takes 4 s
	var inFlight []testenv.Order
	for _, id := range []string{"o1", "o2", "o3"} {
		inFlight = append(inFlight, s.CreateOrder(t, id, 1000))
	}
	stop, done := startStoppable(t, s, 30*time.Second)
	waitCreating(t, s, inFlight...)

	close(stop)
	late := s.CreateOrder(t, "late", 2000) // its task is on the stream from now on
	res := waitRun(t, done)
	if res.err != nil {
		t.Fatalf("the run ended with %v; want a graceful stop (nil)", res.err)
	}
	if res.stats.Handled != len(inFlight) {
		t.Errorf("the run handled %d task messages; want the %d in flight", res.stats.Handled, len(inFlight))
	}

	for _, o := range inFlight {
		got := s.RequireOrder(t, o.MerchantOrderID, "processing", "")
		as := attempts(t, s, o.ID)
		if len(as) != 1 || as[0].State != pay.AttemptOpen || as[0].CounterURL == "" || as[0].LastError != "" {
			t.Errorf("order %s: attempts %+v; want one, answered (open, with its counter URL)", o.MerchantOrderID, as)
			continue
		}
		if got.ExtraData["payment_url"] != as[0].CounterURL {
			t.Errorf("order %s: payment_url %v; want the cashier order's %s", o.MerchantOrderID, got.ExtraData["payment_url"], as[0].CounterURL)
		}
		if view, ok := s.Sandbox.Order(o.OutOrderNo()); !ok || view.CounterURL != as[0].CounterURL {
			t.Errorf("order %s: the sandbox has %+v (found %v); want the cashier order recorded", o.MerchantOrderID, view, ok)
		}
		task, err := s.Store.TaskFor(ctx, postgres.TaskPayment, o.ID)
		if err != nil || task.State != postgres.TaskDone || task.Attempts != 1 {
			t.Errorf("order %s: task %+v (err %v); want done after one attempt", o.MerchantOrderID, task, err)
		}
	}

	// The late task was claimed by nobody: no attempt counted, no cashier order.
	task, err := s.Store.TaskFor(ctx, postgres.TaskPayment, late.ID)
	if err != nil || task.State != postgres.TaskQueued || task.Attempts != 0 {
		t.Fatalf("late task %+v (err %v); want queued and never attempted", task, err)
	}
	s.RequireOrder(t, "late", "pending", "")
	if as := attempts(t, s, late.ID); len(as) != 0 {
		t.Fatalf("late order has cashier orders %+v; want none", as)
	}
	if names := consumers(t, s); slices.Contains(names, stopConfig.Consumer) {
		t.Errorf("consumers after the stop = %v; want %q removed", names, stopConfig.Consumer)
	}
	if n := pendingCount(t, s); n != 0 {
		t.Errorf("%d messages pending in the group after the stop; want none", n)
	}

	// The next worker reads the late task as a new message (no reclaim, no sweep) and does it.
	s.SetFaults(sandbox.Faults{})
	st, err := nextRun(s).Drain(ctx, 0)
	if err != nil || st.Handled != 1 || st.Reclaimed != 0 {
		t.Fatalf("next worker's drain: %+v, %v; want the late task read and handled", st, err)
	}
	s.RequireOrder(t, "late", "processing", "")
}

// TestStopGraceRunsOut: a handling longer than the grace is cancelled when the grace runs out; the
// run says so (ErrStopCut), puts the task back due at once and leaves no consumer behind, and the
// next worker settles the cut create call (closes its cashier order if the sandbox created it
// after all) and takes the order to a payable cashier order, paid.
func TestStopGraceRunsOut(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{Processor: stopConfig, LakalaTimeout: 15 * time.Second})
	ctx := context.Background()
	s.SetFaults(sandbox.Faults{Latency: 3 * time.Second})
	o := s.CreateOrder(t, "o1", 3000)
	stop, done := startStoppable(t, s, 300*time.Millisecond)
	waitCreating(t, s, o)

	close(stop)
	res := waitRun(t, done)
	if !errors.Is(res.err, processor.ErrStopCut) {
		t.Fatalf("the run ended with %v; want ErrStopCut (the grace ran out)", res.err)
	}
	task, err := s.Store.TaskFor(ctx, postgres.TaskPayment, o.ID)
	if err != nil || task.State != postgres.TaskQueued || task.Attempts != 1 || !strings.HasPrefix(task.LastError, "interrupted") {
		t.Fatalf("task %+v (err %v); want queued again after its one interrupted attempt", task, err)
	}
	var due bool
	if err := s.Store.Pool().QueryRow(ctx, `SELECT leased_until IS NULL AND next_attempt_at <= now() FROM tasks WHERE id = $1`, task.ID).Scan(&due); err != nil || !due {
		t.Fatalf("task due again: %v (err %v); want its lease released and due at once", due, err)
	}
	s.RequireOrder(t, "o1", "pending", "")
	if names := consumers(t, s); slices.Contains(names, stopConfig.Consumer) {
		t.Errorf("consumers after the stop = %v; want %q removed", names, stopConfig.Consumer)
	}
	if n := pendingCount(t, s); n != 0 {
		t.Errorf("%d messages pending in the group after the stop; want none", n)
	}

	s.SetFaults(sandbox.Faults{})
	next := nextRun(s)
	testenv.Eventually(t, 30*time.Second, "the next worker to take the order to processing", func() bool {
		testenv.RunOnce(t, next)
		return s.Order(t, "o1").Status == "processing"
	})
	requireSettledAfterCut(t, s, o)
}

// requireSettledAfterCut checks how an order whose first create call a stop cut short ends: that
// cashier order settled — closed if the sandbox created it after all, else found never created —
// and a second one open, payable, and paid.
func requireSettledAfterCut(t *testing.T, s *testenv.Stack, o testenv.Order) {
	t.Helper()
	as := attempts(t, s, o.ID)
	if len(as) != 2 || (as[0].State != pay.AttemptClosed && as[0].State != pay.AttemptAbsent) || as[1].State != pay.AttemptOpen {
		t.Fatalf("attempts %+v; want the cut one closed or absent and a second one open", as)
	}
	for _, lo := range s.Sandbox.Ledger().Orders {
		if lo.OutOrderNo == as[0].OutOrderNo && lo.Payable {
			t.Errorf("the cut create's cashier order is payable: %+v", lo)
		}
	}
	if second := ledgerOrder(t, s, as[1].OutOrderNo); !second.Payable {
		t.Fatalf("second cashier order %+v; want it payable", second)
	}
	if got := s.Order(t, o.MerchantOrderID); got.ExtraData["payment_url"] != as[1].CounterURL {
		t.Errorf("payment_url %v; want the second cashier order's %s", got.ExtraData["payment_url"], as[1].CounterURL)
	}
	view, _ := s.Sandbox.Order(as[1].OutOrderNo)
	if err := s.Sandbox.Pay(context.Background(), view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	s.RequireOrder(t, o.MerchantOrderID, "succeeded", "")
}

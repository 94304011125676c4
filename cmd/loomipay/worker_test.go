//go:build unix

package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/lambdaemu"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
)

// binDir holds the loomipay binary the worker tests build; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// The real `loomipay worker`, built once per test binary, stopped with real signals.
var workerBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "loomipay-worker-test")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "loomipay")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", errors.New("go build: " + err.Error() + "\n" + string(out))
	}
	return bin, nil
})

// workerProcess is a `loomipay worker` process with its output (the command's log on stderr,
// the processor's on stdout) in one buffer.
type workerProcess struct {
	cmd    *exec.Cmd
	out    lambdaemu.LockedBuffer
	exited chan struct{}
	err    error // Wait's; read once exited is closed
}

// startWorker starts the binary against the stack: its database schema, stream prefix, sandbox
// and webhook, configured only by environment variables (extra ones last).
func startWorker(t *testing.T, s *testenv.Stack, extra ...string) *workerProcess {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the loomipay binary; skipped with -short")
	}
	bin, err := workerBinary()
	if err != nil {
		t.Fatal(err)
	}
	w := &workerProcess{cmd: exec.Command(bin, "worker"), exited: make(chan struct{})}
	w.cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + testenv.SchemaURL(s.Schema),
		"REDIS_URL=" + testenv.RedisURL(),
		"STREAM_PREFIX=" + s.Streams.Name(""),
		"LAKALA_BASE_URL=" + s.SandboxURL,
		"LAKALA_APP_ID=" + testenv.LakalaAppID,
		"LAKALA_SERIAL_NO=" + testenv.LakalaSerialNo,
		"LAKALA_MERCHANT_NO=" + testenv.LakalaMerchantNo,
		"LAKALA_TERM_NO=" + testenv.LakalaTermNo,
		"LAKALA_VPOS_ID=" + testenv.LakalaVposID,
		"LAKALA_PLATFORM_CERT=" + string(s.Sandbox.PlatformCertPEM()),
		"LAKALA_PRIVATE_KEY=" + string(lakala.MarshalPrivateKeyPEM(s.MerchantKey)),
		"LAKALA_NOTIFY_URL=" + s.API.URL + "/webhooks/lakala",
	}, extra...)
	w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.out
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		w.err = w.cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-w.exited:
		default:
			_ = w.cmd.Process.Kill()
			<-w.exited
		}
		if t.Failed() {
			t.Logf("loomipay worker output:\n%s", w.out.String())
		}
	})
	w.waitFor(t, "processor running")
	return w
}

func (w *workerProcess) waitFor(t *testing.T, text string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "the worker to log "+text, func() bool { return strings.Contains(w.out.String(), text) })
}

func (w *workerProcess) signal(t *testing.T) {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the process to exit and returns its exit status.
func (w *workerProcess) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-w.exited:
	case <-time.After(within):
		t.Fatalf("the worker did not exit within %s", within)
	}
	var exit *exec.ExitError
	switch {
	case w.err == nil:
		return 0
	case errors.As(w.err, &exit) && exit.ExitCode() >= 0:
		return exit.ExitCode()
	default:
		t.Fatalf("the worker ended with %v", w.err)
		return -1
	}
}

// waitCreating waits until the order's create call is under way: its task claimed, its cashier
// order recorded as being created.
func waitCreating(t *testing.T, s *testenv.Stack, orders ...testenv.Order) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "the create calls to be under way", func() bool {
		for _, o := range orders {
			as, err := s.Store.Attempts(context.Background(), o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(as) != 1 || as[0].State != pay.AttemptCreating || as[0].Submissions != 1 {
				return false
			}
		}
		return true
	})
}

func groupState(t *testing.T, s *testenv.Stack) (consumers []string, pending int64) {
	t.Helper()
	list, err := s.Streams.Consumers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		consumers = append(consumers, c.Name)
		pending += c.Pending
	}
	return consumers, pending
}

// TestWorkerStopsGracefullyOnSIGTERM: SIGTERM while Lakala calls are under way. The worker
// finishes them (the cashier URLs recorded), claims nothing after the signal (a task added then
// stays on the stream for the next worker), removes its consumer and exits 0.
func TestWorkerStopsGracefullyOnSIGTERM(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	s.SetFaults(sandbox.Faults{Latency: 4 * time.Second})
	w := startWorker(t, s, "LAKALA_TIMEOUT=15s", "WORKER_STOP_GRACE=60s")
	var inFlight []testenv.Order
	for _, id := range []string{"o1", "o2", "o3"} {
		inFlight = append(inFlight, s.CreateOrder(t, id, 1000))
	}
	waitCreating(t, s, inFlight...)
	if consumers, pending := groupState(t, s); len(consumers) != 1 || pending != int64(len(inFlight)) {
		t.Fatalf("consumers %v holding %d messages; want the worker's one holding the %d in flight", consumers, pending, len(inFlight))
	}

	w.signal(t)
	w.waitFor(t, "stop requested")
	late := s.CreateOrder(t, "late", 2000)
	if code := w.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d; want 0 (every task in flight finished)", code)
	}
	if out := w.out.String(); !strings.Contains(out, "stopped gracefully") || !strings.Contains(out, `"finished":3`) {
		t.Errorf("the worker's log does not say that the 3 tasks in flight finished:\n%s", out)
	}

	for _, o := range inFlight {
		got := s.RequireOrder(t, o.MerchantOrderID, "processing", "")
		as, err := s.Store.Attempts(ctx, o.ID)
		if err != nil || len(as) != 1 || as[0].State != pay.AttemptOpen || as[0].CounterURL == "" {
			t.Errorf("order %s: attempts %+v (err %v); want one, answered, with its counter URL", o.MerchantOrderID, as, err)
			continue
		}
		if got.ExtraData["payment_url"] != as[0].CounterURL {
			t.Errorf("order %s: payment_url %v; want %s", o.MerchantOrderID, got.ExtraData["payment_url"], as[0].CounterURL)
		}
	}
	task, err := s.Store.TaskFor(ctx, postgres.TaskPayment, late.ID)
	if err != nil || task.State != postgres.TaskQueued || task.Attempts != 0 {
		t.Fatalf("late task %+v (err %v); want queued, never claimed", task, err)
	}
	if consumers, pending := groupState(t, s); len(consumers) != 0 || pending != 0 {
		t.Errorf("after the stop: consumers %v holding %d messages; want none", consumers, pending)
	}
	// The next worker reads the late task off the stream as a new message.
	s.SetFaults(sandbox.Faults{})
	if st, err := s.Processor.Drain(ctx, 0); err != nil || st.Handled != 1 {
		t.Fatalf("next worker's drain: %+v, %v; want the late task read and handled", st, err)
	}
	s.RequireOrder(t, "late", "processing", "")
}

// nextWorker is the stack's processor as the worker after the stopped one. The sandbox applies a
// call whose caller gave up once its latency is over (as Lakala may apply a call cut after it was
// sent), so a create cut short by the stop may still create its cashier order seconds later: the
// visibility lag outlasts the latency, and the retries are spaced (and plentiful) enough to
// outlast the visibility lag.
var nextWorker = processor.Config{VisibilityLag: 10 * time.Second, MaxAttempts: 20, BackoffBase: 500 * time.Millisecond, BackoffMax: 2 * time.Second}

// TestWorkerStopGraceRunsOut: a Lakala call longer than WORKER_STOP_GRACE is cancelled when the
// grace runs out; the worker says so, exits non-zero, and leaves the task due at once for the
// next worker, which settles the cut call and ends the order correctly.
func TestWorkerStopGraceRunsOut(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{Processor: nextWorker})
	s.SetFaults(sandbox.Faults{Latency: 3 * time.Second})
	w := startWorker(t, s, "LAKALA_TIMEOUT=15s", "WORKER_STOP_GRACE=500ms")
	o := s.CreateOrder(t, "o1", 3000)
	waitCreating(t, s, o)

	w.signal(t)
	if code := w.wait(t, 30*time.Second); code == 0 {
		t.Fatal("exit status 0; want non-zero (the stop cancelled work in flight)")
	}
	if out := w.out.String(); !strings.Contains(out, "grace ran out") {
		t.Errorf("the worker's log does not say the grace ran out:\n%s", out)
	}
	requireRequeued(t, s, o)

	s.SetFaults(sandbox.Faults{})
	testenv.Eventually(t, 30*time.Second, "the next worker to take the order to processing", func() bool {
		s.RunOnce(t)
		return s.Order(t, o.MerchantOrderID).Status == "processing"
	})
	ctx := context.Background()
	as, err := s.Store.Attempts(ctx, o.ID)
	if err != nil || len(as) != 2 || (as[0].State != pay.AttemptClosed && as[0].State != pay.AttemptAbsent) || as[1].State != pay.AttemptOpen {
		t.Fatalf("attempts %+v (err %v); want the cut one closed or absent and a second one open", as, err)
	}
	for _, lo := range s.Sandbox.Ledger().Orders {
		if lo.OutOrderNo == as[0].OutOrderNo && lo.Payable {
			t.Errorf("the cut create's cashier order is payable: %+v", lo)
		}
	}
	view, ok := s.Sandbox.Order(as[1].OutOrderNo)
	if !ok {
		t.Fatalf("the second cashier order %s is not at the sandbox", as[1].OutOrderNo)
	}
	if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	s.RequireOrder(t, o.MerchantOrderID, "succeeded", "")
}

// TestWorkerSecondSignalStopsAtOnce: a second SIGTERM during the graceful stop cancels the work
// in flight without waiting for the grace: the worker exits non-zero and the task is due again.
// (Were the second signal ignored, the call would end by itself and the worker exit 0.)
func TestWorkerSecondSignalStopsAtOnce(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.SetFaults(sandbox.Faults{Latency: 8 * time.Second})
	w := startWorker(t, s, "LAKALA_TIMEOUT=15s", "WORKER_STOP_GRACE=2m")
	o := s.CreateOrder(t, "o1", 3000)
	waitCreating(t, s, o)

	w.signal(t)
	w.waitFor(t, "stop requested")
	w.signal(t)
	if code := w.wait(t, 30*time.Second); code == 0 {
		t.Fatal("exit status 0; want non-zero (the second signal cancelled work in flight)")
	}
	if out := w.out.String(); !strings.Contains(out, "second signal") || !strings.Contains(out, "stop forced") {
		t.Errorf("the worker's log does not say the second signal forced the stop:\n%s", out)
	}
	requireRequeued(t, s, o)
}

// requireRequeued checks that a stop cut the order's create call short and put its task back due
// at once, with no consumer left behind.
func requireRequeued(t *testing.T, s *testenv.Stack, o testenv.Order) {
	t.Helper()
	ctx := context.Background()
	task, err := s.Store.TaskFor(ctx, postgres.TaskPayment, o.ID)
	if err != nil || task.State != postgres.TaskQueued || task.Attempts != 1 || !strings.HasPrefix(task.LastError, "interrupted") {
		t.Fatalf("task %+v (err %v); want queued again after one interrupted attempt", task, err)
	}
	var due bool
	if err := s.Store.Pool().QueryRow(ctx, `SELECT leased_until IS NULL AND next_attempt_at <= now() FROM tasks WHERE id = $1`, task.ID).Scan(&due); err != nil || !due {
		t.Fatalf("task due again = %v (err %v); want its lease released and due at once", due, err)
	}
	s.RequireOrder(t, o.MerchantOrderID, "pending", "")
	if consumers, pending := groupState(t, s); len(consumers) != 0 || pending != 0 {
		t.Errorf("after the stop: consumers %v holding %d messages; want none", consumers, pending)
	}
}

//go:build crashpoints

// Package crashpoints enumerates every crash point of the money path (shared/crash) in every flow
// that meets it — create, pay, a failed try then pay, expiry, a merchant's close, a payment after
// the close, partial and concurrent refunds, lost answers and notifications, a review resolution —
// and for each point both ways a process meets its end there: it dies on the spot, or its
// deadline expires there and it carries on with a dead context. Each case runs the whole stack
// (real PostgreSQL, Redis, the pessimistic sandbox) to quiescence and checks the invariants of
// the ledger-agreement suite (internal/ledgercheck).
//
//	make crashpoints                                             (every case)
//	make crashpoints CRASH_FLAGS='-sample 40 -seed 7'             (a seeded sample; make test runs one)
//	make crashpoints CRASH_FLAGS='-point lakala.refund.answered'  (one point's cases)
package crashpoints

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/ledgercheck"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/crash"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
	"github.com/loomipay/loomipay/shared/service"
)

var (
	onlyPoint = flag.String("point", "", "run only the cases of this crash point")
	sample    = flag.Int("sample", 0, "run a seeded sample of this many cases (0: every case)")
	seed      = flag.Uint64("seed", 0, "the sample's seed (0: from the clock; a failing run prints it)")
)

// flow is one way an order goes through the money path, driven as a main app, a payer and an
// operator would drive it. It returns once its own actions are done; the harness then waits for
// quiescence.
type flow struct {
	name   string
	faults sandbox.Faults
	ttl    time.Duration // ORDER_TTL; long unless the flow is about expiry
	drive  func(h *harness)
}

var flows = []flow{
	{name: "pay", drive: func(h *harness) {
		o := h.createOrder("o1", 1000)
		h.pay(h.paymentURL(o))
	}},
	{name: "failed try, then pay", drive: func(h *harness) {
		o := h.createOrder("o1", 1100)
		url := h.paymentURL(o)
		h.failPayment(url)
		time.Sleep(50 * time.Millisecond)
		h.pay(url)
	}},
	{name: "expire", ttl: 2 * time.Second, drive: func(h *harness) {
		h.paymentURL(h.createOrder("o1", 1200))
	}},
	{name: "merchant close", drive: func(h *harness) {
		h.paymentURL(h.createOrder("o1", 1300))
		h.close("o1")
	}},
	{name: "payment after close", faults: sandbox.Faults{PayAfterClose: true}, drive: func(h *harness) {
		url := h.paymentURL(h.createOrder("o1", 1400))
		h.close("o1")
		h.waitFinal("o1")
		h.pay(url)
	}},
	{name: "partial and concurrent refunds", drive: func(h *harness) {
		o := h.createOrder("o1", 5000)
		h.pay(h.paymentURL(o))
		if h.waitFinal("o1") != "succeeded" {
			return
		}
		var wg sync.WaitGroup
		wg.Go(func() { h.refund(o, "r1", 1000) })
		wg.Go(func() { h.refund(o, "r2", 1500) })
		wg.Wait()
		h.refund(o, "r3", 2500)
	}},
	{name: "lost answers and notifications", faults: sandbox.Faults{LostAnswerRate: 0.5, DropNotify: true, Seed: 7}, drive: func(h *harness) {
		o := h.createOrder("o1", 1600)
		h.pay(h.paymentURL(o))
		if h.waitFinal("o1") == "succeeded" {
			h.refund(o, "r1", 600)
		}
	}},
	{name: "network codes on applied calls", faults: sandbox.Faults{NetworkCodeRate: 0.5, Seed: 11}, drive: func(h *harness) {
		o := h.createOrder("o1", 1700)
		h.pay(h.paymentURL(o))
		if h.waitFinal("o1") == "succeeded" {
			h.refund(o, "r1", 700)
		}
	}},
	{name: "another merchant's notification", faults: sandbox.Faults{ForeignNotifyRate: 1}, drive: func(h *harness) {
		h.pay(h.paymentURL(h.createOrder("o1", 1800)))
	}},
	{name: "review resolution", drive: func(h *harness) {
		o := h.createOrder("o1", 1900)
		h.paymentURL(o)
		h.resolveAsUnpaid(o)
	}},
}

// TestEveryCrashPoint runs every case: each flow once without a crash, to learn the points it
// meets, then once per point met and way to meet it. A point no flow meets fails the test.
func TestEveryCrashPoint(t *testing.T) {
	type tc struct {
		flow  flow
		point crash.Point
		mode  crash.Mode
	}
	var cases []tc
	met := map[crash.Point]bool{}
	var mu sync.Mutex
	t.Run("probe", func(t *testing.T) {
		for _, f := range flows {
			t.Run(f.name, func(t *testing.T) {
				t.Parallel()
				plan := &crash.Plan{}
				run(t, f, plan)
				mu.Lock()
				defer mu.Unlock()
				for p := range plan.Met() {
					met[p] = true
					for _, m := range []crash.Mode{crash.Die, crash.Deadline} {
						cases = append(cases, tc{f, p, m})
					}
				}
			})
		}
	})
	if t.Failed() {
		t.Fatal("a flow fails without any crash")
	}
	for _, p := range crash.All {
		if !met[p] {
			t.Errorf("crash point %s has no case: no flow meets it (add one to flows)", p)
		}
	}
	slices.SortFunc(cases, func(a, b tc) int {
		return strings.Compare(fmt.Sprint(a.flow.name, a.point, a.mode), fmt.Sprint(b.flow.name, b.point, b.mode))
	})
	if *onlyPoint != "" {
		cases = slices.DeleteFunc(cases, func(c tc) bool { return string(c.point) != *onlyPoint })
	}
	total := len(cases)
	if *sample > 0 && *sample < len(cases) {
		s := *seed
		if s == 0 {
			s = uint64(time.Now().UnixNano())
		}
		t.Logf("a sample of %d of the %d cases, seed %d (re-run: make crashpoints CRASH_FLAGS='-sample %d -seed %d')", *sample, len(cases), s, *sample, s)
		r := rand.New(rand.NewPCG(s, s))
		r.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
		cases = cases[:*sample]
	}
	t.Logf("%d crash points, %d met by %d flows; %d cases (%d run)", len(crash.All), len(met), len(flows), total, len(cases))
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s/%s", c.flow.name, c.point, c.mode), func(t *testing.T) {
			t.Parallel()
			plan := &crash.Plan{Point: c.point, Nth: 1, Mode: c.mode}
			run(t, c.flow, plan)
			if !plan.Triggered() {
				// The flow met the point in its probe but not this time (a race it does not always
				// win): nothing crashed, and the invariants held all the same.
				t.Logf("the point was not met this time")
			}
		})
	}
}

const quiescence = 30 * time.Second

// run drives a flow on a stack of its own under plan, with processors that restart when one
// dies, until nothing is left to happen, and checks the ledger invariants.
func run(t *testing.T, f flow, plan *crash.Plan) {
	ttl := f.ttl
	if ttl == 0 {
		ttl = time.Minute
	}
	cfg := processor.Config{
		Lease: time.Second, VisibilityLag: 100 * time.Millisecond,
		ReconcileAfter: 200 * time.Millisecond, MaintenanceEvery: 50 * time.Millisecond, ReadBlock: 20 * time.Millisecond,
		BackoffBase: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond, MaxAttempts: 30,
		SweepGrace: 10 * time.Millisecond, SweepStale: time.Second, Concurrency: 4,
	}
	st := testenv.NewStack(t, testenv.StackOptions{Processor: cfg, Service: service.Config{OrderTTL: ttl}, LakalaTimeout: 300 * time.Millisecond,
		WrapAPI: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx, release := crash.Arm(r.Context(), plan)
				defer release()
				h.ServeHTTP(w, r.WithContext(ctx))
			})
		}})
	st.SetFaults(f.faults)
	o := ops.New(st.Service).WithPayments(st.Processor.Payments())
	o.ResolutionLease = 2 * time.Second // a console that dies mid-resolution holds the order this long
	h := &harness{t: t, st: st, plan: plan, ops: o}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { h.processors(ctx, cfg) })

	driveCtx, cancel := context.WithTimeout(ctx, quiescence)
	h.ctx = driveCtx
	f.drive(h)
	cancel()
	since := time.Now()
	deadline := since.Add(quiescence)
	why := "not checked"
	for time.Now().Before(deadline) {
		wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		busy := st.Sandbox.WaitNotifications(wctx) != nil
		wcancel()
		if why = ledgercheck.Unsettled(t, st, since); why == "" && !busy {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if why != "" {
		t.Fatalf("no quiescence after %s: %s", quiescence, why)
	}
	for _, line := range ledgercheck.Check(t, st) {
		t.Log(line)
	}
}

// harness drives a flow as its actors would, through the stack's real HTTP API.
type harness struct {
	t    *testing.T
	st   *testenv.Stack
	plan *crash.Plan
	ops  *ops.Ops
	ctx  context.Context
}

// processors runs one processor at a time, each a process armed with the plan: one that dies is
// replaced, as the schedule or a container platform replaces a killed one.
func (h *harness) processors(ctx context.Context, cfg processor.Config) {
	for n := 0; ctx.Err() == nil; n++ {
		cfg.Consumer = fmt.Sprintf("process-%d", n)
		cfg.NotifyURL = h.st.API.URL + "/webhooks/lakala"
		p := processor.New(h.st.Service, h.st.Merchants, cfg)
		runCtx, release := crash.Arm(ctx, h.plan)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = p.Run(runCtx) // a death ends this goroutine on the spot
		}()
		<-done
		release()
	}
}

// call sends an API request as a main app, retrying what a main app retries: a transport error
// (the process serving it died) or a 5xx. It returns the final answer.
func (h *harness) call(method, path, body string) (int, []byte) {
	for h.ctx.Err() == nil {
		req, err := http.NewRequestWithContext(h.ctx, method, h.st.API.URL+path, strings.NewReader(body))
		if err != nil {
			h.t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+h.st.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		return resp.StatusCode, b
	}
	return 0, nil
}

type order struct {
	ID     string         `json:"id"`
	Status string         `json:"status"`
	Extra  map[string]any `json:"extra_data"`
}

func (h *harness) createOrder(merchantOrderID string, amount int64) order {
	code, body := h.call(http.MethodPost, "/api/v1/payment-orders",
		fmt.Sprintf(`{"app_id":%q,"merchant_order_id":%q,"amount":%d,"order_type":"payment","subject":"crash points"}`, h.st.AppID, merchantOrderID, amount))
	if code != http.StatusAccepted && code != http.StatusOK {
		h.t.Fatalf("create %s = %d %s", merchantOrderID, code, body)
	}
	var o order
	if err := json.Unmarshal(body, &o); err != nil {
		h.t.Fatal(err)
	}
	return o
}

func (h *harness) get(merchantOrderID string) order {
	code, body := h.call(http.MethodGet, "/api/v1/payment-orders/"+merchantOrderID+"?app_id="+h.st.AppID, "")
	var o order
	if code == http.StatusOK {
		_ = json.Unmarshal(body, &o)
	}
	return o
}

// paymentURL waits for the order's cashier URL as the main app's page would ("" if the order
// ended first).
func (h *harness) paymentURL(o order) string {
	for h.ctx.Err() == nil {
		got := h.get("o1")
		if url, ok := got.Extra["payment_url"].(string); ok {
			return url
		}
		if got.Status == "failed" || got.Status == "succeeded" {
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ""
}

func (h *harness) waitFinal(merchantOrderID string) string {
	for h.ctx.Err() == nil {
		if s := h.get(merchantOrderID).Status; s == "failed" || s == "succeeded" {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ""
}

func payOrderNo(url string) string { return url[strings.LastIndex(url, "/")+1:] }

func (h *harness) pay(url string) {
	if url != "" {
		_ = h.st.Sandbox.Pay(h.ctx, payOrderNo(url)) // refused when not payable any more: the payer gives up
	}
}

func (h *harness) failPayment(url string) {
	if url != "" {
		_ = h.st.Sandbox.Fail(h.ctx, payOrderNo(url))
	}
}

func (h *harness) close(merchantOrderID string) {
	code, body := h.call(http.MethodPost, "/api/v1/payment-orders/"+merchantOrderID+"/close?app_id="+h.st.AppID, "")
	if code != http.StatusOK && code != http.StatusAccepted && code != http.StatusConflict && h.ctx.Err() == nil {
		h.t.Errorf("close = %d %s", code, body)
	}
}

func (h *harness) refund(o order, merchantRefundID string, amount int64) {
	code, body := h.call(http.MethodPost, "/api/v1/refund-orders", fmt.Sprintf(
		`{"app_id":%q,"payment_order_id":%q,"amount":%d,"merchant_refund_id":%q,"reason":"crash points"}`, h.st.AppID, o.ID, amount, merchantRefundID))
	if code != http.StatusAccepted && code != http.StatusOK && h.ctx.Err() == nil {
		h.t.Errorf("refund %s = %d %s", merchantRefundID, code, body)
	}
}

var errProcessDied = errors.New("the process serving the resolution died")

// resolveAsUnpaid is an operator who finds the order in review and resolves it: Lakala shows it
// unpaid. The resolution runs armed, as a console request does, and is tried again after a
// refusal (a processor holding the task) or a crash of the process serving it.
func (h *harness) resolveAsUnpaid(o order) {
	c := testenv.SeedReviewCase(h.t, h.st.Store, ops.KindReconcileFailing, o.ID, "", "checks failing")
	for h.ctx.Err() == nil {
		done := make(chan error, 1)
		go func() {
			ctx, release := crash.Arm(h.ctx, h.plan)
			defer release()
			err := errProcessDied
			defer func() { done <- err }() // also when the process dies in the resolution
			_, err = h.ops.ResolveReview(ctx, ops.Actor{Name: "olga", Role: ops.RoleOperator, Via: "console"},
				ops.Resolution{CaseID: c, Outcome: ops.OutcomeConfirmedUnpaid, Note: "portal: unpaid"})
		}()
		err := <-done
		if err == nil || strings.Contains(err.Error(), "paid_at_lakala") || strings.Contains(err.Error(), "already_resolved") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

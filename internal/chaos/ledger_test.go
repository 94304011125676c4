// Package chaos holds the ledger-agreement property suite: seeded random schedules of payments,
// failures, expiries and refunds against a sandbox playing a random reading of every behaviour of
// Lakala's nobody could confirm, with lost answers, lagging queries, injected errors and
// processors killed mid-task, for two apps on two merchants, one of which rotates its key in the
// middle of the schedule (Lakala revoking the old one soon after) — and, at quiescence, the
// invariants that say our ledger and the gateway's agree, merchant by merchant.
//
//	go test ./internal/chaos -schedules 300            (make chaos)
//	go test ./internal/chaos -seed 1234 -v              (re-run one schedule)
//	go test ./internal/chaos -schedules 4 -redis-cluster (on a real Redis Cluster)
package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/ledgercheck"
	"github.com/loomipay/loomipay/internal/rediscluster"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
	"github.com/loomipay/loomipay/shared/service"
)

var (
	schedules  = flag.Int("schedules", 12, "how many seeded schedules to run")
	seedFlag   = flag.Uint64("seed", 0, "run only the schedule with this seed")
	processors = flag.Int("processors", 1, "processors running at once in each schedule")
	onCluster  = flag.Bool("redis-cluster", false, "run every schedule with its streams on a real three-master Redis Cluster (one for all of them, each schedule with its own prefix)")
)

// TestLedgerAgreement runs the schedules, each in parallel with the others (go test -parallel).
func TestLedgerAgreement(t *testing.T) {
	seeds := []uint64{*seedFlag}
	if *seedFlag == 0 {
		base := uint64(time.Now().UnixNano())
		if s := os.Getenv("SEED"); s != "" {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("SEED=%q is not a number", s)
			}
			base, seeds = v, []uint64{v}
		} else {
			seeds = nil
			for i := range *schedules {
				seeds = append(seeds, base+uint64(i)*7919)
			}
		}
	}
	var cluster *rediscluster.Cluster
	rerun := "make chaos SEED=%d"
	if *onCluster {
		// Stopped when the last schedule is done: a test's cleanup waits for its parallel subtests.
		cluster = rediscluster.Start(t)
		rerun = "make chaos CLUSTER=1 SEED=%d"
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			defer func() {
				if t.Failed() {
					t.Logf("re-run this schedule: "+rerun, seed)
				}
			}()
			runSchedule(t, seed, *processors, cluster)
		})
	}
}

// What the payer does with an order.
type payerAction int

const (
	pays          payerAction = iota // pays
	fails                            // the payment fails, and the payer gives up
	failsThenPays                    // the payment fails, the payer tries again and pays
	leaves                           // never pays: the order expires
	paysLate                         // pays after the order expired (or tries to)
	paysTwice                        // presses Pay twice
	numActions
)

var actionNames = []string{"pays", "fails", "fails-then-pays", "leaves", "pays-late", "pays-twice"}

// schedule is everything one seed decides.
type schedule struct {
	faults    sandbox.Faults
	refundAPI string // the refund API new refunds go through
	orders    []plannedOrder
	killRate  time.Duration // mean time between processor kills; 0: none
	// rotateAfter: merchant B's key is rotated this long after the schedule starts, and Lakala
	// revokes the old one a little later.
	rotateAfter time.Duration
}

// The schedule's two merchants and the app bound to each.
var merchantApps = [2]struct{ merchant, app string }{{"shop-a", "app_a"}, {"shop-b", "app_b"}}

type plannedOrder struct {
	id      string
	app     int // index in merchantApps
	amount  int64
	action  payerAction
	refunds []plannedRefund
}

type plannedRefund struct {
	id         string // merchant_refund_id
	amount     int64
	repeat     bool // sent twice with the same merchant_refund_id
	concurrent bool // sent at the same time as the previous one
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func plan(seed uint64) schedule {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var s schedule
	s.faults = sandbox.Faults{
		DuplicateCreate:      pick(r, sandbox.DuplicateCreateRefuse, sandbox.DuplicateCreateRefuse, sandbox.DuplicateCreateReturn),
		DuplicateRefund:      pick(r, sandbox.DuplicateRefundRefuse, sandbox.DuplicateRefundExceeds, sandbox.DuplicateRefundFirstAnswer),
		FailedTradePayable:   r.IntN(4) != 0,
		ResignNotifyRetries:  r.IntN(2) == 0,
		PayAfterClose:        r.IntN(3) == 0,
		AutoRefundAfterClose: r.IntN(4) != 0,
		QueryLag:             pick(r, 0, 0, 100*time.Millisecond, 400*time.Millisecond),
		LostAnswerRate:       pick(r, 0, 0.1, 0.3),
		LostAnswerMode:       pick(r, sandbox.LostAnswerDrop, sandbox.LostAnswer502, sandbox.LostAnswerTimeout),
		ErrorRate:            pick(r, 0, 0, 0.1),
		DuplicateNotify:      r.IntN(3) == 0,
		DropNotify:           r.IntN(5) == 0,
		NotifyDelay:          pick(r, 0, 0, 150*time.Millisecond),
		Latency:              pick(r, 0, 5*time.Millisecond),
		// What Lakala's own SDKs state: the gateway's network codes on calls it applied, another
		// merchant's paid notification for one of our numbers, refused refund queries.
		NetworkCodeRate:     pick(r, 0, 0, 0.1, 0.3),
		ForeignNotifyRate:   pick(r, 0, 0, 0.5),
		RefundQueryRefusals: pick(r, 0, 0, 2),
		LegacyNotifyForm:    r.IntN(4) == 0,
		Seed:                int64(seed%1_000_000_007) + 1,
	}
	s.refundAPI = pick(r, lakala.RefundAPIRfd, lakala.RefundAPILabs)
	s.killRate = pick(r, 0, 700*time.Millisecond, 1500*time.Millisecond)
	s.rotateAfter = time.Duration(100+r.IntN(1500)) * time.Millisecond
	n := 2 + r.IntN(3)
	for i := range n {
		o := plannedOrder{id: fmt.Sprintf("o%d", i), app: i % 2, amount: int64(100 + r.IntN(99_900)), action: payerAction(r.IntN(int(numActions)))}
		if n > 2 && r.IntN(3) == 0 {
			o.app = 1 - o.app
		}
		if o.action == pays || o.action == failsThenPays || o.action == paysTwice {
			for j := range r.IntN(4) {
				rf := plannedRefund{id: fmt.Sprintf("r%d_%d", i, j), repeat: r.IntN(4) == 0, concurrent: r.IntN(3) == 0}
				// Most are partial; some would overdraw the remainder.
				rf.amount = 1 + r.Int64N(o.amount/2)
				if r.IntN(5) == 0 {
					rf.amount = o.amount
				}
				o.refunds = append(o.refunds, rf)
			}
		}
		s.orders = append(s.orders, o)
	}
	return s
}

func (s schedule) String() string {
	var b strings.Builder
	f := s.faults
	fmt.Fprintf(&b, "readings: duplicate_create=%s duplicate_refund=%s failed_trade_payable=%v resign=%v pay_after_close=%v auto_refund=%v\n",
		f.DuplicateCreate, f.DuplicateRefund, f.FailedTradePayable, f.ResignNotifyRetries, f.PayAfterClose, f.AutoRefundAfterClose)
	fmt.Fprintf(&b, "faults: query_lag=%s lost_answer_rate=%v (%s) error_rate=%v duplicate_notify=%v drop_notify=%v notify_delay=%s kill_every=%s\n",
		f.QueryLag, f.LostAnswerRate, f.LostAnswerMode, f.ErrorRate, f.DuplicateNotify, f.DropNotify, f.NotifyDelay, s.killRate)
	fmt.Fprintf(&b, "lakala as it is: network_code_rate=%v foreign_notify_rate=%v refund_query_refusals=%d legacy_form=%v refund_api=%s\n",
		f.NetworkCodeRate, f.ForeignNotifyRate, f.RefundQueryRefusals, f.LegacyNotifyForm, s.refundAPI)
	fmt.Fprintf(&b, "merchants: %s rotates its key after %s\n", merchantApps[1].merchant, s.rotateAfter)
	for _, o := range s.orders {
		fmt.Fprintf(&b, "order %s of %s (%s): %d fen, payer %s", o.id, merchantApps[o.app].app, merchantApps[o.app].merchant, o.amount, actionNames[o.action])
		for _, r := range o.refunds {
			fmt.Fprintf(&b, "; refund %s %d%s%s", r.id, r.amount, map[bool]string{true: " repeated"}[r.repeat], map[bool]string{true: " concurrent"}[r.concurrent])
		}
		b.WriteString("\n")
	}
	return b.String()
}

const (
	orderTTL      = 3 * time.Second
	merchantTTL   = 100 * time.Millisecond // how long a key rotation takes to reach every client
	lakalaTimeout = 300 * time.Millisecond
	quiescence    = 40 * time.Second // a schedule that has not settled by then fails
)

func runSchedule(t *testing.T, seed uint64, nProcessors int, cluster *rediscluster.Cluster) {
	sched := plan(seed)
	t.Logf("schedule %d:\n%s", seed, sched)
	cfg := processor.Config{
		Lease: 1500 * time.Millisecond, VisibilityLag: sched.faults.QueryLag + 200*time.Millisecond,
		ReconcileAfter: 300 * time.Millisecond, MaintenanceEvery: 100 * time.Millisecond, ReadBlock: 50 * time.Millisecond,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 300 * time.Millisecond, MaxAttempts: 8,
		SweepGrace: 50 * time.Millisecond, SweepStale: 2 * time.Second, Concurrency: 8, RefundAPI: sched.refundAPI,
	}
	if err := cfg.Validate(lakalaTimeout); err != nil {
		t.Fatal(err)
	}
	st := testenv.NewStack(t, testenv.StackOptions{Processor: cfg, Service: service.Config{OrderTTL: orderTTL}, LakalaTimeout: lakalaTimeout,
		RedisCluster: cluster, MerchantTTL: merchantTTL})
	if st.Streams.Cluster() != (cluster != nil) {
		t.Fatalf("-redis-cluster=%v but the stack's streams are on a cluster: %v", cluster != nil, st.Streams.Cluster())
	}
	st.SetFaults(sched.faults)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var apps [2]api
	var shops [2]testenv.Merchant
	for i, ma := range merchantApps {
		shops[i] = st.AddMerchant(t, ma.merchant, i)
		apps[i] = api{st: st, app: ma.app, key: st.NewKey(t, ma.app)}
		st.BindApp(t, ma.app, ma.merchant)
	}

	procs := newFleet(st, cfg, nProcessors, sched.killRate, seed)
	procs.start(ctx)

	// A payer waits for its order as a browser would, but not for ever: an order may stay live
	// under review (nobody can say whether its cashier order exists).
	payCtx, cancelPayers := context.WithTimeout(ctx, quiescence)
	var wg sync.WaitGroup
	for _, o := range sched.orders {
		wg.Go(func() { payer(payCtx, t, st, apps[o.app], o) })
	}
	// Merchant B's key rotation in the middle of it all: Lakala takes the new certificate, the
	// merchant row the new key, and once every client has read it Lakala revokes the old one.
	wg.Go(func() {
		select {
		case <-time.After(sched.rotateAfter):
		case <-payCtx.Done():
			return
		}
		rotated := st.RotateKey(t, shops[1], 2)
		time.Sleep(3 * merchantTTL)
		if err := st.Sandbox.RevokeCertificate(context.Background(), shops[1].LakalaAppID, shops[1].SerialNo); err != nil {
			t.Errorf("revoke %s's old certificate: %v", shops[1].ID, err)
		}
		t.Logf("%s rotated to key version %d (serial %s); the old serial %s revoked", shops[1].ID, rotated.KeyVersion, rotated.SerialNo, shops[1].SerialNo)
	})
	wg.Wait()
	cancelPayers()
	settle(ctx, t, st, sched)
	procs.stop()
	if t.Failed() {
		return
	}
	checkInvariants(t, st, sched)
}

// fleet runs processors and kills them at random, as a Lambda timeout or a crash would.
type fleet struct {
	st       *testenv.Stack
	cfg      processor.Config
	n        int
	killRate time.Duration
	rng      *rand.Rand
	wg       sync.WaitGroup
	cancel   context.CancelFunc
}

func newFleet(st *testenv.Stack, cfg processor.Config, n int, killRate time.Duration, seed uint64) *fleet {
	return &fleet{st: st, cfg: cfg, n: n, killRate: killRate, rng: rand.New(rand.NewPCG(seed, 1))}
}

func (f *fleet) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	f.cancel = cancel
	for i := range f.n {
		f.wg.Go(func() {
			for run := 0; ctx.Err() == nil; run++ {
				cfg := f.cfg
				cfg.Consumer = fmt.Sprintf("processor-%d", i)
				cfg.NotifyURL = f.st.API.URL + "/webhooks/lakala"
				p := processor.New(f.st.Service, f.st.Merchants, cfg)
				runCtx, kill := context.WithCancel(ctx)
				if f.killRate > 0 {
					time.AfterFunc(f.killRate/2+time.Duration(f.rng.Int64N(int64(f.killRate))), kill)
				}
				_, _ = p.Run(runCtx)
				kill()
			}
		})
	}
}

func (f *fleet) stop() {
	f.cancel()
	f.wg.Wait()
}

// api is a small client of the stack's API, as one app, that returns errors instead of failing
// the test, for use from goroutines.
type api struct {
	st       *testenv.Stack
	app, key string
}

func (a api) do(ctx context.Context, method, path, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.st.API.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

type orderView struct {
	ID        string         `json:"id"`
	Status    string         `json:"status"`
	ExtraData map[string]any `json:"extra_data"`
}

func (a api) order(ctx context.Context, id string) (orderView, error) {
	code, body, err := a.do(ctx, http.MethodGet, "/api/v1/payment-orders/"+id+"?app_id="+a.app, "")
	var o orderView
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("get order %s = %d %s", id, code, body)
	}
	if err == nil {
		err = json.Unmarshal(body, &o)
	}
	return o, err
}

// payer creates the order (twice, at once: a retried request), waits for its payment URL like a
// browser would, acts on it, then asks for the order's refunds once it succeeded.
func payer(ctx context.Context, t *testing.T, st *testenv.Stack, a api, o plannedOrder) {
	body := fmt.Sprintf(`{"app_id":%q,"merchant_order_id":%q,"amount":%d,"order_type":"payment","subject":"chaos"}`, a.app, o.id, o.amount)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			code, resp, err := a.do(ctx, http.MethodPost, "/api/v1/payment-orders", body)
			if ctx.Err() == nil && (err != nil || (code != http.StatusAccepted && code != http.StatusOK)) {
				t.Errorf("create %s = %d %s %v", o.id, code, resp, err)
			}
		})
	}
	wg.Wait()

	url := waitFor(ctx, a, o.id, func(v orderView) bool {
		_, has := v.ExtraData["payment_url"].(string)
		return has || v.Status == "failed" || v.Status == "succeeded"
	})
	payURL, _ := url.ExtraData["payment_url"].(string)
	payOrderNo := payURL[strings.LastIndex(payURL, "/")+1:]
	if payURL == "" {
		return // the order ended (or is under review) before it could be paid
	}
	act := func(pay bool) {
		var err error
		if pay {
			err = st.Sandbox.Pay(ctx, payOrderNo)
		} else {
			err = st.Sandbox.Fail(ctx, payOrderNo)
		}
		if err != nil && !errors.Is(err, sandbox.ErrNotPayable) && ctx.Err() == nil {
			t.Errorf("payer of %s: %v", o.id, err)
		}
	}
	switch o.action {
	case pays:
		act(true)
	case fails:
		act(false)
	case failsThenPays:
		act(false)
		time.Sleep(100 * time.Millisecond)
		act(true)
	case leaves:
	case paysLate:
		waitFor(ctx, a, o.id, func(v orderView) bool { return v.Status == "failed" || v.Status == "succeeded" })
		act(true)
	case paysTwice:
		act(true)
		act(true)
	}
	if len(o.refunds) == 0 {
		return
	}
	if v := waitFor(ctx, a, o.id, func(v orderView) bool { return v.Status == "failed" || v.Status == "succeeded" }); v.Status != "succeeded" {
		return
	}
	var rg sync.WaitGroup
	for _, rf := range o.refunds {
		send := func() {
			body := fmt.Sprintf(`{"app_id":%q,"payment_order_id":%q,"amount":%d,"merchant_refund_id":%q,"reason":"chaos"}`, a.app, url.ID, rf.amount, rf.id)
			code, resp, err := a.do(ctx, http.MethodPost, "/api/v1/refund-orders", body)
			switch {
			case err != nil && ctx.Err() != nil:
			case err != nil:
				t.Errorf("refund %s: %v", rf.id, err)
			case code == http.StatusAccepted || code == http.StatusOK:
			case code == http.StatusBadRequest && bytes.Contains(resp, []byte(pay.CodeRefundExceeds)):
			default:
				t.Errorf("refund %s = %d %s", rf.id, code, resp)
			}
		}
		if !rf.concurrent {
			rg.Wait()
		}
		rg.Go(send)
		if rf.repeat {
			rg.Go(send)
		}
	}
	rg.Wait()
}

// waitFor polls an order until cond holds or ctx ends.
func waitFor(ctx context.Context, a api, id string, cond func(orderView) bool) orderView {
	for ctx.Err() == nil {
		v, err := a.order(ctx, id)
		if err == nil && cond(v) {
			return v
		}
		time.Sleep(30 * time.Millisecond)
	}
	return orderView{}
}

// settle waits until nothing is left to happen: every order final (or under review), every
// refund final (or under review), every task at rest, every result published.
func settle(ctx context.Context, t *testing.T, st *testenv.Stack, sched schedule) {
	t.Helper()
	since := time.Now() // every payer is done
	deadline := since.Add(quiescence)
	var why string
	for time.Now().Before(deadline) {
		// Lakala keeps retrying notifications; wait for the sandbox to be done too.
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		busy := st.Sandbox.WaitNotifications(wctx) != nil
		cancel()
		// A late payment shows in a query only after the lag: look for checks after that.
		if why = ledgercheck.Unsettled(t, st, since.Add(sched.faults.QueryLag)); why == "" && !busy {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("no quiescence after %s: %s", quiescence, why)
}

// checkInvariants compares our ledger with the gateway's for every order of the schedule.
func checkInvariants(t *testing.T, st *testenv.Stack, sched schedule) {
	t.Helper()
	for _, line := range ledgercheck.Check(t, st) {
		t.Log(line)
	}
	if got := len(sched.orders); got == 0 {
		t.Fatal("the schedule has no orders")
	}
}

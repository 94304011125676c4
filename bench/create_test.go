package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/httpapi"
)

// callers is the concurrency of rows 1, 2 and 4.
const callers = 16

// floorMedian is row 1's storage floor (creates/s) of this run, for row 3's ratio.
var floorMedian float64

// storageFloorRate is row 1's floor, measured now if row 1 did not run.
func storageFloorRate(t *testing.T) float64 {
	if floorMedian > 0 {
		return floorMedian
	}
	c := newCreateBench(t)
	sz := size()
	var xs []float64
	for range sz.Runs {
		xs = append(xs, mustLoad(t)(runClosed(context.Background(), callers, sz.CreateOps, c.storageFloor)).PerSec())
	}
	floorMedian = SummarizeLow(xs).Median
	return floorMedian
}

// createBench drives the create-order and get-order functions in-process through the same
// adapter their Lambda mains use, and the storage floor beside them, on one stack.
type createBench struct {
	stack  *testenv.Stack
	create *httpadapter.HandlerAdapterV2
	get    *httpadapter.HandlerAdapterV2
	event  events.APIGatewayV2HTTPRequest
	getEv  events.APIGatewayV2HTTPRequest
	run    string // unique per bench, so merchant_order_ids never collide
	seq    atomic.Int64
	floor  atomic.Int64
	// existing is how many SEED_<n> orders exist (row 4); GET reads those, or created ones.
	existing int
}

func newCreateBench(t testing.TB) *createBench {
	t.Helper()
	s := testenv.NewStack(t, testenv.StackOptions{NoAPICheck: true})
	api := httpapi.New(s.Service)
	c := &createBench{
		stack:  s,
		create: httpadapter.NewV2(api.Handler(httpapi.FunctionCreateOrder)),
		get:    httpadapter.NewV2(api.Handler(httpapi.FunctionGetOrder)),
		event:  loadEvent(t, "createorder.json", s.APIKey),
		getEv:  loadEvent(t, "getorder.json", s.APIKey),
		run:    testenv.UniqueName("B"),
	}
	return c
}

// loadEvent reads an API Gateway v2 event of the repository's events/ and puts a key in it.
func loadEvent(t testing.TB, name, key string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	b, err := os.ReadFile("../events/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	ev.Headers["authorization"] = "Bearer " + key
	return ev
}

// createBody is the request body of the sample event, for the stack's app.
func createBody(app, merchantOrderID string) string {
	return fmt.Sprintf(`{"app_id":%q,"merchant_order_id":%q,"amount":10000,"order_type":"payment","subject":"VIP membership","currency":"CNY","extra_data":{"user_id":"user_12345","product_id":"vip_monthly","return_url":"https://your-app.com/payment/return"}}`,
		app, merchantOrderID)
}

// createOrder is one POST /api/v1/payment-orders through the adapter: auth, validation, the
// insert transaction and the XADD.
func (c *createBench) createOrder(ctx context.Context) error {
	ev := c.event
	ev.Body = createBody(c.stack.AppID, fmt.Sprintf("%s_%d", c.run, c.seq.Add(1)))
	resp, err := c.create.ProxyWithContext(ctx, ev)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("create = %d %s", resp.StatusCode, resp.Body)
	}
	return nil
}

// getOrder is one GET /api/v1/payment-orders/{id} of an existing order, chosen at random.
func (c *createBench) getOrder(ctx context.Context) error {
	var id string
	if c.existing > 0 {
		id = fmt.Sprintf("SEED_%d", 1+rand.IntN(c.existing))
	} else {
		n := c.seq.Load()
		if n == 0 {
			return fmt.Errorf("no order to read")
		}
		id = fmt.Sprintf("%s_%d", c.run, 1+rand.Int64N(n))
	}
	ev := c.getEv
	path := "/api/v1/payment-orders/" + id
	ev.RawPath, ev.RequestContext.HTTP.Path = path, path
	ev.RawQueryString = "app_id=" + url.QueryEscape(c.stack.AppID)
	ev.QueryStringParameters = map[string]string{"app_id": c.stack.AppID}
	resp, err := c.get.ProxyWithContext(ctx, ev)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s = %d %s", id, resp.StatusCode, resp.Body)
	}
	return nil
}

// storageFloor is the least any create can cost: one INSERT of an equivalent order row and one
// XADD of an equivalent task message, on the same pool and Redis client as the service.
func (c *createBench) storageFloor(ctx context.Context) error {
	id := uuid.NewString()
	n := c.floor.Add(1)
	_, err := c.stack.Store.Pool().Exec(ctx, `INSERT INTO payment_orders (id, app_id, merchant_order_id, status,
		order_type, amount, currency, payment_gateway, subject, extra_data, created_at, updated_at)
		VALUES ($1, $2, $3, 'pending', 'payment', 10000, 'CNY', 'lakala', 'VIP membership', $4, now(), now())`,
		id, "floor_app", fmt.Sprintf("%s_%d", c.run, n),
		`{"user_id":"user_12345","product_id":"vip_monthly","return_url":"https://your-app.com/payment/return"}`)
	if err != nil {
		return fmt.Errorf("floor insert: %w", err)
	}
	return c.stack.Streams.Client().XAdd(ctx, &redis.XAddArgs{
		Stream: c.stack.Streams.Name("bench_floor"), MaxLen: 1_000_000, Approx: true,
		Values: []string{"task_id", fmt.Sprint(n), "kind", "payment", "subject_id", id},
	}).Err()
}

// seed inserts n settled orders (and their finished tasks) in one statement, as a year of
// traffic would leave them.
func (c *createBench) seed(t testing.TB, n int) time.Duration {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	_, err := c.stack.Store.Pool().Exec(ctx, `
		WITH o AS (
			INSERT INTO payment_orders (id, app_id, merchant_order_id, status, order_type, amount, currency,
				payment_gateway, subject, extra_data, gateway_transaction_id, created_at, updated_at)
			SELECT gen_random_uuid(), $1, 'SEED_' || g, 'succeeded', 'payment', 10000, 'CNY', 'lakala',
				'VIP membership', '{"user_id":"user_12345","product_id":"vip_monthly"}', 'T' || g,
				now() - interval '1 day', now() - interval '1 day'
			FROM generate_series(1, $2::int) g
			RETURNING id
		)
		INSERT INTO tasks (kind, subject_id, state, attempts, created_at, updated_at)
		SELECT 'payment', id, 'done', 1, now() - interval '1 day', now() - interval '1 day' FROM o`,
		c.stack.AppID, n)
	if err != nil {
		t.Fatalf("seed %d orders: %v", n, err)
	}
	// A steady-state table has been vacuumed: without it, the first read of each bulk-loaded row
	// also checks its transaction's commit status and sets hint bits (dirtying the page), and
	// autovacuum, triggered by the million inserts, may start in the middle of the measurement.
	// VACUUM cannot run in a transaction block, hence one Exec each.
	for _, sql := range []string{"VACUUM (ANALYZE) payment_orders", "VACUUM (ANALYZE) tasks", "CHECKPOINT"} {
		if _, err := c.stack.Store.Pool().Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	c.existing = n
	return time.Since(start)
}

// mustLoad fails the test on a load's error: mustLoad(t)(runClosed(…)).
func mustLoad(t testing.TB) func(load, error) load {
	return func(l load, err error) load {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
}

// createFigures are the per-run figures of one table state.
type createFigures struct {
	chain, floor, get         []float64 // ops/s
	chainP99, floorP99, getP9 []float64 // ns, at max throughput
}

// measureOnce adds one run of each side to f.
func (c *createBench) measureOnce(t *testing.T, f *createFigures, ops int) {
	ctx := context.Background()
	fl := mustLoad(t)(runClosed(ctx, callers, ops, c.storageFloor))
	ch := mustLoad(t)(runClosed(ctx, callers, ops, c.createOrder))
	gt := mustLoad(t)(runClosed(ctx, callers, ops, c.getOrder))
	f.floor, f.floorP99 = append(f.floor, fl.PerSec()), append(f.floorP99, float64(Percentile(fl.Lat, 99)))
	f.chain, f.chainP99 = append(f.chain, ch.PerSec()), append(f.chainP99, float64(Percentile(ch.Lat, 99)))
	f.get, f.getP9 = append(f.get, gt.PerSec()), append(f.getP9, float64(Percentile(gt.Lat, 99)))
}

func (c *createBench) warmUp(t *testing.T) {
	ctx := context.Background()
	// The API key cache, the pool's connections, the plan cache.
	mustLoad(t)(runClosed(ctx, callers, 2*callers, c.createOrder))
	mustLoad(t)(runClosed(ctx, callers, 2*callers, c.storageFloor))
	mustLoad(t)(runClosed(ctx, callers, 2*callers, c.getOrder))
}

// testCreate is rows 1, 2 and 4.
func testCreate(t *testing.T) {
	sz := size()
	ctx := context.Background()
	// Two stacks (two schemas): a near-empty one and one seeded with the existing orders. Their
	// runs alternate, so the machine's drift hits rows 1 and 4 alike.
	c, seeded := newCreateBench(t), newCreateBench(t)
	took := seeded.seed(t, sz.ExistingOrders)
	c.warmUp(t)
	seeded.warmUp(t)
	var empty, full createFigures
	for range sz.Runs {
		c.measureOnce(t, &empty, sz.CreateOps)
		seeded.measureOnce(t, &full, sz.CreateOps)
	}
	chain, floor := SummarizeLow(empty.chain), SummarizeLow(empty.floor)
	floorMedian = floor.Median
	ratio := chain.Median / floor.Median
	record(&Row{N: 1, What: "create-order throughput, 16 callers in-process",
		Figures: []string{
			fig("handler chain (v2 event → httpadapter → auth → validation → insert transaction → XADD)", chain, perSec),
			fig("storage floor (one INSERT of an equivalent row + one XADD)", floor, perSec),
			fig("handler chain p99 latency at max throughput", Summarize(empty.chainP99), msf),
			fig("storage floor p99 latency at max throughput", Summarize(empty.floorP99), msf),
		},
		Ratio:   fmt.Sprintf("%.2f × floor", ratio),
		Target:  "≥ 0.5 × floor",
		Met:     met(ratio >= 0.5),
		Command: command("create"),
		Notes: []string{fmt.Sprintf("%d operations per run and side, %d concurrent callers, Postgres pool of 8 connections "+
			"(testenv); each run does floor, chain and GET back to back, alternating with row 4's runs on the seeded schema.", sz.CreateOps, callers)},
	})

	// Row 2: both sides at half the chain's measured maximum, started at a fixed rate.
	rate := chain.Median / 2
	var chainP99, floorP99 []float64
	for range sz.Runs {
		fl := mustLoad(t)(runPaced(ctx, callers, sz.PacedOps, rate, c.storageFloor))
		ch := mustLoad(t)(runPaced(ctx, callers, sz.PacedOps, rate, c.createOrder))
		floorP99 = append(floorP99, float64(Percentile(fl.Lat, 99)))
		chainP99 = append(chainP99, float64(Percentile(ch.Lat, 99)))
	}
	cp, fp := Summarize(chainP99), Summarize(floorP99)
	latRatio := cp.Median / fp.Median
	record(&Row{N: 2, What: "create-order latency at half of max throughput",
		Figures: []string{
			fmt.Sprintf("rate: %.0f creates/s (half of row 1's median), %d operations per run, up to %d callers", rate, sz.PacedOps, callers),
			fig("handler chain p99", cp, msf),
			fig("storage floor p99 (same rate)", fp, msf),
		},
		Ratio:   fmt.Sprintf("p99 %.2f × floor's p99", latRatio),
		Target:  "p99 ≤ 3 × floor's p99",
		Met:     met(latRatio <= 3),
		Command: command("create"),
		Notes: []string{"Latency counts from when a request was due, not from when a caller got to it, so " +
			"queueing is not hidden. The floor is paced at the same rate, so both p99s are at one load."},
	})

	// Row 4: the same with a million existing orders, measured above, interleaved with row 1.
	chainFull, getEmpty, getFull := SummarizeLow(full.chain), SummarizeLow(empty.get), SummarizeLow(full.get)
	floorFull := SummarizeLow(full.floor)
	cr, gr := chainFull.Median/chain.Median, getFull.Median/getEmpty.Median
	record(&Row{N: 4, What: fmt.Sprintf("flat with data: rows 1 and GET-order with %d existing orders", sz.ExistingOrders),
		Figures: []string{
			fmt.Sprintf("seeding %d orders and their finished tasks (generate_series, one statement, then VACUUM (ANALYZE) and CHECKPOINT): %s", sz.ExistingOrders, took.Round(time.Millisecond)),
			fig("create, near-empty table (row 1)", chain, perSec),
			fig("create, with data", chainFull, perSec),
			fig("storage floor, with data", floorFull, perSec),
			fig("GET-order, near-empty table (orders of this run)", getEmpty, perSec),
			fig("GET-order, with data (random existing order)", getFull, perSec),
			fig("GET-order p99 latency with data", Summarize(full.getP9), msf),
		},
		Ratio:   fmt.Sprintf("create %.3f ×, GET %.3f × the near-empty figure", cr, gr),
		Target:  "≥ 0.8 × each",
		Met:     met(cr >= 0.8 && gr >= 0.8),
		Command: command("create"),
		Notes: []string{"Two schemas of the same server, one near-empty (rows 1 and 2's own orders, tens of thousands " +
			"at most), one seeded; their runs alternate, so the ratio is of figures measured side by side.",
			"Why GET can fall behind: with 1,000,000 orders `payment_orders` is about 27,000 pages (≈ 216 MB) of heap " +
				"plus its indexes, against PostgreSQL's `shared_buffers` of 128 MB (the Debian default on this machine), so " +
				"a lookup of a random existing order (`EXPLAIN (ANALYZE, BUFFERS)`: one index scan of " +
				"`payment_orders_merchant_key`, 4 buffers: a 3-level btree and the heap page) mostly copies pages from the " +
				"OS cache, where the near-empty table's lookups hit shared buffers. The plan is the same single index scan " +
				"at both sizes, so nothing in the service's code grows with the table; what remains is the server's cache " +
				"size, which production sizes to its data (RDS: about a quarter of memory). This suite does not change the " +
				"server's settings.",
			"The seeded table is vacuumed and checkpointed before it is measured, as a table in steady state is. Before " +
				"that (ANALYZE only), the first read of each bulk-loaded row also set its hint bits and autovacuum could " +
				"start mid-run: GET then ranged from 0.69 to 0.95 × across runs on 2026-11-27. With it, three runs that " +
				"day gave 0.78, 0.81 and 0.83 ×: the ratio sits at the target, and which side of it a run lands on is " +
				"the shared_buffers effect above plus the machine's noise. It is reported as measured."},
	})
}

// BenchmarkCreateOrder is row 1's handler chain alone, for profiling:
// go test ./bench -run '^$' -bench CreateOrder -cpuprofile /tmp/cpu.out
func BenchmarkCreateOrder(b *testing.B) {
	c := newCreateBench(b)
	b.SetParallelism(callers)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.createOrder(context.Background()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkStorageFloor is row 1's floor alone.
func BenchmarkStorageFloor(b *testing.B) {
	c := newCreateBench(b)
	b.SetParallelism(callers)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.storageFloor(context.Background()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetOrder is row 4's GET-order with size().ExistingOrders orders.
func BenchmarkGetOrder(b *testing.B) {
	c := newCreateBench(b)
	c.seed(b, size().ExistingOrders)
	b.SetParallelism(callers)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.getOrder(context.Background()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

package processor_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/rediscluster"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
	"github.com/loomipay/loomipay/shared/worker"
)

// TestMain stops the Redis Cluster the cluster tests share (rediscluster.Shared).
func TestMain(m *testing.M) { rediscluster.Main(m) }

// TestConfigOpensRedisCluster: REDIS_CLUSTER=true with REDIS_URL naming one node (as
// ElastiCache's configuration endpoint does) gives the service a cluster client that reaches
// the whole cluster.
func TestConfigOpensRedisCluster(t *testing.T) {
	c := rediscluster.Shared(t)
	_, schema := testenv.PostgresSchema(t)
	_, prefix := testenv.ClusterRedis(t, c) // deletes what this test leaves under prefix
	t.Setenv("REDIS_CLUSTER", "true")
	t.Setenv("REDIS_URL", c.URL())
	t.Setenv("DATABASE_URL", testenv.SchemaURL(schema))
	t.Setenv("STREAM_PREFIX", prefix)
	ctx := context.Background()
	cfg, err := config.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deps, err := config.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer deps.Close()
	if !deps.Streams.Cluster() {
		t.Fatalf("REDIS_CLUSTER=true gave a %T, not a cluster client", deps.Streams.Client())
	}
	if err := deps.Service.Ready(ctx); err != nil {
		t.Fatalf("readiness on the cluster: %v", err)
	}
	// The client found every master from the one node it was given (ForEachMaster runs the
	// function on all of them at once).
	var masters atomic.Int32
	if err := deps.Streams.Client().(*redis.ClusterClient).ForEachMaster(ctx, func(context.Context, *redis.Client) error {
		masters.Add(1)
		return nil
	}); err != nil || masters.Load() != rediscluster.Masters {
		t.Fatalf("cluster client reaches %d masters (%v); want %d", masters.Load(), err, rediscluster.Masters)
	}
}

// TestMoneyPathOnRedisCluster runs the money path with the service's streams on a real
// three-master Redis Cluster, through the client REDIS_CLUSTER=true makes: an app made as
// `loomipay apps create` makes it, an order paid and partly refunded over the API, the results
// on the shared streams and on the app's own (read by the app's own cluster client logged in as
// its Redis user), the relay, the per-app rate limit, the processor's trim, and scale-out's
// consumer names. A single Redis accepts commands a cluster refuses (keys of different slots in
// one command, commands meant for every node sent to one), so only a cluster shows them.
func TestMoneyPathOnRedisCluster(t *testing.T) {
	t.Parallel()
	cluster := rediscluster.Shared(t)
	const limited = "limited_app"
	s := testenv.NewStack(t, testenv.StackOptions{
		RedisCluster: cluster,
		Streams:      streams.Config{ResultMaxLen: 10},
		Service:      service.Config{RateLimits: map[string]service.RateLimit{limited: {Rate: 1, Burst: 2}}},
	})
	ctx := context.Background()
	if !s.Streams.Cluster() {
		t.Fatal("the stack's streams are not on a cluster client")
	}

	// The app and its Redis user, which must exist on every node for its cluster client.
	app := testenv.UniqueName("shop_")
	creds, err := s.Service.CreateApp(ctx, app)
	if err != nil || !creds.ACLApplied {
		t.Fatalf("create app on the cluster: applied %v, %v (%v)", creds.ACLApplied, err, creds.ACLUnsupported)
	}
	s.AppID, s.APIKey = app, s.NewKey(t, app)
	appRDB := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs[:1],
		Username: creds.RedisUser, Password: creds.RedisPassword, MaxRetries: -1})
	t.Cleanup(func() { _ = appRDB.Close() })
	for _, st := range []string{creds.PaymentStream, creds.RefundStream} {
		if err := appRDB.XGroupCreateMkStream(ctx, st, "worker", "0").Err(); err != nil {
			t.Fatalf("the app's user creates its group on %s: %v", st, err)
		}
	}
	if err := appRDB.XRange(ctx, s.Streams.Name(pay.StreamPaymentResults), "-", "+").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Errorf("the app's user reading the shared stream = %v; want NOPERM", err)
	}

	// Paid: the task stream drained, the cashier URL obtained, the notification applied.
	processing, view := s.Checkout(t, "c1", 10000)
	if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	o := s.RequireOrder(t, "c1", "succeeded", "")
	succeeded := testenv.PaymentMessage(o, "processing", "succeeded")
	succeeded["gateway_transaction_id"] = deref(o.GatewayTransactionID)
	payments := []map[string]string{testenv.ProcessingMessage(processing), succeeded}
	appPayments, appRefunds := ownName(s, creds.PaymentStream), ownName(s, creds.RefundStream)
	testenv.CheckMessages(t, s.Results(t, pay.StreamPaymentResults), payments...)
	testenv.CheckMessages(t, s.Results(t, appPayments), payments...)

	// A partial refund, to success; the rest stays refundable.
	r := s.CreateRefund(t, o.ID, 3000)
	s.RunOnce(t)
	r = refundOutcome(t, s, o, r, "succeeded", 3000)
	refundDone := testenv.RefundMessage(r, "processing", "succeeded")
	refundDone["gateway_refund_id"] = deref(r.GatewayRefundID)
	testenv.CheckMessages(t, s.Results(t, appRefunds), testenv.RefundMessage(r, "pending", "processing"), refundDone)

	// The app reads both its streams in one XREADGROUP (one slot, by the hash tag) as its user.
	res, err := appRDB.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "worker", Consumer: "w1",
		Streams: []string{creds.PaymentStream, creds.RefundStream, ">", ">"}, Count: 100, Block: -1}).Result()
	if err != nil {
		t.Fatalf("the app's XREADGROUP on its two streams: %v", err)
	}
	got := map[string][]string{}
	for _, st := range res {
		for _, m := range st.Messages {
			got[st.Stream] = append(got[st.Stream], m.Values["event_id"].(string))
			if err := appRDB.XAck(ctx, st.Stream, "worker", m.ID).Err(); err != nil {
				t.Errorf("XACK as the app: %v", err)
			}
		}
	}
	for stream, want := range map[string][]map[string]string{
		creds.PaymentStream: s.Results(t, pay.StreamPaymentResults), creds.RefundStream: s.Results(t, pay.StreamRefundResults)} {
		var ids []string
		for _, m := range want {
			ids = append(ids, m["event_id"])
		}
		if !slices.Equal(got[stream], ids) {
			t.Errorf("the app read %v on %s; want the shared stream's events %v", got[stream], stream, ids)
		}
	}

	// The relay: an event whose publication was not recorded (a publisher that died between its
	// XADDs and its commit) goes out again, on the shared and on the app's stream.
	last := s.Results(t, pay.StreamRefundResults)[1]["event_id"]
	if _, err := s.Store.Pool().Exec(ctx, `UPDATE outbox SET published_at = NULL WHERE event_id = $1::uuid`, last); err != nil {
		t.Fatal(err)
	}
	if st := s.RunOnce(t); st.Relayed != 1 {
		t.Errorf("relayed %d events; want 1", st.Relayed)
	}
	for _, name := range []string{pay.StreamRefundResults, appRefunds} {
		msgs := s.Results(t, name)
		if len(msgs) != 3 || msgs[2]["event_id"] != last {
			t.Errorf("%s after the relay has %d messages, the last %q; want the refund's last event again", name, len(msgs), msgs[len(msgs)-1]["event_id"])
		}
	}

	// The per-app rate limit: a Lua script on the app's bucket. It lets requests through when
	// Redis fails, so only a 429 shows that it ran on the cluster.
	limitedKey := s.NewKey(t, limited)
	path := "/api/v1/payment-orders/none?app_id=" + limited
	for i := range 2 {
		if code, body := s.Do(t, http.MethodGet, path, limitedKey, ""); code != http.StatusNotFound {
			t.Fatalf("request %d within the burst = %d %s; want 404", i+1, code, body)
		}
	}
	if code, body := s.Do(t, http.MethodGet, path, limitedKey, ""); code != http.StatusTooManyRequests || !strings.Contains(string(body), `"rate_limited"`) {
		t.Fatalf("request past the burst = %d %s; want 429 rate_limited", code, body)
	}
	if code, body := s.Do(t, http.MethodGet, "/api/v1/payment-orders/c1?app_id="+app, s.APIKey, ""); code != http.StatusOK {
		t.Errorf("another app while %s is limited = %d %s; want 200", limited, code, body)
	}

	// The processor's trim (RESULT_STREAM_MAX_LEN) on the shared streams and every app's own.
	for _, name := range []string{s.Streams.Name(pay.StreamPaymentResults), creds.PaymentStream} {
		pipe := s.Streams.Client().Pipeline()
		for range 300 {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: name, Values: []string{"filler", "1"}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s.RunOnce(t)
	for _, name := range []string{s.Streams.Name(pay.StreamPaymentResults), creds.PaymentStream} {
		// Approximate trimming drops whole stream nodes (100 entries): at most a node over the cap.
		if n, err := s.Streams.Client().XLen(ctx, name).Result(); err != nil || n < 10 || n > 110 {
			t.Errorf("%s after the processor's trim: XLEN %d (%v); want 10 to 110", name, n, err)
		}
	}

	scaleOut(t, s)
}

// scaleOut: a run that read a task and died holds it under its own consumer name; the scaler
// counts that name and the stack's processor as running runs and starts a third; the new run reclaims the message,
// handles it, and removes its own name when it ends; maintenance removes the dead run's name.
func scaleOut(t *testing.T, s *testenv.Stack) {
	ctx := context.Background()
	s.CreateOrder(t, "c2", 2000)
	if ds, err := s.Streams.ReadTasks(ctx, "run-dead", 10, 0); err != nil || len(ds) != 1 {
		t.Fatalf("the dying run read %d tasks, %v; want c2's", len(ds), err)
	}
	started := 0
	scaler := &worker.Scaler{Store: s.Store, Streams: s.Streams, MaxRuns: 3, Log: testenv.Logger(),
		Start: func(_ context.Context, n int) error { started += n; return nil }}
	if n, err := scaler.Check(ctx); err != nil || n != 1 || started != 1 {
		t.Fatalf("scaler with two of three runs reading and a task due = started %d (%d), %v; want 1", n, started, err)
	}
	scaler.MaxRuns = 2
	if n, err := scaler.Check(ctx); err != nil || n != 0 {
		t.Fatalf("scaler with two of two runs reading = started %d, %v; want none", n, err)
	}

	const lease = 500 * time.Millisecond
	extra := processor.New(s.Service, s.Merchants, processor.Config{Consumer: "run-extra", NotifyURL: s.API.URL + "/webhooks/lakala",
		Lease: lease, LeaseMargin: 100 * time.Millisecond, ReadBlock: 50 * time.Millisecond, IdleExit: 200 * time.Millisecond,
		BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond})
	time.Sleep(lease) // the dead run's message becomes reclaimable
	runCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	st, err := extra.Run(runCtx)
	if err != nil || st.Reclaimed != 1 {
		t.Fatalf("the extra run: %+v, %v; want c2's message reclaimed", st, err)
	}
	s.RequireOrder(t, "c2", "processing", "")
	names := func() []string {
		list, err := s.Streams.Consumers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range list {
			out = append(out, c.Name)
		}
		slices.Sort(out)
		return out
	}
	// The extra run removes its own name; the dead run's stays while it holds a message. (The
	// stack's test-processor, idle, may already be swept by the extra run's maintenance on a slow
	// machine, so it is not asserted.)
	if got := names(); slices.Contains(got, "run-extra") || !slices.Contains(got, "run-dead") {
		t.Fatalf("consumers after the extra run ended = %v; want run-dead and not run-extra", got)
	}
	testenv.Eventually(t, 5*time.Second, "maintenance to remove the idle names", func() bool {
		if _, err := extra.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		return len(names()) == 0
	})
}

// ownName is an app stream's name without the stack's prefix, as Stack.Results takes it.
func ownName(s *testenv.Stack, full string) string {
	return strings.TrimPrefix(full, s.Streams.Name(""))
}

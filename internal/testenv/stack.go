package testenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/apicheck"
	"github.com/loomipay/loomipay/internal/rediscluster"
	"github.com/loomipay/loomipay/shared/httpapi"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/merchants"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
	"github.com/loomipay/loomipay/shared/secrets"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

// Stack is the whole service in one test: real Postgres (own schema), real Redis (own prefix),
// the Lakala sandbox over real HTTP, the API and webhook over real HTTP, and a processor.
type Stack struct {
	Store     *postgres.Store
	Schema    string
	Streams   *streams.Streams
	Service   *service.Service
	Processor *processor.Processor
	Sandbox   *sandbox.Sandbox
	// Merchants is the stack's merchant registry: the default merchant (the constants below,
	// signing with MerchantKey) and those a test adds (AddMerchant).
	Merchants *merchants.Registry
	// Lakala is the default merchant's client.
	Lakala      *lakala.Client
	API         *httptest.Server // serves every route, webhook included
	SandboxURL  string
	MerchantKey *rsa.PrivateKey
	AppID       string
	APIKey      string // a key of AppID

	optimistic bool
	keyDir     string // the added merchants' keys and certificates (file: references)
}

// SetFaults sets the sandbox's faults on top of the stack's reading of Lakala: unless the stack
// is optimistic, the pessimistic reading of every unconfirmed behaviour that f leaves unset.
func (s *Stack) SetFaults(f sandbox.Faults) {
	if !s.optimistic {
		p := sandbox.Pessimistic()
		if f.DuplicateCreate == "" {
			f.DuplicateCreate = p.DuplicateCreate
		}
		if f.DuplicateRefund == "" {
			f.DuplicateRefund = p.DuplicateRefund
		}
		f.FailedTradePayable = p.FailedTradePayable
		f.AutoRefundAfterClose = p.AutoRefundAfterClose
	}
	s.Sandbox.SetFaults(f)
}

// StackOptions adjust a Stack.
type StackOptions struct {
	Processor processor.Config // NotifyURL and fast test timings are filled in when zero
	Service   service.Config   // PlatformKey, and MerchantNo when empty, are filled in
	// LakalaTimeout bounds each Lakala call (default 2 s, so timeout faults are quick).
	LakalaTimeout time.Duration
	// NoAPICheck serves the API without holding its exchanges to api/openapi.yaml: for
	// benchmarks, which measure the service and not the checker. Tests leave it false.
	NoAPICheck bool
	// Optimistic makes the sandbox play the optimistic reading of every behaviour of Lakala's
	// nobody could confirm. By default it plays the pessimistic one (sandbox.Pessimistic), which
	// the service must be right under.
	Optimistic bool
	// RedisCluster, if set, puts the stack's streams on this Redis Cluster (with a prefix of the
	// stack's own) through a cluster client, as REDIS_CLUSTER=true does, instead of on the test
	// Redis.
	RedisCluster *rediscluster.Cluster
	// Streams configures the stack's streams (trimming, per-app names); the prefix is the
	// stack's own.
	Streams streams.Config
	// WrapAPI, if set, wraps the API's handler (the crash-point suite arms each request).
	WrapAPI func(http.Handler) http.Handler
	// MerchantTTL is how long the registry reuses a merchant's row (merchants.Config.TTL);
	// default 100 ms, so a key rotation reaches every client of the stack at once.
	MerchantTTL time.Duration
	// OldSchema, if set, makes the stack's schema as the release with migrations up to this
	// version left it, lets BeforeUpgrade write what that release would have, and then applies
	// every later migration: a deployment upgraded in place.
	OldSchema     int
	BeforeUpgrade func(t testing.TB, store *postgres.Store)
}

// The merchant identity the sandbox expects of every Stack's Lakala client; processes started
// by a test (Lambda binaries, the local stack) get it through LAKALA_* variables.
const (
	LakalaAppID      = "OP00000003"
	LakalaSerialNo   = "00dfba8194c41b84cf"
	LakalaMerchantNo = "82229007392000A"
	LakalaTermNo     = "D9296400"
	// LakalaVposID is the merchant's terminal (termId) every cashier order must carry: the
	// sandbox refuses a create without it, as Lakala does outside combined orders.
	LakalaVposID = "587305941625155584"
)

// Keys are generated once per test binary (generation is slow); parallel tests share them.
var (
	merchantKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })
	platformKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })
	// otherKeys are the keys of merchants tests add, and of their rotations: OtherKey(t, i).
	otherKeys [8]func() (*rsa.PrivateKey, error)
)

func init() {
	for i := range otherKeys {
		otherKeys[i] = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })
	}
}

// OtherKey is the i-th of a few 2048-bit keys other than MerchantKey, made once per test binary.
func OtherKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	k, err := otherKeys[i%len(otherKeys)]()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// MerchantKey is the 2048-bit merchant key every Stack signs its Lakala requests with.
func MerchantKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := merchantKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// PlatformKey is the sandbox's platform key: it signs the sandbox's responses and
// notifications, and lets a test sign a notification of its own making.
func PlatformKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := platformKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Logger is a JSON logger for tests: silent unless LOOMIPAY_TEST_LOG=1.
func Logger() *slog.Logger {
	if os.Getenv("LOOMIPAY_TEST_LOG") == "1" {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

// NewStack starts a Stack; everything stops when the test ends.
func NewStack(t testing.TB, o StackOptions) *Stack {
	t.Helper()
	log := Logger()
	var (
		store  *postgres.Store
		schema string
	)
	if o.OldSchema > 0 {
		store, schema = PostgresSchemaAt(t, o.OldSchema)
		if o.BeforeUpgrade != nil {
			o.BeforeUpgrade(t, store)
		}
		if _, err := store.Migrate(context.Background()); err != nil {
			t.Fatalf("upgrade from migration %d: %v", o.OldSchema, err)
		}
	} else {
		store, schema = PostgresSchema(t)
	}
	var (
		rdb    redis.UniversalClient
		prefix string
	)
	if o.RedisCluster != nil {
		rdb, prefix = ClusterRedis(t, o.RedisCluster)
	} else {
		rdb, prefix = Redis(t)
	}
	streamsCfg := o.Streams
	streamsCfg.Prefix = prefix
	st := streams.New(rdb, streamsCfg)
	mk := MerchantKey(t)

	// The sandbox keeps its state beside the stack's tables, in a schema of its own.
	sb, err := sandbox.New(context.Background(), sandbox.Config{
		DB: store.Pool(), Schema: schema + "_lakala",
		Merchants: []sandbox.Merchant{{AppID: LakalaAppID, SerialNo: LakalaSerialNo, PublicKey: &mk.PublicKey,
			MerchantNo: LakalaMerchantNo, TermNo: LakalaTermNo, VposID: LakalaVposID}},
		PlatformKey:       PlatformKey(t),
		NotifyRetryDelays: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond},
		RefundHold:        5 * time.Second,
		Logger:            log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { DropSchema(t, schema+"_lakala") })
	_, platformSerial, err := lakala.ParsePlatformCert(sb.PlatformCertPEM())
	if err != nil {
		t.Fatal(err)
	}
	sbSrv := httptest.NewServer(sb.Handler())
	sb.SetPublicURL(sbSrv.URL)
	t.Cleanup(func() {
		sb.Close()
		sbSrv.Close()
	})

	timeout := o.LakalaTimeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	client, err := lakala.NewClient(lakala.Config{
		BaseURL:     sbSrv.URL,
		Credentials: lakala.Credentials{AppID: LakalaAppID, SerialNo: LakalaSerialNo, PrivateKey: mk},
		MerchantNo:  LakalaMerchantNo, TermNo: LakalaTermNo, VposID: LakalaVposID,
		PlatformKey: sb.PlatformPublicKey(), PlatformSerial: platformSerial,
		HTTPClient: lakala.NewHTTPClient(timeout, 0),
		Logger:     log,
		OnCall:     ops.GatewayCallLogger(store, nil, log), // the gateway call log
		MerchantID: postgres.DefaultMerchant,
	})
	if err != nil {
		t.Fatal(err)
	}

	refs, err := secrets.NewResolver(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ttl := o.MerchantTTL
	if ttl == 0 {
		ttl = 100 * time.Millisecond
	}
	reg := merchants.New(merchants.Config{
		Store: store, Refs: refs, BaseURL: sbSrv.URL, HTTPClient: lakala.NewHTTPClient(timeout, 0), Logger: log,
		OnCall: ops.GatewayCallLogger(store, nil, log), TTL: ttl,
		Default: merchants.Default{AppID: LakalaAppID, SerialNo: LakalaSerialNo, MerchantNo: LakalaMerchantNo, TermNo: LakalaTermNo,
			VposID: LakalaVposID, NotifyKey: sb.PlatformPublicKey(), Client: func() (*lakala.Client, error) { return client, nil }},
	})
	svcCfg := o.Service
	svcCfg.Merchants = reg
	svc := service.New(store, st, log, svcCfg)
	// Every exchange with the API is held to api/openapi.yaml.
	apiHandlers := httpapi.New(svc)
	var handler http.Handler = apiHandlers.Handler()
	if !o.NoAPICheck {
		handler = apicheck.Middleware(t, handler)
	}
	if o.WrapAPI != nil {
		handler = o.WrapAPI(handler)
	}
	api := httptest.NewServer(handler)
	t.Cleanup(api.Close)

	pc := o.Processor
	if pc.NotifyURL == "" {
		pc.NotifyURL = api.URL + "/webhooks/lakala"
	}
	if pc.Consumer == "" {
		pc.Consumer = "test-processor"
	}
	if pc.BackoffBase == 0 {
		pc.BackoffBase = time.Millisecond
		pc.BackoffMax = 10 * time.Millisecond
	}
	proc := processor.New(svc, reg, pc)
	apiHandlers.WithPayments(proc.Payments()) // the close route

	s := &Stack{Store: store, Schema: schema, Streams: st, Service: svc, Processor: proc, Sandbox: sb, Merchants: reg,
		Lakala: client, API: api, SandboxURL: sbSrv.URL, MerchantKey: mk, AppID: "test_app", optimistic: o.Optimistic, keyDir: t.TempDir()}
	s.SetFaults(sandbox.Faults{})
	s.APIKey = s.NewKey(t, s.AppID)
	return s
}

// NewKey issues an API key for an app, registering the app (without a Redis user) if needed.
func (s *Stack) NewKey(t testing.TB, appID string) string {
	t.Helper()
	if err := s.Store.EnsureApp(context.Background(), appID); err != nil {
		t.Fatal(err)
	}
	key, _, err := s.Service.CreateAPIKey(context.Background(), appID, "test")
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// Do sends an API request with a key and returns the status and body. The stack's server checks
// the exchange against api/openapi.yaml.
func (s *Stack) Do(t testing.TB, method, path, key, body string) (int, []byte) {
	t.Helper()
	code, b, _, _ := send(t, s.API.URL, method, path, key, body)
	return code, b
}

// Do sends a request to base+path with a Bearer key (none if empty) and returns status and
// body, failing the test if the exchange does not match api/openapi.yaml.
func Do(t testing.TB, base, method, path, key, body string) (int, []byte) {
	t.Helper()
	code, b, req, resp := send(t, base, method, path, key, body)
	apicheck.Exchange(t, req, []byte(body), resp, b)
	return code, b
}

func send(t testing.TB, base, method, path, key, body string) (int, []byte, *http.Request, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, req, resp
}

// Eventually polls cond every 20 ms until it holds or timeout passes, then fails the test.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

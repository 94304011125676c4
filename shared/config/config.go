// Package config reads Loomi Pay's configuration from the environment (secrets through AWS
// Secrets Manager when an *_SECRET_ARN is given) and builds the dependencies every function
// shares: the Postgres store, the Redis streams, the Lakala client, the service.
package config

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/shared/httpapi"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/merchants"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/secrets"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
	"github.com/loomipay/loomipay/shared/webhooks"
)

// Variable lists every environment variable the code reads, with its meaning and default. The
// table in docs/CONFIGURATION.md and template.yaml are checked against it.
type Variable struct {
	Name, Default, Meaning string
	Secret                 bool // may come from Secrets Manager via NAME_SECRET_ARN
	// WorkerOnly: read only by loomipay worker (hosting outside Lambda), so no function of
	// template.yaml declares it.
	WorkerOnly bool
}

// Variables is the complete list.
var Variables = []Variable{
	{Name: "DATABASE_URL", Meaning: "PostgreSQL URL (pool_max_conns, default_query_exec_mode may be URL parameters)", Secret: true},
	{Name: "DATABASE_MAX_CONNS", Default: "4", Meaning: "pool size per process"},
	{Name: "REDIS_URL", Default: "redis://127.0.0.1:6379/0", Meaning: "Redis URL (redis:// or rediss://)", Secret: true},
	{Name: "STREAM_PREFIX", Default: "", Meaning: "prefix for every stream name (empty in production)"},
	{Name: "RESULT_STREAM_RETENTION", Default: "168h", Meaning: "result streams keep at least this much history (MINID ~)"},
	{Name: "RESULT_STREAM_MAX_LEN", Default: "0", Meaning: "if > 0, also cap each result stream's length (XTRIM MAXLEN ~)"},
	{Name: "API_KEY_CACHE_TTL", Default: "30s", Meaning: "how long an API key lookup is reused; a revoked key stops working within it"},
	{Name: "WEBHOOK_REPLAY_WINDOW", Default: "10m", Meaning: "notifications signed longer ago are refused unless already applied"},
	{Name: "LAKALA_BASE_URL", Default: "https://test.wsmsd.cn/sit", Meaning: "Lakala API base URL (production https://s2.lakala.com)"},
	{Name: "LAKALA_APP_ID", Default: "OP00000003", Meaning: "Lakala appid"},
	{Name: "LAKALA_SERIAL_NO", Default: "00dfba8194c41b84cf", Meaning: "merchant certificate serial number, as issued"},
	{Name: "LAKALA_MERCHANT_NO", Default: "82229007392000A", Meaning: "Lakala merchant_no"},
	{Name: "LAKALA_TERM_NO", Default: "D9296400", Meaning: "Lakala term_no (refunds)"},
	{Name: "LAKALA_VPOS_ID", Default: "", Meaning: "vpos_id sent with every cashier order: the termId Lakala returned when the merchant was onboarded (ask Lakala's sales contact if onboarded by hand); required outside dev"},
	{Name: "LAKALA_PRIVATE_KEY", Meaning: "merchant private key, PEM (PKCS#8 or PKCS#1)", Secret: true},
	{Name: "LAKALA_PLATFORM_CERT", Meaning: "Lakala platform certificate, PEM: verifies responses (whose Lklapi-Serial must name it) and, unless LAKALA_NOTIFY_CERT is set, notifications"},
	{Name: "LAKALA_NOTIFY_CERT", Meaning: "the certificate that verifies Lakala's notifications, PEM, if Lakala gave a separate one (its Java SDK's lklNotifyCerPath); default LAKALA_PLATFORM_CERT"},
	{Name: "LAKALA_SANDBOX", Default: "false", Meaning: "true when LAKALA_BASE_URL is the stage's own Lakala sandbox (a sandbox stage, template parameter LakalaSandbox or Stage=sandbox): refused with STAGE=prod; Lakala's public test identity and an http:// loopback Lakala or notify URL are then accepted outside dev"},
	{Name: "LAKALA_REFUND_API", Default: "rfd", Meaning: "the refund API new refunds go through: rfd (统一退货, Lakala's current one) or labs (frozen); a refund is always queried through the API it was sent through"},
	{Name: "LAKALA_NOTIFY_URL", Meaning: "public URL of the webhook (…/webhooks/lakala), sent with every cashier order"},
	{Name: "LAKALA_TIMEOUT", Default: "10s", Meaning: "timeout of one Lakala call"},
	{Name: "LAKALA_VISIBILITY_LAG", Default: "2m", Meaning: "how long Lakala may take before a query sees what it applied; a cashier order whose create answer was lost and that a query does not find counts as never created only after it"},
	{Name: "ORDER_TTL", Default: "30m", Meaning: "how long a cashier order can be paid"},
	{Name: "PROCESSOR_CONCURRENCY", Default: "64", Meaning: "tasks the processor handles at once"},
	{Name: "PROCESSOR_MAX_ATTEMPTS", Default: "8", Meaning: "attempts per task before it gives up (a payment winds its order down, a refund fails or becomes a review case)"},
	{Name: "PROCESSOR_LEASE", Default: "60s", Meaning: "task lease, and idle time before a crashed run's messages are reclaimed"},
	{Name: "PROCESSOR_IDLE_EXIT", Default: "0s", Meaning: "end a processor run after this long without tasks (0: work until the deadline)"},
	{Name: "WORKER_STOP_GRACE", Default: "25s", Meaning: "loomipay worker: after SIGTERM/SIGINT, how long the tasks in flight may finish before they are cancelled (0: at once)", WorkerOnly: true},
	{Name: "RECONCILE_AFTER", Default: "5m", Meaning: "query Lakala for orders processing this long without a notification"},
	{Name: "REFUND_REQUEST_IP", Default: "127.0.0.1", Meaning: "location_info.request_ip sent with refunds"},
	{Name: "LOG_LEVEL", Default: "info", Meaning: "debug, info, warn or error"},

	// Stage checks and limits.
	{Name: "STAGE", Default: "dev", Meaning: "dev, test, staging or prod; outside dev, test Lakala settings and unsafe values are refused at start"},
	{Name: "REQUEST_TIMEOUT", Default: "5s", Meaning: "deadline of one API or webhook request, including the wait for a database connection; past it the answer is 503"},
	{Name: "DATABASE_STATEMENT_TIMEOUT", Default: "5s", Meaning: "statement_timeout of every database session"},
	{Name: "DATABASE_LOCK_TIMEOUT", Default: "3s", Meaning: "lock_timeout of every database session"},
	{Name: "DATABASE_IDLE_TX_TIMEOUT", Default: "30s", Meaning: "idle_in_transaction_session_timeout of every database session"},
	{Name: "API_KEY_CACHE_SIZE", Default: "10000", Meaning: "API key lookups kept per process (least recently used evicted first)"},
	{Name: "RATE_LIMIT", Default: "100", Meaning: "requests per second each app may make (token bucket in Redis; 0 disables)"},
	{Name: "RATE_LIMIT_BURST", Default: "200", Meaning: "requests an app may make at once before RATE_LIMIT applies"},
	{Name: "DATABASE_RDS_PROXY", Default: "false", Meaning: "true when DATABASE_URL is an RDS Proxy endpoint: unprepared statements, session timeouts left to the database role"},
	{Name: "REDIS_CLUSTER", Default: "false", Meaning: "true for a cluster-mode Redis (ElastiCache cluster mode: its configuration endpoint in REDIS_URL)"},
	{Name: "PROCESSOR_MAX_RUNS", Default: "1", Meaning: "processor runs at once at most; the scheduled run starts extra runs up to it while the backlog is old"},
	{Name: "PROCESSOR_SCALE_AFTER", Default: "30s", Meaning: "the scheduled run starts an extra run while the oldest due task has waited longer than this"},
	{Name: "RATE_LIMIT_APPS", Default: "", Meaning: "per-app overrides, e.g. shop_cn=500:1000,game_x=20:40 (rate:burst)"},
	// Per-app results and webhooks.
	{Name: "SHARED_RESULT_STREAMS", Default: "true", Meaning: "also write the shared payment_results / refund_results streams every app can read; false once every app reads its own"},
	{Name: "APP_PAYMENT_RESULT_STREAM", Default: "payment_results:{$APP}", Meaning: "name of each app's own payment result stream ($APP = app id; braces = cluster hash tag)"},
	{Name: "APP_REFUND_RESULT_STREAM", Default: "refund_results:{$APP}", Meaning: "name of each app's own refund result stream"},
	{Name: "WEBHOOK_SECRET_KEY", Meaning: "32 bytes (64 hex characters or base64) encrypting webhook signing secrets in the database", Secret: true},
	{Name: "WEBHOOK_CONCURRENCY", Default: "32", Meaning: "webhook deliveries in flight at once"},
	{Name: "WEBHOOK_ENDPOINT_CONCURRENCY", Default: "4", Meaning: "webhook deliveries in flight per endpoint"},
	{Name: "WEBHOOK_ALLOW_LOOPBACK", Default: "false", Meaning: "let webhook URLs reach 127.0.0.1 / ::1 (local development only)"},
	// Operations.
	{Name: "EVIDENCE_RETENTION", Default: "720h", Meaning: "gateway calls and notifications are kept this long, then pruned by the processor"},
	{Name: "METRICS_NAMESPACE", Default: "LoomiPay", Meaning: "CloudWatch namespace of the metrics (EMF lines, emitted inside Lambda only)"},
}

// Config is the loaded configuration.
type Config struct {
	DatabaseURL     string
	DatabaseMaxConn int32
	RedisURL        string
	StreamPrefix    string
	ResultRetention time.Duration
	ResultMaxLen    int64
	KeyCacheTTL     time.Duration
	ReplayWindow    time.Duration

	LakalaBaseURL, LakalaAppID, LakalaSerialNo, LakalaMerchantNo, LakalaTermNo string
	LakalaPrivateKeyPEM, LakalaPlatformCertPEM, LakalaNotifyURL                string
	LakalaVposID, LakalaNotifyCertPEM, LakalaRefundAPI                         string
	LakalaSandbox                                                              bool
	LakalaTimeout                                                              time.Duration
	LakalaVisibilityLag                                                        time.Duration

	OrderTTL             time.Duration
	ProcessorConcurrency int
	ProcessorMaxAttempts int
	ProcessorLease       time.Duration
	ProcessorIdleExit    time.Duration
	WorkerStopGrace      time.Duration
	ReconcileAfter       time.Duration
	RefundRequestIP      string
	LogLevel             slog.Level

	Stage                                          string
	RequestTimeout                                 time.Duration
	StatementTimeout                               time.Duration
	LockTimeout                                    time.Duration
	IdleInTxTimeout                                time.Duration
	KeyCacheSize                                   int
	RateLimit                                      service.RateLimit
	RateLimitOverrides                             map[string]service.RateLimit
	RedisCluster                                   bool
	DatabaseRDSProxy                               bool
	ProcessorMaxRuns                               int
	ProcessorScaleAfter                            time.Duration
	EvidenceRetention                              time.Duration
	MetricsNamespace                               string
	SharedResultStreams                            bool
	AppPaymentStream, AppRefundStream              string
	WebhookSecretKey                               string
	WebhookConcurrency, WebhookEndpointConcurrency int
	WebhookAllowLoopback                           bool

	// secrets read the secret values; Open asks it again for a database or Redis URL whose
	// password a rotation changed. Nil in a Config built by hand: no re-reading.
	secrets *secrets.Resolver
}

// Load reads the configuration. Secrets (DATABASE_URL, REDIS_URL, LAKALA_PRIVATE_KEY) may be given
// directly or as NAME_SECRET_ARN; they are fetched once per process.
func Load(ctx context.Context) (Config, error) {
	res, err := secrets.NewResolver(ctx)
	if err != nil {
		return Config{}, err
	}
	var secretNames []string
	for _, v := range Variables {
		if v.Secret {
			secretNames = append(secretNames, v.Name)
		}
	}
	res.Prefetch(ctx, secretNames...)
	r := reader{ctx: ctx, res: res}
	c := Config{
		DatabaseURL:     r.secret("DATABASE_URL"),
		DatabaseMaxConn: int32(r.integer("DATABASE_MAX_CONNS")),
		RedisURL:        r.secret("REDIS_URL"),
		StreamPrefix:    r.str("STREAM_PREFIX"),
		ResultRetention: r.duration("RESULT_STREAM_RETENTION"),
		ResultMaxLen:    int64(r.integer("RESULT_STREAM_MAX_LEN")),
		KeyCacheTTL:     r.duration("API_KEY_CACHE_TTL"),
		ReplayWindow:    r.duration("WEBHOOK_REPLAY_WINDOW"),

		LakalaBaseURL:         r.str("LAKALA_BASE_URL"),
		LakalaAppID:           r.str("LAKALA_APP_ID"),
		LakalaSerialNo:        r.str("LAKALA_SERIAL_NO"),
		LakalaMerchantNo:      r.str("LAKALA_MERCHANT_NO"),
		LakalaTermNo:          r.str("LAKALA_TERM_NO"),
		LakalaPrivateKeyPEM:   pemValue(r.secret("LAKALA_PRIVATE_KEY")),
		LakalaPlatformCertPEM: pemValue(r.str("LAKALA_PLATFORM_CERT")),
		LakalaNotifyURL:       r.str("LAKALA_NOTIFY_URL"),
		LakalaVposID:          r.str("LAKALA_VPOS_ID"),
		LakalaNotifyCertPEM:   pemValue(r.str("LAKALA_NOTIFY_CERT")),
		LakalaRefundAPI:       r.str("LAKALA_REFUND_API"),
		LakalaTimeout:         r.duration("LAKALA_TIMEOUT"),
		LakalaVisibilityLag:   r.duration("LAKALA_VISIBILITY_LAG"),

		OrderTTL:             r.duration("ORDER_TTL"),
		ProcessorConcurrency: r.integer("PROCESSOR_CONCURRENCY"),
		ProcessorMaxAttempts: r.integer("PROCESSOR_MAX_ATTEMPTS"),
		ProcessorLease:       r.duration("PROCESSOR_LEASE"),
		ProcessorIdleExit:    r.duration("PROCESSOR_IDLE_EXIT"),
		WorkerStopGrace:      r.duration("WORKER_STOP_GRACE"),
		ReconcileAfter:       r.duration("RECONCILE_AFTER"),
		RefundRequestIP:      r.str("REFUND_REQUEST_IP"),

		Stage:                      r.str("STAGE"),
		RequestTimeout:             r.duration("REQUEST_TIMEOUT"),
		StatementTimeout:           r.duration("DATABASE_STATEMENT_TIMEOUT"),
		LockTimeout:                r.duration("DATABASE_LOCK_TIMEOUT"),
		IdleInTxTimeout:            r.duration("DATABASE_IDLE_TX_TIMEOUT"),
		KeyCacheSize:               r.integer("API_KEY_CACHE_SIZE"),
		RateLimit:                  service.RateLimit{Rate: r.integer("RATE_LIMIT"), Burst: r.integer("RATE_LIMIT_BURST")},
		EvidenceRetention:          r.duration("EVIDENCE_RETENTION"),
		MetricsNamespace:           r.str("METRICS_NAMESPACE"),
		SharedResultStreams:        r.boolean("SHARED_RESULT_STREAMS"),
		AppPaymentStream:           r.appStream("APP_PAYMENT_RESULT_STREAM"),
		AppRefundStream:            r.appStream("APP_REFUND_RESULT_STREAM"),
		WebhookSecretKey:           r.secret("WEBHOOK_SECRET_KEY"),
		WebhookConcurrency:         r.integer("WEBHOOK_CONCURRENCY"),
		WebhookEndpointConcurrency: r.integer("WEBHOOK_ENDPOINT_CONCURRENCY"),
		WebhookAllowLoopback:       r.boolean("WEBHOOK_ALLOW_LOOPBACK"),
	}
	c.secrets = res
	c.LakalaSandbox = r.boolean("LAKALA_SANDBOX")
	c.RateLimitOverrides = r.rateOverrides("RATE_LIMIT_APPS")
	c.RedisCluster = r.boolean("REDIS_CLUSTER")
	c.DatabaseRDSProxy = r.boolean("DATABASE_RDS_PROXY")
	c.ProcessorMaxRuns = r.integer("PROCESSOR_MAX_RUNS")
	c.ProcessorScaleAfter = r.duration("PROCESSOR_SCALE_AFTER")
	if err := c.LogLevel.UnmarshalText([]byte(r.str("LOG_LEVEL"))); err != nil {
		r.errs = append(r.errs, fmt.Errorf("LOG_LEVEL: %w", err))
	}
	return c, errors.Join(r.errs...)
}

// pemValue accepts a PEM given with literal "\n" escapes, as single-line env files carry it.
func pemValue(s string) string {
	if !strings.Contains(s, "\n") && strings.Contains(s, `\n`) {
		return strings.ReplaceAll(s, `\n`, "\n")
	}
	return s
}

// reader reads variables, applying defaults and collecting every error at once.
type reader struct {
	ctx  context.Context
	res  *secrets.Resolver
	errs []error
}

func defaultOf(name string) string {
	for _, v := range Variables {
		if v.Name == name {
			return v.Default
		}
	}
	panic("config: undeclared variable " + name) // every variable must be in Variables
}

func (r *reader) str(name string) string {
	def := defaultOf(name)
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func (r *reader) secret(name string) string {
	def := defaultOf(name)
	v, ok, err := r.res.Get(r.ctx, name)
	if err != nil {
		r.errs = append(r.errs, err)
		return ""
	}
	if !ok {
		return def
	}
	return v
}

func (r *reader) integer(name string) int {
	s := r.str(name)
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not a non-negative integer", name, s))
	}
	return n
}

func (r *reader) boolean(name string) bool {
	s := r.str(name)
	b, err := strconv.ParseBool(s)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not true or false", name, s))
	}
	return b
}

// appStream reads a per-app stream name, which must name the app.
func (r *reader) appStream(name string) string {
	s := r.str(name)
	if !strings.Contains(s, "$APP") {
		r.errs = append(r.errs, fmt.Errorf("%s: %q does not contain $APP (the app id)", name, s))
	}
	return s
}

func (r *reader) duration(name string) time.Duration {
	s := r.str(name)
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not a duration like 30s or 10m", name, s))
	}
	return d
}

// Logger returns the JSON logger at the configured level.
func (c Config) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: c.LogLevel}))
}

// PlatformKey parses LAKALA_PLATFORM_CERT: the key that verifies responses, and its
// certificate's serial (nil for a bare key).
func (c Config) PlatformKey() (*rsa.PublicKey, *big.Int, error) {
	if c.LakalaPlatformCertPEM == "" {
		return nil, nil, errors.New("LAKALA_PLATFORM_CERT is not set")
	}
	k, serial, err := lakala.ParsePlatformCert([]byte(c.LakalaPlatformCertPEM))
	if err != nil {
		return nil, nil, fmt.Errorf("LAKALA_PLATFORM_CERT: %w", err)
	}
	return k, serial, nil
}

// NotifyKey is the key that verifies notifications: LAKALA_NOTIFY_CERT, else the platform
// certificate's; nil when neither is set (the webhook then refuses every notification).
func (c Config) NotifyKey() (*rsa.PublicKey, error) {
	switch {
	case c.LakalaNotifyCertPEM != "":
		k, err := lakala.ParsePublicKey([]byte(c.LakalaNotifyCertPEM))
		if err != nil {
			return nil, fmt.Errorf("LAKALA_NOTIFY_CERT: %w", err)
		}
		return k, nil
	case c.LakalaPlatformCertPEM != "":
		k, _, err := c.PlatformKey()
		return k, err
	}
	return nil, nil
}

// Deps are the long-lived dependencies of a function, built once per process (a Lambda keeps
// them across invocations).
type Deps struct {
	Config  Config
	Log     *slog.Logger
	Store   *postgres.Store
	Streams *streams.Streams
	Service *service.Service
	// Merchants is every merchant the service speaks for: the configured one (LAKALA_*) and
	// those an operator added; each order is served by its own merchant's Lakala client.
	Merchants *merchants.Registry
	// Webhooks manages webhook endpoints and delivers to them (the processor runs it).
	Webhooks *webhooks.Webhooks
	// ClientIPHeader, when set, names the header a trusted proxy sets to the client's address
	// (loomipay serve --client-ip-header); see httpapi.Options.ClientIPHeader.
	ClientIPHeader string
}

// Open connects to Postgres and Redis and builds the service. The platform certificate is
// optional here (only the webhook needs it; it fails closed without it).
func Open(ctx context.Context, c Config) (*Deps, error) {
	log := c.Logger()
	if c.DatabaseURL == "" {
		return nil, errors.New("DATABASE_URL (or DATABASE_URL_SECRET_ARN) is not set")
	}
	store, err := postgres.Open(ctx, c.DatabaseURL, postgres.Options{MaxConns: c.DatabaseMaxConn,
		StatementTimeout: c.StatementTimeout, LockTimeout: c.LockTimeout, IdleInTxTimeout: c.IdleInTxTimeout, RDSProxy: c.DatabaseRDSProxy,
		Reload: c.reload("DATABASE_URL"), Logger: log})
	if err != nil {
		return nil, err
	}
	var rdb redis.UniversalClient
	if reload := c.reload("REDIS_URL"); reload != nil {
		rdb, err = streams.NewRotatingClient(c.RedisURL, c.RedisCluster, reload, log)
	} else {
		rdb, err = streams.NewUniversalClient(c.RedisURL, c.RedisCluster)
	}
	if err != nil {
		store.Close()
		return nil, err
	}
	st := streams.New(rdb, streams.Config{Prefix: c.StreamPrefix, ResultRetention: c.ResultRetention, ResultMaxLen: c.ResultMaxLen,
		AppPaymentStream: c.AppPaymentStream, AppRefundStream: c.AppRefundStream, NoSharedResults: !c.SharedResultStreams})
	wh, err := webhooks.New(store.Pool(), webhooks.Config{SecretKey: c.WebhookSecretKey, AllowLoopback: c.WebhookAllowLoopback,
		Concurrency: c.WebhookConcurrency, EndpointConcurrency: c.WebhookEndpointConcurrency}, log)
	if err != nil {
		store.Close()
		return nil, err
	}
	notifyKey, err := c.NotifyKey()
	if err != nil {
		store.Close()
		return nil, err
	}
	refs := c.secrets
	if refs == nil {
		if refs, err = secrets.NewResolver(ctx); err != nil {
			store.Close()
			return nil, err
		}
	}
	d := &Deps{Config: c, Log: log, Store: store, Streams: st, Webhooks: wh}
	d.Merchants = merchants.New(merchants.Config{
		Store: store, Refs: refs, BaseURL: c.LakalaBaseURL,
		HTTPClient: lakala.NewHTTPClient(c.LakalaTimeout, c.ProcessorConcurrency),
		Logger:     log, OnCall: ops.GatewayCallLogger(store, d.Metrics(), log), Stage: c.Stage,
		Default: merchants.Default{AppID: c.LakalaAppID, SerialNo: c.LakalaSerialNo, MerchantNo: c.LakalaMerchantNo,
			TermNo: c.LakalaTermNo, VposID: c.LakalaVposID, NotifyKey: notifyKey, Client: d.buildDefaultClient},
	})
	d.Service = service.New(store, st, log, service.Config{KeyCacheTTL: c.KeyCacheTTL, Merchants: d.Merchants,
		ReplayWindow: c.ReplayWindow, KeyCacheSize: c.KeyCacheSize, RateLimit: c.RateLimit, RateLimits: c.RateLimitOverrides, OrderTTL: c.OrderTTL})
	return d, nil
}

// reload reads the secret of name (DATABASE_URL, REDIS_URL) again, for a client to reconnect with
// after a rotation changed its password; nil when the value does not come from Secrets Manager.
func (c Config) reload(name string) func(context.Context) (string, error) {
	if c.secrets == nil || !secrets.FromSecret(name) {
		return nil
	}
	return func(ctx context.Context) (string, error) {
		v, _, err := c.secrets.Reload(ctx, name)
		return v, err
	}
}

// Close releases the connections.
func (d *Deps) Close() {
	d.Store.Close()
	_ = d.Streams.Client().Close()
}

// LakalaClient is the default merchant's Lakala client (the LAKALA_* variables), built once.
func (d *Deps) LakalaClient() (*lakala.Client, error) { return d.Merchants.DefaultClient() }

// buildDefaultClient builds the default merchant's client from the configuration.
func (d *Deps) buildDefaultClient() (*lakala.Client, error) {
	c := d.Config
	if c.LakalaPrivateKeyPEM == "" {
		return nil, errors.New("LAKALA_PRIVATE_KEY (or LAKALA_PRIVATE_KEY_SECRET_ARN) is not set")
	}
	key, err := lakala.ParsePrivateKey([]byte(c.LakalaPrivateKeyPEM))
	if err != nil {
		return nil, fmt.Errorf("LAKALA_PRIVATE_KEY: %w", err)
	}
	platform, serial, err := c.PlatformKey()
	if err != nil {
		return nil, err
	}
	return lakala.NewClient(lakala.Config{
		BaseURL:     c.LakalaBaseURL,
		Credentials: lakala.Credentials{AppID: c.LakalaAppID, SerialNo: c.LakalaSerialNo, PrivateKey: key},
		MerchantNo:  c.LakalaMerchantNo, TermNo: c.LakalaTermNo, VposID: c.LakalaVposID,
		PlatformKey: platform, PlatformSerial: serial,
		HTTPClient: lakala.NewHTTPClient(c.LakalaTimeout, c.ProcessorConcurrency),
		Logger:     d.Log,
		OnCall:     ops.GatewayCallLogger(d.Store, d.Metrics(), d.Log),
		MerchantID: postgres.DefaultMerchant,
	})
}

// Payments builds the gateway driver for a function that acts at Lakala outside the processor:
// createorder's close route. It needs the default merchant's key (each order is then served by
// its own merchant's client).
func (d *Deps) Payments() (*service.Payments, error) {
	if _, err := d.LakalaClient(); err != nil {
		return nil, err
	}
	c := d.Config
	return service.NewPayments(d.Service, d.Merchants, service.PaymentsConfig{
		NotifyURL: c.LakalaNotifyURL, RefundRequestIP: c.RefundRequestIP,
		VisibilityLag: c.LakalaVisibilityLag, RefundAPI: c.LakalaRefundAPI,
	}), nil
}

// API builds the HTTP API with the configured request deadline.
func (d *Deps) API() *httpapi.API {
	return httpapi.New(d.Service, httpapi.Options{RequestTimeout: d.Config.RequestTimeout, ClientIPHeader: d.ClientIPHeader})
}

// MustOpen loads and validates the configuration and opens the dependencies, or exits: the
// whole init of an HTTP Lambda function.
func MustOpen(ctx context.Context) *Deps {
	deps, err := LoadAndOpen(ctx)
	if err != nil {
		Fatal(err)
	}
	return deps
}

// LoadAndOpen is MustOpen returning its error, for a function that must answer even when it
// cannot start: the migrate function, whose silence would leave CloudFormation waiting.
func LoadAndOpen(ctx context.Context) (*Deps, error) {
	c, err := Load(ctx)
	if err == nil {
		err = c.Validate(false)
	}
	if err != nil {
		return nil, err
	}
	return Open(ctx, c)
}

// Fatal logs a start-up failure as JSON and exits: a Lambda init error is reported by the
// runtime and retried on the next invocation.
func Fatal(err error) {
	LogStartupFailure(err)
	os.Exit(1)
}

// LogStartupFailure logs a start-up failure as JSON, as Fatal does, without exiting.
func LogStartupFailure(err error) {
	slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("start-up failed", "err", err)
}

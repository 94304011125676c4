// Package sandbox is an imitation of Lakala's Open Platform v3 for development and tests: a real
// HTTP server that plays any number of merchants, verifies each request's signature with the
// certificate of the merchant's appid that it names, signs its responses and notifications with
// its own platform key, serves a hosted cashier page per order, and sends payment notifications
// with Lakala's retry schedule. It keeps its state in PostgreSQL (a schema of its own), so it
// survives restarts and runs as a Lambda function as well as in a process. Faults make it
// misbehave on request.
package sandbox

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/lakala"
)

// Failure codes the sandbox answers with. Where a source gives Lakala's code (shared/lakala,
// codes.go) the sandbox uses it: BBS11000 for a labs or 统一退货 request whose parameters fail,
// the gateway's network codes under Faults.NetworkCodeRate. Lakala publishes no code for the
// rest, so they are the sandbox's own, and the client reads them as it must read any code it
// does not know: outcome unknown. None collides with a success, network or listed code.
const (
	CodeBadSignature     = "000401" // HTTP 401, unsigned body
	CodeInternalError    = "999999" // HTTP 500, unsigned body
	CodeInvalidParam     = "010100"
	CodeOrderExists      = "010101" // out_order_no reused with a different amount
	CodeOrderNotFound    = "010102"
	CodeOrderNotClosable = "010103"
	CodeOrderRepeated    = "010104" // a known out_order_no, under DuplicateCreate "refuse"
	CodeLabsInvalidParam = lakala.CodeParamInvalid
	CodeOriginNotFound   = "BBS20002" // no refundable payment matches the origin ids
	CodeRefundExceeds    = "BBS20003"
	CodeRefundFailed     = "BBS20004"
	CodeRefundRepeated   = "BBS20005" // a known out_trade_no, under DuplicateRefund "refuse"/"exceeds"
	CodeRfdNotFound      = "RFD20002" // 统一退货 query of a refund it does not know
	CodeRfdQueryRefused  = "RFD20001" // 统一退货 query refused (Faults.RefundQueryRefusals)
)

// ForeignMerchantNo is the merchant under which Faults.ForeignNotifyRate creates cashier orders
// with our numbers: another Lakala merchant, whose notifications the platform key signs too.
const ForeignMerchantNo = "82299990000000X"

// DefaultNotifyRetryDelays is Lakala's published retry schedule after a notification
// is not acknowledged.
var DefaultNotifyRetryDelays = []time.Duration{
	time.Second, 5 * time.Second, 5 * time.Second, 10 * time.Second,
	3 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour,
}

const (
	maxRequestBody    = 1 << 20
	maxOrderLifetime  = 7 * 24 * time.Hour
	defaultRefundHold = 2 * time.Minute
	platformCertCN    = "APIGW.LAKALA.SANDBOX"
)

// Config configures a Sandbox.
type Config struct {
	// DB keeps the sandbox's state, in Schema (made if missing; default DefaultSchema). Required.
	DB     DB
	Schema string
	// Merchants are registered at start (AddMerchant): the merchants the sandbox plays. More may
	// be added later (AddMerchant, POST /sandbox/merchants); those registered before are kept.
	Merchants []Merchant
	// PlatformKey signs responses and notifications; nil uses the one kept in the database (made
	// on the first start), so restarts and every process playing the sandbox sign alike.
	PlatformKey *rsa.PrivateKey
	// PublicURL is the sandbox's public base, e.g. http://127.0.0.1:3100, of every counter_url.
	// It may be set later with SetPublicURL; while empty the request's scheme, Host and BasePath
	// are used.
	PublicURL string
	// BasePath prefixes every route: "" where the sandbox has a server of its own (Lakala's paths
	// at the root, as at Lakala; the admin endpoints under /sandbox); "/sandbox" behind an HTTP API
	// shared with other routes (everything under it, the admin endpoints too).
	BasePath string
	// NotifyRetryDelays are the waits between notification attempts; nil means
	// DefaultNotifyRetryDelays.
	NotifyRetryDelays []time.Duration
	// RefundHold caps how long RefundTimeoutAfterApply and LostAnswerMode "timeout"
	// hold a request whose caller has not given up; 0 means 2 minutes.
	RefundHold time.Duration
	// Inline delivers notifications without a goroutine outliving any call (a Lambda function):
	// a payer's action delivers what is due before it answers, and DeliverDue (on a schedule)
	// the retries. Off, a goroutine of this process delivers each as it falls due.
	Inline bool
	// Now is the sandbox's clock; nil means time.Now.
	Now        func() time.Time
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Sandbox is a Lakala kept in PostgreSQL. All methods are safe for concurrent use, and any number
// of processes may play one sandbox (one schema) at once.
type Sandbox struct {
	db             DB
	schema         string // quoted
	platformKey    *rsa.PrivateKey
	certPEM        []byte
	platformSerial string
	basePath       string
	retryDelays    []time.Duration
	refundHold     time.Duration
	inline         bool
	now            func() time.Time
	client         *http.Client
	log            *slog.Logger

	// stop ends notification deliveries and held refund requests on Close.
	stop    context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup
	wake    chan struct{} // a delivery is due (background delivery)

	mu        sync.Mutex
	publicURL string
	dice      *mathrand.Rand
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// New builds a Sandbox on its schema (made if missing) and registers cfg.Merchants; serve it with
// Handler and stop it with Close.
func New(ctx context.Context, cfg Config) (*Sandbox, error) {
	if cfg.DB == nil {
		return nil, errors.New("sandbox: a database is required (Config.DB): the sandbox keeps its state there")
	}
	schema := cfg.Schema
	if schema == "" {
		schema = DefaultSchema
	}
	if !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("sandbox: schema %q is not a lower-case SQL name", schema)
	}
	if cfg.BasePath != "" && (!strings.HasPrefix(cfg.BasePath, "/") || strings.HasSuffix(cfg.BasePath, "/")) {
		return nil, fmt.Errorf("sandbox: base path %q must start with / and not end with one", cfg.BasePath)
	}
	s := &Sandbox{
		db:          cfg.DB,
		schema:      pgx.Identifier{schema}.Sanitize(),
		basePath:    cfg.BasePath,
		retryDelays: cfg.NotifyRetryDelays,
		refundHold:  cfg.RefundHold,
		inline:      cfg.Inline,
		now:         cfg.Now,
		client:      cfg.HTTPClient,
		log:         cfg.Logger,
		publicURL:   strings.TrimRight(cfg.PublicURL, "/"),
		wake:        make(chan struct{}, 1),
	}
	if s.retryDelays == nil {
		s.retryDelays = DefaultNotifyRetryDelays
	}
	if s.refundHold <= 0 {
		s.refundHold = defaultRefundHold
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "lakala-sandbox")
	if err := s.setup(ctx); err != nil {
		return nil, fmt.Errorf("sandbox: set up schema %s: %w", schema, err)
	}
	if cfg.PlatformKey != nil {
		certPEM, err := lakala.SelfSignedCertPEM(cfg.PlatformKey, platformCertCN)
		if err != nil {
			return nil, fmt.Errorf("sandbox: platform certificate: %w", err)
		}
		s.platformKey, s.certPEM = cfg.PlatformKey, certPEM
	} else {
		key, certPEM, err := s.platform(ctx)
		if err != nil {
			return nil, fmt.Errorf("sandbox: platform key: %w", err)
		}
		s.platformKey, s.certPEM = key, certPEM
	}
	serial, err := certSerialHex(s.certPEM)
	if err != nil {
		return nil, fmt.Errorf("sandbox: platform certificate: %w", err)
	}
	s.platformSerial = serial
	for _, m := range cfg.Merchants {
		if err := s.AddMerchant(ctx, m); err != nil {
			return nil, err
		}
	}
	s.dice = newDice(0)
	s.stop, s.cancel = context.WithCancel(context.Background())
	if !s.inline {
		s.workers.Add(1)
		go s.deliverLoop()
	}
	return s, nil
}

func certSerialHex(certPEM []byte) (string, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return "", errors.New("no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("parse: %w", err)
	}
	return fmt.Sprintf("%x", cert.SerialNumber), nil
}

func newDice(seed int64) *mathrand.Rand {
	if seed == 0 {
		return mathrand.New(mathrand.NewPCG(mathrand.Uint64(), mathrand.Uint64()))
	}
	return mathrand.New(mathrand.NewPCG(uint64(seed), 0))
}

// Close stops notification deliveries and held requests, and waits for them. What was not
// delivered stays in the database, for the next process playing the sandbox.
func (s *Sandbox) Close() {
	s.cancel()
	s.workers.Wait()
}

// PlatformPublicKey is the key the service must verify responses and notifications with.
func (s *Sandbox) PlatformPublicKey() *rsa.PublicKey { return &s.platformKey.PublicKey }

// PlatformCertPEM is the platform certificate, in the form Lakala hands to merchants.
func (s *Sandbox) PlatformCertPEM() []byte { return append([]byte(nil), s.certPEM...) }

// SetPublicURL sets the base of counter_url, typically once the listener's address is known.
func (s *Sandbox) SetPublicURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publicURL = strings.TrimRight(u, "/")
}

// base is the public base of the sandbox's pages for a request.
func (s *Sandbox) base(r *http.Request) string {
	s.mu.Lock()
	base := s.publicURL
	s.mu.Unlock()
	if base != "" {
		return base
	}
	// Behind a proxy (API Gateway) its X-Forwarded-Proto; through the Lambda adapter the URL's.
	scheme := r.Header.Get("X-Forwarded-Proto")
	switch {
	case scheme == "http" || scheme == "https":
	case r.URL.Scheme != "":
		scheme = r.URL.Scheme
	case r.TLS != nil:
		scheme = "https"
	default:
		scheme = "http"
	}
	return scheme + "://" + r.Host + s.basePath
}

// SetFaults replaces the fault settings; an invalid setting is ignored and logged, use
// the admin endpoint to get the error back.
func (s *Sandbox) SetFaults(f Faults) {
	if err := s.setFaults(f); err != nil {
		s.log.Error("sandbox faults rejected", "error", err)
	}
}

func (s *Sandbox) setFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	if err := s.writeFaultsRow(context.Background(), f); err != nil {
		return fmt.Errorf("store faults: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dice = newDice(f.Seed)
	return nil
}

// Faults returns the current fault settings (every process playing the sandbox shares them).
func (s *Sandbox) Faults() Faults {
	f, err := s.readFaults(context.Background())
	if err != nil {
		s.log.Error("sandbox cannot read its faults; playing without", "error", err)
	}
	return f
}

// Handler serves Lakala's API paths, the cashier pages and the admin endpoints, under BasePath.
func (s *Sandbox) Handler() http.Handler {
	p := s.basePath
	admin := p
	if admin == "" {
		admin = "/sandbox" // beside Lakala's own paths, at the root
	}
	mux := http.NewServeMux()
	// Only calls that change something can lose their answer after acting; a lost query
	// answer is no different from a failed one.
	mux.Handle("POST "+p+lakala.PathCreateOrder, s.api(familyCashier, true, s.createOrder))
	mux.Handle("POST "+p+lakala.PathQueryOrder, s.api(familyCashier, false, s.queryOrder))
	mux.Handle("POST "+p+lakala.PathCloseOrder, s.api(familyCashier, true, s.closeOrder))
	mux.Handle("POST "+p+lakala.PathRefund, s.api(familyLabs, true, s.refund))
	mux.Handle("POST "+p+lakala.PathTradeQuery, s.api(familyLabs, false, s.tradeQuery))
	mux.Handle("POST "+p+lakala.PathRfdRefund, s.api(familyRfd, true, s.rfdRefund))
	mux.Handle("POST "+p+lakala.PathRfdRefundQuery, s.api(familyRfd, false, s.rfdRefundQuery))
	mux.HandleFunc("GET "+p+"/counter/{payOrderNo}", s.counterPage)
	mux.HandleFunc("POST "+p+"/counter/{payOrderNo}", s.counterAction)
	mux.HandleFunc("GET "+admin+"/faults", s.getFaults)
	mux.HandleFunc("PUT "+admin+"/faults", s.putFaults)
	mux.HandleFunc("PATCH "+admin+"/faults", s.patchFaults)
	mux.HandleFunc("GET "+admin+"/ledger", s.getLedger)
	mux.HandleFunc("GET "+admin+"/orders/{outOrderNo}", s.getOrder)
	mux.HandleFunc("POST "+admin+"/orders/{outOrderNo}/{action}", s.settleOrder)
	mux.HandleFunc("GET "+admin+"/merchants", s.getMerchants)
	mux.HandleFunc("GET "+admin+"/calls", s.getCalls)
	mux.HandleFunc("POST "+admin+"/merchants", s.postMerchant)
	mux.HandleFunc("POST "+admin+"/certificates", s.postCertificate)
	mux.HandleFunc("POST "+admin+"/certificates/revoke", s.revokeCertificate)
	mux.HandleFunc("POST "+admin+"/deliver", s.postDeliver)
	mux.HandleFunc("GET "+admin+"/platform-cert.pem", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.certPEM)
	})
	return mux
}

// apiCall is one verified API request as the endpoint handlers see it.
type apiCall struct {
	ctx     context.Context
	w       http.ResponseWriter
	r       *http.Request
	auth    lakala.RequestAuth
	reqData json.RawMessage
	faults  Faults
	now     time.Time
}

// apiResult is what an endpoint answers: an empty code means success, a nil data an
// empty resp_data object.
type apiResult struct {
	code, msg string
	data      any
}

func failure(code, format string, args ...any) apiResult {
	return apiResult{code: code, msg: fmt.Sprintf(format, args...)}
}

// systemError is the answer to a call the sandbox could not carry out (its database failed):
// unsigned, as Lakala's gateway answers before a business handler, and unknown to the client.
var systemError = apiResult{code: CodeInternalError, msg: "系统异常"}

// family is an API family: its success code, the code its parameter check refuses with, and
// the network-failure codes its gateway answers when it could not hear back from the back end.
type family struct {
	okCode, invalidParam string
	networkCodes         []string
}

var (
	familyCashier = family{lakala.CodeCashierOK, CodeInvalidParam, []string{lakala.CodeCashierNetworkFail, lakala.CodeCashierNetworkTimout}}
	familyLabs    = family{lakala.CodeLabsOK, CodeLabsInvalidParam, []string{lakala.CodeNetworkFailure, lakala.CodeNetworkTimeout}}
	familyRfd     = family{lakala.CodeCashierOK, CodeLabsInvalidParam, []string{lakala.CodeRfdTimeout, lakala.CodeRfdUnknown}}
)

// api wraps an endpoint with what every Lakala API call goes through: latency, the
// request signature (with the certificate its appid and serial_no name), injected server errors,
// the envelope, network codes and lost answers (when lossy: the call was carried out first), and
// the response signature.
func (s *Sandbox) api(fam family, lossy bool, endpoint func(apiCall) apiResult) http.Handler {
	okCode := fam.okCode
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		faults := s.Faults()
		if faults.Latency > 0 {
			select {
			case <-time.After(faults.Latency):
			case <-ctx.Done():
				return
			}
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			writeUnsigned(w, http.StatusBadRequest, CodeInvalidParam, "cannot read body")
			return
		}
		// Once it acts, a gateway carries a call through whether or not its caller still listens:
		// a caller that gave up learns the outcome by query, as from Lakala.
		work, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		// The timestamp's age is not checked: callers under test may sign with a fake clock.
		auth, err := s.verifyRequest(work, r.Header.Get("Authorization"), body)
		if err != nil {
			s.log.Warn("sandbox rejected request signature", "path", r.URL.Path, "error", err)
			writeUnsigned(w, http.StatusUnauthorized, CodeBadSignature, "签名验证失败")
			return
		}
		if s.roll(faults.ErrorRate) {
			s.log.Info("sandbox injected a server error", "path", r.URL.Path)
			writeUnsigned(w, http.StatusInternalServerError, CodeInternalError, "系统异常")
			return
		}

		now := s.now()
		var env lakala.Request[json.RawMessage]
		var res apiResult
		switch err := json.Unmarshal(body, &env); {
		case err != nil:
			res = failure(fam.invalidParam, "request body is not a JSON envelope: %v", err)
		case env.Version != lakala.APIVersion:
			res = failure(fam.invalidParam, "version must be %q", lakala.APIVersion)
		case env.ReqTime == "":
			res = failure(fam.invalidParam, "req_time is required")
		default:
			res = endpoint(apiCall{ctx: work, w: w, r: r, auth: auth, reqData: env.ReqData, faults: faults, now: now})
		}
		if res.code == CodeInternalError {
			writeUnsigned(w, http.StatusInternalServerError, CodeInternalError, "系统异常")
			return
		}
		s.logCall(work, r.URL.Path, auth, env.ReqData, res.code, now)
		if lossy && s.roll(faults.NetworkCodeRate) {
			// Applied, but the gateway could not hear back from the back end in time.
			code := fam.networkCodes[s.pick(len(fam.networkCodes))]
			s.log.Info("sandbox answered a network code after applying", "path", r.URL.Path, "code", code)
			res = failure(code, "网络请求失败")
		}
		if lossy && s.roll(faults.LostAnswerRate) {
			s.loseAnswer(w, r, faults.LostAnswerMode)
			return
		}
		if res.code == "" {
			res.code, res.msg = okCode, "成功"
		}
		if res.data == nil {
			res.data = struct{}{}
		}
		out, err := json.Marshal(lakala.Response[any]{
			Code: res.code, Msg: res.msg, RespTime: lakala.FormatTime(now), RespData: res.data,
		})
		if err != nil {
			s.log.Error("sandbox cannot encode response", "error", err)
			writeUnsigned(w, http.StatusInternalServerError, CodeInternalError, "系统异常")
			return
		}
		if err := lakala.SetResponseSignature(w.Header(), s.platformKey, auth.AppID, s.platformSerial, out, now); err != nil {
			s.log.Error("sandbox cannot sign response", "error", err)
			writeUnsigned(w, http.StatusInternalServerError, CodeInternalError, "系统异常")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
}

// pick returns a number in [0, n) from the seeded dice.
func (s *Sandbox) pick(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dice.IntN(n)
}

// roll reports true with probability rate, using the seeded dice.
func (s *Sandbox) roll(rate float64) bool {
	if rate <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dice.Float64() < rate
}

// loseAnswer loses the answer of a call that has been carried out, the given way.
func (s *Sandbox) loseAnswer(w http.ResponseWriter, r *http.Request, mode string) {
	s.log.Info("sandbox lost an answer", "path", r.URL.Path, "mode", mode)
	switch mode {
	case LostAnswer502:
		// What a proxy in front of Lakala answers when Lakala's answer never reached it.
		writeUnsigned(w, http.StatusBadGateway, "502", "Bad Gateway")
	case LostAnswerTimeout:
		s.hangUp(r)
	default:
		panic(http.ErrAbortHandler) // net/http drops the connection without logging
	}
}

// writeUnsigned answers the way Lakala's gateway does before reaching a business
// handler: an error envelope without response signature headers.
func writeUnsigned(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(lakala.Response[struct{}]{Code: code, Msg: msg})
}

func decodeReqData[T any](call apiCall, fam family) (T, *apiResult) {
	var data T
	if err := json.Unmarshal(call.reqData, &data); err != nil {
		res := failure(fam.invalidParam, "req_data: %v", err)
		return data, &res
	}
	return data, nil
}

// limit is a field and Lakala's longest value for it.
type limit struct {
	name, value string
	max         int
}

// tooLong refuses the first field longer than Lakala's limit for it, in bytes of UTF-8 (the
// strictest reading of String(n)).
func tooLong(code string, limits ...limit) *apiResult {
	for _, l := range limits {
		if len(l.value) > l.max {
			res := failure(code, "%s is longer than String(%d)", l.name, l.max)
			return &res
		}
	}
	return nil
}

func validNotifyURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// internal logs a database failure and answers it as the system error it is.
func (s *Sandbox) internal(what string, err error) apiResult {
	s.log.Error("sandbox: "+what, "error", err)
	return systemError
}

func (s *Sandbox) createOrder(call apiCall) apiResult {
	data, bad := decodeReqData[lakala.CreateOrderData](call, familyCashier)
	if bad != nil {
		return *bad
	}
	if bad := tooLong(CodeInvalidParam, limit{"out_order_no", data.OutOrderNo, lakala.MaxOutOrderNo},
		limit{"merchant_no", data.MerchantNo, lakala.MaxMerchantNo}, limit{"vpos_id", data.VposID, lakala.MaxVposID},
		limit{"order_info", data.OrderInfo, lakala.MaxOrderInfo}, limit{"notify_url", data.NotifyURL, lakala.MaxNotifyURL},
		limit{"callback_url", data.CallbackURL, lakala.MaxCallbackURL}, limit{"counter_param", data.CounterParam, lakala.MaxCounterParam}); bad != nil {
		return *bad
	}
	m, bad := s.merchantFor(call.ctx, call, familyCashier, data.MerchantNo)
	if bad != nil {
		return *bad
	}
	efficient, err := lakala.ParseTime(data.OrderEfficientTime)
	switch {
	case data.OutOrderNo == "":
		return failure(CodeInvalidParam, "out_order_no is required")
	case m.VposID != "" && data.VposID != m.VposID:
		return failure(CodeInvalidParam, "vpos_id %q is not the merchant's terminal (非合单场景必输)", data.VposID)
	case data.TotalAmount <= 0 || data.TotalAmount > lakala.MaxAmount:
		return failure(CodeInvalidParam, "total_amount must be 1 to 12 digits of fen")
	case err != nil:
		return failure(CodeInvalidParam, "order_efficient_time must be yyyyMMddHHmmss")
	case !efficient.After(call.now):
		return failure(CodeInvalidParam, "order_efficient_time must be in the future")
	case efficient.After(call.now.Add(maxOrderLifetime)):
		return failure(CodeInvalidParam, "order_efficient_time must be within 7 days")
	case data.OrderInfo == "":
		return failure(CodeInvalidParam, "order_info is required")
	case !validNotifyURL(data.NotifyURL):
		return failure(CodeInvalidParam, "notify_url must be an absolute http(s) URL")
	case data.CallbackURL != "" && !validNotifyURL(data.CallbackURL):
		return failure(CodeInvalidParam, "callback_url must be an absolute http(s) URL")
	}
	payMode := "ALIPAY"
	if data.CounterParam != "" {
		var param struct {
			PayMode string `json:"pay_mode"`
		}
		if err := json.Unmarshal([]byte(data.CounterParam), &param); err != nil {
			return failure(CodeInvalidParam, "counter_param must be a JSON object in a string")
		}
		if param.PayMode != "" {
			payMode = param.PayMode
		}
	}

	var res apiResult
	notified := false
	err = s.inTx(call.ctx, func(tx pgx.Tx) error {
		// Serialises creates of one number: the second waits for the first's row.
		if _, err := tx.Exec(call.ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "create/"+data.MerchantNo+"/"+data.OutOrderNo); err != nil {
			return err
		}
		o, err := s.lockOrder(call.ctx, tx, data.MerchantNo, data.OutOrderNo)
		if err != nil {
			return err
		}
		if o != nil {
			switch {
			case call.faults.DuplicateCreate == DuplicateCreateRefuse:
				res = failure(CodeOrderRepeated, "订单号重复")
			case o.TotalAmount != int64(data.TotalAmount):
				res = failure(CodeOrderExists, "out_order_no %s already exists with other details", data.OutOrderNo)
			default:
				res = apiResult{data: o.CreateResult}
			}
			return nil
		}
		payOrderNo, err := s.nextID(call.ctx, tx, lakala.FormatTime(call.now)[2:8], 23)
		if err != nil {
			return err
		}
		o = &order{
			OutOrderNo:    data.OutOrderNo,
			PayOrderNo:    payOrderNo,
			MerchantNo:    data.MerchantNo,
			TermNo:        data.VposID,
			TotalAmount:   int64(data.TotalAmount),
			OrderInfo:     data.OrderInfo,
			NotifyURL:     data.NotifyURL,
			CallbackURL:   data.CallbackURL,
			SupportRefund: data.SupportRefund == 1,
			AutoRefund:    data.CloseOrderAutoRefund == "1",
			PayMode:       payMode,
			Status:        lakala.OrderStatusUnpaid,
			CreatedAt:     call.now,
			ExpiresAt:     efficient,
		}
		if o.TermNo == "" {
			o.TermNo = m.TermNo
		}
		o.CreateResult = lakala.CreateOrderResult{
			CounterURL:         s.base(call.r) + "/counter/" + o.PayOrderNo,
			PayOrderNo:         o.PayOrderNo,
			OutOrderNo:         o.OutOrderNo,
			MerchantNo:         o.MerchantNo,
			OrderCreateTime:    lakala.FormatTime(o.CreatedAt),
			OrderEfficientTime: lakala.FormatTime(o.ExpiresAt),
			TotalAmount:        lakala.Fen(o.TotalAmount),
			ChannelID:          "95",
		}
		o.record(call.now)
		b, err := json.Marshal(o)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(call.ctx, s.sql(`INSERT INTO lkl.orders (merchant_no, out_order_no, pay_order_no, created_at, state) VALUES ($1, $2, $3, $4, $5)`),
			o.MerchantNo, o.OutOrderNo, o.PayOrderNo, o.CreatedAt, b); err != nil {
			return err
		}
		s.log.Info("sandbox order created", "merchant_no", o.MerchantNo, "out_order_no", o.OutOrderNo, "pay_order_no", o.PayOrderNo, "total_amount", o.TotalAmount)
		if call.faults.ForeignNotifyRate > 0 && s.roll(call.faults.ForeignNotifyRate) {
			if notified, err = s.payForeignTwin(call.ctx, tx, o, call.faults, call.now); err != nil {
				return err
			}
		}
		res = apiResult{data: o.CreateResult}
		return nil
	})
	if err != nil {
		return s.internal("create order", err)
	}
	if notified {
		s.deliverSoon(call.ctx)
	}
	return res
}

// findOrder reads an order by out_order_no or pay_order_no, as query and close allow, locking it
// when tx is a transaction; an order created less than lag ago is not found.
func (s *Sandbox) findOrder(ctx context.Context, q querier, merchantNo, outOrderNo, payOrderNo string, now time.Time, lag time.Duration, lock bool) (*order, *apiResult, error) {
	query := `SELECT state FROM lkl.orders WHERE merchant_no = $1 AND `
	arg := outOrderNo
	switch {
	case outOrderNo != "":
		query += `out_order_no = $2`
	case payOrderNo != "":
		query, arg = query+`pay_order_no = $2`, payOrderNo
	default:
		res := failure(CodeInvalidParam, "out_order_no or pay_order_no is required")
		return nil, &res, nil
	}
	if lock {
		query += ` FOR UPDATE`
	}
	o, err := readJSON[order](ctx, q, s.sql(query), merchantNo, arg)
	if errors.Is(err, pgx.ErrNoRows) {
		res := failure(CodeOrderNotFound, "order not found")
		return nil, &res, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if (payOrderNo != "" && o.PayOrderNo != payOrderNo) || (lag > 0 && o.CreatedAt.After(now.Add(-lag))) {
		res := failure(CodeOrderNotFound, "order not found")
		return nil, &res, nil
	}
	o.expireIfDue(now)
	return o, nil, nil
}

func (s *Sandbox) queryOrder(call apiCall) apiResult {
	data, bad := decodeReqData[lakala.QueryOrderData](call, familyCashier)
	if bad != nil {
		return *bad
	}
	if _, bad := s.merchantFor(call.ctx, call, familyCashier, data.MerchantNo); bad != nil {
		return *bad
	}
	o, bad, err := s.findOrder(call.ctx, s.db, data.MerchantNo, data.OutOrderNo, data.PayOrderNo, call.now, call.faults.QueryLag, false)
	if err != nil {
		return s.internal("query order", err)
	}
	if bad != nil {
		return *bad
	}
	st, _ := o.visible(call.now, call.faults.QueryLag)
	return apiResult{data: o.queryResult(st)}
}

func (s *Sandbox) closeOrder(call apiCall) apiResult {
	data, bad := decodeReqData[lakala.CloseOrderData](call, familyCashier)
	if bad != nil {
		return *bad
	}
	if _, bad := s.merchantFor(call.ctx, call, familyCashier, data.MerchantNo); bad != nil {
		return *bad
	}
	var res apiResult
	err := s.inTx(call.ctx, func(tx pgx.Tx) error {
		// Close does not see a newer order either: the pessimistic reading, where a close
		// sent right after a lost create answer achieves nothing.
		o, bad, err := s.findOrder(call.ctx, tx, data.MerchantNo, data.OutOrderNo, data.PayOrderNo, call.now, call.faults.QueryLag, true)
		if err != nil {
			return err
		}
		if bad != nil {
			res = *bad
			return nil
		}
		switch o.Status {
		case lakala.OrderStatusUnpaid, lakala.OrderStatusPaying, lakala.OrderStatusExpired, lakala.OrderStatusClosed:
			if o.Status != lakala.OrderStatusClosed {
				o.Status = lakala.OrderStatusClosed
				o.record(call.now)
			}
			o.Closed = true
		default:
			res = failure(CodeOrderNotClosable, "order status %s cannot be closed", o.Status)
			return nil
		}
		res = apiResult{data: lakala.CloseOrderResult{
			PayOrderNo: o.PayOrderNo, OutOrderNo: o.OutOrderNo, MerchantNo: o.MerchantNo, OrderStatus: o.Status,
		}}
		return s.saveOrder(call.ctx, tx, o)
	})
	if err != nil {
		return s.internal("close order", err)
	}
	return res
}

// Call is one verified API call as the sandbox heard it.
type Call struct {
	At         time.Time `json:"at"`
	Path       string    `json:"path"`
	AppID      string    `json:"appid"`
	SerialNo   string    `json:"serial_no"` // the certificate that verified its signature
	MerchantNo string    `json:"merchant_no"`
	OutNo      string    `json:"out_no"` // out_order_no or out_trade_no
	Code       string    `json:"code"`   // the answer's code ("" is success)
}

// logCall records a verified call; a failure to record is logged only.
func (s *Sandbox) logCall(ctx context.Context, path string, auth lakala.RequestAuth, reqData json.RawMessage, code string, now time.Time) {
	var ids struct {
		MerchantNo string `json:"merchant_no"`
		OutOrderNo string `json:"out_order_no"`
		OutTradeNo string `json:"out_trade_no"`
	}
	_ = json.Unmarshal(reqData, &ids)
	if ids.OutOrderNo == "" {
		ids.OutOrderNo = ids.OutTradeNo
	}
	if _, err := s.db.Exec(ctx, s.sql(`INSERT INTO lkl.calls (at, path, appid, serial_no, merchant_no, out_no, code) VALUES ($1, $2, $3, $4, $5, $6, $7)`),
		now, strings.TrimPrefix(path, s.basePath), auth.AppID, auth.SerialNo, ids.MerchantNo, ids.OutOrderNo, code); err != nil {
		s.log.Warn("sandbox cannot record a call", "error", err)
	}
}

// Calls lists the verified API calls, oldest first.
func (s *Sandbox) Calls(ctx context.Context) ([]Call, error) {
	rows, err := s.db.Query(ctx, s.sql(`SELECT at, path, appid, serial_no, merchant_no, out_no, code FROM lkl.calls ORDER BY id`))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (c Call, err error) {
		err = row.Scan(&c.At, &c.Path, &c.AppID, &c.SerialNo, &c.MerchantNo, &c.OutNo, &c.Code)
		return c, err
	})
}

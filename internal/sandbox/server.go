// Package sandbox is a local imitation of Lakala's Open Platform v3: a real HTTP server
// that verifies the service's request signatures, signs its responses and notifications
// with its own platform key, serves a hosted cashier page per order, and sends payment
// notifications with Lakala's retry schedule. Faults make it misbehave on request.
package sandbox

import (
	"context"
	"crypto/rand"
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
	"strings"
	"sync"
	"time"

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
	// MerchantPublicKey verifies the service's request signatures. Required.
	MerchantPublicKey *rsa.PublicKey
	// PlatformKey signs responses and notifications; nil generates a 2048-bit key.
	PlatformKey *rsa.PrivateKey
	// AppID and SerialNo are the merchant identity requests must carry; empty accepts any.
	AppID, SerialNo string
	// PublicURL is the base of every counter_url, e.g. http://127.0.0.1:3100. It may be
	// set later with SetPublicURL; while empty the request's Host is used.
	PublicURL string
	// NotifyRetryDelays are the waits between notification attempts; nil means
	// DefaultNotifyRetryDelays.
	NotifyRetryDelays []time.Duration
	// RefundHold caps how long RefundTimeoutAfterApply and LostAnswerMode "timeout"
	// hold a request whose caller has not given up; 0 means 2 minutes.
	RefundHold time.Duration
	// RequireVposID, when set, is the vpos_id every special_create must carry, as Lakala
	// requires outside combined orders ("C 非合单场景必输"); a create without it is refused.
	RequireVposID string
	// Now is the sandbox's clock; nil means time.Now.
	Now        func() time.Time
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Sandbox is an in-memory Lakala. All methods are safe for concurrent use.
type Sandbox struct {
	merchantPub    *rsa.PublicKey
	platformKey    *rsa.PrivateKey
	certPEM        []byte
	platformSerial string
	appID, serial  string
	retryDelays    []time.Duration
	refundHold     time.Duration
	requireVposID  string
	now            func() time.Time
	client         *http.Client
	log            *slog.Logger

	// stop ends notification deliveries and held refund requests on Close.
	stop    context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup

	mu        sync.Mutex
	publicURL string
	faults    Faults
	dice      *mathrand.Rand
	seq       uint64
	orders    map[string]*order  // by out_order_no
	byPayNo   map[string]*order  // by pay_order_no
	byTradeNo map[string]*order  // by the payment's trade_no
	byLogNo   map[string]*order  // by the payment's log_no
	refunds   map[string]*refund // by the refund's out_trade_no
	foreign   []*order           // other merchants' cashier orders with our numbers (ForeignNotifyRate)
	// refundQueries counts the queries of each out_trade_no, for Faults.RefundQueryRefusals.
	refundQueries map[string]int
	inflight      int           // notification deliveries running
	idle          chan struct{} // closed when inflight drops to zero
}

// New builds a Sandbox; serve it with Handler and stop it with Close.
func New(cfg Config) (*Sandbox, error) {
	if cfg.MerchantPublicKey == nil {
		return nil, errors.New("sandbox: MerchantPublicKey is required")
	}
	key := cfg.PlatformKey
	if key == nil {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, fmt.Errorf("sandbox: generate platform key: %w", err)
		}
	}
	certPEM, err := lakala.SelfSignedCertPEM(key, platformCertCN)
	if err != nil {
		return nil, fmt.Errorf("sandbox: platform certificate: %w", err)
	}
	serial, err := certSerialHex(certPEM)
	if err != nil {
		return nil, fmt.Errorf("sandbox: platform certificate: %w", err)
	}
	s := &Sandbox{
		merchantPub:    cfg.MerchantPublicKey,
		platformKey:    key,
		certPEM:        certPEM,
		platformSerial: serial,
		appID:          cfg.AppID,
		serial:         cfg.SerialNo,
		retryDelays:    cfg.NotifyRetryDelays,
		refundHold:     cfg.RefundHold,
		requireVposID:  cfg.RequireVposID,
		now:            cfg.Now,
		client:         cfg.HTTPClient,
		log:            cfg.Logger,
		publicURL:      strings.TrimRight(cfg.PublicURL, "/"),
		orders:         make(map[string]*order),
		byPayNo:        make(map[string]*order),
		byTradeNo:      make(map[string]*order),
		byLogNo:        make(map[string]*order),
		refunds:        make(map[string]*refund),
		refundQueries:  make(map[string]int),
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
	s.dice = newDice(0)
	s.stop, s.cancel = context.WithCancel(context.Background())
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

// Close stops pending notification deliveries and held requests, and waits for the deliveries.
func (s *Sandbox) Close() {
	// Cancelling under mu orders it against startDelivery's workers.Add.
	s.mu.Lock()
	s.cancel()
	s.mu.Unlock()
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
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	s.dice = newDice(f.Seed)
	return nil
}

// Faults returns the current fault settings.
func (s *Sandbox) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Handler serves Lakala's API paths, the cashier pages and the /sandbox admin endpoints.
func (s *Sandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	// Only calls that change something can lose their answer after acting; a lost query
	// answer is no different from a failed one.
	mux.Handle("POST "+lakala.PathCreateOrder, s.api(familyCashier, true, s.createOrder))
	mux.Handle("POST "+lakala.PathQueryOrder, s.api(familyCashier, false, s.queryOrder))
	mux.Handle("POST "+lakala.PathCloseOrder, s.api(familyCashier, true, s.closeOrder))
	mux.Handle("POST "+lakala.PathRefund, s.api(familyLabs, true, s.refund))
	mux.Handle("POST "+lakala.PathTradeQuery, s.api(familyLabs, false, s.tradeQuery))
	mux.Handle("POST "+lakala.PathRfdRefund, s.api(familyRfd, true, s.rfdRefund))
	mux.Handle("POST "+lakala.PathRfdRefundQuery, s.api(familyRfd, false, s.rfdRefundQuery))
	mux.HandleFunc("GET /counter/{payOrderNo}", s.counterPage)
	mux.HandleFunc("POST /counter/{payOrderNo}", s.counterAction)
	mux.HandleFunc("GET /sandbox/faults", s.getFaults)
	mux.HandleFunc("PUT /sandbox/faults", s.putFaults)
	mux.HandleFunc("PATCH /sandbox/faults", s.patchFaults)
	mux.HandleFunc("GET /sandbox/ledger", s.getLedger)
	mux.HandleFunc("GET /sandbox/orders/{outOrderNo}", s.getOrder)
	mux.HandleFunc("POST /sandbox/orders/{outOrderNo}/{action}", s.settleOrder)
	mux.HandleFunc("GET /sandbox/platform-cert.pem", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.certPEM)
	})
	return mux
}

// apiCall is one verified API request as the endpoint handlers see it.
type apiCall struct {
	w       http.ResponseWriter
	r       *http.Request
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
// request signature, injected server errors, the envelope, network codes and lost answers
// (when lossy: the call was carried out first), and the response signature.
func (s *Sandbox) api(fam family, lossy bool, endpoint func(apiCall) apiResult) http.Handler {
	okCode := fam.okCode
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		faults := s.Faults()
		if faults.Latency > 0 {
			select {
			case <-time.After(faults.Latency):
			case <-r.Context().Done():
				return
			}
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			writeUnsigned(w, http.StatusBadRequest, CodeInvalidParam, "cannot read body")
			return
		}
		auth, err := lakala.VerifyRequest(s.merchantPub, r.Header.Get("Authorization"), body)
		if err == nil {
			err = s.checkIdentity(auth)
		}
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
			res = endpoint(apiCall{w: w, r: r, reqData: env.ReqData, faults: faults, now: now})
		}
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

func (s *Sandbox) checkIdentity(auth lakala.RequestAuth) error {
	// The timestamp's age is not checked: callers under test may sign with a fake clock.
	if s.appID != "" && auth.AppID != s.appID {
		return fmt.Errorf("appid %q is not the configured %q", auth.AppID, s.appID)
	}
	if s.serial != "" && auth.SerialNo != s.serial {
		return fmt.Errorf("serial_no %q is not the configured %q", auth.SerialNo, s.serial)
	}
	return nil
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
	efficient, err := lakala.ParseTime(data.OrderEfficientTime)
	switch {
	case data.OutOrderNo == "":
		return failure(CodeInvalidParam, "out_order_no is required")
	case data.MerchantNo == "":
		return failure(CodeInvalidParam, "merchant_no is required")
	case s.requireVposID != "" && data.VposID != s.requireVposID:
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

	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.orders[data.OutOrderNo]; ok {
		if call.faults.DuplicateCreate == DuplicateCreateRefuse {
			return failure(CodeOrderRepeated, "订单号重复")
		}
		if o.totalAmount != int64(data.TotalAmount) || o.merchantNo != data.MerchantNo {
			return failure(CodeOrderExists, "out_order_no %s already exists with other details", data.OutOrderNo)
		}
		return apiResult{data: o.createResult}
	}
	base := s.publicURL
	if base == "" {
		base = "http://" + call.r.Host
	}
	o := &order{
		outOrderNo:    data.OutOrderNo,
		payOrderNo:    s.nextID(lakala.FormatTime(call.now)[2:8], 23),
		merchantNo:    data.MerchantNo,
		termNo:        data.VposID,
		totalAmount:   int64(data.TotalAmount),
		orderInfo:     data.OrderInfo,
		notifyURL:     data.NotifyURL,
		callbackURL:   data.CallbackURL,
		supportRefund: data.SupportRefund == 1,
		autoRefund:    data.CloseOrderAutoRefund == "1",
		payMode:       payMode,
		status:        lakala.OrderStatusUnpaid,
		createdAt:     call.now,
		expiresAt:     efficient,
	}
	o.createResult = lakala.CreateOrderResult{
		CounterURL:         base + "/counter/" + o.payOrderNo,
		PayOrderNo:         o.payOrderNo,
		OutOrderNo:         o.outOrderNo,
		MerchantNo:         o.merchantNo,
		OrderCreateTime:    lakala.FormatTime(o.createdAt),
		OrderEfficientTime: lakala.FormatTime(o.expiresAt),
		TotalAmount:        lakala.Fen(o.totalAmount),
		ChannelID:          "95",
	}
	o.record(call.now)
	s.orders[o.outOrderNo] = o
	s.byPayNo[o.payOrderNo] = o
	s.log.Info("sandbox order created", "out_order_no", o.outOrderNo, "pay_order_no", o.payOrderNo, "total_amount", o.totalAmount)
	if call.faults.ForeignNotifyRate > 0 && s.dice.Float64() < call.faults.ForeignNotifyRate {
		s.payForeignTwin(o, call.faults, call.now)
	}
	return apiResult{data: o.createResult}
}

// findOrder looks an order up by out_order_no or pay_order_no, as query and close
// allow; an order created less than lag ago is not found. The caller holds s.mu.
func (s *Sandbox) findOrder(merchantNo, outOrderNo, payOrderNo string, now time.Time, lag time.Duration) (*order, *apiResult) {
	if merchantNo == "" {
		res := failure(CodeInvalidParam, "merchant_no is required")
		return nil, &res
	}
	var o *order
	switch {
	case outOrderNo != "":
		o = s.orders[outOrderNo]
	case payOrderNo != "":
		o = s.byPayNo[payOrderNo]
	default:
		res := failure(CodeInvalidParam, "out_order_no or pay_order_no is required")
		return nil, &res
	}
	if o == nil || o.merchantNo != merchantNo || (payOrderNo != "" && o.payOrderNo != payOrderNo) ||
		(lag > 0 && o.createdAt.After(now.Add(-lag))) {
		res := failure(CodeOrderNotFound, "order not found")
		return nil, &res
	}
	o.expireIfDue(now)
	return o, nil
}

func (s *Sandbox) queryOrder(call apiCall) apiResult {
	data, bad := decodeReqData[lakala.QueryOrderData](call, familyCashier)
	if bad != nil {
		return *bad
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, bad := s.findOrder(data.MerchantNo, data.OutOrderNo, data.PayOrderNo, call.now, call.faults.QueryLag)
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
	s.mu.Lock()
	defer s.mu.Unlock()
	// Close does not see a newer order either: the pessimistic reading, where a close
	// sent right after a lost create answer achieves nothing.
	o, bad := s.findOrder(data.MerchantNo, data.OutOrderNo, data.PayOrderNo, call.now, call.faults.QueryLag)
	if bad != nil {
		return *bad
	}
	switch o.status {
	case lakala.OrderStatusUnpaid, lakala.OrderStatusPaying, lakala.OrderStatusExpired, lakala.OrderStatusClosed:
		if o.status != lakala.OrderStatusClosed {
			o.status = lakala.OrderStatusClosed
			o.record(call.now)
		}
		o.closed = true
	default:
		return failure(CodeOrderNotClosable, "order status %s cannot be closed", o.status)
	}
	return apiResult{data: lakala.CloseOrderResult{
		PayOrderNo: o.payOrderNo, OutOrderNo: o.outOrderNo, MerchantNo: o.merchantNo, OrderStatus: o.status,
	}}
}

// nextID returns prefix followed by a sequence number, width digits in all; the
// caller holds s.mu. Sequential ids keep runs reproducible.
func (s *Sandbox) nextID(prefix string, width int) string {
	s.seq++
	return fmt.Sprintf("%s%0*d", prefix, width-len(prefix), s.seq)
}

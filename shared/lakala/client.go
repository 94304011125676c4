package lakala

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrOutcomeUnknown is wrapped when Lakala may or may not have acted on a request:
// timeouts, connection errors, HTTP errors, unverifiable responses and "processing"
// codes. The caller must query before deciding, and must never resend with a new number.
var ErrOutcomeUnknown = errors.New("lakala: outcome unknown")

// ErrInvalidRequest is wrapped when the client refuses to send a request; nothing reached
// Lakala.
var ErrInvalidRequest = errors.New("lakala: invalid request")

// GatewayError is a definite rejection: a verified HTTP 200 response whose code is neither
// success nor "processing".
type GatewayError struct {
	Path string
	Code string
	Msg  string
}

func (e *GatewayError) Error() string {
	return fmt.Sprintf("lakala: %s rejected: %s %s", e.Path, e.Code, e.Msg)
}

// Config configures a Client.
type Config struct {
	BaseURL     string // e.g. https://test.wsmsd.cn/sit ; full URL = BaseURL + path
	Credentials Credentials
	MerchantNo  string
	TermNo      string
	// PlatformKey verifies every response; required (an unverified answer could be anyone's).
	PlatformKey *rsa.PublicKey
	HTTPClient  *http.Client // default: timeout 10s
	Logger      *slog.Logger // default: slog.Default()
	// OnCall, if set, is told about every call when it ends (the gateway call log and metrics);
	// it runs on the caller's goroutine, so it must be quick.
	OnCall func(context.Context, CallRecord)
}

// Client calls Lakala's cashier and labs APIs on behalf of one merchant.
type Client struct {
	baseURL string
	cfg     Config
	http    *http.Client
	log     *slog.Logger
	now     func() time.Time
}

const defaultHTTPTimeout = 10 * time.Second

// maxResponseBytes bounds what is read from Lakala; real responses are a few KB.
const maxResponseBytes = 1 << 20

// NewHTTPClient returns an HTTP client for calls to Lakala that keeps up to maxConns idle
// connections to it (default 64). Go's default transport keeps 2 per host, so with many calls in
// flight nearly every call would open a new connection — a new TLS handshake to Lakala each time.
// A timeout of 0 or less means the default (10 s), never none: a call must not hang.
func NewHTTPClient(timeout time.Duration, maxConns int) *http.Client {
	if timeout <= 0 {
		timeout = defaultHTTPTimeout
	}
	if maxConns <= 0 {
		maxConns = 64
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = maxConns
	t.MaxIdleConnsPerHost = maxConns
	return &http.Client{Timeout: timeout, Transport: t}
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("lakala: BaseURL %q is not an http(s) URL", cfg.BaseURL)
	}
	switch {
	case cfg.Credentials.AppID == "":
		return nil, errors.New("lakala: Credentials.AppID is empty")
	case cfg.Credentials.SerialNo == "":
		return nil, errors.New("lakala: Credentials.SerialNo is empty")
	case cfg.Credentials.PrivateKey == nil:
		return nil, errors.New("lakala: Credentials.PrivateKey is nil")
	case cfg.MerchantNo == "":
		return nil, errors.New("lakala: MerchantNo is empty")
	case cfg.TermNo == "":
		return nil, errors.New("lakala: TermNo is empty")
	case cfg.PlatformKey == nil:
		return nil, errors.New("lakala: PlatformKey is nil: responses could not be verified")
	}
	httpClient := cfg.HTTPClient
	if httpClient == nil {
		httpClient = NewHTTPClient(defaultHTTPTimeout, 0)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Client{
		baseURL: strings.TrimRight(cfg.BaseURL, "/"),
		cfg:     cfg,
		http:    httpClient,
		log:     logger,
		now:     time.Now,
	}, nil
}

// CreateCashierOrder is the input of Client.CreateCashierOrder.
type CreateCashierOrder struct {
	OutOrderNo string // ≤ 32 chars, unique per order
	Amount     int64  // fen
	Subject    string // truncated to 64 runes for order_info
	NotifyURL  string
	// CallbackURL is where the payer's browser returns; optional.
	CallbackURL string
	ExpiresAt   time.Time
	// CounterParam is an optional JSON document, e.g. {"pay_mode":"ALIPAY"}.
	CounterParam string
}

const maxOrderInfoRunes = 64

// CreateCashierOrder creates a hosted cashier order. Refunds are always enabled and a
// payment landing after close is refunded automatically.
func (c *Client) CreateCashierOrder(ctx context.Context, in CreateCashierOrder) (_ CreateOrderResult, err error) {
	defer c.observeInvalid(ctx, PathCreateOrder, in.OutOrderNo, &err)
	switch {
	case in.OutOrderNo == "" || len(in.OutOrderNo) > 32:
		return CreateOrderResult{}, fmt.Errorf("%w: out_order_no %q must be 1–32 chars", ErrInvalidRequest, in.OutOrderNo)
	case in.Amount <= 0:
		return CreateOrderResult{}, fmt.Errorf("%w: amount %d must be positive", ErrInvalidRequest, in.Amount)
	case in.NotifyURL == "":
		return CreateOrderResult{}, fmt.Errorf("%w: notify_url is empty", ErrInvalidRequest)
	case in.ExpiresAt.IsZero():
		return CreateOrderResult{}, fmt.Errorf("%w: expiry time is zero", ErrInvalidRequest)
	case in.CounterParam != "" && !json.Valid([]byte(in.CounterParam)):
		return CreateOrderResult{}, fmt.Errorf("%w: counter_param is not JSON", ErrInvalidRequest)
	}
	data := CreateOrderData{
		OutOrderNo:           in.OutOrderNo,
		MerchantNo:           c.cfg.MerchantNo,
		TotalAmount:          Fen(in.Amount),
		OrderEfficientTime:   FormatTime(in.ExpiresAt),
		OrderInfo:            truncateRunes(in.Subject, maxOrderInfoRunes),
		NotifyURL:            in.NotifyURL,
		CallbackURL:          in.CallbackURL,
		SupportRefund:        1,
		CounterParam:         in.CounterParam,
		CloseOrderAutoRefund: "1",
	}
	return call[CreateOrderData, CreateOrderResult](ctx, c, PathCreateOrder, CodeCashierOK, in.OutOrderNo, data)
}

// QueryCashierOrder returns the order's status and its trades.
func (c *Client) QueryCashierOrder(ctx context.Context, outOrderNo string) (_ QueryOrderResult, err error) {
	defer c.observeInvalid(ctx, PathQueryOrder, outOrderNo, &err)
	if outOrderNo == "" {
		return QueryOrderResult{}, fmt.Errorf("%w: out_order_no is empty", ErrInvalidRequest)
	}
	data := QueryOrderData{MerchantNo: c.cfg.MerchantNo, OutOrderNo: outOrderNo}
	return call[QueryOrderData, QueryOrderResult](ctx, c, PathQueryOrder, CodeCashierOK, outOrderNo, data)
}

// CloseCashierOrder closes an unpaid order. A payer may still pay in the meantime, so
// query the order after closing it.
func (c *Client) CloseCashierOrder(ctx context.Context, outOrderNo string) (_ CloseOrderResult, err error) {
	defer c.observeInvalid(ctx, PathCloseOrder, outOrderNo, &err)
	if outOrderNo == "" {
		return CloseOrderResult{}, fmt.Errorf("%w: out_order_no is empty", ErrInvalidRequest)
	}
	data := CloseOrderData{MerchantNo: c.cfg.MerchantNo, OutOrderNo: outOrderNo}
	return call[CloseOrderData, CloseOrderResult](ctx, c, PathCloseOrder, CodeCashierOK, outOrderNo, data)
}

// RefundRequest is the input of Client.Refund.
type RefundRequest struct {
	// OutTradeNo is the refund's own number; reuse it on every retry of the same refund.
	OutTradeNo string
	Amount     int64 // fen
	Reason     string
	RequestIP  string
	// Origin ids of the payment; Lakala needs at least two for a cashier payment.
	OriginOutTradeNo, OriginTradeNo, OriginLogNo string
}

// Refund refunds (part of) a payment synchronously. On ErrOutcomeUnknown query with
// QueryTrade; do not resend under a new OutTradeNo.
func (c *Client) Refund(ctx context.Context, in RefundRequest) (_ RefundResult, err error) {
	defer c.observeInvalid(ctx, PathRefund, in.OutTradeNo, &err)
	origins := 0
	for _, id := range []string{in.OriginOutTradeNo, in.OriginTradeNo, in.OriginLogNo} {
		if id != "" {
			origins++
		}
	}
	switch {
	case in.OutTradeNo == "" || len(in.OutTradeNo) > 32:
		return RefundResult{}, fmt.Errorf("%w: out_trade_no %q must be 1–32 chars", ErrInvalidRequest, in.OutTradeNo)
	case in.Amount <= 0:
		return RefundResult{}, fmt.Errorf("%w: refund amount %d must be positive", ErrInvalidRequest, in.Amount)
	case in.RequestIP == "":
		return RefundResult{}, fmt.Errorf("%w: request IP is required", ErrInvalidRequest)
	case origins < 2:
		return RefundResult{}, fmt.Errorf("%w: at least two origin ids are required", ErrInvalidRequest)
	}
	data := RefundData{
		MerchantNo:       c.cfg.MerchantNo,
		TermNo:           c.cfg.TermNo,
		OutTradeNo:       in.OutTradeNo,
		RefundAmount:     FenString(in.Amount),
		RefundReason:     in.Reason,
		LocationInfo:     LocationInfo{RequestIP: in.RequestIP},
		OriginOutTradeNo: in.OriginOutTradeNo,
		OriginTradeNo:    in.OriginTradeNo,
		OriginLogNo:      in.OriginLogNo,
	}
	return call[RefundData, RefundResult](ctx, c, PathRefund, CodeLabsOK, in.OutTradeNo, data)
}

// QueryTrade looks up a labs trade (a refund) by its out_trade_no.
func (c *Client) QueryTrade(ctx context.Context, outTradeNo string) (_ TradeQueryResult, err error) {
	defer c.observeInvalid(ctx, PathTradeQuery, outTradeNo, &err)
	if outTradeNo == "" {
		return TradeQueryResult{}, fmt.Errorf("%w: out_trade_no is empty", ErrInvalidRequest)
	}
	data := TradeQueryData{MerchantNo: c.cfg.MerchantNo, TermNo: c.cfg.TermNo, OutTradeNo: outTradeNo}
	return call[TradeQueryData, TradeQueryResult](ctx, c, PathTradeQuery, CodeLabsOK, outTradeNo, data)
}

// call sends one signed request and classifies the answer. Only a verified HTTP 200 with
// a non-success, non-processing code becomes a GatewayError; every other failure after
// the request may have left this process wraps ErrOutcomeUnknown.
func call[Req, Res any](ctx context.Context, c *Client, path, okCode, outNo string, data Req) (_ Res, err error) {
	var zero Res
	now := c.now()
	started := time.Now()
	var info callInfo
	defer func() { c.observe(ctx, path, outNo, started, info, err) }()
	body, err := encodeJSON(NewRequest(data, now))
	if err != nil {
		return zero, fmt.Errorf("lakala: %s: encode request: %w", path, err)
	}
	auth, err := SignRequest(c.cfg.Credentials, body, now)
	if err != nil {
		return zero, fmt.Errorf("lakala: %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return zero, fmt.Errorf("lakala: %s: build request: %w", path, err)
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	attrs := []any{slog.String("path", path)}
	logDone := func(level slog.Level, msg string, extra ...any) {
		all := make([]any, 0, len(attrs)+1+len(extra))
		all = append(all, attrs...)
		all = append(all, slog.Duration("duration", time.Since(started)))
		c.log.Log(ctx, level, msg, append(all, extra...)...)
	}

	resp, err := c.http.Do(req)
	if err != nil {
		logDone(slog.LevelWarn, "lakala call failed", slog.String("error", err.Error()))
		return zero, fmt.Errorf("%w: %s: %w", ErrOutcomeUnknown, path, err)
	}
	defer resp.Body.Close()
	attrs = append(attrs, slog.Int("http_status", resp.StatusCode), slog.String("trace_id", resp.Header.Get(HeaderTraceID)))
	info.httpStatus, info.traceID = resp.StatusCode, resp.Header.Get(HeaderTraceID)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		logDone(slog.LevelWarn, "lakala call failed", slog.String("error", err.Error()))
		return zero, fmt.Errorf("%w: %s: read response: %w", ErrOutcomeUnknown, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		// A 4xx from a proxy or rate limiter proves nothing about the payment either.
		logDone(slog.LevelWarn, "lakala call failed")
		return zero, fmt.Errorf("%w: %s: HTTP %d", ErrOutcomeUnknown, path, resp.StatusCode)
	}
	if err := VerifyResponse(c.cfg.PlatformKey, resp.Header, raw); err != nil {
		logDone(slog.LevelError, "lakala response signature rejected", slog.String("error", err.Error()))
		return zero, fmt.Errorf("%w: %s: %w", ErrOutcomeUnknown, path, err)
	}
	var envelope Response[json.RawMessage]
	if err := json.Unmarshal(raw, &envelope); err != nil {
		logDone(slog.LevelWarn, "lakala response unreadable", slog.String("error", err.Error()))
		return zero, fmt.Errorf("%w: %s: decode response: %w", ErrOutcomeUnknown, path, err)
	}
	attrs = append(attrs, slog.String("code", envelope.Code))
	info.code, info.msg = envelope.Code, envelope.Msg
	switch {
	case envelope.Code == okCode:
	case envelope.Code == "" || IsProcessingCode(envelope.Code) || envelope.Code == CodeCashierOK || envelope.Code == CodeLabsOK:
		// The other API family's success code is not a rejection we can act on either.
		logDone(slog.LevelWarn, "lakala call outcome pending", slog.String("msg", envelope.Msg))
		return zero, fmt.Errorf("%w: %s: code %q %s", ErrOutcomeUnknown, path, envelope.Code, envelope.Msg)
	default:
		logDone(slog.LevelWarn, "lakala call rejected", slog.String("msg", envelope.Msg))
		return zero, &GatewayError{Path: path, Code: envelope.Code, Msg: envelope.Msg}
	}
	var result Res
	if len(envelope.RespData) > 0 && string(envelope.RespData) != "null" {
		if err := json.Unmarshal(envelope.RespData, &result); err != nil {
			logDone(slog.LevelWarn, "lakala resp_data unreadable", slog.String("error", err.Error()))
			return zero, fmt.Errorf("%w: %s: decode resp_data: %w", ErrOutcomeUnknown, path, err)
		}
	}
	logDone(slog.LevelInfo, "lakala call")
	return result, nil
}

// encodeJSON marshals without HTML escaping (URLs keep their '&') and without the
// trailing newline json.Encoder adds; the result is signed and sent byte for byte.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/service"
)

// API serves Loomi Pay's HTTP routes.
type API struct {
	svc  *service.Service
	log  *slog.Logger
	opts Options
	// payments acts at Lakala for the close route; nil where the function has no Lakala client.
	payments *service.Payments
}

// WithPayments lets the API close orders (they are closed at Lakala). Call it before serving.
func (a *API) WithPayments(p *service.Payments) *API {
	a.payments = p
	return a
}

// Options tune the API.
type Options struct {
	// RequestTimeout is the deadline of one request, the wait for a database connection
	// included: a stalled PostgreSQL or Redis makes a request answer 503 after it, never hang.
	// Default 5 s.
	RequestTimeout time.Duration
	// ClientIPHeader names a header a trusted proxy in front of the service sets to the client's
	// address (X-Forwarded-For behind a load balancer); its last address is the client's for the
	// failure throttle. Empty: the connection's address (behind API Gateway, the caller's).
	ClientIPHeader string
}

// New builds the API on a service.
func New(svc *service.Service, opts ...Options) *API {
	a := &API{svc: svc, log: svc.Logger()}
	if len(opts) > 0 {
		a.opts = opts[0]
	}
	if a.opts.RequestTimeout <= 0 {
		a.opts.RequestTimeout = 5 * time.Second
	}
	return a
}

// Handler serves the routes of the named functions (all routes when none is named): a Lambda
// function mounts only its own routes, the local stack all of them.
func (a *API) Handler(functions ...string) http.Handler {
	serve := map[string]http.HandlerFunc{
		"POST /api/v1/payment-orders":                    a.serve(a.createOrder),
		"GET /api/v1/payment-orders/{merchant_order_id}": a.serve(a.getOrder),
		"POST /api/v1/refund-orders":                     a.serve(a.createRefund),
		"GET /api/v1/refund-orders/{refund_order_id}":    a.serve(a.getRefund),
		"POST /webhooks/lakala":                          a.webhook,

		CloseRoute:                   a.serve(a.closeOrder),
		"GET /api/v1/payment-orders": a.serve(a.listOrders),
		"GET /api/v1/refund-orders":  a.serve(a.listRefunds),
		"GET /api/v1/refund-orders/by-merchant-id/{merchant_refund_id}": a.serve(a.getRefundByMerchantID),
		"GET /api/v1/openapi.json":                                      a.openAPI,
		"GET /healthz":                                                  a.healthz,
		"GET /readyz":                                                   a.readyz,
	}
	mux := http.NewServeMux()
	methods := map[string][]string{} // path → allowed methods, for JSON 405s
	for _, r := range RoutesOf(functions...) {
		mux.Handle(r.Method+" "+r.Path, serve[r.Method+" "+r.Path])
		methods[r.Path] = append(methods[r.Path], r.Method)
	}
	for path, allowed := range methods {
		// A bare pattern is less specific than a method pattern, so it only catches the
		// methods the route does not serve.
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, r, a.log, pay.Errorf(pay.KindInvalid, pay.CodeMethodNotAllowed, "method %s is not allowed here; use %s", r.Method, strings.Join(allowed, ", ")))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, a.log, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	return a.logRequests(recoverPanics(a.log, a.withDeadline(CanonicalPaths(a.log, mux))))
}

// CanonicalPaths answers a JSON 404 for a path http.ServeMux would redirect to its cleaned form
// (one with "..", "." or empty segments, such as an order id ".."): the mux's answer is a 307
// with an HTML body, which no client of the API expects, and the cleaned path names another
// resource than the one asked for. Every handler that puts a ServeMux in front of the API (the
// local stack's and serve's, with the console) wraps it in this too.
func CanonicalPaths(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The mux cleans the escaped path and leaves CONNECT alone; so does this.
		if p := r.URL.EscapedPath(); r.Method != http.MethodConnect && cleanPath(p) != p {
			writeError(w, r, log, pay.Errorf(pay.KindNotFound, pay.CodeNotFound,
				"no route for %s %s: a path with '.', '..' or empty segments names nothing here", r.Method, r.URL.Path))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPath is http.ServeMux's canonical form of a path: rooted, path.Clean'ed, with its
// trailing slash kept.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

// withDeadline gives every request the API's deadline (a Lambda's own deadline, if sooner,
// still applies): storage calls honour it, so a stalled dependency costs a request at most this.
func (a *API) withDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.opts.RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// endpoint is an authenticated API route: it returns the status and view to write, or an error.
type endpoint func(r *http.Request, app string, body []byte) (int, any, error)

// serve authenticates the caller, reads a bounded body for POSTs, runs the endpoint and writes
// its answer or its error.
func (a *API) serve(fn endpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		app, err := a.svc.AuthenticateFrom(r.Context(), r.Header.Get("Authorization"), ClientAddress(r, a.opts.ClientIPHeader))
		if err == nil {
			err = a.svc.Allow(r.Context(), app)
		}
		if err != nil {
			writeError(w, r, a.log, err)
			return
		}
		var body []byte
		if r.Method == http.MethodPost {
			if body, err = readBody(w, r); err != nil {
				writeError(w, r, a.log, err)
				return
			}
		}
		status, view, err := fn(r, app, body)
		if err != nil {
			writeError(w, r, a.log, err)
			return
		}
		writeJSON(w, status, view)
	}
}

// ClientAddress is the address a request came from: the connection's, without its port (behind
// API Gateway its adapter puts the caller's there), or, when header is set, the last address in
// that header, the one the trusted proxy that sets it saw (X-Forwarded-For: a load balancer
// appends the address it was reached from, so earlier ones may be made up by the client).
func ClientAddress(r *http.Request, header string) string {
	if header != "" {
		if v := r.Header.Values(header); len(v) > 0 {
			parts := strings.Split(v[len(v)-1], ",")
			if last := strings.TrimSpace(parts[len(parts)-1]); last != "" {
				return last
			}
		}
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// createdStatus is 202 for a new resource and 200 for an identical retry.
func createdStatus(created bool) int {
	if created {
		return http.StatusAccepted
	}
	return http.StatusOK
}

func (a *API) createOrder(r *http.Request, app string, body []byte) (int, any, error) {
	order, created, err := a.svc.CreateOrder(r.Context(), app, body)
	return createdStatus(created), newOrderView(&order), err
}

func (a *API) getOrder(r *http.Request, app string, _ []byte) (int, any, error) {
	order, err := a.svc.GetOrder(r.Context(), app, r.URL.Query().Get("app_id"), r.PathValue("merchant_order_id"))
	return http.StatusOK, newOrderView(&order), err
}

func (a *API) createRefund(r *http.Request, app string, body []byte) (int, any, error) {
	refund, created, err := a.svc.CreateRefund(r.Context(), app, body)
	return createdStatus(created), newRefundView(&refund), err
}

func (a *API) getRefund(r *http.Request, app string, _ []byte) (int, any, error) {
	refund, err := a.svc.GetRefund(r.Context(), app, r.URL.Query().Get("app_id"), r.PathValue("refund_order_id"))
	return http.StatusOK, newRefundView(&refund), err
}

func (a *API) webhook(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	// The API Gateway proxy adapter splits header values on commas, and Lakala's
	// Authorization is a comma-separated list: put it back together before verifying.
	header := r.Header.Clone()
	if parts := header.Values("Authorization"); len(parts) > 1 {
		header.Set("Authorization", strings.Join(parts, ","))
	}
	if _, err := a.svc.HandleNotification(r.Context(), header, body); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(lakala.NotificationAck))
}

// readBody reads a request body of at most pay.MaxBodySize bytes. A body declared larger
// (Content-Length) is refused before a byte of it is read: waiting for it would hold the request
// until the server's read timeout, for an answer known at once.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	tooLarge := pay.Errorf(pay.KindTooLarge, pay.CodeBodyTooLarge, "request body exceeds %d bytes", pay.MaxBodySize)
	if r.ContentLength > pay.MaxBodySize {
		// The connection is not reused: the body's rest is never read.
		w.Header().Set("Connection", "close")
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, pay.MaxBodySize))
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) {
		return nil, tooLarge
	}
	if err != nil {
		return nil, pay.Errorf(pay.KindInvalid, pay.CodeInvalidJSON, "could not read the request body")
	}
	return body, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"detail":"internal error","code":"internal_error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// errorBody is the contract's error object.
type errorBody struct {
	Detail string `json:"detail"`
	Code   string `json:"code"`
	Field  string `json:"field,omitempty"`
}

// statusOf maps an error kind to its HTTP status: the only such mapping in the project (the
// console answers through Classify too).
func statusOf(e *pay.Error) int {
	switch e.Kind {
	case pay.KindInvalid:
		if e.Code == pay.CodeMethodNotAllowed {
			return http.StatusMethodNotAllowed
		}
		return http.StatusBadRequest
	case pay.KindUnauthorized:
		return http.StatusUnauthorized
	case pay.KindForbidden:
		return http.StatusForbidden
	case pay.KindNotFound:
		return http.StatusNotFound
	case pay.KindConflict:
		return http.StatusConflict
	case pay.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case pay.KindUnavailable:
		return http.StatusServiceUnavailable
	case pay.KindRateLimited:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// Classify turns err into the error a caller is shown and its HTTP status: a *pay.Error as it
// is, a database or Redis that does not answer as 503 service_unavailable, anything else as 500.
// The API and the console both answer through it.
func Classify(err error) (int, *pay.Error) {
	e := pay.AsError(err)
	if e.Kind == pay.KindInternal && unavailable(err) {
		e = pay.Errorf(pay.KindUnavailable, pay.CodeUnavailable, "the service is briefly unavailable; retry the request shortly")
		e.Err, e.RetryAfter = err, unavailableRetryAfter
	}
	return statusOf(e), e
}

// writeError writes err as the contract's error body. Only internal errors are logged with their
// cause; the caller never sees it.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, e := Classify(err)
	if status >= 500 {
		log.ErrorContext(context.WithoutCancel(r.Context()), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if e.RetryAfter > 0 {
		// Whole seconds, rounded up: a client retrying earlier would only be refused again.
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, status, errorBody{Detail: e.Detail, Code: e.Code, Field: e.Field})
}

// statusRecorder remembers the status a handler wrote, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (a *API) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)))
	})
}

// recoverPanics turns a panic into a logged 500 with a JSON body, never a dropped connection.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				log.ErrorContext(r.Context(), "panic serving request", "path", r.URL.Path, "panic", v)
				writeJSON(w, http.StatusInternalServerError, errorBody{Detail: "internal error", Code: pay.CodeInternal})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

package loomipay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Options tune a Client. The zero value is usable.
type Options struct {
	// HTTPClient sends the requests; default a client with Timeout.
	HTTPClient *http.Client
	// Timeout bounds one attempt (default 10 s). The context bounds the whole call, retries
	// included.
	Timeout time.Duration
	// MaxRetries is how many times a retryable failure is retried (default 3; negative: never).
	MaxRetries int
	// RetryBackoff is the first pause between attempts (default 200 ms); it doubles up to 5 s,
	// with jitter, and a Retry-After header takes precedence.
	RetryBackoff time.Duration
}

// Client calls the Loomi Pay API for one app. Safe for concurrent use.
type Client struct {
	baseURL string
	apiKey  string
	appID   string
	http    *http.Client
	opt     Options
}

// New returns a client of baseURL (e.g. http://127.0.0.1:3000 or the ApiUrl of the deployment)
// for the app appID, authenticated by apiKey.
func New(baseURL, apiKey, appID string, opt *Options) *Client {
	var o Options
	if opt != nil {
		o = *opt
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 3
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 200 * time.Millisecond
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: o.Timeout}
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), apiKey: apiKey, appID: appID, http: hc, opt: o}
}

// AppID is the client's app.
func (c *Client) AppID() string { return c.appID }

// retryPolicy says on which failures a call may be repeated.
type retryPolicy int

const (
	// idempotent: repeating the call cannot do anything twice.
	idempotent retryPolicy = iota
	// unprocessedOnly: repeat only what surely never reached the service's logic.
	unprocessedOnly
)

// CreateOrder creates a payment order; created is false when the service already had this
// merchant_order_id with identical fields (a retry), and then order is the stored one.
func (c *Client) CreateOrder(ctx context.Context, p CreateOrderParams) (order Order, created bool, err error) {
	if p.AppID == "" {
		p.AppID = c.appID
	}
	body := struct {
		CreateOrderParams
		ExpiresIn int64 `json:"expires_in,omitempty"`
	}{p, int64(p.ExpiresIn / time.Second)}
	status, err := c.do(ctx, http.MethodPost, "/api/v1/payment-orders", nil, body, idempotent, &order)
	return order, status == http.StatusAccepted, err
}

// GetOrder reads an order by its merchant_order_id.
func (c *Client) GetOrder(ctx context.Context, merchantOrderID string) (Order, error) {
	var o Order
	_, err := c.do(ctx, http.MethodGet, "/api/v1/payment-orders/"+url.PathEscape(merchantOrderID), c.query(), nil, idempotent, &o)
	return o, err
}

// CloseOrder closes a pending or processing order: it becomes failed (closed_by_merchant).
// If the payer paid meanwhile, the error is an *Error with code order_already_paid.
func (c *Client) CloseOrder(ctx context.Context, merchantOrderID string) (Order, error) {
	var o Order
	_, err := c.do(ctx, http.MethodPost, "/api/v1/payment-orders/"+url.PathEscape(merchantOrderID)+"/close", c.query(), nil, idempotent, &o)
	return o, err
}

// ListOrders reads one page of the app's orders, newest first.
func (c *Client) ListOrders(ctx context.Context, p ListOrdersParams) (Page[Order], error) {
	q := c.query()
	set(q, "status", p.Status)
	set(q, "order_type", p.OrderType)
	if !p.CreatedGTE.IsZero() {
		q.Set("created_gte", p.CreatedGTE.UTC().Format(time.RFC3339Nano))
	}
	if !p.CreatedLT.IsZero() {
		q.Set("created_lt", p.CreatedLT.UTC().Format(time.RFC3339Nano))
	}
	setPage(q, p.Limit, p.StartingAfter, p.EndingBefore)
	var page Page[Order]
	_, err := c.do(ctx, http.MethodGet, "/api/v1/payment-orders", q, nil, idempotent, &page)
	return page, err
}

// Orders iterates over every order matching p, newest first, fetching pages as it goes (p's
// Limit is the page size; EndingBefore is ignored). It stops at the first error, yielding it.
func (c *Client) Orders(ctx context.Context, p ListOrdersParams) iter.Seq2[Order, error] {
	p.EndingBefore = ""
	return paginate(func(cursor string) (Page[Order], error) {
		p.StartingAfter = cursor
		return c.ListOrders(ctx, p)
	}, p.StartingAfter)
}

// CreateRefund refunds (part of) a succeeded payment. created is false when a refund with the
// same MerchantRefundID and identical fields existed. See the package doc for its retries.
func (c *Client) CreateRefund(ctx context.Context, p CreateRefundParams) (refund Refund, created bool, err error) {
	if p.AppID == "" {
		p.AppID = c.appID
	}
	policy := unprocessedOnly
	if p.MerchantRefundID != "" {
		policy = idempotent
	}
	status, err := c.do(ctx, http.MethodPost, "/api/v1/refund-orders", nil, p, policy, &refund)
	return refund, status == http.StatusAccepted, err
}

// GetRefund reads a refund by its id.
func (c *Client) GetRefund(ctx context.Context, refundOrderID string) (Refund, error) {
	var r Refund
	_, err := c.do(ctx, http.MethodGet, "/api/v1/refund-orders/"+url.PathEscape(refundOrderID), c.query(), nil, idempotent, &r)
	return r, err
}

// GetRefundByMerchantID reads a refund by its merchant_refund_id.
func (c *Client) GetRefundByMerchantID(ctx context.Context, merchantRefundID string) (Refund, error) {
	var r Refund
	_, err := c.do(ctx, http.MethodGet, "/api/v1/refund-orders/by-merchant-id/"+url.PathEscape(merchantRefundID), c.query(), nil, idempotent, &r)
	return r, err
}

// ListRefunds reads one page of the app's refunds, newest first.
func (c *Client) ListRefunds(ctx context.Context, p ListRefundsParams) (Page[Refund], error) {
	q := c.query()
	set(q, "payment_order_id", p.PaymentOrderID)
	set(q, "merchant_order_id", p.MerchantOrderID)
	set(q, "status", p.Status)
	setPage(q, p.Limit, p.StartingAfter, p.EndingBefore)
	var page Page[Refund]
	_, err := c.do(ctx, http.MethodGet, "/api/v1/refund-orders", q, nil, idempotent, &page)
	return page, err
}

// Refunds iterates over every refund matching p, newest first.
func (c *Client) Refunds(ctx context.Context, p ListRefundsParams) iter.Seq2[Refund, error] {
	p.EndingBefore = ""
	return paginate(func(cursor string) (Page[Refund], error) {
		p.StartingAfter = cursor
		return c.ListRefunds(ctx, p)
	}, p.StartingAfter)
}

// Ready reports whether the service is ready (GET /readyz: PostgreSQL, Redis, schema).
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/readyz", nil, nil, idempotent, nil)
	return err
}

func paginate[T any](fetch func(cursor string) (Page[T], error), cursor string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			page, err := fetch(cursor)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, item := range page.Data {
				if !yield(item, nil) {
					return
				}
			}
			if !page.HasMore || page.NextCursor == nil {
				return
			}
			cursor = *page.NextCursor
		}
	}
}

func (c *Client) query() url.Values { return url.Values{"app_id": {c.appID}} }

func set(q url.Values, name, value string) {
	if value != "" {
		q.Set(name, value)
	}
}

func setPage(q url.Values, limit int, after, before string) {
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	set(q, "starting_after", after)
	set(q, "ending_before", before)
}

// do sends one call, retrying per policy, and decodes a 2xx body into out. It returns the
// final status.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, policy retryPolicy, out any) (int, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return 0, fmt.Errorf("loomipay: encode request: %w", err)
		}
	}
	u := c.baseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	backoff := c.opt.RetryBackoff
	for attempt := 0; ; attempt++ {
		status, retryAfter, err := c.once(ctx, method, u, payload, out)
		if err == nil || attempt >= c.opt.MaxRetries || !retryable(err, policy) || ctx.Err() != nil {
			return status, err
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter, so clients do not retry in step
		if retryAfter > 0 {
			wait = retryAfter
		}
		backoff = min(2*backoff, 5*time.Second)
		select {
		case <-ctx.Done():
			return status, err
		case <-time.After(wait):
		}
	}
}

func (c *Client) once(ctx context.Context, method, u string, payload []byte, out any) (int, time.Duration, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, 0, fmt.Errorf("loomipay: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, 0, &transportError{err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, 0, &transportError{err}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				return resp.StatusCode, 0, fmt.Errorf("loomipay: decode %s %s answer: %w", method, u, err)
			}
		}
		return resp.StatusCode, 0, nil
	}
	apiErr := &Error{Status: resp.StatusCode}
	if json.Unmarshal(data, apiErr) != nil || apiErr.Code == "" {
		// Not the API's error body (a proxy or gateway answered).
		apiErr.Code, apiErr.Detail = "", strings.TrimSpace(string(data))
		if apiErr.Detail == "" {
			apiErr.Detail = http.StatusText(resp.StatusCode)
		}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		apiErr.RetryAfter = time.Duration(s) * time.Second
	}
	return resp.StatusCode, apiErr.RetryAfter, apiErr
}

// UnmarshalJSON reads the API's error body into e.
func (e *Error) UnmarshalJSON(b []byte) error {
	var body struct {
		Detail string `json:"detail"`
		Code   string `json:"code"`
		Field  string `json:"field"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return err
	}
	e.Detail, e.Code, e.Field = body.Detail, body.Code, body.Field
	return nil
}

// transportError is a failure to get an answer at all.
type transportError struct{ err error }

func (t *transportError) Error() string { return "loomipay: " + t.err.Error() }
func (t *transportError) Unwrap() error { return t.err }

func retryable(err error, policy retryPolicy) bool {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		switch apiErr.Status {
		case http.StatusTooManyRequests:
			return true // refused before any work
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return policy == idempotent
		}
		return false
	}
	var te *transportError
	if !errors.As(err, &te) {
		return false
	}
	if policy == idempotent {
		return true
	}
	// The request surely never left: the connection could not be made.
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

package pay

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Page sizes of the list routes.
const (
	DefaultPageLimit = 20
	MaxPageLimit     = 100
)

// Cursor is a position in a newest-first list: the (created_at, id) of an item. It travels as
// an opaque string so that its form may change without breaking callers.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// cursorPrefix versions the cursor format.
const cursorPrefix = "c1:"

// Encode renders the cursor as the opaque string of starting_after / ending_before.
func (c Cursor) Encode() string {
	raw := cursorPrefix + strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + ":" + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// DecodeCursor parses a cursor given as the named query parameter.
func DecodeCursor(field, s string) (Cursor, error) {
	bad := Invalid(field, "%s is not a cursor this API issued (use the id-based cursor from a previous page)", field)
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !strings.HasPrefix(string(raw), cursorPrefix) {
		return Cursor{}, bad
	}
	micros, id, ok := strings.Cut(strings.TrimPrefix(string(raw), cursorPrefix), ":")
	n, err := strconv.ParseInt(micros, 10, 64)
	if !ok || err != nil {
		return Cursor{}, bad
	}
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return Cursor{}, bad
	}
	return Cursor{CreatedAt: time.UnixMicro(n).UTC(), ID: u.String()}, nil
}

// Page is the common part of a list request: a page size and at most one cursor.
type Page struct {
	Limit         int
	StartingAfter *Cursor // the page after this item (older items)
	EndingBefore  *Cursor // the page before this item (newer items)
}

// ListOrdersQuery is a validated GET /api/v1/payment-orders request, or the operators' list of
// orders (shared/ops), where AppID may be empty: every app's orders.
type ListOrdersQuery struct {
	AppID      string
	Status     Status     // empty: any
	OrderType  string     // empty: any
	CreatedGTE *time.Time // created_at >= this
	CreatedLT  *time.Time // created_at < this
	Page
}

// ListRefundsQuery is a validated GET /api/v1/refund-orders request, or the operators' list of
// refunds (shared/ops), where AppID may be empty and the created range is used.
type ListRefundsQuery struct {
	AppID           string
	PaymentOrderID  string
	MerchantOrderID string
	Status          Status
	CreatedGTE      *time.Time // operators only
	CreatedLT       *time.Time // operators only
	Page
}

// query reads query parameters, refusing unknown ones and repeats, so a typo in a filter name
// is an error rather than a silently unfiltered list.
type query struct {
	v url.Values
}

func newQuery(v url.Values, allowed ...string) (query, error) {
	for name, vals := range v {
		known := false
		for _, a := range allowed {
			known = known || a == name
		}
		if !known {
			return query{}, Invalid(name, "unknown query parameter %q (allowed: %s)", name, strings.Join(allowed, ", "))
		}
		if len(vals) > 1 {
			return query{}, Invalid(name, "query parameter %s is given more than once", name)
		}
	}
	return query{v}, nil
}

func (q query) get(name string) string { return q.v.Get(name) }

// appID is the app_id parameter; "" when it is left out (the API key's app is meant).
func (q query) appID() (string, error) {
	id := q.get("app_id")
	if id != "" && !ValidIdentifier(id) {
		return "", Invalid("app_id", "app_id must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'")
	}
	return id, nil
}

func (q query) status() (Status, error) {
	s := Status(q.get("status"))
	switch s {
	case "", StatusPending, StatusProcessing, StatusSucceeded, StatusFailed:
		return s, nil
	}
	return "", Invalid("status", "status must be one of pending, processing, succeeded, failed")
}

func (q query) time(name string) (*time.Time, error) {
	s := q.get(name)
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, Invalid(name, "%s must be an RFC 3339 time like 2024-12-03T10:30:00Z", name)
	}
	return &t, nil
}

func (q query) page() (Page, error) {
	p := Page{Limit: DefaultPageLimit}
	if s := q.get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageLimit {
			return p, Invalid("limit", "limit must be an integer from 1 to %d", MaxPageLimit)
		}
		p.Limit = n
	}
	after, before := q.get("starting_after"), q.get("ending_before")
	if after != "" && before != "" {
		return p, Invalid("starting_after", "give starting_after or ending_before, not both")
	}
	if after != "" {
		c, err := DecodeCursor("starting_after", after)
		if err != nil {
			return p, err
		}
		p.StartingAfter = &c
	}
	if before != "" {
		c, err := DecodeCursor("ending_before", before)
		if err != nil {
			return p, err
		}
		p.EndingBefore = &c
	}
	return p, nil
}

// ParseListOrders validates the query of GET /api/v1/payment-orders.
func ParseListOrders(v url.Values) (ListOrdersQuery, error) {
	var out ListOrdersQuery
	q, err := newQuery(v, "app_id", "status", "order_type", "created_gte", "created_lt", "limit", "starting_after", "ending_before")
	if err != nil {
		return out, err
	}
	if out.AppID, err = q.appID(); err != nil {
		return out, err
	}
	if out.Status, err = q.status(); err != nil {
		return out, err
	}
	out.OrderType = q.get("order_type")
	if out.OrderType != "" && out.OrderType != OrderTypePayment && out.OrderType != OrderTypeRecharge {
		return out, Invalid("order_type", "order_type must be %q or %q", OrderTypePayment, OrderTypeRecharge)
	}
	if out.CreatedGTE, err = q.time("created_gte"); err != nil {
		return out, err
	}
	if out.CreatedLT, err = q.time("created_lt"); err != nil {
		return out, err
	}
	out.Page, err = q.page()
	return out, err
}

// ParseListRefunds validates the query of GET /api/v1/refund-orders.
func ParseListRefunds(v url.Values) (ListRefundsQuery, error) {
	var out ListRefundsQuery
	q, err := newQuery(v, "app_id", "payment_order_id", "merchant_order_id", "status", "limit", "starting_after", "ending_before")
	if err != nil {
		return out, err
	}
	if out.AppID, err = q.appID(); err != nil {
		return out, err
	}
	if id := q.get("payment_order_id"); id != "" {
		if out.PaymentOrderID, err = ParseID("payment_order_id", id); err != nil {
			return out, err
		}
	}
	if id := q.get("merchant_order_id"); id != "" {
		if !ValidIdentifier(id) {
			return out, Invalid("merchant_order_id", "merchant_order_id must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'")
		}
		out.MerchantOrderID = id
	}
	if out.Status, err = q.status(); err != nil {
		return out, err
	}
	out.Page, err = q.page()
	return out, err
}

package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// Config tunes webhook delivery. Zero values take the defaults noted.
type Config struct {
	// SecretKey (WEBHOOK_SECRET_KEY) encrypts the signing secrets in the database. Without it
	// endpoints can be neither added nor delivered to.
	SecretKey string
	// AllowLoopback lets endpoints on 127.0.0.0/8 and ::1 be registered and reached (local
	// development only; private, link-local and metadata addresses stay refused).
	AllowLoopback bool
	// Concurrency bounds the deliveries in flight in this process. Default 32.
	Concurrency int
	// EndpointConcurrency bounds them per endpoint, so a slow endpoint holds at most this many
	// of the Concurrency slots. Default 4.
	EndpointConcurrency int
	// Timeout bounds one attempt, connect to last byte. Default 10 s.
	Timeout time.Duration
	// Schedule is the wait after the 1st, 2nd, … failed attempt; the last entry repeats.
	// Default DefaultSchedule.
	Schedule []time.Duration
	// Horizon: a delivery is given up once its next attempt would come later than this after the
	// event, and an endpoint failing without a success for this long is disabled. Default 72 h.
	Horizon time.Duration
	// PollEvery spaces the checks for new events and due retries. Default 200 ms.
	PollEvery time.Duration
	// SecretOverlap is how long a rotated-out secret keeps signing (a second v1). Default 24 h.
	SecretOverlap time.Duration
	// Now is the clock (tests move it). Default time.Now.
	Now func() time.Time
}

// DefaultSchedule: retries after 10 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, then
// every 12 h until three days after the event — 14 attempts in all.
var DefaultSchedule = []time.Duration{
	10 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 12 * time.Hour,
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 32
	}
	if c.EndpointConcurrency <= 0 {
		c.EndpointConcurrency = 4
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if len(c.Schedule) == 0 {
		c.Schedule = DefaultSchedule
	}
	if c.Horizon <= 0 {
		c.Horizon = 72 * time.Hour
	}
	if c.PollEvery <= 0 {
		c.PollEvery = 200 * time.Millisecond
	}
	if c.SecretOverlap <= 0 {
		c.SecretOverlap = 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Webhooks manages endpoints and delivers to them. Safe for concurrent use.
type Webhooks struct {
	pool   *postgres.Pool
	cfg    Config
	box    *box // nil without SecretKey
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	inflight map[string]int // per endpoint
	total    int
	wg       sync.WaitGroup
	wake     chan struct{}
}

// New builds the webhooks engine on the service's database.
func New(pool *postgres.Pool, cfg Config, log *slog.Logger) (*Webhooks, error) {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	w := &Webhooks{pool: pool, cfg: cfg, log: log.With("component", "webhooks"),
		inflight: map[string]int{}, wake: make(chan struct{}, 1)}
	if cfg.SecretKey != "" {
		b, err := newBox(cfg.SecretKey)
		if err != nil {
			return nil, err
		}
		w.box = b
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: dialControl(cfg.AllowLoopback)}
	w.client = &http.Client{
		Transport: &http.Transport{
			Proxy:               nil, // a proxy would make the connect-time address check moot
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: cfg.Timeout,
			MaxIdleConnsPerHost: cfg.EndpointConcurrency,
			IdleConnTimeout:     90 * time.Second,
		},
		Timeout: cfg.Timeout,
		// A redirect is not followed: it could lead anywhere, and the receiver must answer itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return w, nil
}

func (w *Webhooks) now() time.Time { return w.cfg.Now().UTC() }

var errNoKey = errors.New("WEBHOOK_SECRET_KEY is not set: signing secrets cannot be stored or used")

// Event types an endpoint may subscribe to.
var EventTypes = []string{pay.EventPaymentStatusChanged, pay.EventRefundStatusChanged}

// Endpoint is a main app's webhook receiver.
type Endpoint struct {
	ID             string
	AppID          string
	URL            string
	Events         []string
	FailingSince   *time.Time
	DisabledAt     *time.Time
	DisabledReason string
	CreatedAt      time.Time
}

func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return "whsec_" + hex.EncodeToString(b)
}

func newEndpointID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "we_" + hex.EncodeToString(b)
}

// AddEndpoint registers a URL for an app's results (all event types when events is empty) and
// returns the endpoint and its signing secret, shown once.
func (w *Webhooks) AddEndpoint(ctx context.Context, appID, rawURL string, events []string) (Endpoint, string, error) {
	if w.box == nil {
		return Endpoint{}, "", errNoKey
	}
	if len(events) == 0 {
		events = EventTypes
	}
	for _, e := range events {
		if !slices.Contains(EventTypes, e) {
			return Endpoint{}, "", pay.Invalid("events", "unknown event type %q; known: %s", e, strings.Join(EventTypes, ", "))
		}
	}
	u, err := checkURL(ctx, rawURL, w.cfg.AllowLoopback)
	if err != nil {
		return Endpoint{}, "", pay.Invalid("url", "%s", err.Error())
	}
	var disabled *time.Time
	err = w.pool.QueryRow(ctx, "SELECT disabled_at FROM apps WHERE app_id = $1", appID).Scan(&disabled)
	if errors.Is(err, pgx.ErrNoRows) {
		return Endpoint{}, "", pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "app %q does not exist; create it with 'loomipay apps create %s'", appID, appID)
	}
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("read app: %w", err)
	}
	if disabled != nil {
		return Endpoint{}, "", pay.Errorf(pay.KindConflict, "app_disabled", "app %q is disabled", appID)
	}
	secret := newSecret()
	ep := Endpoint{ID: newEndpointID(), AppID: appID, URL: u.String(), Events: events}
	err = w.pool.QueryRow(ctx, `INSERT INTO webhook_endpoints (id, app_id, url, events, secret_enc, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`, ep.ID, appID, ep.URL, events, w.box.seal(secret), w.now()).Scan(&ep.CreatedAt)
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("add endpoint: %w", err)
	}
	return ep, secret, nil
}

const endpointCols = `id, app_id, url, events, failing_since, disabled_at, coalesce(disabled_reason, ''), created_at`

func scanEndpoint(row pgx.Row) (Endpoint, error) {
	var e Endpoint
	err := row.Scan(&e.ID, &e.AppID, &e.URL, &e.Events, &e.FailingSince, &e.DisabledAt, &e.DisabledReason, &e.CreatedAt)
	return e, err
}

// Endpoints lists endpoints (all apps when appID is empty).
func (w *Webhooks) Endpoints(ctx context.Context, appID string) ([]Endpoint, error) {
	rows, err := w.pool.Query(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints
		WHERE $1 = '' OR app_id = $1 ORDER BY created_at, id`, appID)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	defer rows.Close()
	var out []Endpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Endpoint returns one endpoint.
func (w *Webhooks) Endpoint(ctx context.Context, id string) (Endpoint, error) {
	e, err := scanEndpoint(w.pool.QueryRow(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no webhook endpoint %q", id)
	}
	return e, err
}

// DisableEndpoint stops deliveries to an endpoint; its pending deliveries are failed.
func (w *Webhooks) DisableEndpoint(ctx context.Context, id, reason string) error {
	if _, err := w.Endpoint(ctx, id); err != nil {
		return err
	}
	return w.disable(ctx, id, reason)
}

func (w *Webhooks) disable(ctx context.Context, id, reason string) error {
	now := w.now()
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it does nothing
	if _, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET disabled_at = $2, disabled_reason = $3
		WHERE id = $1 AND disabled_at IS NULL`, id, now, reason); err != nil {
		return fmt.Errorf("disable endpoint: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET state = 'failed', last_error = 'endpoint disabled: ' || $2
		WHERE endpoint_id = $1 AND state = 'pending'`, id, reason); err != nil {
		return fmt.Errorf("disable endpoint: %w", err)
	}
	return tx.Commit(ctx)
}

// RotateSecret gives an endpoint a new signing secret, returned once. The old one keeps signing
// too (a second v1 in the header) for SecretOverlap, so the receiver can switch without loss.
func (w *Webhooks) RotateSecret(ctx context.Context, id string) (string, time.Time, error) {
	if w.box == nil {
		return "", time.Time{}, errNoKey
	}
	secret := newSecret()
	until := w.now().Add(w.cfg.SecretOverlap)
	tag, err := w.pool.Exec(ctx, `UPDATE webhook_endpoints
		SET previous_secret_enc = secret_enc, previous_until = $3, secret_enc = $2 WHERE id = $1`, id, w.box.seal(secret), until)
	if err != nil {
		return "", until, fmt.Errorf("rotate secret: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return "", until, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no webhook endpoint %q", id)
	}
	return secret, until, nil
}

// Attempt is one try at a delivery.
type Attempt struct {
	At         time.Time
	StatusCode int // 0: no HTTP answer
	Latency    time.Duration
	Error      string
}

// Delivery is one event for one endpoint, with its attempts.
type Delivery struct {
	ID            int64
	EndpointID    string
	EventID       string
	EventType     string
	SubjectID     string
	Seq           int64
	State         string // pending, delivered, failed
	AttemptCount  int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
	DeliveredAt   *time.Time
	Attempts      []Attempt
}

// Deliveries lists an endpoint's most recent deliveries (newest first) with their attempts.
func (w *Webhooks) Deliveries(ctx context.Context, endpointID string, limit int) ([]Delivery, error) {
	if _, err := w.Endpoint(ctx, endpointID); err != nil {
		return nil, err
	}
	rows, err := w.pool.Query(ctx, `SELECT id, endpoint_id, event_id::text, event_type, subject_id, seq, state, attempts,
		next_attempt_at, coalesce(last_error, ''), created_at, delivered_at
		FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2`, endpointID, limit)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	byID := map[int64]int{}
	var ids []int64
	for rows.Next() {
		var d Delivery
		if err := rows.Scan(&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.SubjectID, &d.Seq, &d.State, &d.AttemptCount,
			&d.NextAttemptAt, &d.LastError, &d.CreatedAt, &d.DeliveredAt); err != nil {
			return nil, err
		}
		byID[d.ID] = len(out)
		ids = append(ids, d.ID)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = w.pool.Query(ctx, `SELECT delivery_id, attempted_at, coalesce(status_code, 0), latency_ms, coalesce(error, '')
		FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY id`, ids)
	if err != nil {
		return nil, fmt.Errorf("list attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var a Attempt
		var ms int
		if err := rows.Scan(&id, &a.At, &a.StatusCode, &ms, &a.Error); err != nil {
			return nil, err
		}
		a.Latency = time.Duration(ms) * time.Millisecond
		out[byID[id]].Attempts = append(out[byID[id]].Attempts, a)
	}
	return out, rows.Err()
}

// Redeliver queues an event again for every endpoint it was fanned out to (or only endpointID),
// now, whatever became of it before; earlier attempts stay recorded. It returns how many
// deliveries it queued.
func (w *Webhooks) Redeliver(ctx context.Context, eventID, endpointID string) (int, error) {
	tag, err := w.pool.Exec(ctx, `UPDATE webhook_deliveries d SET state = 'pending', next_attempt_at = $3,
		created_at = $3, delivered_at = NULL, last_error = NULL
		FROM webhook_endpoints e
		WHERE d.event_id::text = $1 AND ($2 = '' OR d.endpoint_id = $2) AND e.id = d.endpoint_id AND e.disabled_at IS NULL`,
		eventID, endpointID, w.now())
	if err != nil {
		return 0, fmt.Errorf("redeliver: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return 0, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "event %q has no delivery to an enabled endpoint", eventID)
	}
	w.poke()
	return int(tag.RowsAffected()), nil
}

func (w *Webhooks) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

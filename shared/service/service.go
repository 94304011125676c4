// Package service is Loomi Pay's application layer: it composes the domain (pay), storage
// (postgres), streams and the Lakala protocol into the operations the HTTP functions and the
// processor perform. Transports stay thin; every rule lives here or in pay.
package service

import (
	"context"
	"crypto/rsa"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/loomipay/loomipay/shared/crash"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/streams"
)

// Config tunes the service.
type Config struct {
	// KeyCacheTTL bounds how long an API key lookup is reused; a revoked key stops working
	// within it. Default 30 s; negative disables the cache.
	KeyCacheTTL time.Duration
	// PublishTimeout bounds a Redis publish on a request path, so a Redis outage slows a request
	// by at most this much (the work is safe in Postgres either way). Default 500 ms.
	PublishTimeout time.Duration
	// Merchants is every merchant the service speaks for (shared/merchants.Registry): a
	// notification binds to an attempt only when it names the merchant_no of the attempt's
	// merchant and verifies with that merchant's key. Nil: the one merchant of PlatformKey and
	// MerchantNo, without Lakala clients.
	Merchants Merchants
	// PlatformKey verifies Lakala's notifications (LAKALA_NOTIFY_CERT, else the platform
	// certificate) when Merchants is nil.
	PlatformKey *rsa.PublicKey
	// MerchantNo is our Lakala merchant when Merchants is nil: a notification binds to our
	// cashier order only when it names it (one platform key signs every merchant's notifications).
	MerchantNo string
	// ReplayWindow: a notification signed longer ago than this (or this far in the future) is
	// refused unless it repeats one already applied. Default 10 min.
	ReplayWindow time.Duration
	// KeyCacheSize bounds the API key cache (least recently used evicted). Default 10,000.
	KeyCacheSize int
	// RateLimit applies to every app without an override; a zero Rate disables limiting.
	RateLimit RateLimit
	// RateLimits overrides RateLimit per app id.
	RateLimits map[string]RateLimit
	// OrderTTL is how long an order may be paid when the merchant gave no expires_in, from its
	// creation (pay.OrderExpiry). Default 30 min.
	OrderTTL time.Duration
	// APIKeyFailures limits wrong API keys per client address and key id (see Throttle).
	// Default APIKeyFailures.
	APIKeyFailures FailureLimit
	// RateLimitTimeout bounds the Redis round trip of a rate check; past it (or with Redis
	// down) the request is let through. Default 250 ms.
	RateLimitTimeout time.Duration
}

// Service performs Loomi Pay's operations. Safe for concurrent use.
type Service struct {
	store     *postgres.Store
	streams   *streams.Streams
	log       *slog.Logger
	cfg       Config
	merchants Merchants
	keys      *keyCache
	// keyThrottle limits wrong API keys (AuthenticateFrom).
	keyThrottle *Throttle
	// groupReady records that the processor's consumer group exists, so the create path
	// checks it once per process rather than once per request.
	groupReady atomic.Bool
}

// New builds a Service.
func New(store *postgres.Store, st *streams.Streams, log *slog.Logger, cfg Config) *Service {
	if cfg.KeyCacheTTL == 0 {
		cfg.KeyCacheTTL = 30 * time.Second
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = 500 * time.Millisecond
	}
	if cfg.ReplayWindow == 0 {
		cfg.ReplayWindow = 10 * time.Minute
	}
	if cfg.KeyCacheSize <= 0 {
		cfg.KeyCacheSize = 10_000
	}
	if cfg.OrderTTL == 0 {
		cfg.OrderTTL = 30 * time.Minute
	}
	if cfg.APIKeyFailures.Burst <= 0 || cfg.APIKeyFailures.Every <= 0 {
		cfg.APIKeyFailures = APIKeyFailures
	}
	if cfg.RateLimitTimeout == 0 {
		cfg.RateLimitTimeout = 250 * time.Millisecond
	}
	if log == nil {
		log = slog.Default()
	}
	merchants := cfg.Merchants
	if merchants == nil {
		merchants = oneMerchant{MerchantIdentity{ID: postgres.DefaultMerchant, MerchantNo: cfg.MerchantNo, NotifyKey: cfg.PlatformKey}}
	}
	return &Service{store: store, streams: st, log: log, cfg: cfg, merchants: merchants, keys: newKeyCache(cfg.KeyCacheTTL, cfg.KeyCacheSize),
		keyThrottle: NewThrottle(st, "apikey", cfg.APIKeyFailures)}
}

// Store exposes the store (processor, CLI, tests).
func (s *Service) Store() *postgres.Store { return s.store }

// Streams exposes the streams (processor, tests).
func (s *Service) Streams() *streams.Streams { return s.streams }

// Logger is the service's logger.
func (s *Service) Logger() *slog.Logger { return s.log }

// Now is the service's clock.
func (s *Service) Now() time.Time { return time.Now().UTC() }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// PublishEvents publishes result messages that were just committed: every unpublished message
// of their subjects, in order. A failure is only logged: the messages stay in the outbox and the
// processor's relay publishes them later, so results are late, never lost, never out of order.
func (s *Service) PublishEvents(ctx context.Context, events []postgres.Event) {
	if len(events) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.PublishTimeout)
	defer cancel()
	subjects := make([]string, 0, len(events))
	for _, e := range events {
		if !slices.Contains(subjects, e.SubjectID) {
			subjects = append(subjects, e.SubjectID)
		}
	}
	if _, err := s.store.PublishSubjects(ctx, subjects, s.Now(), s.publish); err != nil {
		s.log.WarnContext(ctx, "result messages left in the outbox for the relay", "count", len(events), "err", err)
	}
}

func (s *Service) publish(ctx context.Context, events []postgres.Event) error {
	msgs := make([]pay.ResultMessage, len(events))
	for i, e := range events {
		msgs[i] = e.ResultMessage
	}
	if err := s.streams.PublishResults(ctx, msgs); err != nil {
		return err
	}
	crash.Here(ctx, crash.ResultsAdded)
	return nil
}

// RelayOutbox publishes every outbox message not yet published, in batches, oldest first, and
// returns how many it published. Messages are published at least once; event_id lets consumers
// drop repeats and seq orders each subject's messages.
func (s *Service) RelayOutbox(ctx context.Context, batch int) (int, error) {
	total := 0
	for {
		n, err := s.store.PublishOldest(ctx, batch, s.Now(), s.publish)
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

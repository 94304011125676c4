// Package merchants is the registry of the Lakala merchants the service speaks for: the
// configuration's merchant (the LAKALA_* variables, the merchant "default") and the merchants an
// operator added (the merchants table, whose key and certificates are references to Secrets
// Manager). It builds each merchant's Lakala client on first use and keeps it until the merchant's
// key changes, and it gives the identity a notification is bound against.
package merchants

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/secrets"
	"github.com/loomipay/loomipay/shared/service"
)

// Refs reads what a reference names (secrets.Resolver): fresh reads it again rather than reuse
// what this process read before.
type Refs interface {
	Reference(ctx context.Context, ref string, fresh bool) (string, error)
}

// Default is the configuration's merchant.
type Default struct {
	AppID, SerialNo, MerchantNo, TermNo, VposID string
	// NotifyKey verifies its notifications (LAKALA_NOTIFY_CERT, else LAKALA_PLATFORM_CERT); nil
	// when neither is configured.
	NotifyKey *rsa.PublicKey
	// Client builds its Lakala client; nil in a process without its key (the webhook, the reads).
	Client func() (*lakala.Client, error)
}

// Config configures a Registry.
type Config struct {
	Store *postgres.Store
	// Refs reads the references of added merchants; nil: only the default merchant is usable.
	Refs Refs
	// What every merchant's client shares: Lakala's address, the HTTP client (its connections),
	// the logger, the call log.
	BaseURL    string
	HTTPClient *http.Client
	Logger     *slog.Logger
	OnCall     func(context.Context, lakala.CallRecord)
	Default    Default
	// TTL is how long a merchant's row is reused before it is read again: a key rotation reaches
	// every process within it (so the old key must stay valid at Lakala that long; see
	// docs/DECISIONS.md, "Merchants"). Default 10 s; negative: read it on every use.
	TTL time.Duration
	// Stage is the deployment's STAGE: outside dev ("" is dev) a merchant's references must be
	// Secrets Manager secrets named under SecretPrefix(Stage), the names the functions may read.
	Stage string
}

// SecretPrefix is where the secrets of a stage's merchants live: template.yaml lets the functions
// read the secrets whose name starts with it, and no other.
func SecretPrefix(stage string) string { return "loomipay/" + stage + "/merchants/" }

// CheckRefs refuses a merchant's references that the deployment's functions could not read: in
// dev a Secrets Manager ARN or a file; elsewhere only secrets named under SecretPrefix(Stage).
func (r *Registry) CheckRefs(m postgres.Merchant) error {
	dev := r.cfg.Stage == "" || r.cfg.Stage == "dev"
	var errs []error
	for _, ref := range []struct{ name, value string }{
		{"private key", m.PrivateKeyRef}, {"platform certificate", m.PlatformCertRef}, {"notification certificate", m.NotifyCertRef},
	} {
		if ref.value == "" && ref.name == "notification certificate" {
			continue
		}
		if err := secrets.CheckReference(ref.value, dev); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ref.name, err))
			continue
		}
		if prefix := SecretPrefix(r.cfg.Stage); !dev && !strings.Contains(ref.value, ":secret:"+prefix) {
			errs = append(errs, fmt.Errorf("%s: the secret %s is not named under %s, the names the functions of STAGE=%s may read (template.yaml)",
				ref.name, ref.value, prefix, r.cfg.Stage))
		}
	}
	return errors.Join(errs...)
}

// Registry is the merchants the service speaks for. Safe for concurrent use.
type Registry struct {
	cfg Config
	now func() time.Time

	defaultOnce sync.Mutex
	defaultGW   *lakala.Client

	mu      sync.Mutex
	rows    map[string]cachedRow
	clients map[string]cachedClient
	keys    map[string]cachedKey // notification keys, by merchant
	allKeys *cachedKeys
}

type cachedRow struct {
	m      postgres.Merchant
	readAt time.Time
}

// cachedClient is a merchant's client, valid while the merchant's row is the one it was built from.
type cachedClient struct {
	version int
	updated time.Time
	client  *lakala.Client
}

type cachedKey struct {
	updated time.Time
	key     *rsa.PublicKey
}

type cachedKeys struct {
	keys   []*rsa.PublicKey
	readAt time.Time
}

// New builds a Registry.
func New(cfg Config) *Registry {
	if cfg.TTL == 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Registry{cfg: cfg, now: time.Now, rows: map[string]cachedRow{}, clients: map[string]cachedClient{}, keys: map[string]cachedKey{}}
}

var _ service.Merchants = (*Registry)(nil)

// IsDefault reports whether id names the configuration's merchant ("" does too: an order made
// before merchants existed).
func IsDefault(id string) bool { return id == "" || id == postgres.DefaultMerchant }

// Default is the configuration's merchant.
func (r *Registry) Default() Default { return r.cfg.Default }

// Stage is the deployment's STAGE ("" in tests: dev).
func (r *Registry) Stage() string { return r.cfg.Stage }

// Gateway returns the Lakala client of merchant id, built on first use and again after its key
// changed.
func (r *Registry) Gateway(ctx context.Context, id string) (service.Gateway, error) {
	if IsDefault(id) {
		return r.DefaultClient()
	}
	m, err := r.row(ctx, id)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	c, had := r.clients[id]
	r.mu.Unlock()
	if had && c.version == m.KeyVersion && c.updated.Equal(m.UpdatedAt) {
		return c.client, nil
	}
	// A rotation may have put a new version in the same secret: read the references afresh then.
	client, err := r.build(ctx, m, had)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.clients[id] = cachedClient{version: m.KeyVersion, updated: m.UpdatedAt, client: client}
	r.mu.Unlock()
	return client, nil
}

// DefaultClient is the default merchant's client, built once; a failure is not kept (a secret that
// could not be read now may be readable on the next call).
func (r *Registry) DefaultClient() (*lakala.Client, error) {
	r.defaultOnce.Lock()
	defer r.defaultOnce.Unlock()
	if r.defaultGW != nil {
		return r.defaultGW, nil
	}
	if r.cfg.Default.Client == nil {
		return nil, errors.New("this process has no key of the default merchant (LAKALA_PRIVATE_KEY): it makes no Lakala calls")
	}
	c, err := r.cfg.Default.Client()
	if err != nil {
		return nil, err
	}
	r.defaultGW = c
	return c, nil
}

// Identity returns what a notification for merchant id is bound against.
func (r *Registry) Identity(ctx context.Context, id string) (service.MerchantIdentity, error) {
	if IsDefault(id) {
		d := r.cfg.Default
		return service.MerchantIdentity{ID: postgres.DefaultMerchant, MerchantNo: d.MerchantNo, TermNo: d.TermNo, NotifyKey: d.NotifyKey}, nil
	}
	m, err := r.row(ctx, id)
	if err != nil {
		return service.MerchantIdentity{}, err
	}
	key, err := r.notifyKey(ctx, m)
	if err != nil {
		return service.MerchantIdentity{}, err
	}
	return service.MerchantIdentity{ID: m.ID, MerchantNo: m.MerchantNo, TermNo: m.TermNo, NotifyKey: key}, nil
}

// NotifyKeys returns every distinct key that verifies some merchant's notifications (usually one:
// Lakala's platform certificate is the same for every merchant of an environment).
func (r *Registry) NotifyKeys(ctx context.Context) ([]*rsa.PublicKey, error) {
	r.mu.Lock()
	cached := r.allKeys
	r.mu.Unlock()
	if cached != nil && r.fresh(cached.readAt) {
		return cached.keys, nil
	}
	var keys []*rsa.PublicKey
	add := func(k *rsa.PublicKey) {
		if k == nil {
			return
		}
		for _, have := range keys {
			if have.Equal(k) {
				return
			}
		}
		keys = append(keys, k)
	}
	add(r.cfg.Default.NotifyKey)
	rows, err := r.cfg.Store.Merchants(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, m := range rows {
		if m.Configured {
			continue
		}
		k, err := r.notifyKey(ctx, m)
		if err != nil {
			// One merchant's unreadable certificate must not stop the others' notifications.
			errs = append(errs, err)
			continue
		}
		add(k)
	}
	if len(errs) > 0 {
		// Said once per TTL (the keys are kept that long either way), not once per notification.
		r.cfg.Logger.WarnContext(ctx, "a merchant's notification certificate could not be read; its notifications are refused until it can", "err", errors.Join(errs...))
	}
	r.mu.Lock()
	r.allKeys = &cachedKeys{keys: keys, readAt: r.now()}
	r.mu.Unlock()
	return keys, nil
}

func (r *Registry) fresh(readAt time.Time) bool {
	return r.cfg.TTL > 0 && r.now().Sub(readAt) < r.cfg.TTL
}

// row reads merchant id's row, reusing one read less than TTL ago.
func (r *Registry) row(ctx context.Context, id string) (postgres.Merchant, error) {
	r.mu.Lock()
	c, ok := r.rows[id]
	r.mu.Unlock()
	if ok && r.fresh(c.readAt) {
		return c.m, nil
	}
	m, err := r.cfg.Store.Merchant(ctx, id)
	if errors.Is(err, pay.ErrNotFound) {
		return m, fmt.Errorf("no merchant %q", id)
	}
	if err != nil {
		return m, err
	}
	r.mu.Lock()
	r.rows[id] = cachedRow{m: m, readAt: r.now()}
	r.mu.Unlock()
	return m, nil
}

// notifyKey is the key that verifies merchant m's notifications: its notify certificate's, else
// its platform certificate's.
func (r *Registry) notifyKey(ctx context.Context, m postgres.Merchant) (*rsa.PublicKey, error) {
	r.mu.Lock()
	c, ok := r.keys[m.ID]
	r.mu.Unlock()
	if ok && c.updated.Equal(m.UpdatedAt) {
		return c.key, nil
	}
	ref := m.NotifyCertRef
	if ref == "" {
		ref = m.PlatformCertRef
	}
	pem, err := r.read(ctx, m.ID, "notification certificate", ref, ok)
	if err != nil {
		return nil, err
	}
	key, err := lakala.ParsePublicKey([]byte(pem))
	if err != nil {
		return nil, fmt.Errorf("merchant %s: notification certificate %s: %w", m.ID, ref, err)
	}
	r.mu.Lock()
	r.keys[m.ID] = cachedKey{updated: m.UpdatedAt, key: key}
	r.mu.Unlock()
	return key, nil
}

func (r *Registry) read(ctx context.Context, id, what, ref string, fresh bool) (string, error) {
	if r.cfg.Refs == nil {
		return "", fmt.Errorf("merchant %s: this process cannot read references (its %s is %s)", id, what, ref)
	}
	v, err := r.cfg.Refs.Reference(ctx, ref, fresh)
	if err != nil {
		return "", fmt.Errorf("merchant %s: %s: %w", id, what, err)
	}
	return v, nil
}

// build makes merchant m's client from its row and what its references hold.
func (r *Registry) build(ctx context.Context, m postgres.Merchant, fresh bool) (*lakala.Client, error) {
	keyPEM, err := r.read(ctx, m.ID, "private key", m.PrivateKeyRef, fresh)
	if err != nil {
		return nil, err
	}
	key, err := lakala.ParsePrivateKey([]byte(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("merchant %s: private key %s: %w", m.ID, m.PrivateKeyRef, err)
	}
	certPEM, err := r.read(ctx, m.ID, "platform certificate", m.PlatformCertRef, fresh)
	if err != nil {
		return nil, err
	}
	platform, serial, err := lakala.ParsePlatformCert([]byte(certPEM))
	if err != nil {
		return nil, fmt.Errorf("merchant %s: platform certificate %s: %w", m.ID, m.PlatformCertRef, err)
	}
	c, err := lakala.NewClient(lakala.Config{
		BaseURL:     r.cfg.BaseURL,
		Credentials: lakala.Credentials{AppID: m.LakalaAppID, SerialNo: m.SerialNo, PrivateKey: key},
		MerchantNo:  m.MerchantNo, TermNo: m.TermNo, VposID: m.VposID,
		PlatformKey: platform, PlatformSerial: serial,
		HTTPClient: r.cfg.HTTPClient,
		Logger:     r.cfg.Logger.With("merchant_id", m.ID),
		OnCall:     r.cfg.OnCall,
		MerchantID: m.ID,
	})
	if err != nil {
		return nil, fmt.Errorf("merchant %s: %w", m.ID, err)
	}
	return c, nil
}

// Check builds merchant m's client and notification key from its references without keeping them:
// an operator adding a merchant or rotating its key learns at once that a reference cannot be read
// or holds something else than it should.
func (r *Registry) Check(ctx context.Context, m postgres.Merchant) error {
	if _, err := r.build(ctx, m, true); err != nil {
		return err
	}
	if m.NotifyCertRef != "" {
		pem, err := r.read(ctx, m.ID, "notification certificate", m.NotifyCertRef, true)
		if err != nil {
			return err
		}
		if _, err := lakala.ParsePublicKey([]byte(pem)); err != nil {
			return fmt.Errorf("merchant %s: notification certificate %s: %w", m.ID, m.NotifyCertRef, err)
		}
	}
	return nil
}

// Forget drops what the registry holds of merchant id, so its next use reads its row again (the
// process that rotated its key).
func (r *Registry) Forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.rows, id)
	r.allKeys = nil
}

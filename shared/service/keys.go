package service

import (
	"container/list"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// API keys look like "lp_<id>_<secret>": the id finds the stored record, the SHA-256 of the
// whole key is compared in constant time. Only the hash is stored.
const keyPrefix = "lp_"

const keyAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	for i := range b {
		b[i] = keyAlphabet[int(b[i])%len(keyAlphabet)]
	}
	return string(b)
}

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

func parseKey(key string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok {
		return "", false
	}
	id, secret, ok := strings.Cut(rest, "_")
	return id, ok && len(id) == 12 && len(secret) == 40
}

// CreateAPIKey issues a new key for an app and returns it; it is shown once and never stored.
// maxKeyLabel bounds a key's label, a note for people.
const maxKeyLabel = 200

// ValidateKeyLabel refuses a label PostgreSQL could not store (NUL, invalid UTF-8) or that would
// garble a listing (control characters), or longer than maxKeyLabel characters.
func ValidateKeyLabel(label string) error {
	if !utf8.ValidString(label) || utf8.RuneCountInString(label) > maxKeyLabel ||
		strings.ContainsFunc(label, unicode.IsControl) {
		return pay.Invalid("label", "label must be at most %d characters of text, without control characters", maxKeyLabel)
	}
	return nil
}

func (s *Service) CreateAPIKey(ctx context.Context, appID, label string) (string, postgres.APIKey, error) {
	if !pay.ValidIdentifier(appID) {
		return "", postgres.APIKey{}, pay.Invalid("app_id", "app_id must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'")
	}
	if err := ValidateKeyLabel(label); err != nil {
		return "", postgres.APIKey{}, err
	}
	id := randomString(12)
	key := keyPrefix + id + "_" + randomString(40)
	rec := postgres.APIKey{ID: id, AppID: appID, Hash: hashKey(key), Label: label}
	err := s.store.InsertAPIKey(ctx, rec)
	if errors.Is(err, pay.ErrNotFound) {
		return "", rec, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "app %q does not exist; create it first with 'loomipay apps create %s'", appID, appID)
	}
	if err != nil {
		return "", rec, err
	}
	return key, rec, nil
}

// Authenticate checks an Authorization header value and returns the key's app.
func (s *Service) Authenticate(ctx context.Context, authorization string) (string, error) {
	unauthorized := func(detail string) error {
		return pay.Errorf(pay.KindUnauthorized, pay.CodeUnauthorized, "%s", detail)
	}
	if authorization == "" {
		return "", unauthorized("missing Authorization header; send 'Authorization: Bearer <api-key>'")
	}
	scheme, key, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", unauthorized("Authorization must use the Bearer scheme")
	}
	key = strings.TrimSpace(key)
	id, ok := parseKey(key)
	if !ok {
		return "", unauthorized("invalid API key")
	}
	rec, err := s.keys.get(ctx, id, s.store.APIKeyByID)
	if errors.Is(err, pay.ErrNotFound) {
		return "", unauthorized("invalid API key")
	}
	if err != nil {
		return "", fmt.Errorf("authenticate: %w", err)
	}
	if subtle.ConstantTimeCompare(hashKey(key), rec.Hash) != 1 || rec.RevokedAt != nil {
		return "", unauthorized("invalid API key")
	}
	return rec.AppID, nil
}

// AuthenticateFrom is Authenticate for a request from client (its address; "" when unknown),
// throttled (see Throttle): a client address with too many wrong keys is refused before its key
// is looked at, and a key id with too many wrong secrets answers them 429.
func (s *Service) AuthenticateFrom(ctx context.Context, authorization, client string) (string, error) {
	if err := s.keyThrottle.Check(client); err != nil {
		return "", err
	}
	app, err := s.Authenticate(ctx, authorization)
	if err == nil || pay.AsError(err).Kind != pay.KindUnauthorized {
		return app, err // a database that does not answer is no failure of the client's
	}
	_, key, _ := strings.Cut(authorization, " ")
	id, wellFormed := parseKey(strings.TrimSpace(key))
	if !wellFormed {
		id = "" // counted per address only
	}
	return "", s.keyThrottle.Failed(ctx, client, id, err)
}

// keyCache keeps key records for a short TTL so that a warm Lambda does not read the key on
// every request. Misses (unknown ids) are cached too, so a flood of bad keys costs one read each.
// It holds at most size entries and evicts the least recently used one, so a flood of random
// key ids pushes out only other cold entries, never the keys in active use.
type keyCache struct {
	ttl     time.Duration
	size    int
	mu      sync.Mutex
	order   *list.List // front: most recently used; values are *keyEntry
	entries map[string]*list.Element
}

type keyEntry struct {
	id      string
	rec     postgres.APIKey
	err     error
	expires time.Time
}

func newKeyCache(ttl time.Duration, size int) *keyCache {
	return &keyCache{ttl: ttl, size: size, order: list.New(), entries: make(map[string]*list.Element)}
}

func (c *keyCache) get(ctx context.Context, id string, load func(context.Context, string) (postgres.APIKey, error)) (postgres.APIKey, error) {
	if c.ttl < 0 {
		return load(ctx, id)
	}
	now := time.Now()
	c.mu.Lock()
	if el, ok := c.entries[id]; ok {
		e := el.Value.(*keyEntry)
		if now.Before(e.expires) {
			c.order.MoveToFront(el)
			c.mu.Unlock()
			return e.rec, e.err
		}
	}
	c.mu.Unlock()
	rec, err := load(ctx, id)
	if err != nil && !errors.Is(err, pay.ErrNotFound) {
		return rec, err // a database error is not an answer worth caching
	}
	c.put(&keyEntry{id: id, rec: rec, err: err, expires: now.Add(c.ttl)})
	return rec, err
}

func (c *keyCache) put(e *keyEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.id]; ok {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	c.entries[e.id] = c.order.PushFront(e)
	for c.order.Len() > c.size {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*keyEntry).id)
	}
}

// len reports how many entries the cache holds (tests).
func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

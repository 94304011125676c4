package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
)

// APIKey is a stored API key: never the key itself, only its hash.
type APIKey struct {
	ID        string
	AppID     string
	Hash      []byte
	Label     string
	CreatedAt time.Time
	RevokedAt *time.Time
}

// EnsureApp registers an app id if it is not yet known (the test harness; operators use
// service.CreateApp, which also creates the app's Redis user).
func (s *Store) EnsureApp(ctx context.Context, appID string) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO apps (app_id) VALUES ($1) ON CONFLICT DO NOTHING", appID)
	if err != nil {
		return fmt.Errorf("ensure app %q: %w", appID, err)
	}
	return nil
}

// InsertAPIKey stores a new key for an existing app; an unknown app → pay.ErrNotFound.
func (s *Store) InsertAPIKey(ctx context.Context, k APIKey) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO api_keys (id, app_id, key_hash, label) VALUES ($1, $2, $3, $4)",
		k.ID, k.AppID, k.Hash, k.Label)
	if isForeignKeyViolation(err) {
		return pay.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	return nil
}

// APIKeyByID returns a key record, revoked or not, or pay.ErrNotFound. A key of a disabled app
// reads as revoked (when the app was disabled, if not before).
func (s *Store) APIKeyByID(ctx context.Context, id string) (APIKey, error) {
	var k APIKey
	err := s.pool.QueryRow(ctx, `SELECT k.id, k.app_id, k.key_hash, k.label, k.created_at, coalesce(k.revoked_at, a.disabled_at)
		FROM api_keys k JOIN apps a USING (app_id) WHERE k.id = $1`, id).
		Scan(&k.ID, &k.AppID, &k.Hash, &k.Label, &k.CreatedAt, &k.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, pay.ErrNotFound
	}
	if err != nil {
		return k, fmt.Errorf("read api key: %w", err)
	}
	return k, nil
}

// APIKeys lists keys (all apps when appID is empty), newest first.
func (s *Store) APIKeys(ctx context.Context, appID string) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, app_id, key_hash, label, created_at, revoked_at FROM api_keys
		WHERE $1 = '' OR app_id = $1 ORDER BY created_at DESC, id`, appID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		var k APIKey
		if err := rows.Scan(&k.ID, &k.AppID, &k.Hash, &k.Label, &k.CreatedAt, &k.RevokedAt); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey revokes a key; revoking a revoked key changes nothing. Unknown id → pay.ErrNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", id)
	if err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return pay.ErrNotFound
	}
	return nil
}

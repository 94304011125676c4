package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
)

// AppRedisUser is an app's Redis user as kept in PostgreSQL (migration 0008): enough to make it
// again with the app's passwords.
type AppRedisUser struct {
	AppID    string
	Username string
	// PasswordHashes are the SHA-256 (hex) of each password in force.
	PasswordHashes []string
	// Rules are the ACL rules last applied after the password (streams.AppACLRules).
	Rules []string
	// Disabled: the app is disabled, so its user is off.
	Disabled  bool
	UpdatedAt time.Time
}

// DeploymentID is this deployment's random name (8 hex digits), made by migration 0008.
func (s *Store) DeploymentID(ctx context.Context) (string, error) {
	var id string
	if err := s.pool.QueryRow(ctx, "SELECT id FROM deployment").Scan(&id); err != nil {
		return "", fmt.Errorf("read deployment id: %w", err)
	}
	return id, nil
}

const appRedisUserColumns = `u.app_id, u.username, u.password_hashes, u.rules, a.disabled_at IS NOT NULL, u.updated_at`

func scanAppRedisUser(row pgx.CollectableRow) (u AppRedisUser, err error) {
	err = row.Scan(&u.AppID, &u.Username, &u.PasswordHashes, &u.Rules, &u.Disabled, &u.UpdatedAt)
	return u, err
}

// AppRedisUser returns the app's Redis user, or pay.ErrNotFound when none is kept.
func (s *Store) AppRedisUser(ctx context.Context, appID string) (AppRedisUser, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+appRedisUserColumns+` FROM app_redis_users u JOIN apps a USING (app_id) WHERE u.app_id = $1`, appID)
	if err != nil {
		return AppRedisUser{}, fmt.Errorf("read app redis user: %w", err)
	}
	u, err := pgx.CollectExactlyOneRow(rows, scanAppRedisUser)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, pay.ErrNotFound
	}
	if err != nil {
		return u, fmt.Errorf("read app redis user: %w", err)
	}
	return u, nil
}

// AppRedisUsers lists every kept Redis user, by app id.
func (s *Store) AppRedisUsers(ctx context.Context) ([]AppRedisUser, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+appRedisUserColumns+` FROM app_redis_users u JOIN apps a USING (app_id) ORDER BY u.app_id`)
	if err != nil {
		return nil, fmt.Errorf("list app redis users: %w", err)
	}
	return pgx.CollectRows(rows, scanAppRedisUser)
}

// SaveAppRedisUser keeps the app's Redis user as given (Disabled is the app's, not saved here).
func (s *Store) SaveAppRedisUser(ctx context.Context, u AppRedisUser) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO app_redis_users (app_id, username, password_hashes, rules, updated_at)
		VALUES ($1, $2, $3, $4, now())
		ON CONFLICT (app_id) DO UPDATE SET username = excluded.username, password_hashes = excluded.password_hashes,
			rules = excluded.rules, updated_at = now()`, u.AppID, u.Username, u.PasswordHashes, u.Rules)
	if err != nil {
		return fmt.Errorf("save app redis user: %w", err)
	}
	return nil
}

// AppsWithoutRedisUser lists the apps no Redis user is kept for (made before migration 0008, or
// whose user could never be made).
func (s *Store) AppsWithoutRedisUser(ctx context.Context) ([]App, error) {
	rows, err := s.pool.Query(ctx, `SELECT app_id, created_at, disabled_at FROM apps a
		WHERE NOT EXISTS (SELECT 1 FROM app_redis_users u WHERE u.app_id = a.app_id) ORDER BY app_id`)
	if err != nil {
		return nil, fmt.Errorf("apps without redis user: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (a App, err error) {
		err = row.Scan(&a.ID, &a.CreatedAt, &a.DisabledAt)
		return a, err
	})
}

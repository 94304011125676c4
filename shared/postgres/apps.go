package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
)

// App is a main app registered with the service.
type App struct {
	ID         string
	CreatedAt  time.Time
	DisabledAt *time.Time
}

// ErrExists is returned when creating something that already exists.
var ErrExists = errors.New("already exists")

// CreateApp registers a new app; an existing one → ErrExists.
func (s *Store) CreateApp(ctx context.Context, appID string) error {
	tag, err := s.pool.Exec(ctx, "INSERT INTO apps (app_id) VALUES ($1) ON CONFLICT DO NOTHING", appID)
	if err != nil {
		return fmt.Errorf("create app %q: %w", appID, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrExists
	}
	return nil
}

// App returns one app, or pay.ErrNotFound.
func (s *Store) App(ctx context.Context, appID string) (App, error) {
	var a App
	err := s.pool.QueryRow(ctx, "SELECT app_id, created_at, disabled_at FROM apps WHERE app_id = $1", appID).
		Scan(&a.ID, &a.CreatedAt, &a.DisabledAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, pay.ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("read app: %w", err)
	}
	return a, nil
}

// Apps lists every app, oldest first.
func (s *Store) Apps(ctx context.Context) ([]App, error) {
	rows, err := s.pool.Query(ctx, "SELECT app_id, created_at, disabled_at FROM apps ORDER BY created_at, app_id")
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	defer rows.Close()
	var out []App
	for rows.Next() {
		var a App
		if err := rows.Scan(&a.ID, &a.CreatedAt, &a.DisabledAt); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// EnableApp takes back DisableApp: the app's keys work again (within the key cache's TTL).
func (s *Store) EnableApp(ctx context.Context, appID string) error {
	tag, err := s.pool.Exec(ctx, "UPDATE apps SET disabled_at = NULL WHERE app_id = $1", appID)
	if err != nil {
		return fmt.Errorf("enable app: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return pay.ErrNotFound
	}
	return nil
}

// DisableApp marks an app disabled (idempotent); unknown → pay.ErrNotFound.
func (s *Store) DisableApp(ctx context.Context, appID string) error {
	tag, err := s.pool.Exec(ctx, "UPDATE apps SET disabled_at = coalesce(disabled_at, now()) WHERE app_id = $1", appID)
	if err != nil {
		return fmt.Errorf("disable app: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return pay.ErrNotFound
	}
	return nil
}

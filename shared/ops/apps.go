package ops

import (
	"github.com/jackc/pgx/v5"

	"context"
	"errors"
	"fmt"
	"time"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// App is an app with its keys, its result-stream Redis user and its webhook endpoints.
type App struct {
	AppID      string     `json:"app_id"`
	CreatedAt  time.Time  `json:"created_at"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
	RedisUser  string     `json:"redis_user"`
	// MerchantID is the merchant the app's new orders are created with (its earlier orders keep
	// theirs).
	MerchantID string            `json:"merchant_id"`
	ActiveKeys int               `json:"active_keys"`
	Orders     int64             `json:"orders"`
	Keys       []Key             `json:"keys"`
	Webhooks   []WebhookEndpoint `json:"webhooks,omitempty"`
}

// Key is an API key's record (never the key).
type Key struct {
	ID        string     `json:"id"`
	AppID     string     `json:"app_id"`
	Label     string     `json:"label"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Apps lists the apps and their keys.
func (o *Ops) Apps(ctx context.Context, a Actor) ([]App, error) {
	if err := o.authorize(ctx, a, RoleViewer, "app.list", ""); err != nil {
		return nil, err
	}
	rows, err := o.store.Pool().Query(ctx, `SELECT a.app_id, a.created_at, a.disabled_at,
			(SELECT count(*) FROM api_keys k WHERE k.app_id = a.app_id AND k.revoked_at IS NULL),
			(SELECT count(*) FROM payment_orders p WHERE p.app_id = a.app_id),
			coalesce((SELECT u.username FROM app_redis_users u WHERE u.app_id = a.app_id), ''), a.merchant_id
		FROM apps a ORDER BY a.app_id`)
	if err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	apps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ap App, err error) {
		err = row.Scan(&ap.AppID, &ap.CreatedAt, &ap.DisabledAt, &ap.ActiveKeys, &ap.Orders, &ap.RedisUser, &ap.MerchantID)
		return ap, err
	})
	if err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	idx := map[string]int{}
	for i, ap := range apps {
		idx[ap.AppID] = i
	}
	keys, err := o.store.APIKeys(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if i, ok := idx[k.AppID]; ok {
			apps[i].Keys = append(apps[i].Keys, keyOf(k))
		}
	}
	eps, err := o.endpoints(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, e := range eps {
		if i, ok := idx[e.AppID]; ok {
			apps[i].Webhooks = append(apps[i].Webhooks, e)
		}
	}
	return apps, nil
}

// CreateKey issues an API key for an existing app (see service.CreateApp) and returns it; it is
// shown once and never stored.
func (o *Ops) CreateKey(ctx context.Context, a Actor, appID, label string) (string, Key, error) {
	if err := o.authorize(ctx, a, RoleAdmin, "key.create", "app:"+appID); err != nil {
		return "", Key{}, err
	}
	key, rec, err := o.svc.CreateAPIKey(ctx, appID, label)
	if err != nil {
		return "", Key{}, err
	}
	k := Key{ID: rec.ID, AppID: rec.AppID, Label: rec.Label, CreatedAt: o.now()}
	if err := o.audit(ctx, a, "key.create", "key:"+rec.ID, "ok", nil, k, label); err != nil {
		return "", Key{}, err
	}
	return key, k, nil
}

// RevokeKey revokes an API key; it stops working within API_KEY_CACHE_TTL.
func (o *Ops) RevokeKey(ctx context.Context, a Actor, keyID, note string) (Key, error) {
	subject := "key:" + keyID
	if err := o.authorize(ctx, a, RoleAdmin, "key.revoke", subject); err != nil {
		return Key{}, err
	}
	before, err := o.store.APIKeyByID(ctx, keyID)
	if errors.Is(err, pay.ErrNotFound) {
		return Key{}, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no API key with id %q", keyID)
	}
	if err != nil {
		return Key{}, err
	}
	if before.RevokedAt != nil {
		return Key{}, pay.Errorf(pay.KindConflict, "already_revoked", "key %s was revoked at %s", keyID, pay.FormatTime(*before.RevokedAt))
	}
	if err := o.store.RevokeAPIKey(ctx, keyID); err != nil {
		return Key{}, err
	}
	after, err := o.store.APIKeyByID(ctx, keyID)
	if err != nil {
		return Key{}, err
	}
	k := keyOf(after)
	if err := o.audit(ctx, a, "key.revoke", subject, "ok", keyOf(before), k, note); err != nil {
		return k, err
	}
	return k, nil
}

func keyOf(k postgres.APIKey) Key {
	return Key{ID: k.ID, AppID: k.AppID, Label: k.Label, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
}

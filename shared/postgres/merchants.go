package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/pay"
)

// DefaultMerchant is the configuration's merchant (the LAKALA_* variables); every app is bound to
// it until an operator binds it to another.
const DefaultMerchant = "default"

// Merchant is a merchant row: Lakala's identity for money and references to its key and Lakala's
// certificates (never the values). The default merchant's row is Configured and names nothing.
type Merchant struct {
	ID              string
	Configured      bool
	LakalaAppID     string
	SerialNo        string
	MerchantNo      string
	TermNo          string
	VposID          string
	PrivateKeyRef   string
	PlatformCertRef string
	NotifyCertRef   string // empty: the platform certificate verifies notifications
	KeyVersion      int
	KeyRotatedAt    *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

const merchantColumns = `id, configured, coalesce(lakala_appid, ''), coalesce(serial_no, ''), coalesce(merchant_no, ''),
	coalesce(term_no, ''), vpos_id, coalesce(private_key_ref, ''), coalesce(platform_cert_ref, ''), notify_cert_ref,
	key_version, key_rotated_at, created_at, updated_at`

func scanMerchant(row pgx.Row) (Merchant, error) {
	var m Merchant
	err := row.Scan(&m.ID, &m.Configured, &m.LakalaAppID, &m.SerialNo, &m.MerchantNo, &m.TermNo, &m.VposID,
		&m.PrivateKeyRef, &m.PlatformCertRef, &m.NotifyCertRef, &m.KeyVersion, &m.KeyRotatedAt, &m.CreatedAt, &m.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, pay.ErrNotFound
	}
	if err != nil {
		return m, fmt.Errorf("scan merchant: %w", err)
	}
	return m, nil
}

// Merchant returns one merchant, or pay.ErrNotFound.
func (s *Store) Merchant(ctx context.Context, id string) (Merchant, error) {
	return scanMerchant(s.pool.QueryRow(ctx, "SELECT "+merchantColumns+" FROM merchants WHERE id = $1", id))
}

// Merchants lists every merchant, the default first.
func (s *Store) Merchants(ctx context.Context) ([]Merchant, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+merchantColumns+" FROM merchants ORDER BY NOT configured, id")
	if err != nil {
		return nil, fmt.Errorf("list merchants: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Merchant, error) { return scanMerchant(row) })
}

// AddMerchant inserts a merchant; an id or a merchant_no and term_no already taken → ErrExists.
func (s *Store) AddMerchant(ctx context.Context, m Merchant) (out Merchant, err error) {
	_, err = s.InTx(ctx, func(tx *Tx) error {
		out, err = tx.AddMerchant(ctx, m)
		return err
	})
	return out, err
}

// AddMerchant is Store.AddMerchant in tx.
func (t *Tx) AddMerchant(ctx context.Context, m Merchant) (Merchant, error) {
	row := t.tx.QueryRow(ctx, `INSERT INTO merchants (id, lakala_appid, serial_no, merchant_no, term_no, vpos_id,
			private_key_ref, platform_cert_ref, notify_cert_ref)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING `+merchantColumns,
		m.ID, m.LakalaAppID, m.SerialNo, m.MerchantNo, m.TermNo, m.VposID, m.PrivateKeyRef, m.PlatformCertRef, m.NotifyCertRef)
	out, err := scanMerchant(row)
	if isUniqueViolation(err, "") {
		return out, ErrExists
	}
	return out, err
}

// MerchantKey is what a key rotation changes: the key and its certificate's serial number, and
// (when set) Lakala's certificates.
type MerchantKey struct {
	SerialNo        string
	PrivateKeyRef   string
	PlatformCertRef string // empty: unchanged
	NotifyCertRef   *string
}

// RotateMerchantKey puts a new key in force for a merchant and raises its key_version, under the
// row's lock, in tx; it returns the merchant before and after.
func (t *Tx) RotateMerchantKey(ctx context.Context, id string, k MerchantKey, now time.Time) (before, after Merchant, err error) {
	before, err = scanMerchant(t.tx.QueryRow(ctx, "SELECT "+merchantColumns+" FROM merchants WHERE id = $1 FOR UPDATE", id))
	if err != nil {
		return before, after, err
	}
	notify := before.NotifyCertRef
	if k.NotifyCertRef != nil {
		notify = *k.NotifyCertRef
	}
	after, err = scanMerchant(t.tx.QueryRow(ctx, `UPDATE merchants SET serial_no = $2, private_key_ref = $3,
			platform_cert_ref = coalesce(nullif($4, ''), platform_cert_ref), notify_cert_ref = $5,
			key_version = key_version + 1, key_rotated_at = $6, updated_at = $6
		WHERE id = $1 RETURNING `+merchantColumns, id, k.SerialNo, k.PrivateKeyRef, k.PlatformCertRef, notify, now))
	return before, after, err
}

// BindApp binds an app to a merchant, in tx, and returns the merchant it was bound to before.
// Orders keep the merchant they were created with.
func (t *Tx) BindApp(ctx context.Context, appID, merchantID string) (before string, err error) {
	err = t.tx.QueryRow(ctx, "SELECT merchant_id FROM apps WHERE app_id = $1 FOR UPDATE", appID).Scan(&before)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", pay.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("bind app: %w", err)
	}
	if _, err := t.tx.Exec(ctx, "UPDATE apps SET merchant_id = $2 WHERE app_id = $1", appID, merchantID); err != nil {
		return before, fmt.Errorf("bind app: %w", err)
	}
	return before, nil
}

// AppMerchant is the merchant an app is bound to.
func (s *Store) AppMerchant(ctx context.Context, appID string) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, "SELECT merchant_id FROM apps WHERE app_id = $1", appID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", pay.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read app's merchant: %w", err)
	}
	return id, nil
}

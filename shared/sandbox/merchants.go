package sandbox

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/lakala"
)

// Merchant is a merchant the sandbox plays: Lakala knows its merchant_no under an appid, and
// accepts that appid's requests signed with any of its certificates (by serial number) that is
// not revoked. Its requests may name only the merchants of their appid: one merchant's key never
// acts for another.
type Merchant struct {
	AppID, SerialNo string
	// PublicKey verifies the requests signed under SerialNo.
	PublicKey          *rsa.PublicKey
	MerchantNo, TermNo string
	// VposID, when set, is the vpos_id every special_create of the merchant must carry, as Lakala
	// requires outside combined orders ("C 非合单场景必输"); a create without it is refused.
	VposID string
}

func (m Merchant) check() error {
	switch {
	case m.AppID == "", m.SerialNo == "", m.MerchantNo == "", m.TermNo == "":
		return errors.New("a merchant needs an appid, a serial_no, a merchant_no and a term_no")
	case m.PublicKey == nil:
		return errors.New("a merchant needs the public key (or certificate) of its serial_no")
	}
	return nil
}

// AddMerchant registers a merchant and the certificate of its serial number (again: its terminal
// and vpos_id are updated, and a revoked certificate is valid again).
func (s *Sandbox) AddMerchant(ctx context.Context, m Merchant) error {
	if err := m.check(); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.addCredential(ctx, tx, m.AppID, m.SerialNo, m.PublicKey); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, s.sql(`INSERT INTO lkl.merchants (merchant_no, appid, term_no, vpos_id) VALUES ($1, $2, $3, $4)
			ON CONFLICT (merchant_no) DO UPDATE SET appid = excluded.appid, term_no = excluded.term_no, vpos_id = excluded.vpos_id`),
			m.MerchantNo, m.AppID, m.TermNo, m.VposID)
		return err
	})
}

// AddCertificate adds a certificate to an appid: Lakala's side of a merchant's key rotation. The
// old certificate stays valid until RevokeCertificate.
func (s *Sandbox) AddCertificate(ctx context.Context, appID, serialNo string, pub *rsa.PublicKey) error {
	if appID == "" || serialNo == "" || pub == nil {
		return errors.New("sandbox: a certificate needs an appid, a serial_no and a public key")
	}
	return s.addCredential(ctx, s.db, appID, serialNo, pub)
}

func (s *Sandbox) addCredential(ctx context.Context, q querier, appID, serialNo string, pub *rsa.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	_, err = q.Exec(ctx, s.sql(`INSERT INTO lkl.credentials (appid, serial_no, public_key_pem) VALUES ($1, $2, $3)
		ON CONFLICT (appid, serial_no) DO UPDATE SET public_key_pem = excluded.public_key_pem, revoked_at = NULL`), appID, serialNo, pemText)
	return err
}

// RevokeCertificate stops accepting requests signed under an appid's serial number.
func (s *Sandbox) RevokeCertificate(ctx context.Context, appID, serialNo string) error {
	tag, err := s.db.Exec(ctx, s.sql(`UPDATE lkl.credentials SET revoked_at = coalesce(revoked_at, $3) WHERE appid = $1 AND serial_no = $2`),
		appID, serialNo, s.now())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("sandbox: appid %s has no certificate %s", appID, serialNo)
	}
	return nil
}

// verifyRequest checks a request's signature with the certificate its appid and serial_no name.
func (s *Sandbox) verifyRequest(ctx context.Context, authorization string, body []byte) (lakala.RequestAuth, error) {
	return lakala.VerifyRequestFor(func(appID, serialNo string) (*rsa.PublicKey, error) {
		var pemText string
		var revoked *time.Time
		err := s.db.QueryRow(ctx, s.sql(`SELECT public_key_pem, revoked_at FROM lkl.credentials WHERE appid = $1 AND serial_no = $2`),
			appID, serialNo).Scan(&pemText, &revoked)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil, fmt.Errorf("appid %q has no certificate %q", appID, serialNo)
		case err != nil:
			return nil, err
		case revoked != nil:
			return nil, fmt.Errorf("certificate %q of appid %q was revoked at %s", serialNo, appID, revoked.Format(time.RFC3339))
		}
		return lakala.ParsePublicKey([]byte(pemText))
	}, authorization, body)
}

// merchantFor checks that the request's appid may act for merchantNo, and returns what the
// sandbox knows of it. A refusal is the answer Lakala gives a request naming a merchant it does
// not serve for that appid: a code of the endpoint's family, which changes nothing.
func (s *Sandbox) merchantFor(ctx context.Context, call apiCall, fam family, merchantNo string) (Merchant, *apiResult) {
	if merchantNo == "" {
		res := failure(fam.invalidParam, "merchant_no is required")
		return Merchant{}, &res
	}
	m := Merchant{MerchantNo: merchantNo}
	err := s.db.QueryRow(ctx, s.sql(`SELECT appid, term_no, vpos_id FROM lkl.merchants WHERE merchant_no = $1`), merchantNo).
		Scan(&m.AppID, &m.TermNo, &m.VposID)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || (err == nil && m.AppID != call.auth.AppID):
		res := failure(fam.invalidParam, "merchant_no %s is not a merchant of appid %s", merchantNo, call.auth.AppID)
		return m, &res
	case err != nil:
		res := failure(CodeInternalError, "系统异常")
		s.log.Error("sandbox cannot read a merchant", "error", err)
		return m, &res
	}
	return m, nil
}

// MerchantView is a merchant as the admin endpoint lists it.
type MerchantView struct {
	MerchantNo   string   `json:"merchant_no"`
	AppID        string   `json:"appid"`
	TermNo       string   `json:"term_no"`
	VposID       string   `json:"vpos_id"`
	Certificates []string `json:"certificates"` // serial numbers accepted now
}

// Merchants lists the merchants the sandbox plays.
func (s *Sandbox) Merchants(ctx context.Context) ([]MerchantView, error) {
	rows, err := s.db.Query(ctx, s.sql(`SELECT m.merchant_no, m.appid, m.term_no, m.vpos_id,
			coalesce(array_agg(c.serial_no ORDER BY c.added_at) FILTER (WHERE c.serial_no IS NOT NULL), '{}')
		FROM lkl.merchants m LEFT JOIN lkl.credentials c ON c.appid = m.appid AND c.revoked_at IS NULL
		GROUP BY m.merchant_no ORDER BY m.merchant_no`))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (v MerchantView, err error) {
		err = row.Scan(&v.MerchantNo, &v.AppID, &v.TermNo, &v.VposID, &v.Certificates)
		return v, err
	})
}

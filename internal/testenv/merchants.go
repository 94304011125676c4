package testenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/sandbox"
	"github.com/loomipay/loomipay/shared/secrets"
)

// Merchant is a merchant a test added to its stack: its row, and the key it signs with now.
type Merchant struct {
	postgres.Merchant
	Key *rsa.PrivateKey
}

// AddMerchant adds a merchant to the stack, as an operator would after Lakala onboarded it: a
// Lakala identity of its own (appid, serial_no, merchant_no, term_no, vpos_id), its key (the
// keyIndex-th OtherKey) in a file the merchant row refers to, the sandbox's platform certificate,
// and the sandbox told of it (Lakala's side of the onboarding). The merchant is checked by the
// registry, as ops.AddMerchant checks it.
func (s *Stack) AddMerchant(t testing.TB, id string, keyIndex int) Merchant {
	t.Helper()
	ctx := context.Background()
	key := OtherKey(t, keyIndex)
	m := postgres.Merchant{
		ID: id, LakalaAppID: "OP" + digits(t, 8), SerialNo: hexDigits(t, 18), MerchantNo: "8222" + digits(t, 11),
		TermNo: "T" + digits(t, 7), VposID: digits(t, 18),
		PrivateKeyRef:   s.writeRef(t, id+"-key-1.pem", lakala.MarshalPrivateKeyPEM(key)),
		PlatformCertRef: s.writeRef(t, "platform-cert.pem", s.Sandbox.PlatformCertPEM()),
	}
	if err := s.Sandbox.AddMerchant(ctx, sandbox.Merchant{AppID: m.LakalaAppID, SerialNo: m.SerialNo, PublicKey: &key.PublicKey,
		MerchantNo: m.MerchantNo, TermNo: m.TermNo, VposID: m.VposID}); err != nil {
		t.Fatal(err)
	}
	if err := s.Merchants.Check(ctx, m); err != nil {
		t.Fatalf("merchant %s: %v", id, err)
	}
	added, err := s.Store.AddMerchant(ctx, m)
	if err != nil {
		t.Fatalf("add merchant %s: %v", id, err)
	}
	return Merchant{Merchant: added, Key: key}
}

// RotateKey gives merchant m a new key (the keyIndex-th OtherKey) under a new serial number, as an
// operator does: Lakala's side first (the sandbox accepts the new certificate, and still the old
// one), then the merchant row (its key_version goes up; every client of the stack signs with the
// new key once the registry's TTL has passed). The old certificate is left valid: the test
// revokes it at the sandbox when it means to.
func (s *Stack) RotateKey(t testing.TB, m Merchant, keyIndex int) Merchant {
	t.Helper()
	ctx := context.Background()
	key := OtherKey(t, keyIndex)
	serial := hexDigits(t, 18)
	if err := s.Sandbox.AddCertificate(ctx, m.LakalaAppID, serial, &key.PublicKey); err != nil {
		t.Fatal(err)
	}
	ref := s.writeRef(t, fmt.Sprintf("%s-key-%d.pem", m.ID, m.KeyVersion+1), lakala.MarshalPrivateKeyPEM(key))
	var after postgres.Merchant
	if _, err := s.Store.InTx(ctx, func(tx *postgres.Tx) error {
		var err error
		_, after, err = tx.RotateMerchantKey(ctx, m.ID, postgres.MerchantKey{SerialNo: serial, PrivateKeyRef: ref}, time.Now())
		return err
	}); err != nil {
		t.Fatalf("rotate the key of %s: %v", m.ID, err)
	}
	return Merchant{Merchant: after, Key: key}
}

// BindApp binds an app to a merchant (its later orders are the merchant's; its earlier ones keep
// theirs).
func (s *Stack) BindApp(t testing.TB, appID, merchantID string) {
	t.Helper()
	ctx := context.Background()
	if err := s.Store.EnsureApp(ctx, appID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.InTx(ctx, func(tx *postgres.Tx) error {
		_, err := tx.BindApp(ctx, appID, merchantID)
		return err
	}); err != nil {
		t.Fatalf("bind %s to %s: %v", appID, merchantID, err)
	}
}

// writeRef writes a PEM into the stack's key directory and returns its file: reference.
func (s *Stack) writeRef(t testing.TB, name string, pem []byte) string {
	t.Helper()
	path := filepath.Join(s.keyDir, name)
	if err := os.WriteFile(path, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return secrets.RefFilePrefix + path
}

// digits is n random decimal digits.
func digits(t testing.TB, n int) string {
	t.Helper()
	v, err := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%0*d", n, v)
}

// hexDigits is n random hex digits (a certificate serial number as Lakala issues it).
func hexDigits(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)[:n]
}

package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/sandbox"
)

// TestMerchantsCommands: merchants add, list, show, bind and rotate-key on the database
// DATABASE_URL names, with file references (STAGE=dev); each change is in the audit log, and a
// PEM given where a reference belongs is refused with nothing written.
func TestMerchantsCommands(t *testing.T) {
	store := useTestServers(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return "file:" + path
	}
	cert, err := lakala.SelfSignedCertPEM(testenv.PlatformKey(t), "platform")
	if err != nil {
		t.Fatal(err)
	}
	keyRef, certRef := write("key.pem", lakala.MarshalPrivateKeyPEM(testenv.OtherKey(t, 0))), write("cert.pem", cert)
	add := func(key string) (string, string, error) {
		return runCmd(t, "merchants", "add", "shop-cn", "--appid", "OP10000001", "--serial-no", "01ab", "--merchant-no", "822290070000001",
			"--term-no", "T0000001", "--private-key", key, "--platform-cert", certRef)
	}
	if _, _, err := add(string(lakala.MarshalPrivateKeyPEM(testenv.OtherKey(t, 0)))); err == nil || !strings.Contains(err.Error(), "reference") || strings.Contains(err.Error(), "BEGIN") {
		t.Fatalf("add with a PEM: %v; want a refusal naming the reference, not quoting the key", err)
	}
	stdout, stderr, err := add(keyRef)
	if err != nil || !strings.Contains(stdout, "merchant_no") || !strings.Contains(stdout, "822290070000001") || !strings.Contains(stderr, "merchants bind shop-cn") {
		t.Fatalf("add: %v\n%s\n%s", err, stdout, stderr)
	}
	if _, _, err := runCmd(t, "apps", "create", "app_cn"); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := runCmd(t, "merchants", "bind", "shop-cn", "--app", "app_cn"); err != nil || !strings.Contains(stderr, "bound to merchant shop-cn") {
		t.Fatalf("bind: %v %s", err, stderr)
	}
	stdout, _, err = runCmd(t, "merchants", "list")
	if err != nil || !strings.Contains(stdout, "default (LAKALA_*)") || !strings.Contains(stdout, "app_cn") {
		t.Fatalf("list: %v\n%s", err, stdout)
	}
	if _, stderr, err := runCmd(t, "merchants", "rotate-key", "shop-cn", "--serial-no", "02cd", "--private-key", write("key2.pem", lakala.MarshalPrivateKeyPEM(testenv.OtherKey(t, 1)))); err != nil ||
		!strings.Contains(stderr, "key version 2") {
		t.Fatalf("rotate-key: %v %s", err, stderr)
	}
	stdout, _, err = runCmd(t, "merchants", "show", "shop-cn", "--json")
	var shown struct {
		SerialNo   string   `json:"serial_no"`
		KeyVersion int      `json:"key_version"`
		Apps       []string `json:"apps"`
	}
	if err != nil || json.Unmarshal([]byte(stdout), &shown) != nil || shown.SerialNo != "02cd" || shown.KeyVersion != 2 || len(shown.Apps) != 1 {
		t.Fatalf("show: %v %s", err, stdout)
	}
	// Onboarded at a sandbox (the local stack's), with the public half of the key in force.
	sbSchema := testenv.UniqueName("sbreg_")
	t.Cleanup(func() { testenv.DropSchema(t, sbSchema) })
	sb, err := sandbox.New(t.Context(), sandbox.Config{DB: store.Pool(), Schema: sbSchema, PlatformKey: testenv.PlatformKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	if _, stderr, err := runCmd(t, "merchants", "sandbox-register", "shop-cn", "--sandbox", srv.URL+"/sandbox"); err != nil || !strings.Contains(stderr, "plays merchant shop-cn") {
		t.Fatalf("sandbox-register: %v %s", err, stderr)
	}
	played, err := sb.Merchants(t.Context())
	if err != nil || len(played) != 1 || played[0].MerchantNo != "822290070000001" || len(played[0].Certificates) != 1 || played[0].Certificates[0] != "02cd" {
		t.Fatalf("the sandbox plays %+v (%v); want shop-cn with its rotated certificate 02cd", played, err)
	}
	var audited int
	if err := store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM audit_log WHERE action IN ('merchant.add', 'app.bind_merchant', 'merchant.rotate_key') AND outcome = 'ok'`).Scan(&audited); err != nil || audited != 3 {
		t.Errorf("%d audited merchant changes (%v); want 3", audited, err)
	}
}

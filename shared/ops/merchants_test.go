package ops_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/merchants"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// merchantFiles writes a key and the stack's platform certificate to files and returns their
// references.
func merchantFiles(t *testing.T, s *testenv.Stack, keyIndex int) (keyRef, certRef string) {
	t.Helper()
	dir := t.TempDir()
	keyFile, certFile := filepath.Join(dir, "key.pem"), filepath.Join(dir, "platform.pem")
	if err := os.WriteFile(keyFile, lakala.MarshalPrivateKeyPEM(testenv.OtherKey(t, keyIndex)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, s.Sandbox.PlatformCertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + keyFile, "file:" + certFile
}

// TestMerchantActions: an admin adds a merchant (its references read and checked first, never
// its key kept), lists and shows it with the default, rotates its key and binds an app to it,
// each audited with references only; what is wrong is refused with nothing written.
func TestMerchantActions(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	o := ops.New(s.Service).WithMerchants(s.Merchants)
	keyRef, certRef := merchantFiles(t, s, 0)
	in := ops.NewMerchant{ID: "shop-cn", LakalaAppID: "OP10000001", SerialNo: "0123abcd", MerchantNo: "822290070000001",
		TermNo: "T0000001", VposID: "587305941625155000", PrivateKeyRef: keyRef, PlatformCertRef: certRef}

	refusals := []struct {
		name   string
		change func(*ops.NewMerchant)
		actor  ops.Actor
		kind   pay.Kind
	}{
		{"a viewer", func(*ops.NewMerchant) {}, viewer, pay.KindForbidden},
		{"a PEM instead of a reference", func(m *ops.NewMerchant) {
			m.PrivateKeyRef = string(lakala.MarshalPrivateKeyPEM(testenv.OtherKey(t, 0)))
		}, admin, pay.KindInvalid},
		{"a reference nobody can read", func(m *ops.NewMerchant) { m.PrivateKeyRef = "file:/nonexistent/key.pem" }, admin, pay.KindInvalid},
		{"a certificate where the key belongs", func(m *ops.NewMerchant) { m.PrivateKeyRef = certRef }, admin, pay.KindInvalid},
		{"a merchant_no too long for Lakala", func(m *ops.NewMerchant) { m.MerchantNo = strings.Repeat("8", 16) }, admin, pay.KindInvalid},
		{"no appid", func(m *ops.NewMerchant) { m.LakalaAppID = "" }, admin, pay.KindInvalid},
		{"the default merchant's identity", func(m *ops.NewMerchant) { m.MerchantNo, m.TermNo = testenv.LakalaMerchantNo, testenv.LakalaTermNo }, admin, pay.KindConflict},
		{"a bad id", func(m *ops.NewMerchant) { m.ID = "shop cn" }, admin, pay.KindInvalid},
	}
	for _, r := range refusals {
		bad := in
		r.change(&bad)
		_, err := o.AddMerchant(ctx, r.actor, bad)
		errKind(t, err, r.kind)
		if strings.Contains(err.Error(), "BEGIN") {
			t.Errorf("%s: the error quotes the PEM: %v", r.name, err)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM merchants`); n != 1 {
		t.Fatalf("%d merchants after the refusals; want the default alone", n)
	}

	added, err := o.AddMerchant(ctx, admin, in)
	if err != nil {
		t.Fatal(err)
	}
	if added.ID != "shop-cn" || added.KeyVersion != 1 || added.PrivateKeyRef != keyRef {
		t.Fatalf("added %+v", added)
	}
	if _, err := o.AddMerchant(ctx, admin, in); err == nil {
		t.Fatal("adding the same merchant twice succeeded")
	}
	entry := auditOf(t, o, "merchant.add", "merchant:shop-cn")
	if !strings.Contains(string(entry.After), keyRef) || strings.Contains(string(entry.After), "PRIVATE KEY") {
		t.Errorf("audit of the add: %s; want the reference, never the key", entry.After)
	}

	s.NewKey(t, "app_cn")
	if err := o.BindApp(ctx, viewer, "app_cn", "shop-cn", ""); err == nil {
		t.Fatal("a viewer bound an app")
	}
	errKind(t, o.BindApp(ctx, admin, "app_cn", "nope", ""), pay.KindNotFound)
	errKind(t, o.BindApp(ctx, admin, "no_app", "shop-cn", ""), pay.KindNotFound)
	if err := o.BindApp(ctx, admin, "app_cn", "shop-cn", "its own entity"); err != nil {
		t.Fatal(err)
	}
	if e := auditOf(t, o, "app.bind_merchant", "app:app_cn"); string(e.Before) != `{"merchant_id":"default"}` || string(e.After) != `{"merchant_id":"shop-cn"}` {
		t.Errorf("audit of the binding: %s → %s", e.Before, e.After)
	}

	all, err := o.Merchants(ctx, viewer)
	if err != nil || len(all) != 2 {
		t.Fatalf("merchants: %+v, %v", all, err)
	}
	if d := all[0]; d.ID != postgres.DefaultMerchant || !d.Configured || d.MerchantNo != testenv.LakalaMerchantNo || d.PrivateKeyRef != "" {
		t.Errorf("the default merchant listed as %+v; want it first, with the configured identity and no reference", d)
	}
	if m := all[1]; m.ID != "shop-cn" || len(m.Apps) != 1 || m.Apps[0] != "app_cn" {
		t.Errorf("shop-cn listed as %+v; want app_cn bound to it", m)
	}
	apps, err := o.Apps(ctx, viewer)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		want := postgres.DefaultMerchant
		if a.AppID == "app_cn" {
			want = "shop-cn"
		}
		if a.MerchantID != want {
			t.Errorf("app %s listed with merchant %q; want %s", a.AppID, a.MerchantID, want)
		}
	}

	newKeyRef, _ := merchantFiles(t, s, 1)
	errKind(t, ignore(o.RotateMerchantKey(ctx, admin, postgres.DefaultMerchant, ops.KeyRotation{SerialNo: "x", PrivateKeyRef: newKeyRef}, "")), pay.KindConflict)
	errKind(t, ignore(o.RotateMerchantKey(ctx, admin, "shop-cn", ops.KeyRotation{SerialNo: "0123abcd", PrivateKeyRef: newKeyRef}, "")), pay.KindInvalid)
	errKind(t, ignore(o.RotateMerchantKey(ctx, admin, "shop-cn", ops.KeyRotation{SerialNo: "4567", PrivateKeyRef: "file:/nonexistent"}, "")), pay.KindInvalid)
	errKind(t, ignore(o.RotateMerchantKey(ctx, admin, "nope", ops.KeyRotation{SerialNo: "4567", PrivateKeyRef: newKeyRef}, "")), pay.KindNotFound)
	rotated, err := o.RotateMerchantKey(ctx, admin, "shop-cn", ops.KeyRotation{SerialNo: "4567", PrivateKeyRef: newKeyRef}, "yearly rotation")
	if err != nil {
		t.Fatal(err)
	}
	if rotated.KeyVersion != 2 || rotated.SerialNo != "4567" || rotated.PrivateKeyRef != newKeyRef || rotated.PlatformCertRef != certRef {
		t.Errorf("rotated %+v", rotated)
	}
	e := auditOf(t, o, "merchant.rotate_key", "merchant:shop-cn")
	if !strings.Contains(string(e.Before), `"serial_no":"0123abcd"`) || !strings.Contains(string(e.After), `"serial_no":"4567"`) || e.Note != "yearly rotation" {
		t.Errorf("audit of the rotation: %s → %s (%s)", e.Before, e.After, e.Note)
	}
	if shown, err := o.Merchant(ctx, viewer, "shop-cn"); err != nil || shown.KeyVersion != 2 {
		t.Errorf("show after the rotation: %+v, %v", shown, err)
	}
}

// TestMerchantReferencesOutsideDev: outside STAGE=dev a merchant's references must be Secrets
// Manager secrets named where the functions may read them; files are refused.
func TestMerchantReferencesOutsideDev(t *testing.T) {
	reg := merchants.New(merchants.Config{Stage: "prod"})
	base := postgres.Merchant{ID: "m", PlatformCertRef: "arn:aws:secretsmanager:cn-north-1:123456789012:secret:loomipay/prod/merchants/platform-AbCdEf"}
	for _, tc := range []struct {
		ref string
		ok  bool
	}{
		{"arn:aws:secretsmanager:cn-north-1:123456789012:secret:loomipay/prod/merchants/shop-key-AbCdEf", true},
		{"arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:loomipay/prod/merchants/shop-key-AbCdEf", true},
		{"arn:aws:secretsmanager:cn-north-1:123456789012:secret:other/shop-key-AbCdEf", false},
		{"arn:aws:secretsmanager:cn-north-1:123456789012:secret:loomipay/test/merchants/shop-key-AbCdEf", false},
		{"file:/etc/key.pem", false},
		{"-----BEGIN PRIVATE KEY-----", false},
	} {
		m := base
		m.PrivateKeyRef = tc.ref
		if err := reg.CheckRefs(m); (err == nil) != tc.ok {
			t.Errorf("%s: %v; want ok=%v", tc.ref, err, tc.ok)
		}
	}
}

func auditOf(t *testing.T, o *ops.Ops, action, subject string) ops.AuditEntry {
	t.Helper()
	rows, err := o.AuditLog(context.Background(), admin, ops.AuditFilter{Subject: subject, Action: action, Limit: 1})
	if err != nil || len(rows) == 0 {
		t.Fatalf("no audit row for %s on %s (%v)", action, subject, err)
	}
	return rows[0]
}

func count(t *testing.T, s *testenv.Stack, q string) int {
	t.Helper()
	var n int
	if err := s.Store.Pool().QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func ignore[T any](_ T, err error) error { return err }

// TestStatementPerMerchant: the daily statement names each line's merchant and totals each
// merchant apart (Lakala sends each its own statement), and StatementOf a merchant holds its
// lines alone; the overview's money of the day is per merchant too.
func TestStatementPerMerchant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	at := time.Now().UTC().Format(time.RFC3339Nano)
	if _, err := e.store.Pool().Exec(ctx, `
		INSERT INTO apps (app_id) VALUES ('shop_a'), ('shop_b');
		INSERT INTO merchants (id, lakala_appid, serial_no, merchant_no, term_no, private_key_ref, platform_cert_ref)
			VALUES ('shop-b', 'OP1', '01', '822290070000002', 'T0000002', 'file:/k.pem', 'file:/c.pem');
		INSERT INTO payment_orders (id, app_id, merchant_order_id, status, order_type, amount, currency, subject, gateway_trade_time, merchant_id) VALUES
			('01900000-0000-7000-8000-00000000d001', 'shop_a', 'A1', 'succeeded', 'payment', 1000, 'CNY', 's', '`+at+`', 'default'),
			('01900000-0000-7000-8000-00000000d002', 'shop_b', 'B1', 'succeeded', 'payment', 2500, 'CNY', 's', '`+at+`', 'shop-b');
		INSERT INTO refund_orders (id, app_id, payment_order_id, status, amount, currency, out_trade_no, gateway_trade_time) VALUES
			('01900000-0000-7000-8000-00000000d0a1', 'shop_b', '01900000-0000-7000-8000-00000000d002', 'succeeded', 500, 'CNY', 'rb1', '`+at+`')`); err != nil {
		t.Fatal(err)
	}
	st, err := e.ops.Statement(ctx, viewer, time.Now(), "")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, l := range st.Lines {
		lines[l.OutNo] = l.MerchantID
	}
	if lines["rb1"] != "shop-b" || len(st.Merchants) != 2 || st.Merchants[1].MerchantID != "shop-b" || st.Merchants[1].Net != 2000 || st.Merchants[0].Paid != 1000 {
		t.Fatalf("statement lines %v, merchants %+v; want the refund shop-b's and each merchant's totals", lines, st.Merchants)
	}
	only, err := e.ops.StatementOf(ctx, viewer, time.Now(), "", "shop-b")
	if err != nil || len(only.Lines) != 2 || only.Totals.Net != 2000 {
		t.Fatalf("shop-b's statement: %+v, %v; want its payment and refund alone", only, err)
	}
	var csv strings.Builder
	if err := ops.WriteStatementCSV(&csv, only); err != nil {
		t.Fatal(err)
	}
	if first := strings.Split(csv.String(), "\n")[1]; !strings.HasSuffix(first, ",shop-b") {
		t.Errorf("CSV line %q; want the merchant in the last column", first)
	}
	d, err := e.ops.Dashboard(ctx, viewer)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Today.Merchants) != 2 || d.Today.Merchants[1].Refunded != 500 {
		t.Errorf("today's money by merchant: %+v", d.Today.Merchants)
	}
}

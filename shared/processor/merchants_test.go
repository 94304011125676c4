package processor_test

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/sandbox"
)

// merchantApp is an app of a multi-merchant test, with its key.
type merchantApp struct {
	id, key string
	s       *testenv.Stack
}

func newMerchantApp(t *testing.T, s *testenv.Stack, appID, merchantID string) merchantApp {
	t.Helper()
	key := s.NewKey(t, appID)
	s.BindApp(t, appID, merchantID)
	return merchantApp{id: appID, key: key, s: s}
}

func (a merchantApp) create(t *testing.T, merchantOrderID string, amount int64) testenv.Order {
	t.Helper()
	code, body := a.s.Do(t, http.MethodPost, "/api/v1/payment-orders", a.key,
		fmt.Sprintf(`{"app_id":%q,"merchant_order_id":%q,"amount":%d,"order_type":"payment","subject":"two merchants"}`, a.id, merchantOrderID, amount))
	if code != http.StatusAccepted {
		t.Fatalf("create %s for %s = %d %s", merchantOrderID, a.id, code, body)
	}
	return testenv.Decode[testenv.Order](t, body)
}

func (a merchantApp) order(t *testing.T, merchantOrderID string) testenv.Order {
	t.Helper()
	code, body := a.s.Do(t, http.MethodGet, "/api/v1/payment-orders/"+merchantOrderID+"?app_id="+a.id, a.key, "")
	if code != http.StatusOK {
		t.Fatalf("get %s of %s = %d %s", merchantOrderID, a.id, code, body)
	}
	return testenv.Decode[testenv.Order](t, body)
}

func (a merchantApp) refund(t *testing.T, orderID string, amount int64) testenv.Refund {
	t.Helper()
	code, body := a.s.Do(t, http.MethodPost, "/api/v1/refund-orders", a.key,
		fmt.Sprintf(`{"app_id":%q,"payment_order_id":%q,"amount":%d,"reason":"two merchants"}`, a.id, orderID, amount))
	if code != http.StatusAccepted {
		t.Fatalf("refund of %s for %s = %d %s", orderID, a.id, code, body)
	}
	return testenv.Decode[testenv.Refund](t, body)
}

func (a merchantApp) refundStatus(t *testing.T, id string) string {
	t.Helper()
	code, body := a.s.Do(t, http.MethodGet, "/api/v1/refund-orders/"+id+"?app_id="+a.id, a.key, "")
	if code != http.StatusOK {
		t.Fatalf("get refund %s of %s = %d %s", id, a.id, code, body)
	}
	return testenv.Decode[testenv.Refund](t, body).Status
}

// cashierOrder is the order's open cashier order at the sandbox.
func cashierOrder(t *testing.T, s *testenv.Stack, orderID string) sandbox.OrderView {
	t.Helper()
	as, err := s.Store.Attempts(context.Background(), orderID)
	if err != nil || len(as) == 0 {
		t.Fatalf("attempts of %s: %v, %v", orderID, as, err)
	}
	v, ok := s.Sandbox.Order(as[len(as)-1].OutOrderNo)
	if !ok {
		t.Fatalf("order %s has no cashier order %s at the sandbox", orderID, as[len(as)-1].OutOrderNo)
	}
	return v
}

// signers is who signed the calls the sandbox heard about each number: "appid/serial_no/merchant_no".
func signers(t *testing.T, s *testenv.Stack) map[string]map[string]bool {
	t.Helper()
	calls, err := s.Sandbox.Calls(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, c := range calls {
		if out[c.OutNo] == nil {
			out[c.OutNo] = map[string]bool{}
		}
		out[c.OutNo][c.AppID+"/"+c.SerialNo+"/"+c.MerchantNo] = true
	}
	return out
}

func identity(m testenv.Merchant) string {
	return m.LakalaAppID + "/" + m.SerialNo + "/" + m.MerchantNo
}

// requireSignedAs fails unless every call about each number was signed as want, and there was one.
func requireSignedAs(t *testing.T, s *testenv.Stack, want string, numbers ...string) {
	t.Helper()
	all := signers(t, s)
	for _, no := range numbers {
		if got := all[no]; len(got) != 1 || !got[want] {
			t.Errorf("calls about %s were signed as %v; want only %s", no, got, want)
		}
	}
}

// TestTwoAppsOnTwoMerchants: each app's orders are created, paid, notified and refunded as its own
// merchant — its appid, certificate and key, merchant_no — and a re-bound app's earlier order keeps
// its merchant for the refunds that follow, while its new orders are the new merchant's.
func TestTwoAppsOnTwoMerchants(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	shopA, shopB := s.AddMerchant(t, "shop-a", 0), s.AddMerchant(t, "shop-b", 1)
	appA, appB := newMerchantApp(t, s, "app_a", "shop-a"), newMerchantApp(t, s, "app_b", "shop-b")

	// No request may name a merchant: an app's orders are its merchant's.
	if code, body := s.Do(t, http.MethodPost, "/api/v1/payment-orders", appA.key,
		`{"app_id":"app_a","merchant_order_id":"A0","amount":100,"order_type":"payment","subject":"x","merchant_id":"shop-b"}`); code != http.StatusBadRequest {
		t.Fatalf("an order naming another merchant = %d %s; want 400", code, body)
	}
	oa, ob := appA.create(t, "A1", 1000), appB.create(t, "B1", 2000)
	s.RunOnce(t)
	va, vb := cashierOrder(t, s, oa.ID), cashierOrder(t, s, ob.ID)
	if va.MerchantNo != shopA.MerchantNo || vb.MerchantNo != shopB.MerchantNo {
		t.Fatalf("cashier orders of merchants %s and %s; want %s and %s", va.MerchantNo, vb.MerchantNo, shopA.MerchantNo, shopB.MerchantNo)
	}
	for _, v := range []sandbox.OrderView{va, vb} {
		if err := s.Sandbox.Pay(ctx, v.PayOrderNo); err != nil {
			t.Fatal(err)
		}
	}
	s.WaitNotifications(t)
	if a, b := appA.order(t, "A1"), appB.order(t, "B1"); a.Status != "succeeded" || b.Status != "succeeded" {
		t.Fatalf("after payment: A1 %s, B1 %s; want both succeeded (each notification bound to its merchant)", a.Status, b.Status)
	}
	// Each notification named its own merchant and bound to it.
	rows, err := s.Store.Pool().Query(ctx, `SELECT o.merchant_id, n.merchant_no, n.binding, n.result FROM notifications n
		JOIN payment_orders o ON o.id = n.payment_order_id ORDER BY n.id`)
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	for rows.Next() {
		var merchantID, merchantNo, binding, result string
		if err := rows.Scan(&merchantID, &merchantNo, &binding, &result); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"shop-a": shopA.MerchantNo, "shop-b": shopB.MerchantNo}[merchantID]
		if merchantNo != want || binding != "bound" || result != "applied" {
			t.Errorf("notification of a %s order named %s, %s, %s; want %s, bound, applied", merchantID, merchantNo, binding, result, want)
		}
		seen++
	}
	rows.Close()
	if seen != 2 {
		t.Errorf("%d notifications, want 2", seen)
	}

	ra, rb := appA.refund(t, oa.ID, 300), appB.refund(t, ob.ID, 500)
	s.RunOnce(t)
	if a, b := appA.refundStatus(t, ra.ID), appB.refundStatus(t, rb.ID); a != "succeeded" || b != "succeeded" {
		t.Fatalf("refunds: %s, %s; want both succeeded", a, b)
	}
	if s.Sandbox.RefundedTotal(va.OutOrderNo) != 300 || s.Sandbox.RefundedTotal(vb.OutOrderNo) != 500 {
		t.Fatalf("the sandbox refunded %d and %d; want 300 and 500", s.Sandbox.RefundedTotal(va.OutOrderNo), s.Sandbox.RefundedTotal(vb.OutOrderNo))
	}

	// app_a is bound to shop-b now: A1 and its refunds stay shop-a's, A2 is shop-b's.
	s.BindApp(t, "app_a", "shop-b")
	ra2 := appA.refund(t, oa.ID, 200)
	oa2 := appA.create(t, "A2", 700)
	s.RunOnce(t)
	if st := appA.refundStatus(t, ra2.ID); st != "succeeded" {
		t.Fatalf("refund of A1 after the re-binding: %s; want succeeded (signed as shop-a, which took the payment)", st)
	}
	va2 := cashierOrder(t, s, oa2.ID)
	if va2.MerchantNo != shopB.MerchantNo {
		t.Errorf("A2's cashier order is merchant %s's; want shop-b's %s", va2.MerchantNo, shopB.MerchantNo)
	}
	for id, want := range map[string]string{oa.ID: "shop-a", ob.ID: "shop-b", oa2.ID: "shop-b"} {
		if o, err := s.Store.Order(ctx, id); err != nil || o.MerchantID != want {
			t.Errorf("order %s: merchant %q (%v); want %s", id, o.MerchantID, err, want)
		}
	}
	requireSignedAs(t, s, identity(shopA), va.OutOrderNo, pay.OutOrderNo(ra.ID), pay.OutOrderNo(ra2.ID))
	requireSignedAs(t, s, identity(shopB), vb.OutOrderNo, pay.OutOrderNo(rb.ID), va2.OutOrderNo)
	// The gateway call log names the merchant whose client made each call.
	var wrong int
	if err := s.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM gateway_calls c
		WHERE c.out_no = $1 AND c.merchant_id IS DISTINCT FROM 'shop-a'`, va.OutOrderNo).Scan(&wrong); err != nil || wrong != 0 {
		t.Errorf("%d calls about A1's cashier order logged under another merchant (%v)", wrong, err)
	}
}

// TestNotificationOfAnotherMerchant: a notification verified with merchant A's certificate, or
// naming merchant A's merchant_no, about merchant B's cashier order changes nothing — it is
// acknowledged, recorded as unbound, and B's order is confirmed by B's own query — while B's own
// notification, signed with B's certificate and naming B, is applied.
func TestNotificationOfAnotherMerchant(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	shopA, shopB := s.AddMerchant(t, "shop-a", 0), s.AddMerchant(t, "shop-b", 1)
	// shop-a's notifications come signed with a certificate of their own (its notify cert).
	notifyKeyA := testenv.OtherKey(t, 5)
	certA, err := lakala.SelfSignedCertPEM(notifyKeyA, "notify-a")
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "notify-a.pem")
	if err := os.WriteFile(certFile, certA, 0o600); err != nil {
		t.Fatal(err)
	}
	certRef := "file:" + certFile
	if _, err := s.Store.Pool().Exec(ctx, `UPDATE merchants SET notify_cert_ref = $1, updated_at = now() WHERE id = 'shop-a'`, certRef); err != nil {
		t.Fatal(err)
	}
	appB := newMerchantApp(t, s, "app_b", "shop-b")
	ob := appB.create(t, "B1", 2000)
	s.RunOnce(t)
	vb := cashierOrder(t, s, ob.ID)

	paid := func(merchantNo string) []byte {
		b, err := json.Marshal(lakala.CashierNotification{
			PayOrderNo: vb.PayOrderNo, OutOrderNo: vb.OutOrderNo, MerchantNo: merchantNo, OrderStatus: lakala.OrderStatusPaid,
			TotalAmount: 2000, OrderTradeInfo: lakala.OrderTradeInfo{TradeNo: "T-FORGED-1", LogNo: "66000000000001",
				TradeType: lakala.TradeTypePay, TradeStatus: lakala.TradeStatusSuccess, TradeAmount: 2000},
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name, merchantNo, binding string
		signKey                   *rsa.PrivateKey
	}{
		{"signed with A's certificate, naming B", shopB.MerchantNo, "other_certificate", notifyKeyA},
		{"signed with the platform key, naming A", shopA.MerchantNo, "other_merchant", testenv.PlatformKey(t)},
	} {
		body := paid(tc.merchantNo)
		auth, err := lakala.SignNotification(tc.signKey, body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		code, answer := s.Notify(t, body, auth)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s; want 200 (acknowledged, so Lakala stops)", tc.name, code, answer)
		}
		if o := appB.order(t, "B1"); o.Status != "processing" {
			t.Fatalf("%s: B1 is %s; want processing: the notification changes nothing", tc.name, o.Status)
		}
		var result, binding string
		if err := s.Store.Pool().QueryRow(ctx, `SELECT result, binding FROM notifications ORDER BY id DESC LIMIT 1`).Scan(&result, &binding); err != nil {
			t.Fatal(err)
		}
		if result != "unbound" || binding != tc.binding {
			t.Errorf("%s: recorded %s/%s; want unbound/%s", tc.name, result, binding, tc.binding)
		}
	}
	// The check asked for is B's own query (B's key): it finds the cashier order unpaid.
	s.RunOnce(t)
	if o := appB.order(t, "B1"); o.Status != "processing" {
		t.Fatalf("after the check: B1 is %s; want processing (nobody paid B's cashier order)", o.Status)
	}
	requireSignedAs(t, s, identity(shopB), vb.OutOrderNo)
	// B's own notification binds.
	if err := s.Sandbox.Pay(ctx, vb.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	if o := appB.order(t, "B1"); o.Status != "succeeded" {
		t.Fatalf("after B's own notification: %s; want succeeded", o.Status)
	}
}

// TestKeyRotationWithOrdersInFlight: a merchant's key is rotated while its orders are open, paid
// and about to be refunded; once Lakala has revoked the old certificate, every call about them —
// refunds of payments the old key created, closes, queries — and about new orders is signed with
// the new key and goes through.
func TestKeyRotationWithOrdersInFlight(t *testing.T) {
	t.Parallel()
	ttl := 50 * time.Millisecond
	s := testenv.NewStack(t, testenv.StackOptions{MerchantTTL: ttl})
	ctx := context.Background()
	shop := s.AddMerchant(t, "shop", 0)
	app := newMerchantApp(t, s, "app_r", "shop")

	paidBefore, open, toClose := app.create(t, "PAID", 1000), app.create(t, "OPEN", 2000), app.create(t, "CLOSE", 3000)
	s.RunOnce(t)
	vPaid, vOpen, vClose := cashierOrder(t, s, paidBefore.ID), cashierOrder(t, s, open.ID), cashierOrder(t, s, toClose.ID)
	if err := s.Sandbox.Pay(ctx, vPaid.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	if o := app.order(t, "PAID"); o.Status != "succeeded" {
		t.Fatalf("PAID is %s before the rotation", o.Status)
	}
	before := identity(shop)

	// The rotation: Lakala accepts the new certificate, the merchant row takes the new key, and
	// once every client has read it (the TTL), Lakala revokes the old one.
	rotated := s.RotateKey(t, shop, 1)
	if rotated.KeyVersion != 2 || rotated.SerialNo == shop.SerialNo {
		t.Fatalf("after the rotation: %+v", rotated.Merchant)
	}
	time.Sleep(2 * ttl)
	if err := s.Sandbox.RevokeCertificate(ctx, shop.LakalaAppID, shop.SerialNo); err != nil {
		t.Fatal(err)
	}
	mark, err := s.Sandbox.Calls(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A refund of the payment the old key created, the payer paying the open order, a close of
	// the third, and a new order.
	r := app.refund(t, paidBefore.ID, 400)
	if err := s.Sandbox.Pay(ctx, vOpen.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	code, body := s.Do(t, http.MethodPost, "/api/v1/payment-orders/CLOSE/close?app_id=app_r", app.key, "")
	if code != http.StatusOK {
		t.Fatalf("close = %d %s", code, body)
	}
	fresh := app.create(t, "NEW", 500)
	s.RunOnce(t)

	if st := app.refundStatus(t, r.ID); st != "succeeded" {
		t.Errorf("refund of the payment the old key created: %s; want succeeded", st)
	}
	if o := app.order(t, "OPEN"); o.Status != "succeeded" {
		t.Errorf("OPEN after its payment: %s; want succeeded", o.Status)
	}
	if o := app.order(t, "CLOSE"); o.Status != "failed" || o.FailureReason == nil || *o.FailureReason != pay.ReasonClosedByMerchant {
		t.Errorf("CLOSE after its close: %s %v; want failed, closed by the merchant", o.Status, o.FailureReason)
	}
	if v, _ := s.Sandbox.Order(vClose.OutOrderNo); !v.Closed {
		t.Errorf("CLOSE's cashier order %+v; want it closed at Lakala", v)
	}
	if o := app.order(t, "NEW"); o.Status != "processing" {
		t.Errorf("NEW: %s; want processing", o.Status)
	}
	// Every call since the revocation was signed with the new key; none was refused.
	calls, err := s.Sandbox.Calls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := identity(rotated)
	var since int
	for _, c := range calls[len(mark):] {
		since++
		if got := c.AppID + "/" + c.SerialNo + "/" + c.MerchantNo; got != after {
			t.Errorf("call %s about %s after the revocation signed as %s; want %s", c.Path, c.OutNo, got, after)
		}
	}
	if since == 0 {
		t.Fatal("no call reached the sandbox after the revocation")
	}
	freshView := cashierOrder(t, s, fresh.ID)
	requireSignedAs(t, s, after, freshView.OutOrderNo, pay.OutOrderNo(r.ID))
	if all := signers(t, s)[vPaid.OutOrderNo]; !all[before] {
		t.Errorf("PAID's cashier order was created as %v; want %s (before the rotation)", all, before)
	}
	var version int
	if err := s.Store.Pool().QueryRow(ctx, `SELECT key_version FROM merchants WHERE id = 'shop'`).Scan(&version); err != nil || version != 2 {
		t.Errorf("key_version %d (%v); want 2", version, err)
	}
}

// TestUpgradeKeepsOneMerchantDeployment: a deployment of the release before merchants (migrations
// up to 0009) with an app, an order waiting for its cashier order and one whose cashier order is
// open, upgraded in place: everything is the default merchant's, which is the LAKALA_* one, and
// goes on as before — the waiting order gets its cashier order, the open one is paid and notified,
// refunded — each call signed as before, with no step by anyone.
func TestUpgradeKeepsOneMerchantDeployment(t *testing.T) {
	t.Parallel()
	const (
		waiting = "01900000-0000-7000-8000-00000000b001"
		open    = "01900000-0000-7000-8000-00000000b002"
	)
	openOutNo := pay.OutOrderNo(open)
	s := testenv.NewStack(t, testenv.StackOptions{OldSchema: 9, BeforeUpgrade: func(t testing.TB, store *postgres.Store) {
		expires := time.Now().Add(20 * time.Minute).UTC()
		if _, err := store.Pool().Exec(context.Background(), `
			INSERT INTO apps (app_id) VALUES ('legacy');
			INSERT INTO payment_orders (id, app_id, merchant_order_id, status, order_type, amount, currency, subject, expires_at) VALUES
				('`+waiting+`', 'legacy', 'WAITING', 'pending', 'payment', 1500, 'CNY', 'from before', '`+expires.Format(time.RFC3339)+`'),
				('`+open+`', 'legacy', 'OPEN', 'processing', 'payment', 2500, 'CNY', 'from before', '`+expires.Format(time.RFC3339)+`');
			INSERT INTO tasks (kind, subject_id, created_at, updated_at) VALUES ('payment', '`+waiting+`', now() - interval '1 minute', now() - interval '1 minute');
			INSERT INTO payment_attempts (payment_order_id, attempt_no, out_order_no, state, expires_at, submissions, submitted_at)
				VALUES ('`+open+`', 1, '`+openOutNo+`', 'open', '`+expires.Format(time.RFC3339)+`', 1, now());`); err != nil {
			t.Fatal(err)
		}
	}})
	ctx := context.Background()
	// What the old release had done for OPEN at Lakala: its cashier order, as the default merchant.
	created, err := s.Lakala.CreateCashierOrder(ctx, lakala.CreateCashierOrder{OutOrderNo: openOutNo, Amount: 2500, Subject: "from before",
		NotifyURL: s.API.URL + "/webhooks/lakala", ExpiresAt: time.Now().Add(20 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	var appMerchant string
	if err := s.Store.Pool().QueryRow(ctx, `SELECT merchant_id FROM apps WHERE app_id = 'legacy'`).Scan(&appMerchant); err != nil || appMerchant != postgres.DefaultMerchant {
		t.Fatalf("the app's merchant after the upgrade: %q (%v); want %s", appMerchant, err, postgres.DefaultMerchant)
	}
	app := merchantApp{id: "legacy", key: s.NewKey(t, "legacy"), s: s}

	s.RunOnce(t) // WAITING gets its cashier order
	if o := app.order(t, "WAITING"); o.Status != "processing" {
		t.Fatalf("WAITING after the upgrade's first run: %s; want processing", o.Status)
	}
	if err := s.Sandbox.Pay(ctx, created.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications(t)
	if o := app.order(t, "OPEN"); o.Status != "succeeded" {
		t.Fatalf("OPEN after its payment: %s; want succeeded (the notification bound to the default merchant)", o.Status)
	}
	r := app.refund(t, open, 1000)
	s.RunOnce(t)
	if st := app.refundStatus(t, r.ID); st != "succeeded" {
		t.Fatalf("refund: %s; want succeeded", st)
	}
	for _, id := range []string{waiting, open} {
		if o, err := s.Store.Order(ctx, id); err != nil || o.MerchantID != postgres.DefaultMerchant {
			t.Errorf("order %s: merchant %q (%v); want %s", id, o.MerchantID, err, postgres.DefaultMerchant)
		}
	}
	def := testenv.LakalaAppID + "/" + testenv.LakalaSerialNo + "/" + testenv.LakalaMerchantNo
	requireSignedAs(t, s, def, openOutNo, pay.OutOrderNo(r.ID), cashierOrder(t, s, waiting).OutOrderNo)
}

// TestOneMerchantsUnreadableKey: a merchant whose key cannot be read (a secret deleted, a
// permission missing) holds up its own orders only — their tasks retry with the reason — while
// another merchant's orders go on; once the key is back, its orders go on too.
func TestOneMerchantsUnreadableKey(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{MerchantTTL: -1})
	ctx := context.Background()
	broken := s.AddMerchant(t, "broken", 3)
	s.AddMerchant(t, "fine", 4)
	appBroken, appFine := newMerchantApp(t, s, "app_broken", "broken"), newMerchantApp(t, s, "app_fine", "fine")
	keyFile := broken.PrivateKeyRef[len("file:"):]
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	ob := appBroken.create(t, "X1", 100)
	appFine.create(t, "Y1", 100)
	s.RunOnce(t)
	if o := appFine.order(t, "Y1"); o.Status != "processing" {
		t.Fatalf("the other merchant's order: %s; want processing", o.Status)
	}
	if o := appBroken.order(t, "X1"); o.Status != "pending" {
		t.Fatalf("the order of the merchant without its key: %s; want pending (its task retries)", o.Status)
	}
	task, err := s.Store.TaskFor(ctx, postgres.TaskPayment, ob.ID)
	if err != nil || !strings.Contains(task.LastError, `merchant "broken"`) {
		t.Fatalf("its task: %+v, %v; want its last error naming the merchant", task, err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "the order to go on once the key is back", func() bool {
		s.RunOnce(t)
		return appBroken.order(t, "X1").Status == "processing"
	})
}

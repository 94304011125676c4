package sandbox

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
)

// restart closes the harness's sandbox and serves a new one on the same schema, as a restarted
// process (or another Lambda instance) does; its platform key and merchants come from the
// database. It returns the new harness, on the same receiver.
func (h *harness) restart(t *testing.T, cfg Config) *harness {
	t.Helper()
	h.srv.Close()
	h.sb.Close()
	cfg.DB, cfg.Schema = h.sb.db, strings.Trim(h.sb.schema, `"`)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NotifyRetryDelays == nil {
		cfg.NotifyRetryDelays = []time.Duration{time.Millisecond}
	}
	sb, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	sb.SetPublicURL(srv.URL)
	t.Cleanup(func() {
		srv.Close()
		sb.Close()
	})
	return &harness{sb: sb, srv: srv, creds: h.creds, rc: h.rc}
}

// TestStateSurvivesRestart: an order paid before a restart is refunded after it, its cashier page
// still opens (the same order), and the numbers handed out after never repeat one from before.
// The platform key kept in the database signs alike after the restart.
func TestStateSurvivesRestart(t *testing.T) {
	testKeys(t)
	db, schema := testDB(t)
	h := newHarness(t, Config{DB: db, Schema: schema, PlatformKey: nil})
	// newHarness gives every sandbox the test's platform key; this one keeps its own.
	h = h.restart(t, Config{})
	cert := h.sb.PlatformCertPEM()
	n := h.paidOrder(t, "order1", 1000)
	created := h.create(t, "order2", 500)

	h = h.restart(t, Config{})
	if string(h.sb.PlatformCertPEM()) != string(cert) {
		t.Fatal("the platform certificate changed across the restart")
	}
	refund := must[lakala.RefundResult](t, h, lakala.PathRefund, refundDataOf(n, "refund1", 300), lakala.CodeLabsOK)
	if refund.TradeState != lakala.TradeStateSuccess || h.sb.RefundedTotal("order1") != 300 {
		t.Fatalf("refund after the restart: %+v, refunded %d", refund, h.sb.RefundedTotal("order1"))
	}
	// The restarted server listens elsewhere; loomipay dev keeps its address, so the URL of before
	// is the same page.
	page1 := h.srv.URL + "/counter/" + created.PayOrderNo
	status, page := get(t, page1)
	if status != http.StatusOK || !strings.Contains(page, created.PayOrderNo) || !strings.Contains(page, "order2") {
		t.Fatalf("the cashier page of before: HTTP %d\n%s", status, page)
	}
	again := h.create(t, "order3", 700)
	if again.PayOrderNo <= created.PayOrderNo {
		t.Fatalf("pay_order_no %s after the restart does not follow %s", again.PayOrderNo, created.PayOrderNo)
	}
	if status, body := h.press(t, page1, "pay"); status != http.StatusOK {
		t.Fatalf("paying the order of before: HTTP %d %s", status, body)
	}
	var paid lakala.CashierNotification
	if err := json.Unmarshal(h.rc.next(t).body, &paid); err != nil || paid.OutOrderNo != "order2" {
		t.Fatalf("its notification: %+v, %v", paid, err)
	}
}

// refundDataOf is a labs refund of the payment a notification told of.
func refundDataOf(n lakala.CashierNotification, outTradeNo string, amount int64) lakala.RefundData {
	return lakala.RefundData{MerchantNo: n.MerchantNo, TermNo: testTerm, OutTradeNo: outTradeNo, RefundAmount: lakala.FenString(amount),
		RefundReason: "test", LocationInfo: lakala.LocationInfo{RequestIP: "1.2.3.4"},
		OriginOutTradeNo: n.OutOrderNo, OriginTradeNo: n.OrderTradeInfo.TradeNo, OriginLogNo: n.OrderTradeInfo.LogNo}
}

// TestMerchantsAndTheirKeys: each merchant is served only under its own appid's certificates;
// a key of one merchant's appid cannot act for another merchant; a rotation adds a certificate,
// and revoking the old one refuses what it signs.
func TestMerchantsAndTheirKeys(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	other := Merchant{AppID: "OP22222222", SerialNo: "0b0b", PublicKey: &strangerKey.PublicKey, MerchantNo: "822290070000002", TermNo: "T0000002"}
	if err := h.sb.AddMerchant(ctx, other); err != nil {
		t.Fatal(err)
	}
	otherCreds := lakala.Credentials{AppID: other.AppID, SerialNo: other.SerialNo, PrivateKey: strangerKey}
	as := func(c lakala.Credentials, merchantNo, outOrderNo string) apiAnswer {
		t.Helper()
		h2 := *h
		h2.creds = c
		data := h.createData(outOrderNo, 100)
		data.MerchantNo = merchantNo
		ans, err := h2.call(t, ctx, lakala.PathCreateOrder, data)
		if err != nil {
			t.Fatal(err)
		}
		return ans
	}
	if ans := as(otherCreds, other.MerchantNo, "o1"); ans.status != http.StatusOK || ans.env.Code != lakala.CodeCashierOK {
		t.Fatalf("the other merchant's own create: HTTP %d %s", ans.status, ans.env.Code)
	}
	// Its key, naming the test merchant: refused, nothing created.
	if ans := as(otherCreds, testMerchant, "o2"); ans.env.Code != CodeInvalidParam {
		t.Fatalf("another appid's key for the test merchant: HTTP %d %s; want %s", ans.status, ans.env.Code, CodeInvalidParam)
	}
	if _, ok := h.sb.Order("o2"); ok {
		t.Fatal("a create signed for another merchant made a cashier order")
	}
	// The test merchant's key under the other appid: not its certificate.
	forged := h.creds
	forged.AppID, forged.SerialNo = other.AppID, other.SerialNo
	if ans := as(forged, other.MerchantNo, "o3"); ans.status != http.StatusUnauthorized {
		t.Fatalf("a key that is not the certificate's: HTTP %d %s; want 401", ans.status, ans.env.Code)
	}

	// Rotation: a second certificate for the test appid; the old one works until revoked.
	if err := h.sb.AddCertificate(ctx, testAppID, "new-serial", &strangerKey.PublicKey); err != nil {
		t.Fatal(err)
	}
	rotated := lakala.Credentials{AppID: testAppID, SerialNo: "new-serial", PrivateKey: strangerKey}
	if ans := as(rotated, testMerchant, "o4"); ans.env.Code != lakala.CodeCashierOK {
		t.Fatalf("the new key: %d %s", ans.status, ans.env.Code)
	}
	if ans := as(h.creds, testMerchant, "o5"); ans.env.Code != lakala.CodeCashierOK {
		t.Fatalf("the old key before its revocation: %d %s", ans.status, ans.env.Code)
	}
	if err := h.sb.RevokeCertificate(ctx, testAppID, testSerialNo); err != nil {
		t.Fatal(err)
	}
	if ans := as(h.creds, testMerchant, "o6"); ans.status != http.StatusUnauthorized {
		t.Fatalf("the revoked key: HTTP %d %s; want 401", ans.status, ans.env.Code)
	}
	calls, err := h.sb.Calls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var serials []string
	for _, c := range calls {
		serials = append(serials, c.OutNo+":"+c.SerialNo)
	}
	if strings.Join(serials, " ") != "o1:0b0b o2:0b0b o4:new-serial o5:"+testSerialNo {
		t.Errorf("calls heard: %v", serials)
	}
}

// TestInlineDeliveryAndBasePath: mounted under /sandbox and delivering inline (as the Lambda
// function does), a payer's action delivers its notification before it answers, a failed one is
// retried by DeliverDue once due, and every path — Lakala's, the cashier's, the admin's — is under
// the base path.
func TestInlineDeliveryAndBasePath(t *testing.T) {
	testKeys(t)
	db, schema := testDB(t)
	h := newHarness(t, Config{DB: db, Schema: schema, Inline: true, BasePath: "/sandbox", NotifyRetryDelays: []time.Duration{time.Millisecond}}, "FAIL")
	h.sb.SetPublicURL("") // counter URLs from the request, under the base path
	created := must[lakala.CreateOrderResult](t, &harness{sb: h.sb, srv: h.srv, creds: h.creds, rc: h.rc, prefix: "/sandbox"},
		lakala.PathCreateOrder, h.createData("order1", 100), lakala.CodeCashierOK)
	if !strings.HasPrefix(created.CounterURL, h.srv.URL+"/sandbox/counter/") {
		t.Fatalf("counter_url %s; want it under %s/sandbox/counter/", created.CounterURL, h.srv.URL)
	}
	if status, body := h.press(t, created.CounterURL, "pay"); status != http.StatusOK {
		t.Fatalf("pay: HTTP %d %s", status, body)
	}
	// Delivered before the answer (and refused: FAIL); nothing else delivers it.
	select {
	case <-h.rc.got:
	default:
		t.Fatal("the payer's action answered before its notification was attempted")
	}
	time.Sleep(5 * time.Millisecond)
	if n, err := h.sb.DeliverDue(context.Background()); err != nil || n != 1 {
		t.Fatalf("DeliverDue: %d, %v; want the retry attempted", n, err)
	}
	h.rc.next(t)
	h.waitNotifications(t)
	if v, _ := h.sb.Order("order1"); !v.NotifyAcked || len(v.NotifyAttempts) != 2 {
		t.Fatalf("attempts %+v; want two, the second acknowledged", v.NotifyAttempts)
	}
	for _, path := range []string{"/sandbox/ledger", "/sandbox/merchants", "/sandbox/calls", "/sandbox/platform-cert.pem"} {
		if status, _ := get(t, h.srv.URL+path); status != http.StatusOK {
			t.Errorf("GET %s: HTTP %d", path, status)
		}
	}
	if status, _ := get(t, h.srv.URL+"/counter/"+created.PayOrderNo); status != http.StatusNotFound {
		t.Errorf("the cashier page outside the base path: HTTP %d; want 404", status)
	}
}

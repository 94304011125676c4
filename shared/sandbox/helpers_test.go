package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loomipay/loomipay/shared/lakala"
)

const (
	testAppID    = "OP00000003"
	testSerialNo = "00dfba8194c41b84cf"
	testMerchant = "82229007392000A"
	testTerm     = "D9296400"
	// testSibling is a second merchant of testAppID: its appid may act for it, but it has none of
	// testMerchant's orders.
	testSibling = "82229007392000B"
)

var (
	keysOnce                 sync.Once
	merchantKey, platformKey *rsa.PrivateKey
	strangerKey              *rsa.PrivateKey
)

// testKeys generates the RSA keys once per test binary; 2048-bit generation is slow.
func testKeys(t *testing.T) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		for _, k := range []**rsa.PrivateKey{&merchantKey, &platformKey, &strangerKey} {
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		}
	})
}

// receiver is a merchant webhook: it records every notification and answers from a
// script, then SUCCESS.
type receiver struct {
	srv *httptest.Server
	got chan notification

	mu      sync.Mutex
	answers []string
}

type notification struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, answers ...string) *receiver {
	rc := &receiver{got: make(chan notification, 32), answers: answers}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.got <- notification{header: r.Header.Clone(), body: body}
		code := "SUCCESS"
		rc.mu.Lock()
		if len(rc.answers) > 0 {
			code, rc.answers = rc.answers[0], rc.answers[1:]
		}
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"code":"` + code + `","message":"x"}`))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) next(t *testing.T) notification {
	t.Helper()
	select {
	case n := <-rc.got:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no notification arrived")
		return notification{}
	}
}

type harness struct {
	sb     *Sandbox
	srv    *httptest.Server
	creds  lakala.Credentials
	rc     *receiver
	prefix string // the sandbox's base path
}

// testDB is a pool on the test PostgreSQL ($TEST_DATABASE_URL or the local default) and a fresh
// schema name for one sandbox, dropped when the test ends.
func testDB(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	url := os.Getenv("TEST_DATABASE_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "sbt_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		pool.Close()
	})
	return pool, schema
}

// testMerchantOf is the merchant every harness plays, signing with merchantKey.
func testMerchantOf() Merchant {
	return Merchant{AppID: testAppID, SerialNo: testSerialNo, PublicKey: &merchantKey.PublicKey, MerchantNo: testMerchant, TermNo: testTerm}
}

func newHarness(t *testing.T, cfg Config, answers ...string) *harness {
	t.Helper()
	testKeys(t)
	if cfg.DB == nil {
		cfg.DB, cfg.Schema = testDB(t)
	}
	if cfg.Merchants == nil {
		sibling := testMerchantOf()
		sibling.MerchantNo = testSibling
		cfg.Merchants = []Merchant{testMerchantOf(), sibling}
	}
	cfg.PlatformKey = platformKey
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NotifyRetryDelays == nil {
		cfg.NotifyRetryDelays = []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}
	}
	sb, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sb.Handler())
	sb.SetPublicURL(srv.URL)
	t.Cleanup(func() {
		srv.Close()
		sb.Close()
	})
	return &harness{
		sb:    sb,
		srv:   srv,
		creds: lakala.Credentials{AppID: testAppID, SerialNo: testSerialNo, PrivateKey: merchantKey},
		rc:    newReceiver(t, answers...),
	}
}

type apiAnswer struct {
	status int
	header http.Header
	env    lakala.Response[json.RawMessage]
}

// call signs and posts a v3 request, and verifies the signature of any 200 answer.
func (h *harness) call(t *testing.T, ctx context.Context, path string, data any) (apiAnswer, error) {
	t.Helper()
	body, err := json.Marshal(lakala.NewRequest(data, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := lakala.SignRequest(h.creds, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return h.post(t, ctx, path, body, auth)
}

func (h *harness) post(t *testing.T, ctx context.Context, path string, body []byte, auth string) (apiAnswer, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.srv.URL+h.prefix+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return apiAnswer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiAnswer{}, err
	}
	ans := apiAnswer{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &ans.env); err != nil {
		t.Fatalf("answer %q is not an envelope: %v", raw, err)
	}
	if resp.StatusCode == http.StatusOK {
		if err := lakala.VerifyResponse(h.sb.PlatformPublicKey(), resp.Header, raw); err != nil {
			t.Fatalf("response signature: %v", err)
		}
	}
	return ans, nil
}

// must calls path and decodes resp_data after checking the code.
func must[T any](t *testing.T, h *harness, path string, data any, wantCode string) T {
	t.Helper()
	ans, err := h.call(t, context.Background(), path, data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if ans.status != http.StatusOK || ans.env.Code != wantCode {
		t.Fatalf("%s: HTTP %d code %s (%s), want code %s", path, ans.status, ans.env.Code, ans.env.Msg, wantCode)
	}
	var out T
	if err := json.Unmarshal(ans.env.RespData, &out); err != nil {
		t.Fatalf("%s resp_data: %v", path, err)
	}
	return out
}

func (h *harness) createData(outOrderNo string, amount int64) lakala.CreateOrderData {
	return lakala.CreateOrderData{
		OutOrderNo:         outOrderNo,
		MerchantNo:         testMerchant,
		TotalAmount:        lakala.Fen(amount),
		OrderEfficientTime: lakala.FormatTime(time.Now().Add(time.Hour)),
		OrderInfo:          "Test order",
		NotifyURL:          h.rc.srv.URL + "/webhooks/lakala",
		SupportRefund:      1,
	}
}

func (h *harness) create(t *testing.T, outOrderNo string, amount int64) lakala.CreateOrderResult {
	t.Helper()
	return must[lakala.CreateOrderResult](t, h, lakala.PathCreateOrder, h.createData(outOrderNo, amount), lakala.CodeCashierOK)
}

func (h *harness) query(t *testing.T, outOrderNo string) lakala.QueryOrderResult {
	t.Helper()
	return must[lakala.QueryOrderResult](t, h, lakala.PathQueryOrder,
		lakala.QueryOrderData{MerchantNo: testMerchant, OutOrderNo: outOrderNo}, lakala.CodeCashierOK)
}

// press posts the cashier form the way a script would, asking for JSON.
func (h *harness) press(t *testing.T, counterURL, action string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, counterURL, strings.NewReader(url.Values{"action": {action}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// paidOrder creates an order, pays it and consumes its notification.
func (h *harness) paidOrder(t *testing.T, outOrderNo string, amount int64) lakala.CashierNotification {
	t.Helper()
	created := h.create(t, outOrderNo, amount)
	if status, body := h.press(t, created.CounterURL, "pay"); status != http.StatusOK {
		t.Fatalf("pay: HTTP %d %s", status, body)
	}
	var n lakala.CashierNotification
	if err := json.Unmarshal(h.rc.next(t).body, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (h *harness) waitNotifications(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.sb.WaitNotifications(ctx); err != nil {
		t.Fatal(err)
	}
}

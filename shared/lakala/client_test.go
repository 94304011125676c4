package lakala

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testAppID  = "OP00000003"
	testSerial = "00dfba8194c41b84cf"
)

// fakeLakala is a minimal Lakala: it verifies each request's signature with the merchant
// key and answers with whatever reply returns, signed by signKey.
type fakeLakala struct {
	t           *testing.T
	merchantPub *rsa.PublicKey
	signKey     *rsa.PrivateKey // nil: send no signature headers
	// reply answers one request; status 0 means it already dealt with the connection.
	reply func(w http.ResponseWriter, r *http.Request, path string) (status int, body string)

	mu       sync.Mutex
	requests map[string]Request[json.RawMessage]
}

func (f *fakeLakala) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("read request: %v", err)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		f.t.Errorf("request %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
	}
	auth, err := VerifyRequest(f.merchantPub, r.Header.Get("Authorization"), body)
	if err != nil {
		f.t.Errorf("request signature: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if auth.AppID != testAppID || auth.SerialNo != testSerial {
		f.t.Errorf("request signed as %+v", auth)
	}
	var envelope Request[json.RawMessage]
	if err := json.Unmarshal(body, &envelope); err != nil {
		f.t.Errorf("request envelope: %v", err)
	}
	f.mu.Lock()
	f.requests[r.URL.Path] = envelope
	f.mu.Unlock()

	status, respBody := f.reply(w, r, r.URL.Path)
	if status == 0 { // the reply took over the connection
		return
	}
	if f.signKey != nil {
		if err := SetResponseSignature(w.Header(), f.signKey, testAppID, testSerial, []byte(respBody), time.Now()); err != nil {
			f.t.Errorf("sign response: %v", err)
		}
	}
	w.Header().Set(HeaderTraceID, "trace-123")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, respBody)
}

func (f *fakeLakala) request(t *testing.T, path string, into any) {
	t.Helper()
	f.mu.Lock()
	env, ok := f.requests[path]
	f.mu.Unlock()
	if !ok {
		t.Fatalf("no request to %s", path)
	}
	if env.Version != "3.0" || len(env.ReqTime) != 14 {
		t.Errorf("envelope version %q req_time %q", env.Version, env.ReqTime)
	}
	if err := json.Unmarshal(env.ReqData, into); err != nil {
		t.Fatal(err)
	}
}

type clientFixture struct {
	client *Client
	fake   *fakeLakala
	logs   *bytes.Buffer
}

func newClientFixture(t *testing.T, reply func(w http.ResponseWriter, r *http.Request, path string) (int, string)) clientFixture {
	t.Helper()
	merchant, platform := keys(t)
	fake := &fakeLakala{t: t, merchantPub: &merchant.PublicKey, signKey: platform, reply: reply, requests: map[string]Request[json.RawMessage]{}}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	logs := &bytes.Buffer{}
	client, err := NewClient(Config{
		BaseURL:     srv.URL + "/sit/",
		Credentials: Credentials{AppID: testAppID, SerialNo: testSerial, PrivateKey: merchant},
		MerchantNo:  "82229007392000A",
		TermNo:      "D9296400",
		PlatformKey: &platform.PublicKey,
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return clientFixture{client: client, fake: fake, logs: logs}
}

func fixedReply(status int, body string) func(http.ResponseWriter, *http.Request, string) (int, string) {
	return func(http.ResponseWriter, *http.Request, string) (int, string) { return status, body }
}

func TestCreateCashierOrder(t *testing.T) {
	fx := newClientFixture(t, fixedReply(200, `{"code":"000000","msg":"成功","resp_time":"20240501100000","resp_data":{
		"counter_url":"https://q.lakala.com/cashier?x=1&y=2","pay_order_no":"PAY1","out_order_no":"O1","merchant_no":"82229007392000A","total_amount":1999,"channel_id":"95"}}`))
	subject := strings.Repeat("茶", 70)
	expires := time.Date(2024, 5, 1, 2, 30, 0, 0, time.UTC)
	got, err := fx.client.CreateCashierOrder(context.Background(), CreateCashierOrder{
		OutOrderNo: "O1", Amount: 1999, Subject: subject, NotifyURL: "https://api.example.com/webhooks/lakala?a=1&b=2",
		CallbackURL: "https://shop.example.com/done", ExpiresAt: expires, CounterParam: `{"pay_mode":"ALIPAY"}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.CounterURL != "https://q.lakala.com/cashier?x=1&y=2" || got.PayOrderNo != "PAY1" || got.TotalAmount != 1999 {
		t.Errorf("result %+v", got)
	}

	var sent map[string]any
	fx.fake.request(t, "/sit"+PathCreateOrder, &sent)
	want := map[string]any{
		"out_order_no":            "O1",
		"merchant_no":             "82229007392000A",
		"total_amount":            float64(1999),
		"order_efficient_time":    "20240501103000",
		"order_info":              strings.Repeat("茶", 64),
		"notify_url":              "https://api.example.com/webhooks/lakala?a=1&b=2",
		"callback_url":            "https://shop.example.com/done",
		"support_refund":          float64(1),
		"close_order_auto_refund": "1",
		"counter_param":           `{"pay_mode":"ALIPAY"}`,
	}
	for k, v := range want {
		if sent[k] != v {
			t.Errorf("req_data.%s = %#v, want %#v", k, sent[k], v)
		}
	}

	logged := fx.logs.String()
	for _, frag := range []string{PathCreateOrder, "trace-123", "code=000000"} {
		if !strings.Contains(logged, frag) {
			t.Errorf("log lacks %q: %s", frag, logged)
		}
	}
	for _, secret := range []string{AuthScheme, "signature", "PRIVATE KEY"} {
		if strings.Contains(logged, secret) {
			t.Errorf("log contains %q: %s", secret, logged)
		}
	}
}

func TestRefundAndQueries(t *testing.T) {
	fx := newClientFixture(t, func(_ http.ResponseWriter, _ *http.Request, path string) (int, string) {
		switch strings.TrimPrefix(path, "/sit") {
		case PathRefund:
			return 200, `{"code":"BBS00000","msg":"成功","resp_data":{"trade_no":"RT1","log_no":"RL1","refund_amount":"500","payer_amount":"450","trade_time":"20240501100000"}}`
		case PathTradeQuery:
			return 200, `{"code":"BBS00000","msg":"成功","resp_data":{"out_trade_no":"R1","trade_no":"RT1","trade_state":"SUCCESS","total_amount":"500"}}`
		case PathQueryOrder:
			return 200, `{"code":"000000","msg":"成功","resp_data":{"out_order_no":"O1","order_status":"2","total_amount":1999,
				"order_trade_info_list":[{"trade_no":"T2","trade_type":"REFUND","trade_status":"S","trade_amount":500},{"trade_no":"T1","trade_type":"PAY","trade_status":"S","trade_amount":1999}]}}`
		case PathCloseOrder:
			return 200, `{"code":"000000","msg":"成功","resp_data":{"out_order_no":"O1","order_status":"7"}}`
		}
		return 404, `{}`
	})
	ctx := context.Background()

	refund, err := fx.client.Refund(ctx, RefundRequest{OutTradeNo: "R1", Amount: 500, Reason: "customer", RequestIP: "10.1.2.3", OriginOutTradeNo: "O1", OriginTradeNo: "T1", OriginLogNo: "L1"})
	if err != nil {
		t.Fatal(err)
	}
	if refund.TradeNo != "RT1" || refund.RefundAmount != 500 || refund.PayerAmount != 450 {
		t.Errorf("refund %+v", refund)
	}
	var sentRefund map[string]any
	fx.fake.request(t, "/sit"+PathRefund, &sentRefund)
	if sentRefund["refund_amount"] != "500" || sentRefund["term_no"] != "D9296400" || sentRefund["origin_trade_no"] != "T1" ||
		sentRefund["location_info"].(map[string]any)["request_ip"] != "10.1.2.3" {
		t.Errorf("refund req_data %v", sentRefund)
	}

	trade, err := fx.client.QueryTrade(ctx, "R1")
	if err != nil || trade.TradeState != TradeStateSuccess || trade.TotalAmount != 500 {
		t.Errorf("QueryTrade = %+v, %v", trade, err)
	}
	var sentQuery TradeQueryData
	fx.fake.request(t, "/sit"+PathTradeQuery, &sentQuery)
	if sentQuery != (TradeQueryData{MerchantNo: "82229007392000A", TermNo: "D9296400", OutTradeNo: "R1"}) {
		t.Errorf("tradequery req_data %+v", sentQuery)
	}

	order, err := fx.client.QueryCashierOrder(ctx, "O1")
	if err != nil || order.OrderStatus != OrderStatusPaid || len(order.OrderTradeInfoList) != 2 || order.OrderTradeInfoList[1].TradeNo != "T1" {
		t.Errorf("QueryCashierOrder = %+v, %v", order, err)
	}
	closed, err := fx.client.CloseCashierOrder(ctx, "O1")
	if err != nil || closed.OrderStatus != OrderStatusClosed {
		t.Errorf("CloseCashierOrder = %+v, %v", closed, err)
	}
	var sentClose CloseOrderData
	fx.fake.request(t, "/sit"+PathCloseOrder, &sentClose)
	if sentClose != (CloseOrderData{MerchantNo: "82229007392000A", OutOrderNo: "O1"}) {
		t.Errorf("close req_data %+v", sentClose)
	}
}

func TestClientErrorClassification(t *testing.T) {
	refundIn := RefundRequest{OutTradeNo: "R1", Amount: 500, RequestIP: "10.1.2.3", OriginOutTradeNo: "O1", OriginTradeNo: "T1"}
	tests := []struct {
		name        string
		reply       func(http.ResponseWriter, *http.Request, string) (int, string)
		unsigned    bool
		otherSigner bool
		wantGateway string // expected GatewayError code; empty means outcome unknown
	}{
		{name: "definite rejection", reply: fixedReply(200, `{"code":"BBS11109","msg":"退款金额超限","resp_data":null}`), wantGateway: "BBS11109"},
		{name: "rejection with odd resp_data", reply: fixedReply(200, `{"code":"BBS01000","msg":"参数错误","resp_data":"n/a"}`), wantGateway: "BBS01000"},
		{name: "processing BBS10000", reply: fixedReply(200, `{"code":"BBS10000","msg":"处理中"}`)},
		{name: "processing BBS11105", reply: fixedReply(200, `{"code":"BBS11105","msg":"处理中"}`)},
		{name: "processing BBS11112", reply: fixedReply(200, `{"code":"BBS11112","msg":"处理中"}`)},
		{name: "empty code", reply: fixedReply(200, `{"code":"","msg":""}`)},
		{name: "cashier success code on a labs API", reply: fixedReply(200, `{"code":"000000","msg":"成功","resp_data":{}}`)},
		{name: "HTTP 500", reply: fixedReply(500, `{"code":"BBS11109","msg":"x"}`)},
		{name: "HTTP 502 without body", reply: fixedReply(502, ``)},
		{name: "HTTP 429", reply: fixedReply(429, `{}`)},
		{name: "response signed by another key", reply: fixedReply(200, `{"code":"BBS11109","msg":"x"}`), otherSigner: true},
		{name: "response unsigned", reply: fixedReply(200, `{"code":"BBS11109","msg":"x"}`), unsigned: true},
		{name: "response not JSON", reply: fixedReply(200, `<html>gateway</html>`)},
		{name: "success with unreadable amount", reply: fixedReply(200, `{"code":"BBS00000","msg":"ok","resp_data":{"trade_no":"T","refund_amount":"5.00"}}`)},
		{name: "connection dropped", reply: func(w http.ResponseWriter, _ *http.Request, _ string) (int, string) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return 0, ``
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newClientFixture(t, tt.reply)
			merchant, _ := keys(t)
			switch {
			case tt.unsigned:
				fx.fake.signKey = nil
			case tt.otherSigner:
				fx.fake.signKey = merchant
			}
			_, err := fx.client.Refund(context.Background(), refundIn)
			var gw *GatewayError
			if tt.wantGateway != "" {
				if !errors.As(err, &gw) || gw.Code != tt.wantGateway {
					t.Fatalf("err = %v, want GatewayError %s", err, tt.wantGateway)
				}
				if errors.Is(err, ErrOutcomeUnknown) {
					t.Errorf("definite rejection also reads as unknown: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrOutcomeUnknown) {
				t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
			}
			if errors.As(err, &gw) {
				t.Errorf("unknown outcome also reads as GatewayError: %v", err)
			}
		})
	}
}

func TestClientTimeoutIsOutcomeUnknown(t *testing.T) {
	release := make(chan struct{})
	fx := newClientFixture(t, func(_ http.ResponseWriter, r *http.Request, _ string) (int, string) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return 200, `{"code":"000000","msg":"ok","resp_data":{}}`
	})
	defer close(release)

	t.Run("context deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := fx.client.QueryCashierOrder(ctx, "O1")
		if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrOutcomeUnknown wrapping context.DeadlineExceeded", err)
		}
	})
	t.Run("http client timeout", func(t *testing.T) {
		fx.client.http = &http.Client{Timeout: 50 * time.Millisecond}
		_, err := fx.client.CreateCashierOrder(context.Background(), CreateCashierOrder{OutOrderNo: "O1", Amount: 1, NotifyURL: "https://n", ExpiresAt: time.Now().Add(time.Hour)})
		if !errors.Is(err, ErrOutcomeUnknown) {
			t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
		}
	})
}

func TestClientRejectsInvalidInputWithoutCalling(t *testing.T) {
	fx := newClientFixture(t, func(_ http.ResponseWriter, _ *http.Request, path string) (int, string) {
		t.Errorf("unexpected call to %s", path)
		return 500, ``
	})
	ctx := context.Background()
	expires := time.Now().Add(time.Hour)
	validOrder := CreateCashierOrder{OutOrderNo: "O1", Amount: 1, NotifyURL: "https://n", ExpiresAt: expires}
	validRefund := RefundRequest{OutTradeNo: "R1", Amount: 1, RequestIP: "1.2.3.4", OriginOutTradeNo: "O1", OriginTradeNo: "T1"}
	calls := map[string]func() error{
		"order number too long": func() error {
			in := validOrder
			in.OutOrderNo = strings.Repeat("1", 33)
			_, err := fx.client.CreateCashierOrder(ctx, in)
			return err
		},
		"zero amount": func() error {
			in := validOrder
			in.Amount = 0
			_, err := fx.client.CreateCashierOrder(ctx, in)
			return err
		},
		"no expiry": func() error {
			in := validOrder
			in.ExpiresAt = time.Time{}
			_, err := fx.client.CreateCashierOrder(ctx, in)
			return err
		},
		"counter_param not JSON": func() error {
			in := validOrder
			in.CounterParam = "pay_mode=ALIPAY"
			_, err := fx.client.CreateCashierOrder(ctx, in)
			return err
		},
		"refund with one origin id": func() error {
			in := validRefund
			in.OriginTradeNo = ""
			_, err := fx.client.Refund(ctx, in)
			return err
		},
		"refund without IP": func() error {
			in := validRefund
			in.RequestIP = ""
			_, err := fx.client.Refund(ctx, in)
			return err
		},
		"empty query": func() error { _, err := fx.client.QueryTrade(ctx, ""); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
		})
	}
}

func TestNewClientValidatesConfig(t *testing.T) {
	merchant, platform := keys(t)
	valid := Config{BaseURL: "https://test.wsmsd.cn/sit", Credentials: Credentials{AppID: "A", SerialNo: "S", PrivateKey: merchant},
		MerchantNo: "M", TermNo: "T", PlatformKey: &platform.PublicKey}
	if _, err := NewClient(valid); err != nil {
		t.Fatal(err)
	}
	broken := map[string]func(*Config){
		"relative URL":    func(c *Config) { c.BaseURL = "/sit" },
		"ftp URL":         func(c *Config) { c.BaseURL = "ftp://x" },
		"no app id":       func(c *Config) { c.Credentials.AppID = "" },
		"no serial":       func(c *Config) { c.Credentials.SerialNo = "" },
		"no private key":  func(c *Config) { c.Credentials.PrivateKey = nil },
		"no merchant":     func(c *Config) { c.MerchantNo = "" },
		"no terminal":     func(c *Config) { c.TermNo = "" },
		"no platform key": func(c *Config) { c.PlatformKey = nil },
	}
	for name, mutate := range broken {
		t.Run(name, func(t *testing.T) {
			cfg := valid
			mutate(&cfg)
			if _, err := NewClient(cfg); err == nil {
				t.Fatal("NewClient accepted a broken config")
			}
		})
	}
}

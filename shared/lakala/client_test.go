package lakala

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
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
		VposID:      "462621830268882944",
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
		"order_info":              strings.Repeat("茶", 21), // 63 bytes: the longest whole-character fit in 64
		"vpos_id":                 "462621830268882944",
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
			return 200, `{"code":"BBS00000","msg":"成功","resp_data":{"out_trade_no":"R1","trade_no":"RT1","log_no":"RL1","trade_main_type":"REFUND","trade_state":"SUCCESS","total_amount":"500"}}`
		case PathQueryOrder:
			return 200, `{"code":"000000","msg":"成功","resp_data":{"out_order_no":"O1","order_status":"2","total_amount":1999,
				"order_trade_info_list":[{"trade_no":"T2","trade_type":"REFUND","trade_status":"S","trade_amount":500},{"trade_no":"T1","trade_type":"PAY","trade_status":"S","trade_amount":1999}]}}`
		case PathCloseOrder:
			return 200, `{"code":"000000","msg":"成功","resp_data":{"out_order_no":"O1","order_status":"7"}}`
		}
		return 404, `{}`
	})
	ctx := context.Background()

	reason := strings.Repeat("退", 11) // 33 bytes: one character more than refund_reason's 32
	refund, err := fx.client.Refund(ctx, RefundRequest{API: RefundAPILabs, OutTradeNo: "R1", Amount: 500, Reason: reason, RequestIP: "10.1.2.3",
		OriginOutTradeNo: "O1", OriginTradeNo: "T1", OriginLogNo: "L1"})
	if err != nil {
		t.Fatal(err)
	}
	if refund != (RefundAnswer{Outcome: RefundSucceeded, State: TradeStateSuccess, TradeNo: "RT1", LogNo: "RL1", TradeTime: "20240501100000"}) {
		t.Errorf("refund %+v", refund)
	}
	var sentRefund map[string]any
	fx.fake.request(t, "/sit"+PathRefund, &sentRefund)
	if sentRefund["refund_amount"] != "500" || sentRefund["term_no"] != "D9296400" || sentRefund["origin_trade_no"] != "T1" ||
		sentRefund["location_info"].(map[string]any)["request_ip"] != "10.1.2.3" || sentRefund["refund_reason"] != strings.Repeat("退", 10) {
		t.Errorf("refund req_data %v", sentRefund)
	}

	trade, err := fx.client.QueryRefund(ctx, RefundAPILabs, "R1")
	if err != nil || trade.Outcome != RefundSucceeded || trade.TradeNo != "RT1" || trade.LogNo != "RL1" {
		t.Errorf("QueryRefund = %+v, %v", trade, err)
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

// 统一退货: the refund and its query answer 000000 with the refund's trade_state.
func TestRfdRefundAndQuery(t *testing.T) {
	tests := []struct {
		state string
		want  RefundOutcome
	}{
		{TradeStateSuccess, RefundSucceeded}, {TradeStateFail, RefundFailed}, {TradeStateException, RefundFailed},
		{TradeStateInit, RefundPending}, {TradeStateDeal, RefundPending}, {TradeStateProcessing, RefundPending},
		{TradeStateTimeout, RefundPending}, {"SOMETHING_NEW", RefundPending},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			body := `{"code":"000000","msg":"成功","resp_data":{"out_trade_no":"R1","trade_no":"RT1","log_no":"RL1","trade_state":"` + tt.state +
				`","refund_amount":"500","channel_ret_desc":"RFD00000#成功"}}`
			fx := newClientFixture(t, fixedReply(200, body))
			got, err := fx.client.Refund(context.Background(), RefundRequest{API: RefundAPIRfd, OutTradeNo: "R1", Amount: 500, Reason: "r",
				RequestIP: "10.1.2.3", OriginOutTradeNo: "O1", OriginTradeNo: "T1"})
			if err != nil || got.Outcome != tt.want || got.State != tt.state {
				t.Errorf("Refund = %+v, %v; want %v", got, err, tt.want)
			}
			var sent RfdRefundData
			fx.fake.request(t, "/sit"+PathRfdRefund, &sent)
			if sent.MerchantNo != "82229007392000A" || sent.TermNo != "D9296400" || sent.RefundAmount != 500 || sent.OriginTradeNo != "T1" {
				t.Errorf("统一退货 req_data %+v", sent)
			}
			q, err := fx.client.QueryRefund(context.Background(), RefundAPIRfd, "R1")
			if err != nil || q.Outcome != tt.want {
				t.Errorf("QueryRefund = %+v, %v; want %v", q, err, tt.want)
			}
			var sentQuery RfdRefundQueryData
			fx.fake.request(t, "/sit"+PathRfdRefundQuery, &sentQuery)
			if sentQuery != (RfdRefundQueryData{MerchantNo: "82229007392000A", TermNo: "D9296400", OutTradeNo: "R1"}) {
				t.Errorf("refund_query req_data %+v", sentQuery)
			}
		})
	}
}

// A labs trade query settles a refund only when it describes a refund: PART_REFUND and REFUND
// are states of the payment, and a PREORDER's SUCCESS is the payment's.
func TestLabsRefundQueryOutcomes(t *testing.T) {
	tests := []struct {
		mainType, state string
		want            RefundOutcome
	}{
		{"REFUND", "SUCCESS", RefundSucceeded},
		{"", "SUCCESS", RefundSucceeded},
		{"REFUND", "FAIL", RefundFailed},
		{"REFUND", "CLOSE", RefundFailed},
		{"REFUND", "UNKNOWN", RefundNotSeen},
		{"REFUND", "DEAL", RefundPending},
		{"REFUND", "INIT", RefundPending},
		{"PREORDER", "SUCCESS", RefundNotARefund},
		{"MICROPAY", "FAIL", RefundNotARefund},
		{"", "PART_REFUND", RefundNotARefund},
		{"", "REFUND", RefundNotARefund},
	}
	for _, tt := range tests {
		t.Run(tt.mainType+"/"+tt.state, func(t *testing.T) {
			got := TradeQueryResult{TradeMainType: tt.mainType, TradeState: tt.state}.refundAnswer()
			if got.Outcome != tt.want {
				t.Errorf("outcome = %v; want %v", got.Outcome, tt.want)
			}
		})
	}
}

// Only a code listed as a definite refusal of its endpoint refuses; every other answer — network
// and system codes, processing codes, codes nobody listed, HTTP errors, unverifiable answers — is
// unknown (docs/DECISIONS.md, "Lakala's answers").
func TestClientErrorClassification(t *testing.T) {
	refundIn := RefundRequest{API: RefundAPILabs, OutTradeNo: "R1", Amount: 500, Reason: "r", RequestIP: "10.1.2.3", OriginOutTradeNo: "O1", OriginTradeNo: "T1"}
	tests := []struct {
		name        string
		reply       func(http.ResponseWriter, *http.Request, string) (int, string)
		unsigned    bool
		otherSigner bool
		wantRefused string // expected listed refusal's code; empty means outcome unknown
	}{
		{name: "parameter check failed", reply: fixedReply(200, `{"code":"BBS11000","msg":"参数校验失败","resp_data":null}`), wantRefused: "BBS11000"},
		{name: "signature check failed", reply: fixedReply(200, `{"code":"BBS11200","msg":"验签失败","resp_data":"n/a"}`), wantRefused: "BBS11200"},
		{name: "a code nobody listed", reply: fixedReply(200, `{"code":"BBS11109","msg":"退款金额超限","resp_data":null}`)},
		{name: "network failure BBS00100", reply: fixedReply(200, `{"code":"BBS00100","msg":"网络请求失败"}`)},
		{name: "network timeout BBS00101", reply: fixedReply(200, `{"code":"BBS00101","msg":"网络请求超时"}`)},
		{name: "system error BBS00001", reply: fixedReply(200, `{"code":"BBS00001","msg":"系统异常"}`)},
		{name: "cashier network code 000100", reply: fixedReply(200, `{"code":"000100","msg":"网络请求失败"}`)},
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
			if tt.wantRefused != "" {
				if !IsRefused(err) || !errors.As(err, &gw) || gw.Code != tt.wantRefused {
					t.Fatalf("err = %v, want a refusal %s", err, tt.wantRefused)
				}
				if errors.Is(err, ErrOutcomeUnknown) {
					t.Errorf("definite refusal also reads as unknown: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrOutcomeUnknown) {
				t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
			}
			if IsRefused(err) {
				t.Errorf("unknown outcome also reads as a refusal: %v", err)
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
		_, err := fx.client.CreateCashierOrder(context.Background(), CreateCashierOrder{OutOrderNo: "O1", Amount: 1, Subject: "s", NotifyURL: "https://n", ExpiresAt: time.Now().Add(time.Hour)})
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
	validOrder := CreateCashierOrder{OutOrderNo: "O1", Amount: 1, Subject: "s", NotifyURL: "https://n", ExpiresAt: expires}
	validRefund := RefundRequest{API: RefundAPILabs, OutTradeNo: "R1", Amount: 1, Reason: "r", RequestIP: "1.2.3.4", OriginOutTradeNo: "O1", OriginTradeNo: "T1"}
	calls := map[string]func() error{
		"notify_url of 129 bytes": func() error {
			in := validOrder
			in.NotifyURL = "https://" + strings.Repeat("n", 121)
			_, err := fx.client.CreateCashierOrder(ctx, in)
			return err
		},
		"callback_url of 129 bytes (multi-byte)": func() error {
			in := validOrder
			in.CallbackURL = "https://x/" + strings.Repeat("页", 39) + "00" // 10 + 117 + 2
			_, err := fx.client.CreateCashierOrder(ctx, in)
			return err
		},
		"amount of 13 digits": func() error {
			in := validOrder
			in.Amount = MaxAmount + 1
			_, err := fx.client.CreateCashierOrder(ctx, in)
			return err
		},
		"no subject": func() error {
			in := validOrder
			in.Subject = ""
			_, err := fx.client.CreateCashierOrder(ctx, in)
			return err
		},
		"refund request_ip of 65 bytes": func() error {
			in := validRefund
			in.RequestIP = strings.Repeat("1", 65)
			_, err := fx.client.Refund(ctx, in)
			return err
		},
		"refund origin_log_no of 15 bytes": func() error {
			in := validRefund
			in.OriginLogNo = strings.Repeat("6", 15)
			_, err := fx.client.Refund(ctx, in)
			return err
		},
		"统一退货 out_trade_no of 33 bytes": func() error {
			in := validRefund
			in.API = RefundAPIRfd
			in.OutTradeNo = strings.Repeat("9", 33)
			_, err := fx.client.Refund(ctx, in)
			return err
		},
		"unknown refund API": func() error {
			in := validRefund
			in.API = "v2"
			_, err := fx.client.Refund(ctx, in)
			return err
		},
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
		"empty query": func() error { _, err := fx.client.QueryRefund(ctx, RefundAPILabs, ""); return err },
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
		"vpos_id of 33":   func(c *Config) { c.VposID = strings.Repeat("4", 33) },
		"term_no of 33":   func(c *Config) { c.TermNo = strings.Repeat("D", 33) },
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

// A response must name the configured platform certificate in Lklapi-Serial (hex; case and
// leading zeros do not matter, as in Lakala's Java SDK); one signed under another serial is
// unverifiable, so unknown.
func TestResponseSerialMustNameTheCertificate(t *testing.T) {
	tests := []struct {
		configured string
		wantOK     bool
	}{
		{"dfba8194c41b84cf", true}, // the fake answers Lklapi-Serial 00dfba8194c41b84cf
		{"DFBA8194C41B84CF", true},
		{"dfba8194c41b84d0", false},
	}
	for _, tt := range tests {
		t.Run(tt.configured, func(t *testing.T) {
			fx := newClientFixture(t, fixedReply(200, `{"code":"000000","msg":"成功","resp_data":{"order_status":"0"}}`))
			serial, _ := new(big.Int).SetString(tt.configured, 16)
			fx.client.cfg.PlatformSerial = serial
			_, err := fx.client.QueryCashierOrder(context.Background(), "O1")
			if tt.wantOK && err != nil {
				t.Fatalf("err = %v", err)
			}
			if !tt.wantOK && (!errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrBadSignature)) {
				t.Fatalf("err = %v; want an unknown outcome from a bad signature", err)
			}
		})
	}
}

//go:build unix

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/loomipay/loomipay/internal/apicheck"
	"github.com/loomipay/loomipay/internal/lambdaemu"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/pay"
)

// TestFunctionsUnderEmulator pays an order and refunds part of it with nothing but the five
// deployed binaries, reached only through their emulators' invocation endpoints with API
// Gateway v2 and schedule events, configured only through environment variables.
func TestFunctionsUnderEmulator(t *testing.T) {
	ctx := context.Background()
	rie, root, bootstraps := buildUnderEmulator(t)

	// The stack's PostgreSQL schema, stream prefix, sandbox and merchant key; its in-process API
	// and processor stay unused: the binaries under the emulators do their work.
	s := testenv.NewStack(t, testenv.StackOptions{})
	sb := s.Sandbox
	const appID = "e2e_app"
	key := s.NewKey(t, appID)

	// What template.yaml gives every function, pointed at this test's slice of PostgreSQL and
	// Redis and at the sandbox. Nothing of the test's own environment leaks in.
	env := func(fn string, extra ...string) []string {
		return append([]string{
			"PATH=" + os.Getenv("PATH"),
			"AWS_LAMBDA_FUNCTION_NAME=loomipay-e2e-" + fn,
			"AWS_LAMBDA_FUNCTION_TIMEOUT=10",
			"DATABASE_URL=" + testenv.SchemaURL(s.Schema),
			"DATABASE_MAX_CONNS=2",
			"REDIS_URL=" + testenv.RedisURL(),
			"STREAM_PREFIX=" + s.Streams.Name(""),
			"LAKALA_BASE_URL=" + s.SandboxURL,
			"LAKALA_APP_ID=" + testenv.LakalaAppID,
			"LAKALA_SERIAL_NO=" + testenv.LakalaSerialNo,
			"LAKALA_MERCHANT_NO=" + testenv.LakalaMerchantNo,
			"LAKALA_TERM_NO=" + testenv.LakalaTermNo,
			"LAKALA_VPOS_ID=" + testenv.LakalaVposID,
			"LAKALA_PLATFORM_CERT=" + string(sb.PlatformCertPEM()),
			"LOG_LEVEL=info",
		}, extra...)
	}
	fns := map[string]*lambdaemu.Emulator{}
	for _, fn := range []string{"createorder", "getorder", "refund", "webhook"} {
		fns[fn] = startFunction(t, rie, fn, bootstraps[fn], env(fn))
	}
	relay := &notifyRelay{t: t, sample: loadEvent(t, root, "webhook.json"), webhook: fns["webhook"]}
	relaySrv := httptest.NewServer(relay)
	t.Cleanup(relaySrv.Close)
	fns["processor"] = startFunction(t, rie, "processor", bootstraps["processor"], env("processor",
		"LAKALA_PRIVATE_KEY="+string(lakala.MarshalPrivateKeyPEM(s.MerchantKey)),
		"LAKALA_NOTIFY_URL="+relaySrv.URL+"/webhooks/lakala",
		"LAKALA_TIMEOUT=5s",
		// The processor leaves 5 s before its deadline; with 10 s it would work 5 s, but an idle
		// second ends the run as soon as the tasks are done.
		"PROCESSOR_IDLE_EXIT=1s",
	))
	t.Cleanup(func() {
		t.Log("under the emulator (a processor invocation lasts until PROCESSOR_IDLE_EXIT without tasks):")
		for _, fn := range functionNames {
			t.Log(timings(fn, fns[fn]))
		}
	})

	f := &fleet{t: t, ctx: ctx, root: root, fns: fns, key: key, appID: appID}
	call, runProcessor, getOrder := f.call, f.runProcessor, f.getOrder

	// A wrong key: the error leaves through the adapter as API Gateway's 401 with the JSON body.
	t.Run("bad key", func(t *testing.T) {
		ev := withPath(withKey(loadEvent(t, root, "getorder.json"), "lp_000000000000_"+strings.Repeat("0", 40)),
			"/api/v1/payment-orders/nope", "app_id="+appID, map[string]string{"merchant_order_id": "nope"})
		resp, err := fns["getorder"].HTTP(ctx, ev)
		if err != nil {
			t.Fatalf("getorder: %v", err)
		}
		apicheck.Event(t, "getorder", ev, resp)
		var body struct{ Code, Detail string }
		if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
			t.Fatalf("401 body %q is not JSON: %v", resp.Body, err)
		}
		if resp.StatusCode != http.StatusUnauthorized || body.Code != pay.CodeUnauthorized || body.Detail == "" {
			t.Errorf("bad key: %d %s, want 401 with code %q and a detail", resp.StatusCode, resp.Body, pay.CodeUnauthorized)
		}
		if ct := resp.Headers["Content-Type"]; !strings.HasPrefix(ct, "application/json") {
			t.Errorf("bad key: Content-Type %q, want application/json", ct)
		}
	})
	if t.Failed() {
		return
	}

	merchantOrderID := testenv.UniqueName("E2E_")
	created := testenv.Decode[testenv.Order](t, call("createorder", withJSONBody(t,
		withKey(loadEvent(t, root, "createorder.json"), key),
		map[string]any{"app_id": appID, "merchant_order_id": merchantOrderID, "amount": 10000}), http.StatusAccepted))
	if created.Status != "pending" || created.MerchantOrderID != merchantOrderID || created.Amount != 10000 {
		t.Fatalf("created order %+v, want pending, %s, 10000", created, merchantOrderID)
	}

	if st := runProcessor(); st.Handled < 1 {
		t.Fatalf("processor run %+v handled no task; the order's task did not reach it", st)
	}
	processing := getOrder(merchantOrderID)
	view, ok := sb.Order(created.OutOrderNo())
	if !ok {
		t.Fatalf("order %s has no cashier order at the sandbox", merchantOrderID)
	}
	paymentURL, _ := processing.ExtraData["payment_url"].(string)
	if processing.Status != "processing" || paymentURL == "" || paymentURL != view.CounterURL {
		t.Fatalf("order after the processor: %s, payment_url %q; want processing with the sandbox's counter_url %q",
			processing.Status, paymentURL, view.CounterURL)
	}

	// The sandbox notifies LAKALA_NOTIFY_URL, the relay, which invokes the webhook binary.
	if err := sb.Pay(ctx, view.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := sb.WaitNotifications(waitCtx); err != nil {
		t.Fatal(err)
	}
	view, _ = sb.Order(created.OutOrderNo())
	if relayed := relay.Answers(); len(relayed) == 0 || !view.NotifyAcked || !view.NotifyAttempts[0].Acked {
		t.Fatalf("the webhook did not acknowledge the first notification: its answers %q, the sandbox's attempts %+v",
			relayed, view.NotifyAttempts)
	}
	succeeded := getOrder(merchantOrderID)
	tradeNo := view.Trades[0].TradeNo
	if succeeded.Status != "succeeded" || succeeded.GatewayTransactionID == nil || *succeeded.GatewayTransactionID != tradeNo {
		t.Fatalf("order after payment: %s, gateway_transaction_id %v; want succeeded with %s",
			succeeded.Status, succeeded.GatewayTransactionID, tradeNo)
	}

	refund := testenv.Decode[testenv.Refund](t, call("refund", withJSONBody(t,
		withKey(loadEvent(t, root, "refund-create.json"), key),
		map[string]any{"app_id": appID, "payment_order_id": created.ID, "amount": 3000}), http.StatusAccepted))
	if refund.Status != "pending" || refund.PaymentOrderID != created.ID || refund.Amount != 3000 {
		t.Fatalf("created refund %+v, want pending, of %s, 3000", refund, created.ID)
	}
	if st := runProcessor(); st.Handled < 1 {
		t.Fatalf("processor run %+v handled no task; the refund's task did not reach it", st)
	}
	refunded := testenv.Decode[testenv.Refund](t, call("refund", withPath(withKey(loadEvent(t, root, "refund-get.json"), key),
		"/api/v1/refund-orders/"+refund.ID, "app_id="+appID, map[string]string{"refund_order_id": refund.ID}), http.StatusOK))
	if refunded.Status != "succeeded" || refunded.GatewayRefundID == nil || *refunded.GatewayRefundID == "" {
		t.Fatalf("refund after the processor: %s, gateway_refund_id %v; want succeeded with the sandbox's id",
			refunded.Status, refunded.GatewayRefundID)
	}
	if total := sb.RefundedTotal(created.OutOrderNo()); total != 3000 {
		t.Errorf("the sandbox refunded %d, want 3000", total)
	}

	paid := testenv.PaymentMessage(succeeded, "processing", "succeeded")
	paid["gateway_transaction_id"] = tradeNo
	testenv.CheckMessages(t, s.Results(t, "payment_results"), testenv.ProcessingMessage(processing), paid)
	refundDone := testenv.RefundMessage(refunded, "processing", "succeeded")
	refundDone["gateway_refund_id"] = *refunded.GatewayRefundID
	testenv.CheckMessages(t, s.Results(t, "refund_results"), testenv.RefundMessage(refunded, "pending", "processing"), refundDone)
}

// notifyRelay stands where API Gateway stands in front of the webhook: it turns each HTTP
// notification into an HTTP API (payload 2.0) event for the webhook's emulator and the
// function's response back into HTTP.
type notifyRelay struct {
	t       testing.TB // exchanges are held to api/openapi.yaml
	sample  events.APIGatewayV2HTTPRequest
	webhook *lambdaemu.Emulator

	mu      sync.Mutex
	answers []string
	isDown  bool // answer 503 without reaching the webhook (an outage)
}

// down makes the relay answer 503 (true) or reach the webhook again (false).
func (r *notifyRelay) down(d bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.isDown = d
}

func (r *notifyRelay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	isDown := r.isDown
	r.mu.Unlock()
	if isDown {
		r.record("503 (down)")
		http.Error(w, "webhook down", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ev := withPath(r.sample, req.URL.Path, req.URL.RawQuery, nil)
	// API Gateway lowercases header names and joins repeated headers with commas.
	ev.Headers = make(map[string]string, len(req.Header))
	for name, values := range req.Header {
		ev.Headers[strings.ToLower(name)] = strings.Join(values, ",")
	}
	ev.RequestContext.HTTP.Method = req.Method
	ev.RequestContext.TimeEpoch = time.Now().UnixMilli()
	ev.Body, ev.IsBase64Encoded = string(body), false

	resp, err := r.webhook.HTTP(req.Context(), ev)
	if err != nil {
		r.record("webhook: " + err.Error())
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	apicheck.Event(r.t, "webhook", ev, resp)
	out := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if out, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			r.record(err.Error())
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
	}
	r.record(fmt.Sprintf("%d %s", resp.StatusCode, out))
	for name, value := range resp.Headers {
		w.Header().Set(name, value)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

func (r *notifyRelay) record(answer string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers = append(r.answers, answer)
}

// Answers are the webhook's answers, "status body", in order.
func (r *notifyRelay) Answers() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.answers...)
}

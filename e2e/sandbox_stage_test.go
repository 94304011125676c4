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
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/loomipay/loomipay/internal/lambdaemu"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

// TestSandboxStageUnderEmulator runs a sandbox stage as template.yaml deploys it, with nothing but
// the binaries under their emulators: the sandbox function set up by its custom resource (which
// answers with the platform certificate the other functions are then given), reached as its own
// HTTP API under /sandbox/, and the service's functions configured with STAGE=sandbox,
// LAKALA_SANDBOX=true, that URL and that certificate. An order is created, paid on the sandbox's
// cashier page (whose notification the sandbox delivers before the page answers), refunded; a
// notification the webhook refused is retried by the sandbox's schedule. Under STAGE=prod the
// sandbox function refuses to start, and says so to CloudFormation.
func TestSandboxStageUnderEmulator(t *testing.T) {
	ctx := context.Background()
	rie, root, bootstraps := buildUnderEmulator(t, "sandbox", "createorder", "getorder", "refund", "webhook", "processor")
	store, schema := testenv.PostgresSchema(t)
	t.Cleanup(func() { testenv.DropSchema(t, schema+"_lakala") })
	rdb, prefix := testenv.Redis(t)
	merchantKey := string(lakala.MarshalPrivateKeyPEM(testenv.MerchantKey(t)))

	base := func(fn string, extra ...string) []string {
		return append([]string{
			"PATH=" + os.Getenv("PATH"),
			"AWS_LAMBDA_FUNCTION_NAME=loomipay-sandbox-" + fn,
			"AWS_LAMBDA_FUNCTION_TIMEOUT=29",
			"DATABASE_URL=" + testenv.SchemaURL(schema),
			"DATABASE_MAX_CONNS=2",
			"STAGE=sandbox",
			"LAKALA_SANDBOX=true",
			// A sandbox stage may play Lakala's public test merchant.
			"LAKALA_APP_ID=" + testenv.LakalaAppID,
			"LAKALA_SERIAL_NO=" + testenv.LakalaSerialNo,
			"LAKALA_MERCHANT_NO=" + testenv.LakalaMerchantNo,
			"LAKALA_TERM_NO=" + testenv.LakalaTermNo,
			"LAKALA_VPOS_ID=" + testenv.LakalaVposID,
			"LOG_LEVEL=info",
		}, extra...)
	}

	// CloudFormation's side of the SandboxSetup custom resource.
	answers := make(chan map[string]any, 4)
	cfnEndpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var resp map[string]any
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPut || json.Unmarshal(b, &resp) != nil {
			t.Errorf("ResponseURL got %s %q; want a PUT of a JSON response", r.Method, b)
		}
		answers <- resp
	}))
	t.Cleanup(cfnEndpoint.Close)
	setup := func(fn *lambdaemu.Emulator, requestType string) map[string]any {
		t.Helper()
		ev, _ := json.Marshal(map[string]any{
			"RequestType": requestType, "ResponseURL": cfnEndpoint.URL + "/presigned", "RequestId": "req-" + requestType,
			"StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/loomipay-sandbox/1", "LogicalResourceId": "SandboxSetup",
			"ResourceType": "Custom::LakalaSandbox", "PhysicalResourceId": "loomipay-lakala-sandbox",
			"ResourceProperties": map[string]any{"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:loomipay-sandbox-sandbox"},
		})
		if _, err := fn.Invoke(ctx, ev); err != nil {
			t.Fatalf("%s: %v", requestType, err)
		}
		select {
		case a := <-answers:
			return a
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no answer at the ResponseURL", requestType)
			return nil
		}
	}

	// Under STAGE=prod the sandbox refuses to start, and fails the deploy with the reason.
	prod := startFunction(t, rie, "sandbox-prod", bootstraps["sandbox"], append(base("sandbox", "LAKALA_PRIVATE_KEY="+merchantKey), "STAGE=prod"))
	if a := setup(prod, "Create"); a["Status"] != "FAILED" || !strings.Contains(fmt.Sprint(a["Reason"]), "prod") {
		t.Fatalf("the sandbox's setup under STAGE=prod answered %v; want FAILED naming prod", a)
	}

	sandboxFn := startFunction(t, rie, "sandbox", bootstraps["sandbox"], base("sandbox", "LAKALA_PRIVATE_KEY="+merchantKey))
	answer := setup(sandboxFn, "Create")
	data, _ := answer["Data"].(map[string]any)
	cert, _ := data["PlatformCert"].(string)
	if answer["Status"] != "SUCCESS" || !strings.Contains(cert, "BEGIN CERTIFICATE") {
		t.Fatalf("the sandbox's setup answered %v; want SUCCESS with its platform certificate", answer)
	}
	if again := setup(sandboxFn, "Update"); again["Status"] != "SUCCESS" || fmt.Sprint(again["Data"]) != fmt.Sprint(answer["Data"]) {
		t.Fatalf("an update of the setup answered %v; want the same certificate", again)
	}
	sandboxAPI := &apiRelay{fn: sandboxFn}
	sandboxSrv := httptest.NewServer(sandboxAPI)
	t.Cleanup(sandboxSrv.Close)
	lakalaURL := sandboxSrv.URL + "/sandbox"

	fns := map[string]*lambdaemu.Emulator{}
	service := func(fn string, extra ...string) []string {
		return base(fn, append([]string{"REDIS_URL=" + testenv.RedisURL(), "STREAM_PREFIX=" + prefix,
			"LAKALA_BASE_URL=" + lakalaURL, "LAKALA_PLATFORM_CERT=" + cert}, extra...)...)
	}
	for _, fn := range []string{"createorder", "getorder", "refund", "webhook"} {
		fns[fn] = startFunction(t, rie, fn, bootstraps[fn], service(fn, "LAKALA_PRIVATE_KEY="+merchantKey))
	}
	relay := &notifyRelay{t: t, sample: loadEvent(t, root, "webhook.json"), webhook: fns["webhook"]}
	relaySrv := httptest.NewServer(relay)
	t.Cleanup(relaySrv.Close)
	fns["processor"] = startFunction(t, rie, "processor", bootstraps["processor"], service("processor",
		"LAKALA_PRIVATE_KEY="+merchantKey, "LAKALA_NOTIFY_URL="+relaySrv.URL+"/webhooks/lakala", "LAKALA_TIMEOUT=5s",
		"REFUND_REQUEST_IP=203.0.113.10", "PROCESSOR_IDLE_EXIT=1s", "AWS_LAMBDA_FUNCTION_TIMEOUT=10"))

	const appID = "sandbox_app"
	key := newAppKey(t, store, streams.New(rdb, streams.Config{Prefix: prefix}), appID)
	f := &fleet{t: t, ctx: ctx, root: root, fns: fns, key: key, appID: appID}
	call, runProcessor, getOrder := f.call, f.runProcessor, f.getOrder

	created := testenv.Decode[testenv.Order](t, call("createorder", withJSONBody(t, withKey(loadEvent(t, root, "createorder.json"), key),
		map[string]any{"app_id": appID, "merchant_order_id": "SBX_1", "amount": 8800}), http.StatusAccepted))
	if st := runProcessor(); st.Handled < 1 {
		t.Fatalf("processor run %+v handled no task", st)
	}
	processing := getOrder("SBX_1")
	page, _ := processing.ExtraData["payment_url"].(string)
	if processing.Status != "processing" || !strings.HasPrefix(page, lakalaURL+"/counter/") {
		t.Fatalf("order %s with payment_url %q; want processing, on the sandbox's cashier page under %s", processing.Status, page, lakalaURL)
	}
	// The payer presses Pay on the page the main app was given: the sandbox delivers the
	// notification (through the webhook's API) before the page answers.
	form := url.Values{"action": {"pay"}}
	resp, err := http.PostForm(page, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pay on %s: HTTP %d", page, resp.StatusCode)
	}
	if got := getOrder("SBX_1"); got.Status != "succeeded" {
		t.Fatalf("order after the payer paid: %s; want succeeded (notified before the page answered); the webhook answered %v", got.Status, relay.Answers())
	}

	refund := testenv.Decode[testenv.Refund](t, call("refund", withJSONBody(t, withKey(loadEvent(t, root, "refund-create.json"), key),
		map[string]any{"app_id": appID, "payment_order_id": created.ID, "amount": 800}), http.StatusAccepted))
	runProcessor()
	got := testenv.Decode[testenv.Refund](t, call("refund", withPath(withKey(loadEvent(t, root, "refund-get.json"), key),
		"/api/v1/refund-orders/"+refund.ID, "app_id="+appID, map[string]string{"refund_order_id": refund.ID}), http.StatusOK))
	if got.Status != "succeeded" {
		t.Fatalf("refund: %s; want succeeded", got.Status)
	}

	// A second order whose notification the webhook cannot take at first (its relay is down):
	// the sandbox's schedule delivers it once due.
	call("createorder", withJSONBody(t, withKey(loadEvent(t, root, "createorder.json"), key),
		map[string]any{"app_id": appID, "merchant_order_id": "SBX_2", "amount": 900}), http.StatusAccepted)
	runProcessor()
	page2, _ := getOrder("SBX_2").ExtraData["payment_url"].(string)
	relay.down(true)
	resp, err = http.PostForm(page2, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := getOrder("SBX_2"); got.Status != "processing" {
		t.Fatalf("order whose notification was refused: %s; want processing still", got.Status)
	}
	relay.down(false)
	time.Sleep(1100 * time.Millisecond) // Lakala's first retry is due a second later
	if _, err := sandboxFn.Invoke(ctx, []byte(`{"version":"0","source":"aws.scheduler","detail-type":"Scheduled Event","detail":{}}`)); err != nil {
		t.Fatalf("the sandbox's schedule: %v", err)
	}
	if got := getOrder("SBX_2"); got.Status != "succeeded" {
		t.Fatalf("after the sandbox's schedule: %s; want succeeded (the retry delivered)", got.Status)
	}
	// The knobs and the ledger are there too, under /sandbox/.
	ledger, err := http.Get(lakalaURL + "/ledger")
	if err != nil {
		t.Fatal(err)
	}
	ledger.Body.Close()
	if ledger.StatusCode != http.StatusOK {
		t.Errorf("GET %s/ledger: HTTP %d", lakalaURL, ledger.StatusCode)
	}
}

// newAppKey registers an app and returns a new API key of it, as loomipay keys create does.
func newAppKey(t *testing.T, store *postgres.Store, st *streams.Streams, appID string) string {
	t.Helper()
	ctx := context.Background()
	if err := store.EnsureApp(ctx, appID); err != nil {
		t.Fatal(err)
	}
	key, _, err := service.New(store, st, testenv.Logger(), service.Config{}).CreateAPIKey(ctx, appID, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// apiRelay stands where API Gateway stands in front of a function: each HTTP request becomes an
// HTTP API (payload 2.0) event for the function's emulator, its domain the relay's own address,
// and the function's response goes back as HTTP.
type apiRelay struct {
	fn *lambdaemu.Emulator
}

func (a *apiRelay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "ANY /sandbox/{proxy+}", RawPath: req.URL.Path, RawQueryString: req.URL.RawQuery,
		Headers: map[string]string{}, Body: string(body)}
	for name, values := range req.Header {
		ev.Headers[strings.ToLower(name)] = strings.Join(values, ",")
	}
	ev.Headers["host"], ev.Headers["x-forwarded-proto"] = req.Host, "http"
	ev.RequestContext.DomainName = req.Host
	ev.RequestContext.HTTP = events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: req.Method, Path: req.URL.Path, Protocol: "HTTP/1.1", SourceIP: "203.0.113.10"}
	ev.RequestContext.Stage = "$default"
	ev.RequestContext.TimeEpoch = time.Now().UnixMilli()
	resp, err := a.fn.HTTP(req.Context(), ev)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if out, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
	}
	for name, value := range resp.Headers {
		w.Header().Set(name, value)
	}
	for name, values := range resp.MultiValueHeaders {
		for _, v := range values {
			w.Header().Add(name, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

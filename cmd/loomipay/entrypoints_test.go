package main

import (
	"context"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/loomipay/loomipay/internal/lambdaemu"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/console"
	"github.com/loomipay/loomipay/shared/httpapi"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/service"
)

// Every entry point — loomipay serve, loomipay dev and the Lambda functions — offers the same
// routes with the same checks (testenv.CheckEntryPoint). serve used to answer every close with
// 503 (it never wired the payments side), and that before the app check.

// entryFixture registers app shop_cn with a key and a live order, and other_app with a key.
func entryFixture(t *testing.T, store *postgres.Store, createOrder func(key string) string) testenv.EntryFixture {
	t.Helper()
	ctx := context.Background()
	svc := service.New(store, testenv.Streams(t), testenv.Logger(), service.Config{})
	f := testenv.EntryFixture{AppID: "shop_cn"}
	for app, key := range map[string]*string{"shop_cn": &f.Key, "other_app": &f.OtherKey} {
		if err := store.EnsureApp(ctx, app); err != nil {
			t.Fatal(err)
		}
		var err error
		if *key, _, err = svc.CreateAPIKey(ctx, app, "entry points"); err != nil {
			t.Fatal(err)
		}
	}
	f.Order = createOrder(f.Key)
	return f
}

// createVia creates a pending order of shop_cn through an entry point.
func createVia(t *testing.T, send testenv.EntryPoint) func(key string) string {
	return func(key string) string {
		t.Helper()
		id := testenv.UniqueName("ENTRY_")
		status, _, body := send(t, "POST", "/api/v1/payment-orders", key,
			`{"merchant_order_id":"`+id+`","amount":500,"order_type":"payment","subject":"entry points"}`)
		if status != http.StatusAccepted {
			t.Fatalf("create = %d %s", status, body)
		}
		return id
	}
}

func TestServeOffersTheRoutesAndChecksOfTheFunctions(t *testing.T) {
	store := useTestServers(t)
	startSandboxProcess(t)
	addr := freeAddr(t)
	t.Setenv("LAKALA_NOTIFY_URL", "http://"+addr+"/webhooks/lakala")
	var out lambdaemu.LockedBuffer
	start(t, &out, "serve", "--addr", addr)
	base := "http://" + addr
	testenv.Eventually(t, 10*time.Second, "serve to listen", func() bool { return strings.Contains(out.String(), base) })
	send := testenv.HTTPEntryPoint(base)
	f := entryFixture(t, store, createVia(t, send))
	f.Addr = addr
	testenv.CheckEntryPoint(t, send, f)
}

func TestDevOffersTheRoutesAndChecksOfTheFunctions(t *testing.T) {
	store := useTestServers(t)
	var out lambdaemu.LockedBuffer
	start(t, &out, "dev", "--addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0", "--state-dir", t.TempDir())
	var base string
	testenv.Eventually(t, 20*time.Second, "dev to print its banner", func() bool {
		m := regexp.MustCompile(`API and webhook\s+(http://\S+)`).FindStringSubmatch(out.String())
		if m != nil {
			base = m[1]
		}
		return m != nil && strings.Contains(out.String(), "Ctrl-C")
	})
	send := testenv.HTTPEntryPoint(base)
	f := entryFixture(t, store, createVia(t, send))
	f.Addr = strings.TrimPrefix(base, "http://")
	testenv.CheckEntryPoint(t, send, f)
}

// TestLambdaFunctionsOfferTheRoutesAndChecks builds each HTTP function's handler as its main.go
// does (config from the environment, config.Deps.APIHandler for the function; the console's
// own), and routes API Gateway (HTTP API, payload 2.0) events to them as template.yaml does.
func TestLambdaFunctionsOfferTheRoutesAndChecks(t *testing.T) {
	store := useTestServers(t)
	startSandboxProcess(t)
	t.Setenv("LAKALA_NOTIFY_URL", "https://example.invalid/webhooks/lakala")
	deps, err := config.LoadAndOpen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(deps.Close)
	type function struct {
		routes  []string // method and path patterns, API Gateway's syntax
		handler http.Handler
	}
	var functions []function
	for _, fn := range []string{httpapi.FunctionCreateOrder, httpapi.FunctionGetOrder, httpapi.FunctionRefund, httpapi.FunctionWebhook} {
		f := function{handler: deps.APIHandler(fn)}
		for _, r := range httpapi.RoutesOf(fn) {
			f.routes = append(f.routes, r.Method+" "+r.Path)
		}
		functions = append(functions, f)
	}
	con := function{handler: console.New(deps.Ops(), console.Config{Logger: deps.Log}).Handler()}
	for _, r := range console.Routes {
		con.routes = append(con.routes, r.Method+" "+r.Path)
	}
	functions = append(functions, con)

	send := func(t testing.TB, method, path, key, body string) (int, http.Header, []byte) {
		t.Helper()
		rawPath, rawQuery, _ := strings.Cut(path, "?")
		ev := events.APIGatewayV2HTTPRequest{
			Version: "2.0", RawPath: rawPath, RawQueryString: rawQuery, Body: body,
			Headers: map[string]string{"host": "abc123.execute-api.us-east-1.amazonaws.com"},
			RequestContext: events.APIGatewayV2HTTPRequestContext{
				APIID: "abc123", Stage: "$default", RequestID: "entry", DomainName: "abc123.execute-api.us-east-1.amazonaws.com",
				HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: rawPath, Protocol: "HTTP/1.1", SourceIP: "203.0.113.10"},
			},
		}
		if key != "" {
			ev.Headers["authorization"] = "Bearer " + key
		}
		if body != "" {
			ev.Headers["content-type"] = "application/json"
		}
		for _, f := range functions {
			for _, route := range f.routes {
				if !gatewayMatches(route, method, rawPath) {
					continue
				}
				resp, err := httpadapter.NewV2(f.handler).ProxyWithContext(context.Background(), ev)
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				header := http.Header{}
				for k, v := range resp.Headers {
					header.Set(k, v)
				}
				b := []byte(resp.Body)
				if resp.IsBase64Encoded {
					b, _ = base64.StdEncoding.DecodeString(resp.Body)
				}
				return resp.StatusCode, header, b
			}
		}
		// API Gateway's own answer to a path no route matches.
		return http.StatusNotFound, http.Header{"Content-Type": {"application/json"}}, []byte(`{"message":"Not Found"}`)
	}
	testenv.CheckEntryPoint(t, send, entryFixture(t, store, createVia(t, send)))
}

// gatewayMatches reports whether API Gateway routes method and path to route ("METHOD /a/{x}",
// "ANY /console/{proxy+}"): {x} takes one segment, {proxy+} the rest.
func gatewayMatches(route, method, path string) bool {
	m, pattern, _ := strings.Cut(route, " ")
	if m != "ANY" && m != method {
		return false
	}
	want, got := strings.Split(pattern, "/"), strings.Split(path, "/")
	for i, seg := range want {
		if strings.HasSuffix(seg, "+}") {
			return len(got) > i
		}
		if i >= len(got) || (!strings.HasPrefix(seg, "{") && seg != got[i]) || (i > 0 && got[i] == "") {
			return false
		}
	}
	return len(want) == len(got)
}

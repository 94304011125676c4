//go:build unix

package e2e

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/service"
)

// The console's binary (functions/console) as deployed, under the emulator: an anonymous visit
// is sent to the login page, and a login with an operator token opens a session whose cookie
// is Secure, HttpOnly and SameSite=Strict.
func TestConsoleUnderEmulator(t *testing.T) {
	ctx := context.Background()
	rie, _, bootstraps := buildUnderEmulator(t, "console")
	store, schema := testenv.PostgresSchema(t)
	st := testenv.Streams(t)
	token, _, err := ops.New(service.New(store, st, testenv.Logger(), service.Config{})).CreateOperator(ctx, ops.Actor{Name: "e2e", Role: ops.RoleAdmin, Via: "cli"}, "e2e_admin", ops.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	fn := startFunction(t, rie, "console", bootstraps["console"], []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_LAMBDA_FUNCTION_NAME=loomipay-e2e-console",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=10",
		"DATABASE_URL=" + testenv.SchemaURL(schema),
		"DATABASE_MAX_CONNS=2",
		"REDIS_URL=" + testenv.RedisURL(),
		"STREAM_PREFIX=" + st.Name(""),
		"LOG_LEVEL=info",
	})
	t.Cleanup(func() { t.Log(timings("console", fn)) })

	request := func(method, path, body string, headers map[string]string, cookies []string) events.APIGatewayV2HTTPResponse {
		t.Helper()
		route := "ANY /console/{proxy+}"
		if path == "/console" {
			route = "GET /console"
		}
		h := map[string]string{"host": "console.example", "user-agent": "e2e"}
		for k, v := range headers {
			h[k] = v
		}
		ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: route, RawPath: path, Headers: h, Cookies: cookies, Body: body}
		ev.RequestContext.HTTP.Method, ev.RequestContext.HTTP.Path = method, path
		ev.RequestContext.DomainName, ev.RequestContext.Stage = "console.example", "$default"
		resp, err := fn.HTTP(ctx, ev)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp
	}

	resp := request("GET", "/console", "", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Headers["Location"], "/console/login") {
		t.Fatalf("GET /console = %d %v; want 303 to the login page", resp.StatusCode, resp.Headers)
	}
	resp = request("GET", "/console/login", "", nil, nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(resp.Body)
	if resp.StatusCode != http.StatusOK || m == nil || len(resp.Cookies) != 1 {
		t.Fatalf("GET /console/login = %d, cookies %v", resp.StatusCode, resp.Cookies)
	}
	loginCookie, _, _ := strings.Cut(resp.Cookies[0], ";")
	form := url.Values{"csrf": {m[1]}, "token": {token}, "next": {"/console/reviews"}}.Encode()
	resp = request("POST", "/console/login", form, map[string]string{"content-type": "application/x-www-form-urlencoded"}, []string{loginCookie})
	if resp.StatusCode != http.StatusSeeOther || resp.Headers["Location"] != "/console/reviews" {
		t.Fatalf("POST /console/login = %d %v %s", resp.StatusCode, resp.Headers, resp.Body)
	}
	var session string
	for _, c := range resp.Cookies {
		if strings.HasPrefix(c, "loomipay_console=") && !strings.HasPrefix(c, "loomipay_console=;") {
			session = c
		}
	}
	for _, attr := range []string{"HttpOnly", "Secure", "SameSite=Strict", "Path=/console"} {
		if !strings.Contains(session, attr) {
			t.Errorf("session cookie %q lacks %s", session, attr)
		}
	}
	sessionCookie, _, _ := strings.Cut(session, ";")
	resp = request("GET", "/console/reviews", "", nil, []string{sessionCookie})
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Body, "e2e_admin · operator") {
		t.Fatalf("GET /console/reviews with the session = %d", resp.StatusCode)
	}
}

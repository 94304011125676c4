package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/console"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/webhooks"
)

type env struct {
	srv   *httptest.Server
	ops   *ops.Ops
	store *postgres.Store
}

func newEnv(t *testing.T, cfg console.Config) env {
	t.Helper()
	store := testenv.Postgres(t)
	svc := service.New(store, testenv.Streams(t), testenv.Logger(), service.Config{})
	hooks, err := webhooks.New(store.Pool(), webhooks.Config{SecretKey: "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100", AllowLoopback: true}, testenv.Logger())
	if err != nil {
		t.Fatal(err)
	}
	o := ops.New(svc).WithWebhooks(hooks)
	cfg.Logger = testenv.Logger()
	srv := httptest.NewServer(console.New(o, cfg).Handler())
	t.Cleanup(srv.Close)
	return env{srv: srv, ops: o, store: store}
}

type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (e env) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: e.srv.URL, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.base+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in\n%s", body)
	}
	return m[1]
}

func (b *browser) login(token string) *http.Response {
	b.t.Helper()
	_, page := b.get("/console/login")
	resp, _ := b.post("/console/login", url.Values{"csrf": {csrfOf(b.t, page)}, "token": {token}, "next": {"/console/reviews"}})
	return resp
}

func operatorToken(t *testing.T, e env, name string, role ops.Role) string {
	t.Helper()
	tok, _, err := e.ops.CreateOperator(context.Background(), ops.Actor{Name: "test", Role: ops.RoleAdmin, Via: "cli"}, name, role)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestLoginSessionCookieAndLogout(t *testing.T) {
	e := newEnv(t, console.Config{}) // production cookies: Secure
	tok := operatorToken(t, e, "olga", ops.RoleOperator)
	b := e.browser(t)

	resp, _ := b.get("/console/orders")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login?next=") {
		t.Fatalf("unauthenticated page = %d → %s; want a redirect to login", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = b.post("/console/reviews/1/resolve", url.Values{"outcome": {"x"}, "note": {"y"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated post = %d; want 401", resp.StatusCode)
	}

	// A login form post without the login page's CSRF cookie is refused.
	resp, _ = b.post("/console/login", url.Values{"csrf": {"forged"}, "token": {tok}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without CSRF = %d; want 403", resp.StatusCode)
	}
	_, page := b.get("/console/login")
	resp, body := b.post("/console/login", url.Values{"csrf": {csrfOf(t, page)}, "token": {"lpo_bad_token"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "unknown or disabled") {
		t.Fatalf("bad token login = %d", resp.StatusCode)
	}

	resp = b.login(tok)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/reviews" {
		t.Fatalf("login = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "loomipay_console" && c.Value != "" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || !session.Secure || session.SameSite != http.SameSiteStrictMode || session.Path != "/console" || session.MaxAge != 8*3600 {
		t.Fatalf("session cookie %+v; want HttpOnly, Secure, SameSite=Strict, Path=/console, 8 h", session)
	}
	if got := e.scalar(t, `SELECT count(*)::text FROM operator_sessions WHERE token_hash = sha256($1::bytea)`, []byte(session.Value)); got != "1" {
		t.Fatalf("session stored by hash: %s rows", got)
	}
	// The jar does not send Secure cookies over http; a real browser on https does.
	session.Secure = false
	u, _ := url.Parse(e.srv.URL + "/console")
	b.c.Jar.SetCookies(u, []*http.Cookie{session})

	resp, body = b.get("/console")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "olga · operator") {
		t.Fatalf("overview = %d", resp.StatusCode)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	resp, _ = b.post("/console/logout", url.Values{"csrf": {csrfOf(t, body)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout = %d", resp.StatusCode)
	}
	if got := e.scalar(t, `SELECT count(*)::text FROM operator_sessions`); got != "0" {
		t.Fatalf("%s sessions after logout", got)
	}
	b.c.Jar.SetCookies(u, []*http.Cookie{session}) // a stolen cookie after logout
	if resp, _ := b.get("/console"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("page with a logged-out cookie = %d; want a redirect to login", resp.StatusCode)
	}
}

func (e env) scalar(t *testing.T, q string, args ...any) string {
	t.Helper()
	var s string
	if err := e.store.Pool().QueryRow(context.Background(), q, args...).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSessionExpires(t *testing.T) {
	e := newEnv(t, console.Config{Dev: true, SessionTTL: time.Second})
	b := e.browser(t)
	b.login(operatorToken(t, e, "vic", ops.RoleViewer))
	if resp, _ := b.get("/console"); resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh session = %d", resp.StatusCode)
	}
	time.Sleep(1100 * time.Millisecond)
	if resp, _ := b.get("/console"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("expired session = %d; want a redirect to login", resp.StatusCode)
	}
}

func TestPagesRolesAndCSRF(t *testing.T) {
	e := newEnv(t, console.Config{Dev: true})
	ctx := context.Background()
	id := testenv.SeedOrder(t, e.store, "shop", "M-1", "succeeded", 12345)
	refundID := testenv.SeedRefund(t, e.store, id, "processing", 2345)
	caseID := testenv.SeedReviewCase(t, e.store, ops.KindRefundOutcomeUnknown, id, refundID, "unknown at Lakala")

	viewer := e.browser(t)
	viewer.login(operatorToken(t, e, "vic", ops.RoleViewer))
	op := e.browser(t)
	op.login(operatorToken(t, e, "olga", ops.RoleOperator))

	for _, p := range []string{"/console", "/console/orders?q=M-1", "/console/orders/" + id, "/console/refunds", "/console/reviews", "/console/dlq", "/console/apps", "/console/audit"} {
		resp, body := viewer.get(p)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("viewer GET %s = %d", p, resp.StatusCode)
		}
		if strings.Contains(body, "/resolve\"") || strings.Contains(body, "/redrive\"") {
			t.Errorf("viewer sees an action form on %s", p)
		}
	}
	_, body := viewer.get("/console/orders?q=M-1")
	if !strings.Contains(body, "¥123.45") {
		t.Error("orders page does not show the amount in yuan with fen")
	}
	if resp, _ := viewer.get("/console/orders?status=lost"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad status filter = %d; want 400", resp.StatusCode)
	}
	if resp, _ := viewer.get("/console/orders/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown order = %d; want 404", resp.StatusCode)
	}

	// A viewer with a valid CSRF token is still refused, server-side, and the refusal audited.
	_, body = viewer.get("/console/reviews")
	form := url.Values{"csrf": {csrfOf(t, body)}, "outcome": {ops.OutcomeRefundSucceeded}, "note": {"checked"}}
	resp, body := viewer.post(fmt.Sprintf("/console/reviews/%d/resolve", caseID), form)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "needs the operator role") {
		t.Fatalf("viewer resolve = %d %s", resp.StatusCode, body)
	}
	// An operator's form without (or with a wrong) CSRF token is refused and changes nothing.
	_, body = op.get("/console/reviews")
	if !strings.Contains(body, fmt.Sprintf("/console/reviews/%d/resolve", caseID)) {
		t.Fatal("operator sees no resolve form")
	}
	resp, _ = op.post(fmt.Sprintf("/console/reviews/%d/resolve", caseID), url.Values{"outcome": {ops.OutcomeRefundSucceeded}, "note": {"x"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("resolve without CSRF = %d; want 403", resp.StatusCode)
	}
	resp, _ = op.post(fmt.Sprintf("/console/reviews/%d/resolve", caseID), url.Values{"csrf": {csrfOf(t, viewerCSRF(t, viewer))}, "outcome": {ops.OutcomeRefundSucceeded}, "note": {"x"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("resolve with another session's CSRF = %d; want 403", resp.StatusCode)
	}
	if s := e.scalar(t, `SELECT status FROM refund_orders WHERE id = $1`, refundID); s != "processing" {
		t.Fatalf("refused posts changed the refund to %s", s)
	}
	resp, body = op.post(fmt.Sprintf("/console/reviews/%d/resolve", caseID), url.Values{"csrf": {csrfOf(t, body)}, "outcome": {ops.OutcomeRefundSucceeded}, "note": {""}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "a note is required") {
		t.Fatalf("resolve without a note = %d %s; want 400 asking for a note", resp.StatusCode, body)
	}
	_, body = op.get("/console/reviews")
	resp, _ = op.post(fmt.Sprintf("/console/reviews/%d/resolve", caseID), url.Values{"csrf": {csrfOf(t, body)}, "outcome": {ops.OutcomeRefundSucceeded}, "note": {"confirmed in the portal"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/reviews" {
		t.Fatalf("resolve = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, body := op.get("/console/reviews"); !strings.Contains(body, `id="flash"`) || !strings.Contains(body, "refund processing → succeeded") {
		t.Fatal("the page after the resolution does not say what happened")
	}
	if _, body := op.get("/console/reviews?ok=Enter+your+token+at+evil.example"); strings.Contains(body, "evil.example") {
		t.Fatal("the console shows a message taken from the URL")
	}
	if s := e.scalar(t, `SELECT status FROM refund_orders WHERE id = $1`, refundID); s != "succeeded" {
		t.Fatalf("refund %s after the resolution", s)
	}
	rows, _ := e.ops.AuditLog(ctx, ops.Actor{Name: "t", Role: ops.RoleAdmin}, ops.AuditFilter{Action: "review.resolve"})
	if len(rows) != 2 || rows[0].Outcome != "ok" || rows[0].Via != "console" || rows[1].Outcome != "refused" || rows[1].Actor != "vic" {
		t.Fatalf("audit %+v", rows)
	}

	// Beijing time on request.
	_, body = op.get("/console/orders/" + id)
	op.post("/console/prefs", url.Values{"csrf": {csrfOf(t, body)}, "tz": {"Beijing"}})
	_, body = op.get("/console/orders/" + id)
	if !strings.Contains(body, " CST") || strings.Contains(body, " UTC</td>") {
		t.Error("Beijing time not applied")
	}
}

func viewerCSRF(t *testing.T, b *browser) string {
	_, body := b.get("/console")
	return body
}

func TestAppsPageDisableAppAndWebhook(t *testing.T) {
	e := newEnv(t, console.Config{Dev: true})
	ctx := context.Background()
	root := ops.Actor{Name: "test", Role: ops.RoleAdmin, Via: "cli"}
	creds, err := e.ops.CreateApp(ctx, root, "shop")
	if err != nil {
		t.Fatal(err)
	}
	ep, _, err := e.ops.AddWebhook(ctx, root, "shop", "http://127.0.0.1:9/hook", nil)
	if err != nil {
		t.Fatal(err)
	}
	viewer := e.browser(t)
	viewer.login(operatorToken(t, e, "vic", ops.RoleViewer))
	adm := e.browser(t)
	adm.login(operatorToken(t, e, "ada", ops.RoleAdmin))

	_, body := viewer.get("/console/apps")
	if !strings.Contains(body, creds.RedisUser) || !strings.Contains(body, ep.ID) || !strings.Contains(body, "http://127.0.0.1:9/hook") {
		t.Fatalf("apps page lacks the Redis user or the endpoint:\n%s", body)
	}
	if strings.Contains(body, "/disable\"") || strings.Contains(body, "/webhooks/redeliver") {
		t.Error("a viewer sees a disable or redeliver form")
	}
	// A viewer with a valid CSRF token is refused server-side; nothing changes.
	resp, body := viewer.post("/console/apps/shop/disable", url.Values{"csrf": {csrfOf(t, body)}, "note": {"x"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "needs the admin role") {
		t.Fatalf("viewer disable = %d %s", resp.StatusCode, body)
	}
	resp, _ = viewer.post("/console/webhooks/"+ep.ID+"/disable", url.Values{"csrf": {csrfOf(t, viewerCSRF(t, viewer))}, "note": {"x"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer disable webhook = %d", resp.StatusCode)
	}
	// An admin without the CSRF token is refused too.
	_, body = adm.get("/console/apps")
	if !strings.Contains(body, `action="/console/apps/shop/disable"`) || !strings.Contains(body, `action="/console/webhooks/`+ep.ID+`/disable"`) ||
		!strings.Contains(body, `action="/console/webhooks/redeliver"`) {
		t.Fatalf("admin sees no disable/redeliver forms:\n%s", body)
	}
	if resp, _ := adm.post("/console/apps/shop/disable", url.Values{"note": {"x"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("disable without CSRF = %d; want 403", resp.StatusCode)
	}
	if s := e.scalar(t, `SELECT coalesce(disabled_at::text, 'enabled') FROM apps WHERE app_id = 'shop'`); s != "enabled" {
		t.Fatalf("refused posts disabled the app: %s", s)
	}
	csrf := csrfOf(t, body)
	resp, _ = adm.post("/console/webhooks/"+ep.ID+"/disable", url.Values{"csrf": {csrf}, "note": {"receiver retired"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/apps" {
		t.Fatalf("disable webhook = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = adm.post("/console/apps/shop/disable", url.Values{"csrf": {csrf}, "note": {"contract ended"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/apps" {
		t.Fatalf("disable app = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = adm.get("/console/apps")
	if !strings.Contains(body, "App shop disabled") || strings.Contains(body, `action="/console/apps/shop/disable"`) ||
		strings.Contains(body, `/console/webhooks/`+ep.ID+`/disable"`) || strings.Count(body, "badge refused\">disabled") != 2 {
		t.Fatalf("apps page after disabling:\n%s", body)
	}
	if s := e.scalar(t, `SELECT coalesce(disabled_at::text, 'enabled') FROM apps WHERE app_id = 'shop'`); s == "enabled" {
		t.Fatal("the app is still enabled")
	}
	if !strings.Contains(body, `action="/console/apps/shop/enable"`) {
		t.Fatalf("apps page of a disabled app without the enable form:\n%s", body)
	}
	resp, _ = adm.post("/console/apps/shop/enable", url.Values{"csrf": {csrf}, "note": {"contract renewed"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/apps" {
		t.Fatalf("enable app = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = adm.get("/console/apps")
	if !strings.Contains(body, "App shop enabled") || !strings.Contains(body, `action="/console/apps/shop/disable"`) {
		t.Fatalf("apps page after enabling:\n%s", body)
	}
	if s := e.scalar(t, `SELECT coalesce(disabled_at::text, 'enabled') FROM apps WHERE app_id = 'shop'`); s != "enabled" {
		t.Fatal("the app is still disabled")
	}
	resp, body = adm.post("/console/webhooks/redeliver", url.Values{"csrf": {csrf}, "event_id": {"00000000-0000-0000-0000-000000000000"}, "note": {"x"}})
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "no delivery") {
		t.Fatalf("redeliver of an unknown event = %d %s", resp.StatusCode, body)
	}
	rows, _ := e.ops.AuditLog(ctx, root, ops.AuditFilter{Subject: "app:shop", Action: "app.disable"})
	if len(rows) != 2 || rows[0].Outcome != "ok" || rows[0].Actor != "ada" || rows[0].Via != "console" || rows[0].Note != "contract ended" ||
		rows[1].Outcome != "refused" || rows[1].Actor != "vic" {
		t.Fatalf("audit %+v", rows)
	}
}

// An admin creates an app from the console: the app, its Redis user and its first key, the key
// and the Redis password shown once on the answer.
func TestConsoleCreatesAnApp(t *testing.T) {
	e := newEnv(t, console.Config{Dev: true})
	adm := e.browser(t)
	adm.login(operatorToken(t, e, "ada", ops.RoleAdmin))
	_, body := adm.get("/console/apps")
	if !strings.Contains(body, `action="/console/apps"`) {
		t.Fatalf("no new-app form:\n%s", body)
	}
	resp, body := adm.post("/console/apps", url.Values{"csrf": {csrfOf(t, body)}, "app_id": {"new_shop"}, "label": {"backend"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="newkey">lp_`) || !strings.Contains(body, `id="redispassword"`) {
		t.Fatalf("create app = %d:\n%s", resp.StatusCode, body)
	}
	if n := e.scalar(t, `SELECT count(*) FROM api_keys WHERE app_id = 'new_shop'`); n != "1" {
		t.Errorf("keys of new_shop = %s; want 1", n)
	}
	if n := e.scalar(t, `SELECT count(*) FROM audit_log WHERE action = 'app.create' AND subject = 'app:new_shop'`); n == "0" {
		t.Errorf("no audit row for the app's creation")
	}

	// A label the key cannot take is refused before the app exists, so no app is left without its key.
	_, body = adm.get("/console/apps")
	resp, body = adm.post("/console/apps", url.Values{"csrf": {csrfOf(t, body)}, "app_id": {"bad_label_shop"}, "label": {"tab\there"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "label must be") {
		t.Fatalf("create app with a control character in the label = %d:\n%s", resp.StatusCode, body)
	}
	if n := e.scalar(t, `SELECT count(*) FROM apps WHERE app_id = 'bad_label_shop'`); n != "0" {
		t.Errorf("apps named bad_label_shop = %s; want 0", n)
	}
}

// TestLoginThrottle: wrong operator tokens are throttled per client address (429 with
// Retry-After after service.LoginFailures.Burst of them, even for the right token, which works
// from another address), and the audit log collapses the refusals: one row for the flood, which
// a later row counts, not one row per wrong token. Before, 500 wrong tokens in 0.7 s wrote 500
// rows.
func TestLoginThrottle(t *testing.T) {
	e := newEnv(t, console.Config{Dev: true, ClientIPHeader: "X-Forwarded-For"})
	tok := operatorToken(t, e, "ada", ops.RoleAdmin)
	burst := service.LoginFailures.Burst
	attempt := func(from, token string) *http.Response {
		t.Helper()
		b := e.browser(t)
		_, page := b.get("/console/login")
		req, _ := http.NewRequest("POST", e.srv.URL+"/console/login",
			strings.NewReader(url.Values{"csrf": {csrfOf(t, page)}, "token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", "198.51.100.7, "+from) // the last address is the proxy's view
		for _, c := range b.c.Jar.Cookies(req.URL) {
			req.AddCookie(c)
		}
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	const flood = "203.0.113.9"
	for i := range burst + 20 {
		resp := attempt(flood, fmt.Sprintf("lpo_%012d_wrong", i))
		want := http.StatusUnauthorized
		if i >= burst {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Fatalf("wrong token %d from %s = %d; want %d", i+1, flood, resp.StatusCode, want)
		}
		if want == http.StatusTooManyRequests {
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > int(service.LoginFailures.Every/time.Second) {
				t.Fatalf("throttled login Retry-After = %q; want 1..%d seconds", resp.Header.Get("Retry-After"), int(service.LoginFailures.Every/time.Second))
			}
		}
	}
	if resp := attempt(flood, tok); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the right token from a throttled address = %d; want 429 until it may try again", resp.StatusCode)
	}
	if resp := attempt("192.0.2.44", tok); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the right token from another address = %d; want 303 (logged in)", resp.StatusCode)
	}
	if n := e.scalar(t, `SELECT count(*)::text FROM audit_log WHERE action = 'session.login' AND outcome = 'refused' AND subject = $1`, flood); n != "1" {
		t.Errorf("audit rows for %d refused logins from %s = %s; want 1 (collapsed)", burst+21, flood, n)
	}
	if n := e.scalar(t, `SELECT count(*)::text FROM audit_log WHERE action = 'session.login' AND outcome = 'ok'`); n != "1" {
		t.Errorf("audit rows of successful logins = %s; want 1", n)
	}
}

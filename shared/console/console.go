// Package console is Loomi Pay's operator web console: server-rendered pages (html/template,
// embedded CSS, no JavaScript) over the operations layer, so every action is the one the CLI
// performs, with the same role checks and audit rows. Login takes an operator token and opens a
// session (HttpOnly, SameSite=Strict cookie; Secure outside dev); every form carries the
// session's CSRF token; viewers see no forms and are refused server-side anyway.
package console

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/loomipay/loomipay/shared/httpapi"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/service"
)

// Function is the Lambda function (functions/console) serving the console.
const Function = "console"

// Route is a route of the console's function in template.yaml.
type Route struct{ Method, Path, Function string }

// Routes are the console's routes as API Gateway declares them.
var Routes = []Route{
	{"GET", "/console", Function},
	{"ANY", "/console/{proxy+}", Function},
}

// Config tunes the console.
type Config struct {
	// Dev serves cookies without Secure, for http://127.0.0.1 (loomipay dev and tests).
	Dev bool
	// SessionTTL is how long a login lasts. Default 8 h.
	SessionTTL time.Duration
	Logger     *slog.Logger
	// ClientIPHeader names a header a trusted proxy sets to the client's address (see
	// httpapi.Options.ClientIPHeader); empty: the connection's address.
	ClientIPHeader string
}

// Console serves the pages.
type Console struct {
	ops   *ops.Ops
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template
}

const (
	sessionCookie = "loomipay_console"
	loginCookie   = "loomipay_console_login" // double-submit CSRF token of the login form
	tzCookie      = "loomipay_console_tz"
	flashCookie   = "loomipay_console_flash"
	base          = "/console"
	maxFormBytes  = 64 << 10
)

// beijing is China Standard Time (UTC+8, no daylight saving), without needing tzdata.
var beijing = ops.Beijing

//go:embed templates/*.html
var templateFS embed.FS

// New builds the console.
func New(o *ops.Ops, cfg Config) *Console {
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Console{ops: o, cfg: cfg, log: cfg.Logger.With("component", "console"), pages: map[string]*template.Template{}}
	for _, p := range []string{"login", "overview", "orders", "order", "refunds", "statement", "reviews", "dlq", "apps", "audit", "message"} {
		c.pages[p] = template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html"))
	}
	return c
}

// Handler serves every console route under /console.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+base+"/login", c.loginPage)
	mux.HandleFunc("POST "+base+"/login", c.login)
	mux.HandleFunc("POST "+base+"/logout", c.authed(c.logout))
	mux.HandleFunc("POST "+base+"/prefs", c.authed(c.prefs))
	mux.HandleFunc("GET "+base, c.authed(c.overview))
	mux.HandleFunc("GET "+base+"/{$}", c.authed(c.overview))
	mux.HandleFunc("GET "+base+"/orders", c.authed(c.orders))
	mux.HandleFunc("GET "+base+"/orders.csv", c.authed(c.exportOrders))
	mux.HandleFunc("GET "+base+"/orders/{id}", c.authed(c.order))
	mux.HandleFunc("POST "+base+"/orders/{id}/refund", c.authed(c.refundOrder))
	mux.HandleFunc("POST "+base+"/orders/{id}/close", c.authed(c.closeOrder))
	mux.HandleFunc("GET "+base+"/refunds", c.authed(c.refunds))
	mux.HandleFunc("GET "+base+"/refunds.csv", c.authed(c.exportRefunds))
	mux.HandleFunc("GET "+base+"/statement", c.authed(c.statement))
	mux.HandleFunc("GET "+base+"/statement.csv", c.authed(c.statementCSV))
	mux.HandleFunc("GET "+base+"/reviews", c.authed(c.reviews))
	mux.HandleFunc("POST "+base+"/reviews/{id}/resolve", c.authed(c.resolve))
	mux.HandleFunc("GET "+base+"/dlq", c.authed(c.dlq))
	mux.HandleFunc("POST "+base+"/dlq/{task}/redrive", c.authed(c.redrive))
	mux.HandleFunc("POST "+base+"/dlq/{task}/discard", c.authed(c.discard))
	mux.HandleFunc("POST "+base+"/dlq/redrive-all", c.authed(c.redriveAll))
	mux.HandleFunc("POST "+base+"/dlq/entries/discard", c.authed(c.discardEntry))
	mux.HandleFunc("GET "+base+"/apps", c.authed(c.apps))
	mux.HandleFunc("POST "+base+"/apps", c.authed(c.createApp))
	mux.HandleFunc("POST "+base+"/apps/keys", c.authed(c.createKey))
	mux.HandleFunc("POST "+base+"/apps/keys/{id}/revoke", c.authed(c.revokeKey))
	mux.HandleFunc("POST "+base+"/apps/{app}/disable", c.authed(c.disableApp))
	mux.HandleFunc("POST "+base+"/apps/{app}/enable", c.authed(c.enableApp))
	mux.HandleFunc("POST "+base+"/webhooks/{id}/disable", c.authed(c.disableWebhook))
	mux.HandleFunc("POST "+base+"/webhooks/redeliver", c.authed(c.redeliver))
	mux.HandleFunc("POST "+base+"/results/republish", c.authed(c.republish))
	mux.HandleFunc("GET "+base+"/audit", c.authed(c.audit))
	mux.HandleFunc(base+"/", func(w http.ResponseWriter, r *http.Request) {
		c.message(w, r, nil, http.StatusNotFound, "Not found", "There is no console page at "+r.URL.Path+".")
	})
	return securityHeaders(mux)
}

// securityHeaders: no framing, no sniffing, no scripts at all (the console has none), no referrer
// leaking order ids.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string
	Session *ops.Session
	TZ      string // "UTC" or "Beijing"
	loc     *time.Location
	Flash   string
	Error   string
	Data    any
	// Here is the page's own path, where the time zone switch comes back to.
	Here string
}

func (v view) CSRF() string {
	if v.Session == nil {
		return ""
	}
	return v.Session.CSRF
}
func (v view) CanOperate() bool {
	return v.Session != nil && v.Session.Operator.Role != ops.RoleViewer
}
func (v view) IsAdmin() bool { return v.Session != nil && v.Session.Operator.Role == ops.RoleAdmin }

// Time formats t in the viewer's time zone.
func (v view) Time(t any) string {
	var tt time.Time
	switch x := t.(type) {
	case time.Time:
		tt = x
	case *time.Time:
		if x == nil {
			return "—"
		}
		tt = *x
	default:
		return ""
	}
	if tt.IsZero() {
		return "—"
	}
	if v.TZ == "Beijing" {
		return tt.In(beijing).Format("2006-01-02 15:04:05") + " CST"
	}
	return tt.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

// yuan shows fen as yuan, with thousands separators: ¥12,345.67.
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	whole := strconv.FormatInt(fen/100, 10)
	for i := len(whole) - 3; i > 0; i -= 3 {
		whole = whole[:i] + "," + whole[i:]
	}
	return fmt.Sprintf("%s¥%s.%02d", sign, whole, fen%100)
}

var funcs = template.FuncMap{
	"yuan":        yuan,
	"orderWords":  ops.OrderWords,
	"refundWords": ops.RefundWords,
	"reasonWords": ops.ReasonWords,
	"pretty": func(b []byte) string {
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return string(b)
		}
		return out.String()
	},
	"emptyJSON": func(b []byte) bool { s := strings.TrimSpace(string(b)); return s == "" || s == "{}" || s == "null" },
	"yuanInput": func(fen int64) string { return fmt.Sprintf("%d.%02d", fen/100, fen%100) },
	"pct": func(f *float64) string {
		if f == nil {
			return "—"
		}
		return fmt.Sprintf("%.1f%%", *f*100)
	},
	"age": func(s ops.Seconds) string {
		d := time.Duration(float64(s) * float64(time.Second)).Round(time.Second)
		if d == 0 {
			return "0s"
		}
		return d.String()
	},
	"minutes":  func(s ops.Seconds) string { return strconv.Itoa(int(s/60)) + " minutes" },
	"json":     func(b []byte) string { return string(b) },
	"statuses": func() []string { return []string{"pending", "processing", "succeeded", "failed"} },
	"pair":     func(v *view, x any) map[string]any { return map[string]any{"V": v, "X": x} },
	"deref": func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	},
}

// authed loads the session; without one, a page asks to log in and a form post is refused.
// Every POST must carry the session's CSRF token.
func (c *Console) authed(h func(http.ResponseWriter, *http.Request, *view)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var sess ops.Session
		ck, err := r.Cookie(sessionCookie)
		if err == nil && ck.Value != "" {
			sess, err = c.ops.Session(r.Context(), ck.Value)
		} else {
			err = pay.Errorf(pay.KindUnauthorized, pay.CodeUnauthorized, "not logged in")
		}
		if err != nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, base+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.fail(w, r, nil, err)
			return
		}
		v := &view{Session: &sess, TZ: "UTC", loc: time.UTC, Here: base}
		if r.Method == http.MethodGet {
			v.Here = r.URL.Path // not the query: nothing of the URL's text is shown back
		}
		if tz, err := r.Cookie(tzCookie); err == nil && tz.Value == "Beijing" {
			v.TZ, v.loc = "Beijing", beijing
		}
		if ck, err := r.Cookie(flashCookie); err == nil && r.Method == http.MethodGet {
			if msg, err := base64.RawURLEncoding.DecodeString(ck.Value); err == nil {
				v.Flash = string(msg)
			}
			http.SetCookie(w, c.cookie(flashCookie, "", -1))
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				c.message(w, r, v, http.StatusBadRequest, "Bad request", "The form could not be read.")
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.CSRF)) != 1 {
				c.log.WarnContext(r.Context(), "console form without a valid CSRF token refused", "operator", sess.Operator.Name, "path", r.URL.Path)
				c.message(w, r, v, http.StatusForbidden, "Refused", "This form has no valid CSRF token. Reload the page and try again.")
				return
			}
		}
		h(w, r, v)
	}
}

func (c *Console) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: base, MaxAge: maxAge, HttpOnly: true, Secure: !c.cfg.Dev, SameSite: http.SameSiteStrictMode}
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := c.pages[page].ExecuteTemplate(w, "layout", v); err != nil {
		c.log.ErrorContext(r.Context(), "render console page", "page", page, "err", err)
	}
}

func (c *Console) message(w http.ResponseWriter, r *http.Request, v *view, status int, title, text string) {
	if v == nil {
		v = &view{TZ: "UTC", loc: time.UTC}
	}
	v.Title, v.Error = title, text
	c.render(w, r, status, "message", v)
}

// fail shows an error from the operations layer with the status the API would use.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, v *view, err error) {
	status, pe := httpapi.Classify(err)
	if status >= 500 {
		c.log.ErrorContext(r.Context(), "console action failed", "path", r.URL.Path, "status", status, "err", err)
	}
	title, ok := map[int]string{400: "Not accepted", 401: "Log in again", 403: "Not allowed", 404: "Not found", 405: "Not allowed",
		409: "Conflict", 413: "Too large", 429: "Too many requests", 503: "Try again later"}[status]
	if !ok {
		title = "Something went wrong"
	}
	c.message(w, r, v, status, title, pe.Detail)
}

// done redirects to a page after an action; the page shows msg once. The message travels in a
// short-lived cookie, not in the URL, so nobody can make the console display a text of theirs.
func (c *Console) done(w http.ResponseWriter, r *http.Request, to, msg string) {
	http.SetCookie(w, c.cookie(flashCookie, base64.RawURLEncoding.EncodeToString([]byte(msg)), 60))
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// --- login, logout, preferences

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	token := randomToken()
	http.SetCookie(w, c.cookie(loginCookie, token, 600))
	next := r.URL.Query().Get("next")
	c.render(w, r, http.StatusOK, "login", &view{Title: "Log in", TZ: "UTC", loc: time.UTC, Data: map[string]string{"CSRF": token, "Next": safeNext(next)}})
}

func safeNext(next string) string {
	if strings.HasPrefix(next, base) && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") {
		return next
	}
	return base
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.message(w, r, nil, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		c.message(w, r, nil, http.StatusForbidden, "Refused", "This form has no valid CSRF token. Reload the login page and try again.")
		return
	}
	secret, _, err := c.ops.Login(r.Context(), r.PostFormValue("token"), httpapi.ClientAddress(r, c.cfg.ClientIPHeader), c.cfg.SessionTTL)
	if err != nil {
		v := &view{Title: "Log in", TZ: "UTC", loc: time.UTC, Error: "That operator token is unknown or disabled.",
			Data: map[string]string{"CSRF": ck.Value, "Next": safeNext(r.PostFormValue("next"))}}
		switch e := pay.AsError(err); e.Kind {
		case pay.KindUnauthorized:
			c.render(w, r, http.StatusUnauthorized, "login", v)
		case pay.KindRateLimited:
			w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
			v.Error = "Too many failed logins from your address: " + e.Detail + "."
			c.render(w, r, http.StatusTooManyRequests, "login", v)
		default:
			c.fail(w, r, nil, err)
		}
		return
	}
	http.SetCookie(w, c.cookie(loginCookie, "", -1))
	http.SetCookie(w, c.cookie(sessionCookie, secret, int(c.cfg.SessionTTL.Seconds())))
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, v *view) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		if err := c.ops.Logout(r.Context(), ck.Value); err != nil {
			c.fail(w, r, v, err)
			return
		}
	}
	http.SetCookie(w, c.cookie(sessionCookie, "", -1))
	http.Redirect(w, r, base+"/login", http.StatusSeeOther)
}

func (c *Console) prefs(w http.ResponseWriter, r *http.Request, v *view) {
	tz := "UTC"
	if r.PostFormValue("tz") == "Beijing" {
		tz = "Beijing"
	}
	ck := c.cookie(tzCookie, tz, 365*24*3600)
	http.SetCookie(w, ck)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// --- pages

func (c *Console) reviews(w http.ResponseWriter, r *http.Request, v *view) {
	all := r.URL.Query().Get("all") == "1"
	cases, err := c.ops.ReviewCases(r.Context(), v.Session.Actor(), ops.ReviewFilter{All: all, Limit: 500})
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "Review cases", "reviews", map[string]any{"Cases": cases, "All": all}
	c.render(w, r, http.StatusOK, "reviews", v)
}

func pathInt(r *http.Request, name string) (int64, error) {
	n, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || n <= 0 {
		return 0, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no such %s", name)
	}
	return n, nil
}

func (c *Console) resolve(w http.ResponseWriter, r *http.Request, v *view) {
	id, err := pathInt(r, "id")
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	res, err := c.ops.ResolveReview(r.Context(), v.Session.Actor(), ops.Resolution{CaseID: id, Outcome: r.PostFormValue("outcome"),
		Note: strings.TrimSpace(r.PostFormValue("note")), GatewayRefundID: strings.TrimSpace(r.PostFormValue("gateway_refund_id"))})
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	msg := fmt.Sprintf("Case %d resolved as %s.", id, res.Case.Resolution)
	if res.StatusChange != "" {
		msg += fmt.Sprintf(" %s; result message %s sent to the main app.", res.StatusChange, strings.Join(res.EventIDs, ", "))
	}
	c.done(w, r, base+"/reviews", msg)
}

func (c *Console) dlq(w http.ResponseWriter, r *http.Request, v *view) {
	list, err := c.ops.ListDeadLetters(r.Context(), v.Session.Actor(), r.URL.Query().Get("kind"), 500)
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "Dead letters", "dlq", list
	c.render(w, r, http.StatusOK, "dlq", v)
}

func (c *Console) redrive(w http.ResponseWriter, r *http.Request, v *view) {
	id, err := pathInt(r, "task")
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	res, err := c.ops.Redrive(r.Context(), v.Session.Actor(), id, strings.TrimSpace(r.PostFormValue("note")))
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	msg := fmt.Sprintf("Task %d queued again.", id)
	if res.Warning != "" {
		msg += " " + res.Warning
	}
	c.done(w, r, base+"/dlq", msg)
}

func (c *Console) redriveAll(w http.ResponseWriter, r *http.Request, v *view) {
	res, err := c.ops.RedriveKind(r.Context(), v.Session.Actor(), r.PostFormValue("kind"), strings.TrimSpace(r.PostFormValue("note")))
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	c.done(w, r, base+"/dlq", fmt.Sprintf("%d task(s) queued again, %d skipped (their subject is final: discard them).", len(res.Redriven), len(res.Skipped)))
}

func (c *Console) discard(w http.ResponseWriter, r *http.Request, v *view) {
	id, err := pathInt(r, "task")
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	if err := c.ops.Discard(r.Context(), v.Session.Actor(), id, strings.TrimSpace(r.PostFormValue("note"))); err != nil {
		c.fail(w, r, v, err)
		return
	}
	c.done(w, r, base+"/dlq", fmt.Sprintf("Task %d discarded.", id))
}

func (c *Console) discardEntry(w http.ResponseWriter, r *http.Request, v *view) {
	id := r.PostFormValue("entry")
	if err := c.ops.DiscardEntry(r.Context(), v.Session.Actor(), id, strings.TrimSpace(r.PostFormValue("note"))); err != nil {
		c.fail(w, r, v, err)
		return
	}
	c.done(w, r, base+"/dlq", "Entry "+id+" discarded.")
}

func (c *Console) apps(w http.ResponseWriter, r *http.Request, v *view) {
	apps, err := c.ops.Apps(r.Context(), v.Session.Actor())
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	operators, err := c.ops.Operators(r.Context(), v.Session.Actor())
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "Apps and keys", "apps", map[string]any{"Apps": apps, "Operators": operators}
	c.render(w, r, http.StatusOK, "apps", v)
}

func (c *Console) createKey(w http.ResponseWriter, r *http.Request, v *view) {
	app := strings.TrimSpace(r.PostFormValue("app_id"))
	key, k, err := c.ops.CreateKey(r.Context(), v.Session.Actor(), app, strings.TrimSpace(r.PostFormValue("label")))
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	// The key is shown once, on this response only; it is never in a URL or a log.
	v.Title, v.Nav = "New API key", "apps"
	v.Data = map[string]any{"Key": key, "Record": k}
	c.render(w, r, http.StatusOK, "message", v)
}

// createApp registers an app (with its Redis user) and its first key, shown once.
func (c *Console) createApp(w http.ResponseWriter, r *http.Request, v *view) {
	app, label := strings.TrimSpace(r.PostFormValue("app_id")), strings.TrimSpace(r.PostFormValue("label"))
	// Checked before the app exists, so a bad label does not leave an app without its key.
	if err := service.ValidateKeyLabel(label); err != nil {
		c.fail(w, r, v, err)
		return
	}
	creds, err := c.ops.CreateApp(r.Context(), v.Session.Actor(), app)
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	key, k, err := c.ops.CreateKey(r.Context(), v.Session.Actor(), app, label)
	if err != nil {
		// The app and its Redis user exist: their password is shown now or never.
		status, pe := httpapi.Classify(err)
		c.log.ErrorContext(r.Context(), "console: app created, its key not", "app_id", app, "err", err)
		v.Title, v.Nav, v.Error = "App created, key not", "apps", pe.Detail+" — create its key from the Apps page."
		v.Data = map[string]any{"Redis": creds}
		c.render(w, r, status, "message", v)
		return
	}
	// The key and the Redis password are shown once, on this response only.
	v.Title, v.Nav = "New app", "apps"
	v.Data = map[string]any{"Key": key, "Record": k, "Redis": creds}
	c.render(w, r, http.StatusOK, "message", v)
}

func (c *Console) revokeKey(w http.ResponseWriter, r *http.Request, v *view) {
	id := r.PathValue("id")
	if _, err := c.ops.RevokeKey(r.Context(), v.Session.Actor(), id, strings.TrimSpace(r.PostFormValue("note"))); err != nil {
		c.fail(w, r, v, err)
		return
	}
	c.done(w, r, base+"/apps", "Key "+id+" revoked; it stops working within API_KEY_CACHE_TTL.")
}

func (c *Console) disableApp(w http.ResponseWriter, r *http.Request, v *view) {
	app := r.PathValue("app")
	if _, err := c.ops.DisableApp(r.Context(), v.Session.Actor(), app, strings.TrimSpace(r.PostFormValue("note"))); err != nil {
		c.fail(w, r, v, err)
		return
	}
	c.done(w, r, base+"/apps", "App "+app+" disabled: its API keys stop working within API_KEY_CACHE_TTL, its Redis user is switched off, no more webhooks.")
}

func (c *Console) enableApp(w http.ResponseWriter, r *http.Request, v *view) {
	app := r.PathValue("app")
	if _, err := c.ops.EnableApp(r.Context(), v.Session.Actor(), app, strings.TrimSpace(r.PostFormValue("note"))); err != nil {
		c.fail(w, r, v, err)
		return
	}
	c.done(w, r, base+"/apps", "App "+app+" enabled: its API keys work again within API_KEY_CACHE_TTL, its Redis user is on, webhooks for results from now on.")
}

func (c *Console) disableWebhook(w http.ResponseWriter, r *http.Request, v *view) {
	id := r.PathValue("id")
	if _, err := c.ops.DisableWebhook(r.Context(), v.Session.Actor(), id, strings.TrimSpace(r.PostFormValue("note"))); err != nil {
		c.fail(w, r, v, err)
		return
	}
	c.done(w, r, base+"/apps", "Webhook endpoint "+id+" disabled; its pending deliveries are marked failed.")
}

func (c *Console) redeliver(w http.ResponseWriter, r *http.Request, v *view) {
	event := strings.TrimSpace(r.PostFormValue("event_id"))
	n, err := c.ops.RedeliverWebhook(r.Context(), v.Session.Actor(), event, strings.TrimSpace(r.PostFormValue("endpoint_id")), strings.TrimSpace(r.PostFormValue("note")))
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	c.done(w, r, base+"/apps", fmt.Sprintf("Event %s queued again for %d endpoint(s).", event, n))
}

func (c *Console) republish(w http.ResponseWriter, r *http.Request, v *view) {
	var from, to time.Time
	var err error
	for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if *dst, err = time.ParseInLocation("2006-01-02T15:04", r.PostFormValue(name), v.loc); err != nil {
			c.fail(w, r, v, pay.Invalid(name, "%s must be a date and time", name))
			return
		}
	}
	res, err := c.ops.RepublishResults(r.Context(), v.Session.Actor(), r.PostFormValue("app_id"), from, to, strings.TrimSpace(r.PostFormValue("note")))
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	msg := fmt.Sprintf("Republished %d result message(s) of %s.", res.Published, res.AppID)
	if res.Warning != "" {
		msg += " " + res.Warning
	}
	c.done(w, r, base+"/apps", msg)
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request, v *view) {
	q := r.URL.Query()
	rows, err := c.ops.AuditLog(r.Context(), v.Session.Actor(), ops.AuditFilter{Subject: q.Get("subject"), Actor: q.Get("actor"), Action: q.Get("action"), Limit: 300})
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "Audit log", "audit", map[string]any{"Rows": rows, "Subject": q.Get("subject"), "Actor": q.Get("actor"), "Action": q.Get("action")}
	c.render(w, r, http.StatusOK, "audit", v)
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/httpapi"
)

// EntryPoint sends one request to an entry point of the service — loomipay serve, loomipay dev,
// or the Lambda functions behind API Gateway — and returns its answer. key is sent as a Bearer
// key when not empty.
type EntryPoint func(t testing.TB, method, path, key, body string) (status int, header http.Header, respBody []byte)

// EntryFixture is what CheckEntryPoint needs from the entry point's database.
type EntryFixture struct {
	AppID    string // an app
	Key      string // one of its API keys
	OtherKey string // a key of another app
	// Order is a live order of AppID (merchant_order_id) that the checks close.
	Order string
	// Addr is the host:port of an HTTP server, for the checks that need a raw connection or
	// that only our own server answers (an unknown path: API Gateway answers it in front of the
	// functions). Empty for the Lambda functions.
	Addr string
}

// CheckEntryPoint holds an entry point to what every entry point must do alike: serve every
// route of httpapi.Routes and the console, with the same checks in the same order (the key's app
// before anything else; the close route wired to Lakala), a JSON 404 for a path the mux would
// redirect, and, over HTTP, a 413 at once for a body declared too large.
func CheckEntryPoint(t *testing.T, send EntryPoint, f EntryFixture) {
	t.Run("every route is served", func(t *testing.T) {
		for _, r := range httpapi.Routes {
			path := strings.NewReplacer("{merchant_order_id}", "none", "{refund_order_id}", "550e8400-e29b-41d4-a716-446655440000",
				"{merchant_refund_id}", "none").Replace(r.Path)
			status, header, body := send(t, r.Method, path, "", "")
			want, code := http.StatusUnauthorized, "unauthorized"
			switch path {
			case "/healthz", "/readyz", "/api/v1/openapi.json":
				want, code = http.StatusOK, ""
			case "/webhooks/lakala":
				code = "bad_signature"
			}
			checkAnswer(t, r.Method+" "+path, status, header, body, want, code)
		}
	})

	t.Run("the console is served", func(t *testing.T) {
		status, header, _ := send(t, "GET", "/console", "", "")
		if status != http.StatusSeeOther || !strings.HasPrefix(header.Get("Location"), "/console/login") {
			t.Errorf("GET /console = %d Location %q; want 303 to /console/login", status, header.Get("Location"))
		}
		status, header, body := send(t, "GET", "/console/login", "", "")
		if status != http.StatusOK || !strings.HasPrefix(header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "token") {
			t.Errorf("GET /console/login = %d %s; want 200 with the login form", status, header.Get("Content-Type"))
		}
	})

	t.Run("close: the key's app is checked first, then Lakala closes", func(t *testing.T) {
		closePath := "/api/v1/payment-orders/" + f.Order + "/close"
		status, header, body := send(t, "POST", closePath+"?app_id="+f.AppID, f.OtherKey, "")
		checkAnswer(t, "close with another app's key", status, header, body, http.StatusForbidden, "forbidden")
		status, header, body = send(t, "POST", closePath, f.OtherKey, "")
		checkAnswer(t, "close of another app's order", status, header, body, http.StatusNotFound, "not_found")
		status, _, body = send(t, "POST", closePath+"?app_id="+f.AppID, f.Key, "")
		var o struct {
			MerchantOrderID string `json:"merchant_order_id"`
			FailureReason   string `json:"failure_reason"`
		}
		_ = json.Unmarshal(body, &o)
		if (status != http.StatusOK && status != http.StatusAccepted) || o.MerchantOrderID != f.Order {
			t.Errorf("close of the app's own order = %d %s; want 200 (closed) or 202 (closing) with the order", status, body)
		}
		if status == http.StatusOK && o.FailureReason != "closed_by_merchant" {
			t.Errorf("closed order's failure_reason = %q; want closed_by_merchant", o.FailureReason)
		}
	})

	t.Run("a path the mux would redirect is a JSON 404", func(t *testing.T) {
		paths := []string{"/api/v1/payment-orders/..", "/api/v1/payment-orders/."}
		if f.Addr != "" {
			// Matches no route of API Gateway's, which answers it in front of the functions.
			paths = append(paths, "/api/v1/payment-orders/x/../y")
		}
		for _, p := range paths {
			status, header, body := send(t, "GET", p+"?app_id="+f.AppID, f.Key, "")
			checkAnswer(t, "GET "+p, status, header, body, http.StatusNotFound, "not_found")
		}
	})

	if f.Addr == "" {
		return
	}
	t.Run("an unknown path is a JSON 404", func(t *testing.T) {
		status, header, body := send(t, "GET", "/no/such/route", f.Key, "")
		checkAnswer(t, "GET /no/such/route", status, header, body, http.StatusNotFound, "not_found")
		status, header, body = send(t, "GET", "//api/v1/payment-orders", f.Key, "")
		checkAnswer(t, "GET //api/v1/payment-orders", status, header, body, http.StatusNotFound, "not_found")
	})

	t.Run("a body declared too large is refused at once", func(t *testing.T) {
		// The client declares 10 MB and sends one byte: the answer must not wait for the rest
		// (before the fix it came after the server's read timeout, as a 400).
		status, header, body := rawRequest(t, f.Addr, "POST /api/v1/payment-orders HTTP/1.1\r\nHost: loomipay\r\n"+
			"Authorization: Bearer "+f.Key+"\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{")
		checkAnswer(t, "POST with Content-Length 10000000", status, header, body, http.StatusRequestEntityTooLarge, "body_too_large")
	})
}

// checkAnswer checks a JSON answer's status and, when code is set, its error code.
func checkAnswer(t testing.TB, what string, status int, header http.Header, body []byte, want int, code string) {
	t.Helper()
	if status != want {
		t.Errorf("%s = %d %.300s; want %d", what, status, body, want)
		return
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q; want application/json", what, ct)
	}
	if code == "" {
		return
	}
	var e struct{ Code, Detail string }
	if err := json.Unmarshal(body, &e); err != nil || e.Code != code || e.Detail == "" {
		t.Errorf("%s: body %.300s; want a JSON error with code %q and a detail", what, body, code)
	}
}

// rawRequest writes a request as given on a new connection and reads the answer. It does not
// wait longer than a few seconds for it: a server that waits for a body never sent would
// otherwise hold the test until its read timeout.
func rawRequest(t testing.TB, addr, request string) (int, http.Header, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a request declaring a large body: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// HTTPEntryPoint sends requests to an HTTP server at base (http://host:port), following no
// redirect, so that a redirect is seen as such.
func HTTPEntryPoint(base string) EntryPoint {
	client := &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return func(t testing.TB, method, path, key, body string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(fmt.Errorf("%s %s: %w", method, path, err))
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, b
	}
}

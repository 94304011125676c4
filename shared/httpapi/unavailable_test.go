package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/devstack"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/internal/testskip"
	"github.com/loomipay/loomipay/shared/httpapi"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

// requestTimeout is the API's deadline in these tests; every answer must come well within
// unavailableBound.
const (
	requestTimeout   = 2 * time.Second
	unavailableBound = 4 * time.Second
)

// privatePostgres starts a PostgreSQL of this test's own, which it may freeze and stop: the
// machine's shared server is never touched.
func privatePostgres(t *testing.T) (url, stateDir string, stop func()) {
	t.Helper()
	stateDir = t.TempDir()
	url, stop, err := devstack.StartPrivatePostgres(t.Context(), devstack.Options{StateDir: stateDir, Logger: testenv.Logger()})
	if errors.Is(err, devstack.ErrPostgresNotInstalled) {
		testskip.Missing(t, fmt.Sprintf("needs the PostgreSQL server binaries: %v", err), "apt-get install postgresql")
	}
	if err != nil {
		t.Fatalf("private PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		_ = devstack.SignalPrivatePostgres(stateDir, syscall.SIGCONT) // never leave it frozen
		stop()
	})
	return url, stateDir, stop
}

// checkUnavailable sends one request and asserts a JSON 503 service_unavailable with
// Retry-After, within the bound.
func checkUnavailable(t *testing.T, base, method, path, key, body string) {
	t.Helper()
	start := time.Now()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 3 * unavailableBound}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	checkError(t, resp.StatusCode, respBody, http.StatusServiceUnavailable, "service_unavailable", "unavailable")
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("%s %s: Retry-After = %q; want a positive number of seconds", method, path, resp.Header.Get("Retry-After"))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type = %q; want application/json", method, path, ct)
	}
	if took > unavailableBound {
		t.Errorf("%s %s answered after %s; want within %s", method, path, took, unavailableBound)
	}
}

func TestStalledAndDownPostgresAnswer503(t *testing.T) {
	url, stateDir, stop := privatePostgres(t)
	ctx := context.Background()
	store, err := postgres.Open(ctx, url, postgres.Options{MaxConns: 4, StatementTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// No key cache: every request reads the key, so every request needs the database.
	svc := service.New(store, testenv.Streams(t), testenv.Logger(), service.Config{KeyCacheTTL: -1})
	if err := store.EnsureApp(ctx, "test_app"); err != nil {
		t.Fatal(err)
	}
	key, _, err := svc.CreateAPIKey(ctx, "test_app", "")
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(httpapi.New(svc, httpapi.Options{RequestTimeout: requestTimeout}).Handler())
	t.Cleanup(api.Close)
	unknownKey := "lp_nosuchkey000_0123456789012345678901234567890123456789"

	if code, body := testenv.Do(t, api.URL, "POST", ordersPath, key, orderBody(t, "before-stall", nil)); code != http.StatusAccepted {
		t.Fatalf("create while healthy = %d %s", code, body)
	}

	requests := []struct{ name, method, path, key, body string }{
		{"create", "POST", ordersPath, key, orderBody(t, "during-outage", nil)},
		{"get", "GET", ordersPath + "/before-stall?app_id=test_app", key, ""},
		{"refund", "POST", refundsPath, key, `{"app_id":"test_app","payment_order_id":"00000000-0000-0000-0000-000000000000","amount":1}`},
		{"unknown key", "GET", ordersPath + "/before-stall?app_id=test_app", unknownKey, ""},
	}

	t.Run("stopped (SIGSTOP)", func(t *testing.T) {
		if err := devstack.SignalPrivatePostgres(stateDir, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		for _, r := range requests {
			t.Run(r.name, func(t *testing.T) { checkUnavailable(t, api.URL, r.method, r.path, r.key, r.body) })
		}
		if err := devstack.SignalPrivatePostgres(stateDir, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		// Resumed, it serves again (the pool replaces the connections the deadline broke).
		testenv.Eventually(t, 10*time.Second, "GET after SIGCONT answers 200", func() bool {
			code, _ := testenv.Do(t, api.URL, "GET", ordersPath+"/before-stall?app_id=test_app", key, "")
			return code == http.StatusOK
		})
	})

	t.Run("down", func(t *testing.T) {
		stop()
		for _, r := range requests {
			t.Run(r.name, func(t *testing.T) { checkUnavailable(t, api.URL, r.method, r.path, r.key, r.body) })
		}
	})
}

// blackHole is a TCP server that accepts connections and never answers: a stalled Redis.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestStalledRedisDoesNotHoldRequests(t *testing.T) {
	store, _ := testenv.PostgresSchema(t)
	rdb, err := streams.NewClient("redis://" + blackHole(t) + "/0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	svc := service.New(store, streams.New(rdb, streams.Config{Prefix: testenv.UniqueName("stall") + ":"}), testenv.Logger(),
		service.Config{RateLimit: service.RateLimit{Rate: 1, Burst: 1}})
	if err := store.EnsureApp(context.Background(), "test_app"); err != nil {
		t.Fatal(err)
	}
	key, _, err := svc.CreateAPIKey(context.Background(), "test_app", "")
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(httpapi.New(svc, httpapi.Options{RequestTimeout: requestTimeout}).Handler())
	t.Cleanup(api.Close)
	// The rate check and the task publish give up on Redis after their short bounds; the order
	// is safe in PostgreSQL and the sweep publishes its task later. Rate limiting fails open.
	for i := range 3 {
		start := time.Now()
		code, body := testenv.Do(t, api.URL, "POST", ordersPath, key, orderBody(t, "stall-"+strconv.Itoa(i), nil))
		if code != http.StatusAccepted {
			t.Errorf("create %d with Redis stalled = %d %s; want 202", i, code, body)
		}
		if took := time.Since(start); took > unavailableBound {
			t.Errorf("create %d took %s; want within %s", i, took, unavailableBound)
		}
	}
}

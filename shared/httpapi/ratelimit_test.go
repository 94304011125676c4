package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/httpapi"
	"github.com/loomipay/loomipay/shared/service"
)

func TestRateLimitPerApp(t *testing.T) {
	store, _ := testenv.PostgresSchema(t)
	st := testenv.Streams(t)
	cfg := service.Config{
		RateLimit:  service.RateLimit{Rate: 1, Burst: 2},
		RateLimits: map[string]service.RateLimit{"big_app": {Rate: 1000, Burst: 1000}},
	}
	// Two services on one Redis stand for two Lambda instances: the bucket is shared.
	one := service.New(store, st, testenv.Logger(), cfg)
	two := service.New(store, st, testenv.Logger(), cfg)
	ctx := context.Background()
	for _, app := range []string{"test_app", "big_app"} {
		if err := store.EnsureApp(ctx, app); err != nil {
			t.Fatal(err)
		}
	}
	small, _, err := one.CreateAPIKey(ctx, "test_app", "")
	if err != nil {
		t.Fatal(err)
	}
	big, _, err := one.CreateAPIKey(ctx, "big_app", "")
	if err != nil {
		t.Fatal(err)
	}
	apiOne := httptest.NewServer(httpapi.New(one).Handler())
	t.Cleanup(apiOne.Close)
	apiTwo := httptest.NewServer(httpapi.New(two).Handler())
	t.Cleanup(apiTwo.Close)

	get := ordersPath + "/none?app_id=test_app"
	for i, base := range []string{apiOne.URL, apiTwo.URL} {
		if code, body := testenv.Do(t, base, "GET", get, small, ""); code != http.StatusNotFound {
			t.Fatalf("request %d within the burst = %d %s; want 404 (not limited)", i, code, body)
		}
	}
	resp, body := doResponse(t, apiTwo.URL, "GET", get, small)
	e := checkError(t, resp.StatusCode, body, http.StatusTooManyRequests, "rate_limited", "test_app")
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > 2 {
		t.Errorf("Retry-After = %q; want 1 or 2 seconds at 1 request/s", resp.Header.Get("Retry-After"))
	}
	t.Logf("429 detail: %s", e.Detail)

	// A bad key is refused before the limit is looked at, and another app has its own bucket.
	if code, _ := testenv.Do(t, apiOne.URL, "GET", get, "lp_nosuchkey000_0123456789012345678901234567890123456789", ""); code != http.StatusUnauthorized {
		t.Errorf("unknown key while test_app is limited = %d; want 401", code)
	}
	for i := range 20 {
		if code, body := testenv.Do(t, apiOne.URL, "GET", ordersPath+"/none?app_id=big_app", big, ""); code != http.StatusNotFound {
			t.Fatalf("big_app request %d = %d %s; want 404 (its override allows 1000/s)", i, code, body)
		}
	}
}

func doResponse(t *testing.T, base, method, path, key string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestAPIKeyFailureThrottle: wrong API keys are throttled per client address (after the burst,
// every request from it is refused 429 with Retry-After before its key is looked at, on every
// process, since the count is in Redis) and per key id (further wrong secrets for that id answer
// 429 from any address, while the right key still works). Before, 3,000 wrong keys went through
// at 1,400/s.
func TestAPIKeyFailureThrottle(t *testing.T) {
	store, _ := testenv.PostgresSchema(t)
	st := testenv.Streams(t)
	cfg := service.Config{APIKeyFailures: service.FailureLimit{Burst: 3, Every: time.Hour}}
	one, two := service.New(store, st, testenv.Logger(), cfg), service.New(store, st, testenv.Logger(), cfg)
	ctx := context.Background()
	if err := store.EnsureApp(ctx, "test_app"); err != nil {
		t.Fatal(err)
	}
	key, rec, err := one.CreateAPIKey(ctx, "test_app", "")
	if err != nil {
		t.Fatal(err)
	}
	// Behind a proxy that sets X-Forwarded-For, so the test can speak from several addresses.
	opts := httpapi.Options{ClientIPHeader: "X-Forwarded-For"}
	apiOne := httptest.NewServer(httpapi.New(one, opts).Handler())
	t.Cleanup(apiOne.Close)
	apiTwo := httptest.NewServer(httpapi.New(two, opts).Handler())
	t.Cleanup(apiTwo.Close)
	send := func(base, from, key string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+ordersPath+"/none", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("X-Forwarded-For", from)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	wrong := func(i int) string { return fmt.Sprintf("lp_%012d_%040d", i, i) } // unknown ids

	t.Run("per client address", func(t *testing.T) {
		for i := range 3 {
			resp, body := send(apiOne.URL, "203.0.113.9", wrong(i))
			checkError(t, resp.StatusCode, body, http.StatusUnauthorized, "unauthorized", "invalid API key")
		}
		for _, base := range []string{apiOne.URL, apiTwo.URL} { // the count is shared through Redis
			for _, k := range []string{wrong(9), key} {
				resp, body := send(base, "203.0.113.9", k)
				checkError(t, resp.StatusCode, body, http.StatusTooManyRequests, "rate_limited", "failed attempts from your address")
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > 3600 {
					t.Errorf("Retry-After = %q; want 1..3600 seconds", resp.Header.Get("Retry-After"))
				}
			}
		}
		if resp, body := send(apiOne.URL, "192.0.2.1", key); resp.StatusCode != http.StatusNotFound {
			t.Errorf("the right key from another address = %d %s; want 404 (authenticated, no such order)", resp.StatusCode, body)
		}
	})

	t.Run("per key id", func(t *testing.T) {
		wrongSecret := "lp_" + rec.ID + "_" + strings.Repeat("x", 40)
		for i := range 3 {
			resp, body := send(apiOne.URL, fmt.Sprintf("198.51.100.%d", i), wrongSecret)
			checkError(t, resp.StatusCode, body, http.StatusUnauthorized, "unauthorized", "invalid API key")
		}
		resp, body := send(apiTwo.URL, "198.51.100.200", wrongSecret)
		checkError(t, resp.StatusCode, body, http.StatusTooManyRequests, "rate_limited", "this credential id")
		if resp, body := send(apiTwo.URL, "198.51.100.201", key); resp.StatusCode != http.StatusNotFound {
			t.Errorf("the right key of a throttled id = %d %s; want 404 (it still works)", resp.StatusCode, body)
		}
	})
}

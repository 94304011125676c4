package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

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

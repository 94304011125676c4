package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/service"
)

// authRequest sends a request with a raw Authorization header value (none if empty).
func authRequest(t *testing.T, s *testenv.Stack, method, path, authorization, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.API.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestAuthenticationFailures(t *testing.T) {
	// Dozens of failures from one address: the throttle (TestAPIKeyFailureThrottle) must not
	// answer them instead of the refusals tested here.
	s := testenv.NewStack(t, testenv.StackOptions{Service: service.Config{KeyCacheTTL: -1,
		APIKeyFailures: service.FailureLimit{Burst: 10_000, Every: time.Millisecond}}})
	ctx := context.Background()
	payment := createOrder(t, s, "auth-1", 10000)

	revoked, rec, err := s.Service.CreateAPIKey(ctx, s.AppID, "to revoke")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := s.Do(t, "GET", ordersPath+"/auth-1?app_id=test_app", revoked, ""); code != http.StatusOK {
		t.Fatalf("GET with the key before revocation = %d %s; want 200", code, body)
	}
	if err := s.Store.RevokeAPIKey(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	// A well-formed key whose id is real but whose secret is not.
	forged := s.APIKey[:len(s.APIKey)-40] + strings.Repeat("0", 40)
	valid := strings.TrimPrefix(s.APIKey, "lp_")

	headers := []struct {
		name          string
		authorization string
	}{
		{"no header", ""},
		{"basic scheme", "Basic " + s.APIKey},
		{"token scheme", "Token " + s.APIKey},
		{"scheme only", "Bearer"},
		{"bearer without space", "Bearer" + s.APIKey},
		{"malformed key", "Bearer not-a-key"},
		{"key without prefix", "Bearer " + valid},
		{"key with short secret", "Bearer " + s.APIKey[:len(s.APIKey)-1]},
		{"unknown key", "Bearer lp_aaaaaaaaaaaa_" + strings.Repeat("b", 40)},
		{"known id with wrong secret", "Bearer " + forged},
		{"revoked key", "Bearer " + revoked},
	}
	routes := []struct {
		method, path, body string
	}{
		{"POST", ordersPath, orderBody(t, "auth-2", nil)},
		{"GET", ordersPath + "/auth-1?app_id=test_app", ""},
		{"POST", refundsPath, refundBody(t, payment.ID, 100, nil)},
		{"GET", refundsPath + "/" + payment.ID + "?app_id=test_app", ""},
	}
	for _, h := range headers {
		for _, r := range routes {
			t.Run(h.name+"/"+r.method+" "+strings.SplitN(r.path, "?", 2)[0], func(t *testing.T) {
				code, body := authRequest(t, s, r.method, r.path, h.authorization, r.body)
				checkError(t, code, body, http.StatusUnauthorized, "unauthorized", "")
			})
		}
	}
	if got := count(t, s, "SELECT count(*) FROM payment_orders"); got != 1 {
		t.Errorf("payment_orders rows = %d; want only the one created before", got)
	}
	if got := count(t, s, "SELECT count(*) FROM refund_orders"); got != 0 {
		t.Errorf("refund_orders rows = %d; want 0", got)
	}
}

func TestRevokedKeyStopsWorkingWhenTheCacheExpires(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{Service: service.Config{KeyCacheTTL: 200 * time.Millisecond}})
	ctx := context.Background()
	createOrder(t, s, "ttl-1", 100)
	key, rec, err := s.Service.CreateAPIKey(ctx, s.AppID, "cached")
	if err != nil {
		t.Fatal(err)
	}
	path := ordersPath + "/ttl-1?app_id=test_app"
	if code, body := s.Do(t, "GET", path, key, ""); code != http.StatusOK {
		t.Fatalf("GET before revocation = %d %s; want 200", code, body)
	}
	if err := s.Store.RevokeAPIKey(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the revoked key to be refused", func() bool {
		code, _ := s.Do(t, "GET", path, key, "")
		return code == http.StatusUnauthorized
	})
	code, body := s.Do(t, "GET", path, key, "")
	checkError(t, code, body, http.StatusUnauthorized, "unauthorized", "")
	if code, body := s.Do(t, "GET", path, s.APIKey, ""); code != http.StatusOK {
		t.Errorf("GET with the app's other key = %d %s; want 200", code, body)
	}
}

func TestKeyOfOneAppCannotActForAnother(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{Service: service.Config{KeyCacheTTL: -1}})
	otherKey := s.NewKey(t, "other_app")
	payment := createOrder(t, s, "mine-1", 10000)
	code, body := s.Do(t, "POST", ordersPath, otherKey, orderBody(t, "theirs-1", map[string]any{"app_id": "other_app"}))
	if code != http.StatusAccepted {
		t.Fatalf("other app's create = %d %s; want 202", code, body)
	}

	forbidden := []struct {
		name, method, path, body string
	}{
		{"create order for another app", "POST", ordersPath, orderBody(t, "mine-2", map[string]any{"app_id": "other_app"})},
		{"get order of another app_id", "GET", ordersPath + "/theirs-1?app_id=other_app", ""},
		{"create refund for another app", "POST", refundsPath, refundBody(t, payment.ID, 100, map[string]any{"app_id": "other_app"})},
		{"get refund with another app_id", "GET", refundsPath + "/" + payment.ID + "?app_id=other_app", ""},
	}
	for _, tc := range forbidden {
		t.Run(tc.name, func(t *testing.T) {
			code, body := s.Do(t, tc.method, tc.path, s.APIKey, tc.body)
			checkError(t, code, body, http.StatusForbidden, "forbidden", "other_app")
		})
	}
	if got := count(t, s, "SELECT count(*) FROM payment_orders WHERE merchant_order_id = 'mine-2'"); got != 0 {
		t.Errorf("forbidden create left %d rows; want 0", got)
	}

	t.Run("another app's order is not found with its own app_id", func(t *testing.T) {
		code, body := s.Do(t, "GET", ordersPath+"/mine-1?app_id=other_app", otherKey, "")
		checkError(t, code, body, http.StatusNotFound, "not_found", "mine-1")
	})
	// A key belongs to one app: without app_id, the key's app is meant, and another app's key
	// finds only its own app's orders.
	t.Run("get without app_id: the key's app", func(t *testing.T) {
		for _, path := range []string{ordersPath + "/mine-1", ordersPath + "/mine-1?app_id="} {
			code, body := s.Do(t, "GET", path, s.APIKey, "")
			if o := decodeOrder(t, body); code != http.StatusOK || o.AppID != s.AppID || o.MerchantOrderID != "mine-1" {
				t.Errorf("GET %s = %d %s; want 200 with the key's app's order", path, code, body)
			}
			code, body = s.Do(t, "GET", path, otherKey, "")
			checkError(t, code, body, http.StatusNotFound, "not_found", "mine-1")
		}
	})
	t.Run("get with a malformed app_id", func(t *testing.T) {
		code, body := s.Do(t, "GET", ordersPath+"/mine-1?app_id=a%20b", s.APIKey, "")
		e := checkError(t, code, body, http.StatusBadRequest, "validation_error", "app_id")
		if e.Field != "app_id" {
			t.Errorf("field = %q; want app_id", e.Field)
		}
	})
}

func TestAppWithTwoActiveKeys(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{Service: service.Config{KeyCacheTTL: -1}})
	ctx := context.Background()
	second, rec, err := s.Service.CreateAPIKey(ctx, s.AppID, "rotation")
	if err != nil {
		t.Fatal(err)
	}
	created := createOrder(t, s, "rot-1", 500)
	for name, key := range map[string]string{"first key": s.APIKey, "second key": second} {
		t.Run(name, func(t *testing.T) {
			code, body := s.Do(t, "GET", ordersPath+"/rot-1?app_id=test_app", key, "")
			if code != http.StatusOK || decodeOrder(t, body).ID != created.ID {
				t.Errorf("GET = %d %s; want 200 with order %s", code, body, created.ID)
			}
		})
	}
	t.Run("revoking one leaves the other working", func(t *testing.T) {
		if err := s.Store.RevokeAPIKey(ctx, rec.ID); err != nil {
			t.Fatal(err)
		}
		code, body := s.Do(t, "GET", ordersPath+"/rot-1?app_id=test_app", second, "")
		checkError(t, code, body, http.StatusUnauthorized, "unauthorized", "")
		if code, body := s.Do(t, "POST", ordersPath, s.APIKey, orderBody(t, "rot-2", nil)); code != http.StatusAccepted {
			t.Errorf("create with the remaining key = %d %s; want 202", code, body)
		}
	})
}

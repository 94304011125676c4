package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/service"
)

func TestExpiresIn(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{Service: service.Config{OrderTTL: 30 * time.Minute}})
	for _, tc := range []struct {
		id        string
		expiresIn any // nil: not given
		want      time.Duration
	}{
		{"exp-own", 120, 120 * time.Second},
		{"exp-max", pay.MaxExpiresIn, 7 * 24 * time.Hour},
		{"exp-default", nil, 30 * time.Minute},
	} {
		change := map[string]any{}
		if tc.expiresIn != nil {
			change["expires_in"] = tc.expiresIn
		}
		code, body := s.Do(t, "POST", ordersPath, s.APIKey, orderBody(t, tc.id, change))
		if code != http.StatusAccepted {
			t.Fatalf("create %s = %d %s", tc.id, code, body)
		}
		// The order knows its expiry from its creation: expires_in, or ORDER_TTL, after created_at.
		var created struct {
			ExpiresAt *time.Time `json:"expires_at"`
			CreatedAt time.Time  `json:"created_at"`
		}
		if err := json.Unmarshal(body, &created); err != nil {
			t.Fatal(err)
		}
		if created.ExpiresAt == nil {
			t.Fatalf("%s: created order has expires_at null; want it set at creation: %s", tc.id, body)
		}
		if d := created.ExpiresAt.Sub(created.CreatedAt); d <= tc.want-time.Second || d > tc.want {
			t.Errorf("%s: expires_at %s is %s after created_at %s; want %s (to the second)", tc.id, created.ExpiresAt, d, created.CreatedAt, tc.want)
		}
		s.RunOnce(t)
		o := s.RequireOrder(t, tc.id, "processing", "")
		_, body = s.Do(t, "GET", ordersPath+"/"+tc.id+"?app_id=test_app", s.APIKey, "")
		var view struct {
			ExpiresAt time.Time `json:"expires_at"`
		}
		if err := json.Unmarshal(body, &view); err != nil {
			t.Fatal(err)
		}
		if !view.ExpiresAt.Equal(*created.ExpiresAt) {
			t.Errorf("%s: expires_at moved from %s at creation to %s at checkout", tc.id, created.ExpiresAt, view.ExpiresAt)
		}
		// The cashier order at Lakala expires when the order does (order_efficient_time has whole seconds).
		at, ok := s.Sandbox.Order(o.OutOrderNo())
		if !ok || at.ExpiresAt.Sub(view.ExpiresAt).Abs() > time.Second {
			t.Errorf("%s: sandbox cashier order expires %s; the order %s", tc.id, at.ExpiresAt, view.ExpiresAt)
		}
	}

	t.Run("refused values create nothing", func(t *testing.T) {
		n := count(t, s, "SELECT count(*) FROM payment_orders")
		for _, v := range []any{59, pay.MaxExpiresIn + 1, 0, -60, "120", json.RawMessage("120.5"), json.RawMessage("1e3"), true} {
			code, body := s.Do(t, "POST", ordersPath, s.APIKey, orderBody(t, "exp-bad", map[string]any{"expires_in": v}))
			checkError(t, code, body, http.StatusBadRequest, "validation_error", "expires_in")
		}
		if got := count(t, s, "SELECT count(*) FROM payment_orders"); got != n {
			t.Errorf("orders = %d; want %d", got, n)
		}
	})

	t.Run("a retry with another expires_in is a conflict", func(t *testing.T) {
		code, body := s.Do(t, "POST", ordersPath, s.APIKey, orderBody(t, "exp-own", map[string]any{"expires_in": 120}))
		if code != http.StatusOK {
			t.Errorf("identical retry = %d %s; want 200", code, body)
		}
		code, body = s.Do(t, "POST", ordersPath, s.APIKey, orderBody(t, "exp-own", map[string]any{"expires_in": 300}))
		checkError(t, code, body, http.StatusConflict, "order_conflict", "expires_in")
		code, body = s.Do(t, "POST", ordersPath, s.APIKey, orderBody(t, "exp-own", nil))
		checkError(t, code, body, http.StatusConflict, "order_conflict", "expires_in")
	})
}

func TestHealth(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	for _, tc := range []struct{ path, want string }{{"/healthz", `{"status":"ok"}`}, {"/readyz", `{"status":"ready"}`}} {
		if code, body := s.Do(t, "GET", tc.path, "", ""); code != http.StatusOK || string(body) != tc.want {
			t.Errorf("GET %s = %d %s; want 200 %s", tc.path, code, body, tc.want)
		}
	}
	t.Run("openapi.json without a key", func(t *testing.T) {
		code, body := s.Do(t, "GET", "/api/v1/openapi.json", "", "")
		var doc struct {
			OpenAPI string         `json:"openapi"`
			Paths   map[string]any `json:"paths"`
		}
		if err := json.Unmarshal(body, &doc); code != http.StatusOK || err != nil || doc.OpenAPI != "3.1.0" || doc.Paths["/api/v1/payment-orders"] == nil {
			t.Fatalf("GET /api/v1/openapi.json = %d %.200s (err %v)", code, body, err)
		}
	})
	t.Run("not ready while a migration is missing", func(t *testing.T) {
		ctx := context.Background()
		if _, err := s.Store.Pool().Exec(ctx, "DELETE FROM schema_migrations WHERE version = 4"); err != nil {
			t.Fatal(err)
		}
		code, body := s.Do(t, "GET", "/readyz", "", "")
		checkError(t, code, body, http.StatusServiceUnavailable, "service_unavailable", "migrate")
		if code, _ := s.Do(t, "GET", "/healthz", "", ""); code != http.StatusOK {
			t.Errorf("healthz = %d while not ready; liveness must not depend on the database", code)
		}
	})
}

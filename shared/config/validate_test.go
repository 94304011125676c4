package config

import (
	"context"
	"strings"
	"testing"
)

// prodEnv is a configuration a production deploy could run with.
func prodEnv(t *testing.T) {
	t.Helper()
	for _, v := range Variables {
		t.Setenv(v.Name, "")
	}
	for k, v := range map[string]string{
		"STAGE": "prod", "LAKALA_BASE_URL": "https://s2.lakala.com", "LAKALA_APP_ID": "OP10000123",
		"LAKALA_MERCHANT_NO": "822290070111234", "LAKALA_SERIAL_NO": "0123456789abcdef01", "LAKALA_TERM_NO": "A1234567",
		"REFUND_REQUEST_IP": "203.0.113.10",
	} {
		t.Setenv(k, v)
	}
}

func load(t *testing.T) Config {
	t.Helper()
	c, err := Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestValidateAcceptsAProductionConfiguration(t *testing.T) {
	prodEnv(t)
	c := load(t)
	for _, proc := range []bool{false, true} {
		if err := c.Validate(proc); err != nil {
			t.Errorf("Validate(%v) = %v; want nil", proc, err)
		}
	}
}

func TestValidateDevAcceptsTheDefaults(t *testing.T) {
	for _, v := range Variables {
		t.Setenv(v.Name, "")
	}
	c := load(t)
	if c.Stage != "dev" {
		t.Fatalf("default STAGE = %q; want dev", c.Stage)
	}
	if err := c.Validate(true); err != nil {
		t.Errorf("dev with defaults: %v", err)
	}
}

func TestValidateNamesEveryProblemAtOnce(t *testing.T) {
	cases := []struct {
		name       string
		env        map[string]string
		processor  bool
		wantNamed  []string
		wantAccept bool
	}{
		{"test defaults in prod", map[string]string{"LAKALA_BASE_URL": "http://test.wsmsd.cn/sit", "LAKALA_APP_ID": "OP00000003",
			"LAKALA_MERCHANT_NO": "82229007392000A", "LAKALA_SERIAL_NO": "00dfba8194c41b84cf", "LAKALA_TERM_NO": "D9296400",
			"REFUND_REQUEST_IP": "127.0.0.1"}, true,
			[]string{"LAKALA_BASE_URL", "LAKALA_APP_ID", "LAKALA_MERCHANT_NO", "LAKALA_SERIAL_NO", "LAKALA_TERM_NO", "REFUND_REQUEST_IP"}, false},
		{"HTTP functions ignore the processor's settings", map[string]string{"REFUND_REQUEST_IP": "127.0.0.1", "PROCESSOR_LEASE": "1s"}, false, nil, true},
		{"loopback IPv6", map[string]string{"REFUND_REQUEST_IP": "::1"}, true, []string{"REFUND_REQUEST_IP"}, false},
		{"not an IP", map[string]string{"REFUND_REQUEST_IP": "localhost"}, true, []string{"REFUND_REQUEST_IP"}, false},
		{"unknown stage", map[string]string{"STAGE": "production"}, false, []string{"STAGE"}, false},
		{"base url without scheme", map[string]string{"LAKALA_BASE_URL": "s2.lakala.com"}, false, []string{"LAKALA_BASE_URL"}, false},
		{"cluster with the default app streams", map[string]string{"REDIS_CLUSTER": "true"}, false, nil, true},
		{"cluster with app streams of a tag each", map[string]string{"REDIS_CLUSTER": "true",
			"APP_PAYMENT_RESULT_STREAM": "{$APP}:payments", "APP_REFUND_RESULT_STREAM": "refunds:{$APP}"}, false, nil, true},
		{"cluster with app streams in different slots", map[string]string{"REDIS_CLUSTER": "true",
			"APP_PAYMENT_RESULT_STREAM": "payments:$APP", "APP_REFUND_RESULT_STREAM": "refunds:$APP"}, false,
			[]string{"APP_PAYMENT_RESULT_STREAM", "APP_REFUND_RESULT_STREAM", "CROSSSLOT"}, false},
		{"cluster with a prefix's tag taking over", map[string]string{"REDIS_CLUSTER": "true", "STREAM_PREFIX": "{prod}:",
			"APP_PAYMENT_RESULT_STREAM": "payments:$APP", "APP_REFUND_RESULT_STREAM": "refunds:$APP"}, false, nil, true},
		{"no cluster: any names", map[string]string{"APP_PAYMENT_RESULT_STREAM": "payments:$APP", "APP_REFUND_RESULT_STREAM": "refunds:$APP"}, false, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prodEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			err := load(t).Validate(tc.processor)
			if tc.wantAccept {
				if err != nil {
					t.Fatalf("Validate = %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted the configuration")
			}
			for _, name := range tc.wantNamed {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
			if n := strings.Count(err.Error(), ";") + 1; n != len(tc.wantNamed) && tc.name == "test defaults in prod" {
				t.Errorf("error lists %d problems; want %d: %q", n, len(tc.wantNamed), err)
			}
		})
	}
}

func TestRateLimitOverrides(t *testing.T) {
	for _, v := range Variables {
		t.Setenv(v.Name, "")
	}
	t.Setenv("RATE_LIMIT_APPS", "shop_cn=500:1000, game_x=20")
	c := load(t)
	if got := c.RateLimitOverrides["shop_cn"]; got.Rate != 500 || got.Burst != 1000 {
		t.Errorf("shop_cn = %+v; want 500:1000", got)
	}
	if got := c.RateLimitOverrides["game_x"]; got.Rate != 20 || got.Burst != 40 {
		t.Errorf("game_x = %+v; want 20:40 (burst defaults to twice the rate)", got)
	}
	if c.RateLimit.Rate != 100 || c.RateLimit.Burst != 200 {
		t.Errorf("default limit = %+v; want 100:200", c.RateLimit)
	}
	for _, bad := range []string{"shop_cn", "shop_cn=fast", "=5", "shop_cn=5:x", "shop_cn=-1"} {
		t.Setenv("RATE_LIMIT_APPS", bad)
		if _, err := Load(context.Background()); err == nil || !strings.Contains(err.Error(), "RATE_LIMIT_APPS") {
			t.Errorf("RATE_LIMIT_APPS=%q: err = %v; want one naming RATE_LIMIT_APPS", bad, err)
		}
	}
}

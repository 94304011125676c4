package config

import (
	"context"
	"fmt"
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
		"LAKALA_VPOS_ID": "462621830268882944", "REFUND_REQUEST_IP": "203.0.113.10", "LAKALA_NOTIFY_URL": "https://abc123.execute-api.cn-north-1.amazonaws.com.cn/webhooks/lakala",
		"REDIS_URL":    "rediss://loomipay:s3cret@master.loomipay.abc123.cnn1.cache.amazonaws.com.cn:6379",
		"DATABASE_URL": "postgres://loomipay:s3cret@loomipay.abc123.cn-north-1.rds.amazonaws.com.cn:5432/loomipay",
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

// stageRefusals holds, for every variable in StageChecks, values that STAGE other than dev must
// refuse (each alone, in an otherwise production configuration) and dev must accept.
var stageRefusals = map[string][]map[string]string{
	"LAKALA_BASE_URL":    {{"LAKALA_BASE_URL": "http://s2.lakala.com"}, {"LAKALA_BASE_URL": "s2.lakala.com"}, {"LAKALA_BASE_URL": "https://test.wsmsd.cn/sit"}},
	"LAKALA_APP_ID":      {{"LAKALA_APP_ID": "OP00000003"}},
	"LAKALA_MERCHANT_NO": {{"LAKALA_MERCHANT_NO": "82229007392000A"}},
	"LAKALA_SERIAL_NO":   {{"LAKALA_SERIAL_NO": "00dfba8194c41b84cf"}},
	"LAKALA_TERM_NO":     {{"LAKALA_TERM_NO": "D9296400"}},
	"LAKALA_VPOS_ID":     {{"LAKALA_VPOS_ID": ""}},
	"LAKALA_NOTIFY_URL": {{"LAKALA_NOTIFY_URL": "http://abc123.execute-api.cn-north-1.amazonaws.com.cn/webhooks/lakala"},
		{"LAKALA_NOTIFY_URL": "https://127.0.0.1:3000/webhooks/lakala"}, {"LAKALA_NOTIFY_URL": "https://localhost/webhooks/lakala"}},
	"REFUND_REQUEST_IP": {{"REFUND_REQUEST_IP": "127.0.0.1"}, {"REFUND_REQUEST_IP": "::1"}, {"REFUND_REQUEST_IP": "0.0.0.0"},
		{"REFUND_REQUEST_IP": "10.0.3.7"}, {"REFUND_REQUEST_IP": "192.168.1.1"}, {"REFUND_REQUEST_IP": "169.254.169.254"}, {"REFUND_REQUEST_IP": "localhost"}},
	"WEBHOOK_ALLOW_LOOPBACK": {{"WEBHOOK_ALLOW_LOOPBACK": "true"}},
	"REDIS_URL": {{"REDIS_URL": "redis://loomipay:s3cret@master.loomipay.abc123.cnn1.cache.amazonaws.com.cn:6379"},
		{"REDIS_URL": "rediss://master.loomipay.abc123.cnn1.cache.amazonaws.com.cn:6379"}},
	"DATABASE_URL": {{"DATABASE_URL": "postgres://loomipay:s3cret@loomipay.abc123.cn-north-1.rds.amazonaws.com.cn:5432/loomipay?sslmode=disable"},
		{"DATABASE_URL": "host=10.0.1.5 user=loomipay password=s3cret dbname=loomipay sslmode=allow"}},
	"DATABASE_STATEMENT_TIMEOUT": {{"DATABASE_STATEMENT_TIMEOUT": "0s"}},
	"DATABASE_LOCK_TIMEOUT":      {{"DATABASE_LOCK_TIMEOUT": "0s"}},
	"DATABASE_IDLE_TX_TIMEOUT":   {{"DATABASE_IDLE_TX_TIMEOUT": "0s"}},
}

// TestValidateRefusesEveryStageCheck: each value a production deploy must not run with is
// refused by every stage but dev, named in the error, and accepted by dev.
func TestValidateRefusesEveryStageCheck(t *testing.T) {
	for _, name := range StageChecks {
		if len(stageRefusals[name]) == 0 {
			t.Errorf("StageChecks has %s, but no refused value of it is tested here", name)
		}
	}
	for name, envs := range stageRefusals {
		for _, env := range envs {
			for _, stage := range Stages {
				t.Run(fmt.Sprintf("%s/%v/%s", name, env, stage), func(t *testing.T) {
					prodEnv(t)
					t.Setenv("STAGE", stage)
					if stage == "sandbox" {
						t.Setenv("LAKALA_SANDBOX", "true")
					}
					for k, v := range env {
						t.Setenv(k, v)
					}
					err := load(t).Validate(true)
					testHostInStaging := stage != "prod" && strings.Contains(env["LAKALA_BASE_URL"], "test.wsmsd.cn")
					// Against its own sandbox no real Lakala is reached: its public test identity is harmless.
					identityInSandbox := stage == "sandbox" && publicTestIdentity[name] != ""
					switch {
					case stage == "dev" || testHostInStaging || identityInSandbox:
						if err != nil {
							t.Errorf("Validate = %v; want nil", err)
						}
					case err == nil:
						t.Error("Validate accepted it")
					case !strings.Contains(err.Error(), name):
						t.Errorf("error %q does not name %s", err, name)
					case strings.Contains(err.Error(), "s3cret"):
						t.Errorf("error %q quotes a password", err)
					}
				})
			}
		}
	}
}

func TestValidateAcceptsSaferVariants(t *testing.T) {
	for _, env := range []map[string]string{
		{"DATABASE_URL": "postgres://loomipay:s3cret@db.internal:5432/loomipay?sslmode=require"},
		{"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/loomipay?sslmode=disable"}, // an operator's tunnel
		{"REDIS_URL": "redis://127.0.0.1:6379/0"},
		{"REDIS_URL": "rediss://:authtoken@master.loomipay.abc123.cnn1.cache.amazonaws.com.cn:6379"},
		{"DATABASE_RDS_PROXY": "true", "DATABASE_STATEMENT_TIMEOUT": "0s", "DATABASE_LOCK_TIMEOUT": "0s", "DATABASE_IDLE_TX_TIMEOUT": "0s"},
		{"LAKALA_NOTIFY_URL": ""}, // left to the processor, which refuses to start without one
		{"REFUND_REQUEST_IP": "2001:db8::10"},
	} {
		prodEnv(t)
		for k, v := range env {
			t.Setenv(k, v)
		}
		if err := load(t).Validate(true); err != nil {
			t.Errorf("%v: Validate = %v; want nil", env, err)
		}
	}
}

func TestValidateNeedsALakalaTimeoutInEveryStage(t *testing.T) {
	for _, stage := range Stages {
		prodEnv(t)
		t.Setenv("STAGE", stage)
		t.Setenv("LAKALA_TIMEOUT", "0s")
		if err := load(t).Validate(false); err == nil || !strings.Contains(err.Error(), "LAKALA_TIMEOUT") {
			t.Errorf("STAGE=%s, LAKALA_TIMEOUT=0s: err = %v; want one naming LAKALA_TIMEOUT", stage, err)
		}
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
			"LAKALA_VPOS_ID": "", "REFUND_REQUEST_IP": "127.0.0.1", "LAKALA_NOTIFY_URL": "http://127.0.0.1:3000/webhooks/lakala", "WEBHOOK_ALLOW_LOOPBACK": "true"}, true,
			[]string{"LAKALA_BASE_URL", "LAKALA_APP_ID", "LAKALA_MERCHANT_NO", "LAKALA_SERIAL_NO", "LAKALA_TERM_NO", "LAKALA_VPOS_ID", "REFUND_REQUEST_IP",
				"LAKALA_NOTIFY_URL", "WEBHOOK_ALLOW_LOOPBACK"}, false},
		// Values Lakala would refuse for their length are refused in every stage (dev included).
		{"unknown refund API", map[string]string{"LAKALA_REFUND_API": "v2"}, false, []string{"LAKALA_REFUND_API"}, false},
		{"统一退货 takes an 8-character term_no", map[string]string{"LAKALA_TERM_NO": "A12345678"}, true, []string{"LAKALA_TERM_NO", "at most 8"}, false},
		{"labs takes a 32-character term_no", map[string]string{"LAKALA_TERM_NO": "A12345678", "LAKALA_REFUND_API": "labs"}, true, nil, true},
		{"the HTTP functions send no refund", map[string]string{"LAKALA_TERM_NO": "A12345678"}, false, nil, true},
		{"统一退货 takes a 15-character merchant_no", map[string]string{"LAKALA_MERCHANT_NO": "8222900701112345"}, true, []string{"LAKALA_MERCHANT_NO", "at most 15"}, false},
		{"the HTTP functions need no vpos_id", map[string]string{"LAKALA_VPOS_ID": ""}, false, nil, true},
		{"notify URL of 129 bytes", map[string]string{"LAKALA_NOTIFY_URL": "https://abc123.execute-api.cn-north-1.amazonaws.com.cn/" + strings.Repeat("w", 74)}, false,
			[]string{"LAKALA_NOTIFY_URL", "at most 128"}, false},
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

// TestValidateSandbox: a stage whose Lakala is its own sandbox is never prod; STAGE=sandbox has
// one; a sandbox on this host may be reached (and reach the webhook) over plain HTTP, no other.
func TestValidateSandbox(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // a part of the error; "" for none
	}{
		{"a sandbox in prod", map[string]string{"LAKALA_SANDBOX": "true"}, "LAKALA_SANDBOX"},
		{"STAGE=sandbox without one", map[string]string{"STAGE": "sandbox"}, "LAKALA_SANDBOX=true"},
		{"STAGE=sandbox", map[string]string{"STAGE": "sandbox", "LAKALA_SANDBOX": "true"}, ""},
		{"a test stage with its sandbox", map[string]string{"STAGE": "test", "LAKALA_SANDBOX": "true", "LAKALA_APP_ID": "OP00000003"}, ""},
		{"a loopback sandbox over HTTP", map[string]string{"STAGE": "sandbox", "LAKALA_SANDBOX": "true",
			"LAKALA_BASE_URL": "http://127.0.0.1:9000/sandbox", "LAKALA_NOTIFY_URL": "http://127.0.0.1:9001/webhooks/lakala"}, ""},
		{"a remote sandbox over HTTP", map[string]string{"STAGE": "sandbox", "LAKALA_SANDBOX": "true", "LAKALA_BASE_URL": "http://sandbox.example.com/sandbox"}, "LAKALA_BASE_URL"},
		{"a loopback Lakala over HTTP without a sandbox", map[string]string{"STAGE": "test", "LAKALA_BASE_URL": "http://127.0.0.1:9000"}, "LAKALA_BASE_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prodEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			err := load(t).Validate(true)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate = %v; want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate = %v; want an error naming %s", err, tc.want)
			}
		})
	}
}

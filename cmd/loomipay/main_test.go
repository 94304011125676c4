package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/lambdaemu"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
	"github.com/loomipay/loomipay/shared/webhooks"
)

// useTestServers points the command at an isolated schema and stream prefix.
func useTestServers(t *testing.T) *postgres.Store {
	t.Helper()
	store, schema := testenv.PostgresSchema(t)
	t.Setenv("DATABASE_URL", testenv.SchemaURL(schema))
	// where a loomipay dev or sandbox started by the test keeps the sandbox's state
	t.Cleanup(func() { testenv.DropSchema(t, schema+"_lakala") })
	t.Setenv("REDIS_URL", testenv.RedisURL())
	// The prefix's keys and Redis users (named after it) are deleted when the test ends.
	_, prefix := testenv.Redis(t)
	t.Setenv("STREAM_PREFIX", prefix)
	return store
}

func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

var keyLine = regexp.MustCompile(`^lp_[a-z0-9]{12}_[a-z0-9]{40}\n$`)

func TestKeys(t *testing.T) {
	store := useTestServers(t)
	rdb, _ := testenv.Redis(t)
	svc := service.New(store, streams.New(rdb, streams.Config{Prefix: os.Getenv("STREAM_PREFIX")}), testenv.Logger(), service.Config{KeyCacheTTL: -1})
	ctx := context.Background()

	_, _, err := runCmd(t, "keys", "create", "--app-id", "shop_cn")
	if err == nil || !strings.Contains(err.Error(), `app "shop_cn" does not exist`) || !strings.Contains(err.Error(), "apps create shop_cn") {
		t.Fatalf("keys create for an unknown app: err = %v; want a clear refusal", err)
	}
	if list, _ := store.Apps(ctx); len(list) != 0 {
		t.Fatalf("a refused keys create registered apps: %v", list)
	}
	if _, stderr, err := runCmd(t, "apps", "create", "shop_cn"); err != nil {
		t.Fatalf("apps create: %v\n%s", err, stderr)
	}

	stdout, stderr, err := runCmd(t, "keys", "create", "--app-id", "shop_cn", "--label", "checkout")
	if err != nil {
		t.Fatalf("keys create: %v\n%s", err, stderr)
	}
	if !keyLine.MatchString(stdout) {
		t.Fatalf("keys create stdout = %q; want the key alone on one line", stdout)
	}
	key := strings.TrimSpace(stdout)
	if strings.Contains(stderr, key) {
		t.Errorf("stderr repeats the key: %q", stderr)
	}
	if app, err := svc.Authenticate(ctx, "Bearer "+key); err != nil || app != "shop_cn" {
		t.Fatalf("Authenticate(new key) = %q, %v; want shop_cn", app, err)
	}
	keyID := strings.Split(key, "_")[1]

	stdout, _, err = runCmd(t, "keys", "list", "--app-id", "shop_cn")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, keyID) || !strings.Contains(stdout, "active") || !strings.Contains(stdout, "checkout") {
		t.Errorf("keys list = %q; want the key id, active and the label", stdout)
	}
	if strings.Contains(stdout, key) {
		t.Errorf("keys list printed the key itself")
	}

	if _, stderr, err := runCmd(t, "keys", "revoke", keyID); err != nil {
		t.Fatalf("keys revoke: %v %s", err, stderr)
	}
	var perr *pay.Error
	if _, err := svc.Authenticate(ctx, "Bearer "+key); !errors.As(err, &perr) || perr.Kind != pay.KindUnauthorized {
		t.Errorf("Authenticate(revoked key) err = %v; want unauthorized", err)
	}
	stdout, _, _ = runCmd(t, "keys", "list")
	if !strings.Contains(stdout, "revoked") {
		t.Errorf("keys list after revoke = %q; want revoked", stdout)
	}

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"create without app", []string{"keys", "create"}},
		{"create with bad app", []string{"keys", "create", "--app-id", "bad app!"}},
		{"revoke unknown", []string{"keys", "revoke", "nosuchkey000"}},
		{"revoke without id", []string{"keys", "revoke"}},
		{"unknown subcommand", []string{"keys", "rotate"}},
		{"unknown command", []string{"frobnicate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, _, err := runCmd(t, tc.args...)
			if err == nil {
				t.Errorf("%v succeeded; want an error", tc.args)
			}
			if stdout != "" {
				t.Errorf("%v printed %q on stdout; want nothing", tc.args, stdout)
			}
		})
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	useTestServers(t) // the harness already migrated this schema
	_, stderr, err := runCmd(t, "migrate")
	if err != nil {
		t.Fatalf("migrate: %v %s", err, stderr)
	}
	if !strings.Contains(stderr, "applied 0 migration(s)") {
		t.Errorf("migrate stderr = %q; want nothing left to apply", stderr)
	}
}

// TestDevServesTheWholeStack runs the README's run command in-process and takes a payment
// through it: API, processor, sandbox cashier and webhook.
func TestDevServesTheWholeStack(t *testing.T) {
	store := useTestServers(t)
	users := streams.New(nil, streams.Config{Prefix: os.Getenv("STREAM_PREFIX")})
	var hookMu sync.Mutex
	var hooks []*http.Request
	var hookBodies [][]byte
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hookMu.Lock()
		hooks, hookBodies = append(hooks, r), append(hookBodies, b)
		hookMu.Unlock()
	}))
	defer receiver.Close()
	ctx, cancel := context.WithCancel(context.Background())
	// dev is still writing while the test reads what it printed.
	var stdout, stderr lambdaemu.LockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0", "--state-dir", t.TempDir(),
			"--apps", "demo_app,shop_b", "--forward-webhooks", "demo_app=" + receiver.URL + "/hooks"}, &stdout, &stderr)
	}()
	var apiURL, key string
	testenv.Eventually(t, 20*time.Second, "dev to print its banner", func() bool {
		m := regexp.MustCompile(`API and webhook\s+(http://\S+)`).FindStringSubmatch(stdout.String())
		k := regexp.MustCompile(`(?m)^\s+(lp_\S+)$`).FindStringSubmatch(stdout.String())
		if m == nil || k == nil || !strings.Contains(stdout.String(), "Ctrl-C") {
			return false
		}
		apiURL, key = m[1], k[1]
		return true
	})
	banner := stdout.String()
	if n := len(regexp.MustCompile(`(?m)^\s+lp_\S+$`).FindAllString(banner, -1)); n != 2 {
		t.Errorf("dev printed %d API keys; want one per app:\n%s", n, banner)
	}
	passwords := regexp.MustCompile(`Redis password\s+([0-9a-f]{64})`).FindAllStringSubmatch(banner, -1)
	secret := regexp.MustCompile(`signing secret\s+(whsec_\S+)`).FindStringSubmatch(banner)
	if len(passwords) != 2 || secret == nil {
		t.Fatalf("dev banner lacks the stream credentials of both apps or the webhook secret:\n%s", banner)
	}

	code, body := testenv.Do(t, apiURL, "POST", "/api/v1/payment-orders", key,
		`{"app_id":"demo_app","merchant_order_id":"DEV_1","amount":2500,"order_type":"payment","subject":"dev stack"}`)
	if code != http.StatusAccepted {
		t.Fatalf("create = %d %s", code, body)
	}
	var order struct {
		Status    string         `json:"status"`
		ExtraData map[string]any `json:"extra_data"`
	}
	get := func() {
		code, body := testenv.Do(t, apiURL, "GET", "/api/v1/payment-orders/DEV_1?app_id=demo_app", key, "")
		if code != http.StatusOK {
			t.Fatalf("get = %d %s", code, body)
		}
		if err := json.Unmarshal(body, &order); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 15*time.Second, "the processor to issue a payment URL", func() bool {
		get()
		return order.Status == "processing"
	})
	paymentURL, _ := order.ExtraData["payment_url"].(string)
	resp, err := http.PostForm(paymentURL, url.Values{"action": {"pay"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pay at the cashier = %d", resp.StatusCode)
	}
	testenv.Eventually(t, 10*time.Second, "the notification to settle the order", func() bool {
		get()
		return order.Status == "succeeded"
	})
	checkDevConsole(t, apiURL, stdout.String(), "DEV_1")

	// demo_app's own stream, read as its own Redis user with the printed password.
	opts, _ := redis.ParseURL(testenv.RedisURL())
	demoUser, err := store.AppRedisUser(context.Background(), "demo_app")
	if err != nil {
		t.Fatal(err)
	}
	opts.Username, opts.Password = demoUser.Username, passwords[0][1]
	appRedis := redis.NewClient(opts)
	defer appRedis.Close()
	msgs, err := appRedis.XRange(context.Background(), users.AppStream(pay.StreamPaymentResults, "demo_app"), "-", "+").Result()
	if err != nil || len(msgs) != 2 || msgs[1].Values["new_status"] != "succeeded" {
		t.Errorf("demo_app's stream as its user = %v, %v; want processing and succeeded", msgs, err)
	}
	// …and the same two results as signed webhooks at the forwarded URL.
	testenv.Eventually(t, 10*time.Second, "the webhooks", func() bool {
		hookMu.Lock()
		defer hookMu.Unlock()
		return len(hooks) >= 2
	})
	hookMu.Lock()
	for i, r := range hooks {
		if err := webhooks.Verify(r.Header.Get(webhooks.SignatureHeader), hookBodies[i], secret[1], time.Minute, time.Now()); err != nil {
			t.Errorf("webhook %d: %v (%s)", i, err, hookBodies[i])
		}
	}
	hookMu.Unlock()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("dev returned %v; want a clean stop", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("dev did not stop after its context was cancelled")
	}
	if strings.Contains(stderr.String(), key) || strings.Contains(stderr.String(), passwords[0][1]) || strings.Contains(stderr.String(), secret[1]) {
		t.Error("a key, password or secret appeared in the logs")
	}
}

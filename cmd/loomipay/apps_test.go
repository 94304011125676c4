package main

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/rediscluster"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

// credentials parses the KEY=value lines apps create / rotate-redis-password print.
func credentials(t *testing.T, stdout string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("credentials line %q is not KEY=value", line)
		}
		m[k] = v
	}
	for _, k := range []string{"REDIS_USER", "REDIS_PASSWORD", "PAYMENT_RESULTS_STREAM", "REFUND_RESULTS_STREAM"} {
		if m[k] == "" {
			t.Fatalf("credentials %q lack %s", stdout, k)
		}
	}
	return m
}

// loginEverywhere logs in as user on the test Redis, or on every node of cluster (each node keeps
// its own users): nil if every node accepts the password, an error if none does, and the test
// fails if only some do.
func loginEverywhere(t *testing.T, cluster *rediscluster.Cluster, user, password string) error {
	t.Helper()
	addrs := []string{""}
	if cluster != nil {
		addrs = cluster.Addrs
	}
	var errs []error
	for _, addr := range addrs {
		opts, _ := redis.ParseURL(testenv.RedisURL())
		if addr != "" {
			opts = &redis.Options{Addr: addr}
		}
		opts.Username, opts.Password, opts.MaxRetries = user, password, -1
		c := redis.NewClient(opts)
		if err := c.Ping(context.Background()).Err(); err != nil {
			errs = append(errs, err)
		}
		_ = c.Close()
	}
	if len(errs) != 0 && len(errs) != len(addrs) {
		t.Errorf("%s logs in on %d of %d nodes: %v", user, len(addrs)-len(errs), len(addrs), errs)
	}
	return errors.Join(errs...)
}

// TestApps runs the apps commands on the test Redis and, with REDIS_CLUSTER=true, on a Redis
// Cluster, where the app's Redis user must be made, rotated and switched off on every node.
func TestApps(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testApps(t, nil) })
	t.Run("cluster", func(t *testing.T) { testApps(t, rediscluster.Start(t)) })
}

func testApps(t *testing.T, cluster *rediscluster.Cluster) {
	store := useTestServers(t)
	prefix := os.Getenv("STREAM_PREFIX")
	var rdb redis.UniversalClient
	if cluster != nil {
		t.Setenv("REDIS_URL", cluster.URL())
		t.Setenv("REDIS_CLUSTER", "true")
		rdb, _ = testenv.ClusterRedis(t, cluster)
	} else {
		rdb, _ = testenv.Redis(t)
	}
	login := func(t *testing.T, user, password string) error {
		t.Helper()
		return loginEverywhere(t, cluster, user, password)
	}

	stdout, stderr, err := runCmd(t, "apps", "create", "shop_b")
	if err != nil {
		t.Fatalf("apps create: %v\n%s", err, stderr)
	}
	c := credentials(t, stdout)
	// Named after the deployment (its random id in PostgreSQL), after the stream prefix.
	if !regexp.MustCompile(`^`+regexp.QuoteMeta(prefix)+`loomipay_[0-9a-f]{8}_app_shop_b$`).MatchString(c["REDIS_USER"]) || c["PAYMENT_RESULTS_STREAM"] != prefix+"payment_results:{shop_b}" ||
		c["REFUND_RESULTS_STREAM"] != prefix+"refund_results:{shop_b}" || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(c["REDIS_PASSWORD"]) {
		t.Errorf("apps create printed %v", c)
	}
	if strings.Contains(stderr, c["REDIS_PASSWORD"]) {
		t.Error("the password appeared on stderr")
	}
	if err := login(t, c["REDIS_USER"], c["REDIS_PASSWORD"]); err != nil {
		t.Fatalf("login with the printed password: %v", err)
	}
	if _, _, err := runCmd(t, "apps", "create", "shop_b"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second apps create: err = %v; want already exists", err)
	}

	stdout, _, err = runCmd(t, "apps", "rotate-redis-password", "shop_b", "--keep-old")
	if err != nil {
		t.Fatal(err)
	}
	c2 := credentials(t, stdout)
	if login(t, c2["REDIS_USER"], c2["REDIS_PASSWORD"]) != nil || login(t, c["REDIS_USER"], c["REDIS_PASSWORD"]) != nil {
		t.Error("with --keep-old both passwords must work")
	}
	stdout, _, err = runCmd(t, "apps", "rotate-redis-password", "shop_b")
	if err != nil {
		t.Fatal(err)
	}
	c3 := credentials(t, stdout)
	if login(t, c3["REDIS_USER"], c3["REDIS_PASSWORD"]) != nil || login(t, c2["REDIS_USER"], c2["REDIS_PASSWORD"]) == nil {
		t.Error("after a rotation only the new password may work")
	}

	stdout, _, err = runCmd(t, "apps", "list") // the operations layer's listing
	if err != nil || !regexp.MustCompile(`(?m)^shop_b\s`).MatchString(stdout) {
		t.Errorf("apps list = %q, %v; want shop_b", stdout, err)
	}

	key, stderr, err := runCmd(t, "keys", "create", "--app-id", "shop_b")
	if err != nil {
		t.Fatalf("keys create: %v %s", err, stderr)
	}
	svc := service.New(store, streams.New(rdb, streams.Config{Prefix: prefix}), testenv.Logger(), service.Config{KeyCacheTTL: -1})
	if app, err := svc.Authenticate(context.Background(), "Bearer "+strings.TrimSpace(key)); err != nil || app != "shop_b" {
		t.Fatalf("Authenticate = %q, %v", app, err)
	}
	if _, stderr, err := runCmd(t, "apps", "disable", "shop_b"); err != nil || !strings.Contains(stderr, "is off") {
		t.Fatalf("apps disable: %v %s", err, stderr)
	}
	if login(t, c3["REDIS_USER"], c3["REDIS_PASSWORD"]) == nil {
		t.Error("a disabled app's Redis user can still log in")
	}
	var perr *pay.Error
	if _, err := svc.Authenticate(context.Background(), "Bearer "+strings.TrimSpace(key)); !errors.As(err, &perr) || perr.Kind != pay.KindUnauthorized {
		t.Errorf("a disabled app's key: err = %v; want unauthorized", err)
	}
	if on, err := streams.New(rdb, streams.Config{Prefix: prefix}).AppUserEnabled(context.Background(), c3["REDIS_USER"]); err != nil || on {
		t.Errorf("Redis user after disable: on = %v, %v; want off", on, err)
	}
	if _, _, err := runCmd(t, "apps", "rotate-redis-password", "shop_b"); err == nil {
		t.Error("rotating a disabled app's password succeeded")
	}

	// Enabling takes the disable back: the same key and the same Redis password work again.
	if _, stderr, err := runCmd(t, "apps", "enable", "shop_b"); err != nil || !strings.Contains(stderr, "is on again") {
		t.Fatalf("apps enable: %v %s", err, stderr)
	}
	if err := login(t, c3["REDIS_USER"], c3["REDIS_PASSWORD"]); err != nil {
		t.Errorf("an enabled app's Redis user cannot log in: %v", err)
	}
	if app, err := svc.Authenticate(context.Background(), "Bearer "+strings.TrimSpace(key)); err != nil || app != "shop_b" {
		t.Errorf("an enabled app's key: Authenticate = %q, %v", app, err)
	}
	if _, _, err := runCmd(t, "apps", "enable", "shop_b"); err == nil || !strings.Contains(err.Error(), "not disabled") {
		t.Errorf("enabling an enabled app: %v; want a refusal", err)
	}

	for _, args := range [][]string{
		{"apps"}, {"apps", "create"}, {"apps", "create", "bad app!"}, {"apps", "disable", "no_such_app"}, {"apps", "enable", "no_such_app"},
		{"apps", "rotate-redis-password", "no_such_app"}, {"apps", "frob"},
	} {
		stdout, _, err := runCmd(t, args...)
		if err == nil || stdout != "" {
			t.Errorf("%v = %q, %v; want an error and nothing on stdout", args, stdout, err)
		}
	}
}

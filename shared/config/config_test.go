package config

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestLoadDefaultsAndOverrides(t *testing.T) {
	for _, v := range Variables {
		t.Setenv(v.Name, "")
	}
	t.Setenv("DATABASE_URL", "postgres://u@db:5432/pay")
	t.Setenv("ORDER_TTL", "45m")
	t.Setenv("PROCESSOR_CONCURRENCY", "16")
	t.Setenv("LAKALA_PRIVATE_KEY", `-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----`)
	c, err := Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"DatabaseURL", c.DatabaseURL, "postgres://u@db:5432/pay"},
		{"RedisURL default", c.RedisURL, "redis://127.0.0.1:6379/0"},
		{"OrderTTL", c.OrderTTL, 45 * time.Minute},
		{"ProcessorConcurrency", c.ProcessorConcurrency, 16},
		{"ResultRetention default", c.ResultRetention, 168 * time.Hour},
		{"KeyCacheTTL default", c.KeyCacheTTL, 30 * time.Second},
		{"LakalaBaseURL default", c.LakalaBaseURL, "https://test.wsmsd.cn/sit"},
		{"WorkerStopGrace default", c.WorkerStopGrace, 25 * time.Second},
		{"PEM escapes", c.LakalaPrivateKeyPEM, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"},
	}
	for _, tc := range checks {
		if tc.got != tc.want {
			t.Errorf("%s = %v; want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestLoadNamesEveryBadVariable(t *testing.T) {
	t.Setenv("ORDER_TTL", "half an hour")
	t.Setenv("PROCESSOR_MAX_ATTEMPTS", "-1")
	t.Setenv("LOG_LEVEL", "loud")
	t.Setenv("WORKER_STOP_GRACE", "-5s")
	_, err := Load(context.Background())
	if err == nil {
		t.Fatal("Load accepted bad values")
	}
	for _, name := range []string{"ORDER_TTL", "PROCESSOR_MAX_ATTEMPTS", "LOG_LEVEL", "WORKER_STOP_GRACE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestOpenNeedsADatabase(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	c, err := Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), c); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("Open without DATABASE_URL: err = %v; want one naming DATABASE_URL", err)
	}
}

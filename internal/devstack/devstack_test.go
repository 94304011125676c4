package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testskip"
)

func testOptions(t *testing.T) Options {
	t.Helper()
	return Options{
		StateDir: t.TempDir(),
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
}

// testWriter sends log lines to the test log so they show only on failure or -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestEnvironmentURLsWin(t *testing.T) {
	tests := []struct {
		name  string
		env   string
		value string
		get   func(context.Context, Options) (string, func(), error)
	}{
		{"postgres", "DATABASE_URL", "postgres://app:secret@db.example:6543/other?sslmode=require", Postgres},
		{"redis", "REDIS_URL", "redis://:secret@cache.example:6380/3", Redis},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.env, tt.value)
			o := testOptions(t)
			url, stop, err := tt.get(t.Context(), o)
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if url != tt.value {
				t.Errorf("url = %q, want %q", url, tt.value)
			}
			stop()
			stop()
			if entries, _ := os.ReadDir(o.StateDir); len(entries) != 0 {
				t.Errorf("state dir has %d entries; nothing should have been started", len(entries))
			}
		})
	}
}

// localServerURL returns the default local server's base URL, skipping the
// test when nothing usable listens there.
func localServerURL(t *testing.T) string {
	t.Helper()
	const url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	if err := probePostgres(t.Context(), url); err != nil {
		testskip.Missing(t, fmt.Sprintf("no PostgreSQL accepting postgres@127.0.0.1:5432 without a password: %v", err), "run PostgreSQL there with trust auth for postgres on 127.0.0.1, as .ci/run sets it up")
	}
	return url
}

func uniqueName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

func databaseExists(t *testing.T, adminURL, name string) bool {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), adminURL)
	if err != nil {
		t.Fatalf("connecting to %s: %v", adminURL, err)
	}
	defer conn.Close(context.Background())
	var exists bool
	err = conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		t.Fatalf("checking pg_database: %v", err)
	}
	return exists
}

func TestEnsureDatabaseCreatesOnceOnLocalServer(t *testing.T) {
	adminURL := localServerURL(t)
	name := uniqueName(t, "devstack_test_")
	url := "postgres://postgres@127.0.0.1:5432/" + name + "?sslmode=disable"
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), adminURL)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("cleanup: dropping %s: %v", name, err)
		}
	})

	if databaseExists(t, adminURL, name) {
		t.Fatalf("database %s exists before the test", name)
	}
	if err := EnsureDatabase(t.Context(), url); err != nil {
		t.Fatalf("first EnsureDatabase: %v", err)
	}
	if !databaseExists(t, adminURL, name) {
		t.Fatalf("database %s was not created", name)
	}
	if err := EnsureDatabase(t.Context(), url); err != nil {
		t.Fatalf("second EnsureDatabase: %v", err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connecting to the created database: %v", err)
	}
	conn.Close(t.Context())
}

func TestEnsureDatabaseRejectsURLWithoutName(t *testing.T) {
	t.Setenv("PGDATABASE", "")
	err := EnsureDatabase(t.Context(), "postgres://postgres@127.0.0.1:1/?sslmode=disable")
	if err == nil || !strings.Contains(err.Error(), "names no database") {
		t.Fatalf("err = %v, want a missing-database error", err)
	}
}

func requirePostgresBinaries(t *testing.T) {
	t.Helper()
	if _, err := findPostgresBinaries(t.Context(), postgresLibRoot); err != nil {
		testskip.Missing(t, fmt.Sprintf("PostgreSQL server binaries not installed: %v", err), "apt-get install postgresql")
	}
}

func queryInt(t *testing.T, url, sql string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func execSQL(t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestPrivatePostgresKeepsDataAcrossRuns(t *testing.T) {
	requirePostgresBinaries(t)
	t.Setenv("DATABASE_URL", "")
	o := testOptions(t)
	dataDir := filepath.Join(o.StateDir, "postgres")

	url, stop, err := startPrivatePostgres(t.Context(), o)
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	t.Cleanup(stop)
	if !strings.HasPrefix(url, "postgres://postgres@127.0.0.1:") || !strings.Contains(url, "/loomipay?") {
		t.Errorf("url = %q, want the loomipay database on loopback", url)
	}
	if got := queryInt(t, url, "SELECT 1"); got != 1 {
		t.Fatalf("SELECT 1 = %d", got)
	}
	execSQL(t, url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
	stop()
	stop() // idempotent
	if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("postmaster.pid still present after stop (err %v): server not stopped", err)
	}
	if err := probePostgres(t.Context(), url); err == nil {
		t.Fatal("server still answers after stop")
	}

	// A lock file naming a live process that is not postgres (its PID was
	// reused after a crash) must not block the next start.
	stalePID := fmt.Sprintf("%d\n%s\n0\n1\n\n127.0.0.1\n", os.Getpid(), dataDir)
	if err := os.WriteFile(filepath.Join(dataDir, "postmaster.pid"), []byte(stalePID), 0o600); err != nil {
		t.Fatal(err)
	}

	url, stop, err = startPrivatePostgres(t.Context(), o)
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	t.Cleanup(stop)
	if got := queryInt(t, url, "SELECT n FROM kept"); got != 42 {
		t.Fatalf("kept row = %d, want 42", got)
	}

	// A run that crashed without calling stop leaves the server running; the
	// next run must reuse it rather than fail on the existing postmaster.pid.
	adoptedURL, adoptedStop, err := startPrivatePostgres(t.Context(), o)
	if err != nil {
		t.Fatalf("start over a running server: %v", err)
	}
	t.Cleanup(adoptedStop)
	if adoptedURL != url {
		t.Errorf("adopted url = %q, want the running server's %q", adoptedURL, url)
	}
	if got := queryInt(t, adoptedURL, "SELECT n FROM kept"); got != 42 {
		t.Fatalf("kept row via adopted server = %d, want 42", got)
	}
	adoptedStop()
	if err := probePostgres(t.Context(), url); err == nil {
		t.Fatal("adopted server still answers after stop")
	}
}

func writeFakeBinaries(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestChoosePostgresBinaries(t *testing.T) {
	libRoot := t.TempDir()
	writeFakeBinaries(t, filepath.Join(libRoot, "13", "bin"))
	writeFakeBinaries(t, filepath.Join(libRoot, "16", "bin"))
	// Incomplete and non-version directories are ignored.
	if err := os.MkdirAll(filepath.Join(libRoot, "17", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFakeBinaries(t, filepath.Join(libRoot, "common", "bin"))
	t.Setenv("PATH", t.TempDir())

	found, err := findPostgresBinaries(t.Context(), libRoot)
	if err != nil {
		t.Fatalf("findPostgresBinaries: %v", err)
	}
	tests := []struct {
		name      string
		dataMajor int
		wantMajor int
		wantErr   string
	}{
		{"new data dir takes newest", 0, 16, ""},
		{"existing data dir keeps its version", 13, 13, ""},
		{"missing version says what to install", 14, 0, "apt-get install postgresql-14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := choosePostgresBinaries(found, tt.dataMajor, "/data")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if got.major != tt.wantMajor || got.pgCtl != filepath.Join(libRoot, strconv.Itoa(tt.wantMajor), "bin", "pg_ctl") {
				t.Errorf("chose %+v, want version %d", got, tt.wantMajor)
			}
		})
	}
}

func TestNoPostgresBinariesSaysWhatToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findPostgresBinaries(t.Context(), t.TempDir())
	if !errors.Is(err, ErrPostgresNotInstalled) {
		t.Fatalf("err = %v, want ErrPostgresNotInstalled", err)
	}
	for _, want := range []string{"apt-get install postgresql", "DATABASE_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func pingURL(ctx context.Context, t *testing.T, url string) error {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("parsing %q: %v", url, err)
	}
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	client := redis.NewClient(opts)
	defer client.Close()
	return client.Ping(ctx).Err()
}

func TestPrivateRedis(t *testing.T) {
	tests := []struct {
		name  string
		start func(*testing.T, Options) (string, func(), error)
	}{
		{"redis-server", func(t *testing.T, o Options) (string, func(), error) {
			bin, err := exec.LookPath("redis-server")
			if err != nil {
				testskip.Missing(t, "redis-server is not installed", "apt-get install redis-server")
			}
			return startRedisServer(t.Context(), o, bin)
		}},
		{"miniredis", func(t *testing.T, o Options) (string, func(), error) {
			return startMiniredis(o)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, stop, err := tt.start(t, testOptions(t))
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			t.Cleanup(stop)
			if url == defaultRedisURL {
				t.Fatalf("url = %q: a private server must not take the default port", url)
			}
			if err := pingURL(t.Context(), t, url); err != nil {
				t.Fatalf("PING %s: %v", url, err)
			}
			stop()
			stop()
			if err := pingRedis(t.Context(), url); err == nil {
				t.Fatal("server still answers PING after stop")
			}
		})
	}
}

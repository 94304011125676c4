package loomipay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The SDK's tests run against the real local stack: `loomipay dev` (API, webhook, processor,
// Lakala sandbox) built from this repository, on the local PostgreSQL (a database of its own,
// dropped afterwards) and Redis (a stream prefix of its own, deleted afterwards). Nothing is
// mocked. Environment: SDK_TEST_DATABASE_ADMIN_URL (default the local postgres role),
// SDK_TEST_REDIS_URL (default redis://127.0.0.1:6379/5: database 5, so that reading it as the
// app's own user, which must SELECT it, is proven too).
var stack struct {
	baseURL, apiKey, appID, prefix, redisURL string
	// appRedisURL is the app's own Redis URL as dev printed it: its user, its password, the
	// stack's database.
	appRedisURL string
	rdb         *redis.Client
	// dev delivers sdk_app's results as webhooks to hooks, signed with webhookSecret.
	hooks         *webhookMux
	webhookSecret string
}

// webhookMux is the receiver dev forwards webhooks to; a test installs its handler.
type webhookMux struct {
	mu sync.Mutex
	h  http.Handler
}

func (m *webhookMux) set(h http.Handler) { m.mu.Lock(); m.h = h; m.mu.Unlock() }

func (m *webhookMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	h := m.h
	m.mu.Unlock()
	if h == nil {
		w.WriteHeader(http.StatusNoContent) // no test listening: acknowledged, not retried
		return
	}
	h.ServeHTTP(w, r)
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestMain(m *testing.M) {
	code, err := runWithStack(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdk tests:", err)
		code = 1
	}
	os.Exit(code)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func randomHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func runWithStack(m *testing.M) (int, error) {
	work, err := os.MkdirTemp("", "loomipay-sdk-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(work)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return 1, err
	}
	bin := filepath.Join(work, "loomipay")
	build := exec.Command("go", "build", "-o", bin, "./cmd/loomipay")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return 1, fmt.Errorf("build loomipay: %v\n%s", err, out)
	}

	admin := env("SDK_TEST_DATABASE_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	database := "loomipay_sdk_" + randomHex()
	if out, err := exec.Command("psql", admin, "-qc", "CREATE DATABASE "+database).CombinedOutput(); err != nil {
		return 1, fmt.Errorf("create database (needs psql and the local PostgreSQL): %v\n%s", err, out)
	}
	defer func() {
		_ = exec.Command("psql", admin, "-qc", "DROP DATABASE IF EXISTS "+database+" WITH (FORCE)").Run()
	}()
	server := admin[:strings.LastIndex(strings.SplitN(admin, "?", 2)[0], "/")]
	dbURL := server + "/" + database + "?sslmode=disable"

	stack.redisURL = env("SDK_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
	opt, err := redis.ParseURL(stack.redisURL)
	if err != nil {
		return 1, err
	}
	stack.rdb = redis.NewClient(opt)
	defer stack.rdb.Close()
	stack.prefix = "sdk" + randomHex() + ":"
	defer func() {
		ctx := context.Background()
		iter := stack.rdb.Scan(ctx, 0, stack.prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			stack.rdb.Del(ctx, iter.Val())
		}
		// and the app's Redis user that dev made (named after the prefix)
		users, _ := stack.rdb.Do(ctx, "ACL", "USERS").StringSlice()
		for _, u := range users {
			if strings.HasPrefix(u, stack.prefix) {
				stack.rdb.Do(ctx, "ACL", "DELUSER", u)
			}
		}
	}()

	apiAddr, err := freePort()
	if err != nil {
		return 1, err
	}
	sandboxAddr, err := freePort()
	if err != nil {
		return 1, err
	}
	stack.hooks = &webhookMux{}
	hookSrv := httptest.NewServer(stack.hooks)
	defer hookSrv.Close()
	environ := append(os.Environ(), "DATABASE_URL="+dbURL, "REDIS_URL="+stack.redisURL,
		"STREAM_PREFIX="+stack.prefix, "LOG_LEVEL=warn")
	logs := &syncBuffer{}
	// --apps: keys are issued only for apps that exist; dev creates it.
	dev := exec.Command(bin, "dev", "--addr", apiAddr, "--sandbox-addr", sandboxAddr, "--state-dir", filepath.Join(work, "state"),
		"--apps", "sdk_app", "--forward-webhooks", "sdk_app="+hookSrv.URL+"/webhook")
	devOut := &syncBuffer{}
	dev.Env, dev.Stdout, dev.Stderr = environ, devOut, logs
	if err := dev.Start(); err != nil {
		return 1, err
	}
	defer func() {
		_ = dev.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = dev.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = dev.Process.Kill()
			<-done
		}
	}()
	stack.baseURL = "http://" + apiAddr
	ready := false
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get(stack.baseURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ready = true
				break
			}
		}
		if dev.ProcessState != nil {
			break
		}
	}
	if !ready {
		return 1, fmt.Errorf("loomipay dev did not become ready; its log:\n%s", logs.String())
	}
	stack.appID = "sdk_app"
	// dev prints its apps while its servers start: the secret may come just after /readyz.
	secretRE := regexp.MustCompile(`signing secret +(\S+)`)
	for deadline := time.Now().Add(10 * time.Second); stack.webhookSecret == ""; time.Sleep(50 * time.Millisecond) {
		if m := secretRE.FindStringSubmatch(devOut.String()); m != nil {
			stack.webhookSecret = m[1]
		} else if time.Now().After(deadline) {
			return 1, fmt.Errorf("loomipay dev printed no webhook signing secret:\n%s", devOut.String())
		}
	}
	appURL := regexp.MustCompile(`Redis URL +(redis://\S+)`).FindStringSubmatch(devOut.String())
	if appURL == nil {
		return 1, fmt.Errorf("loomipay dev printed no Redis URL for the app:\n%s", devOut.String())
	}
	stack.appRedisURL = appURL[1]
	keys := exec.Command(bin, "keys", "create", "--app-id", stack.appID, "--label", "sdk tests")
	keys.Env = environ
	out, err := keys.Output()
	if err != nil {
		return 1, fmt.Errorf("create key: %v", err)
	}
	stack.apiKey = strings.TrimSpace(string(out))
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "loomipay dev log (tail):\n%s\n", tail(logs.String(), 3000))
	}
	return code, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// pay presses Pay on the sandbox's cashier page, as a payer would.
func pay(t *testing.T, paymentURL string) {
	t.Helper()
	resp, err := http.PostForm(paymentURL, map[string][]string{"action": {"pay"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		t.Fatalf("pay at %s = %d", paymentURL, resp.StatusCode)
	}
}

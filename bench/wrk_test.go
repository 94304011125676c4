//go:build unix

package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/internal/testskip"
)

// wrkScript POSTs create-order requests, each with a merchant_order_id no other request of the
// run uses (run id, thread, counter).
const wrkScript = `
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local n = 0
function request()
  n = n + 1
  local body = string.format('{"app_id":"%s","merchant_order_id":"%s_%d_%d","amount":10000,"order_type":"payment","subject":"VIP membership","currency":"CNY","extra_data":{"user_id":"user_12345"}}', APP, RUN, tid, n)
  return wrk.format("POST", "/api/v1/payment-orders", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. KEY}, body)
end
`

var (
	wrkRate    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkP99     = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkErrors  = regexp.MustCompile(`Socket errors: .*`)
	apiKeyLine = regexp.MustCompile(`lp_[A-Za-z0-9_]+`)
)

// buildLoomipay builds cmd/loomipay into a temporary directory.
func buildLoomipay(t *testing.T) string {
	t.Helper()
	root, _ := filepath.Abs("..")
	bin := filepath.Join(t.TempDir(), "loomipay")
	build := exec.Command("go", "build", "-o", bin, "./cmd/loomipay")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build loomipay: %v\n%s", err, out)
	}
	return bin
}

// freshDatabase creates a database of its own, dropped when the test ends, and returns its URL.
func freshDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	db := testenv.UniqueName("bench_")
	admin, err := pgx.Connect(ctx, testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", db, err)
		}
		admin.Close(ctx)
	})
	return u.String()
}

// startProcess starts cmd in its own process group and stops it with SIGINT when the test ends.
func startProcess(t *testing.T, cmd *exec.Cmd) io.Reader {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Stderr == nil {
		cmd.Stderr = io.Discard
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	return stdout
}

// awaitLine waits for a line of r matching re and returns its first match.
func awaitLine(t *testing.T, r io.Reader, re *regexp.Regexp, what string) string {
	t.Helper()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if m := re.FindString(sc.Text()); m != "" {
				select {
				case found <- m:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case m := <-found:
		return m
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: nothing within 60 s", what)
		return ""
	}
}

// benchEnv is the environment of the commands the rows run: a fresh database, this test's
// stream prefix, no per-app rate limit (one app sends all the load; the limit is measured by
// the tests, not here), quiet logs.
func benchEnv(t *testing.T, dbURL string) []string {
	t.Helper()
	_, prefix := testenv.Redis(t) // deletes the streams at the end
	return append(os.Environ(), "DATABASE_URL="+dbURL, "REDIS_URL="+testenv.RedisURL(), "STREAM_PREFIX="+prefix,
		"LOG_LEVEL=warn", "RATE_LIMIT=0")
}

// devStack runs `loomipay dev` on a fresh database and its own ports and returns the API's
// URL and the demo app's key.
func devStack(t *testing.T) (string, string) {
	t.Helper()
	bin := buildLoomipay(t)
	env := benchEnv(t, freshDatabase(t))
	api, sb := freePort(t), freePort(t)
	cmd := exec.Command(bin, "dev", "--addr", api, "--sandbox-addr", sb, "--state-dir", filepath.Join(t.TempDir(), "state"))
	cmd.Env = env
	key := awaitLine(t, startProcess(t, cmd), apiKeyLine, "loomipay dev's API key")
	return "http://" + api, key
}

// serveAlone runs `loomipay serve` — the API as deployed: no processor, no sandbox in its
// process — on a migrated fresh database, and returns its URL and a key of app bench_app.
func serveAlone(t *testing.T) (string, string) {
	t.Helper()
	bin := buildLoomipay(t)
	env := benchEnv(t, freshDatabase(t))
	for _, args := range [][]string{{"migrate"}, {"apps", "create", "bench_app"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("loomipay %v: %v\n%s", args, err, out)
		}
	}
	keyCmd := exec.Command(bin, "keys", "create", "--app-id", "bench_app")
	keyCmd.Env = env
	out, err := keyCmd.Output()
	if err != nil {
		t.Fatalf("loomipay keys create: %v", err)
	}
	api := freePort(t)
	cmd := exec.Command(bin, "serve", "--addr", api)
	cmd.Env = env
	awaitLine(t, startProcess(t, cmd), regexp.MustCompile(`http://\S+`), "loomipay serve listening")
	return "http://" + api, apiKeyLine.FindString(string(out))
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testWrk is row 3.
func testWrk(t *testing.T) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		testskip.Missing(t, "wrk is not installed: row 3 (HTTP create-order) not measured", "apt-get install wrk")
	}
	sz := size()
	floor := storageFloorRate(t)
	serveURL, serveKey := serveAlone(t)
	var rates, p99s []float64
	for range sz.WrkRuns {
		rate, p99 := runWrk(t, wrk, serveURL, "bench_app", serveKey, sz.WrkDuration)
		rates, p99s = append(rates, rate), append(p99s, p99)
	}
	// Diagnostic: the same wrk against the whole local stack (loomipay dev), whose processor and
	// Lakala sandbox take every new order's task on the same 2 cores.
	devURL, devKey := devStack(t)
	whole := (sz.WrkDuration / 3).Round(time.Second)
	wholeRate, wholeP99 := runWrk(t, wrk, devURL, "demo_app", devKey, whole)
	r := SummarizeLow(rates)
	ratio := r.Median / floor
	record(&Row{N: 3, What: "create over HTTP: wrk against loomipay serve (the API as deployed), 16 connections",
		Figures: []string{
			fig(fmt.Sprintf("req/s (wrk -t 2 -c 16 -d %s --latency, Lua script with unique merchant_order_ids)", sz.WrkDuration), r, perSec),
			fig("p99 latency (wrk's)", Summarize(p99s), msf),
			fmt.Sprintf("storage floor of row 1, same run: %.0f/s", floor),
			fmt.Sprintf("diagnostic, not the target: the same wrk for %s against the whole local stack (loomipay dev: API, processor and sandbox in one process): %.0f req/s (%.2f × floor), p99 %s",
				whole, wholeRate, wholeRate/floor, msf(wholeP99)),
		},
		Ratio:   fmt.Sprintf("%.2f × floor", ratio),
		Target:  "≥ 0.6 × floor",
		Met:     met(ratio >= 0.6),
		Command: command("wrk"),
		Notes: []string{"`loomipay serve` is built and run as its own process with DATABASE_URL pointing at a fresh " +
			"database (migrated with `loomipay migrate`, dropped afterwards), its own port and stream prefix, " +
			"RATE_LIMIT=0 (one app sends all the load) and LOG_LEVEL=warn: the API and webhook exactly as the Lambda " +
			"functions serve them, with no processor and no sandbox in the process, so the tasks the orders create " +
			"wait in the stream. wrk shares the machine's 2 cores with it, PostgreSQL and Redis.",
			"The whole-stack diagnostic is lower because the local stack's processor signs every new order's " +
				"cashier request (RSA-2048) and its sandbox signs every answer, on the same cores (see row 5); deployed, " +
				"the processor runs on its own Lambda CPUs and Lakala's signing on Lakala's."},
	})
}

// runWrk runs wrk's create script against url for d and returns req/s and the p99 in ns.
func runWrk(t *testing.T, wrk, url, app, key string, d time.Duration) (float64, float64) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "create.lua")
	src := fmt.Sprintf("APP = %q\nRUN = %q\nKEY = %q\n%s", app, testenv.UniqueName("W"), key, wrkScript)
	if err := os.WriteFile(script, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(wrk, "-t", "2", "-c", "16", "-d", fmt.Sprintf("%.0fs", max(d.Seconds(), 1)),
		"--latency", "-s", script, url).CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		t.Fatalf("wrk saw %s non-2xx answers:\n%s", m[1], out)
	}
	if m := wrkErrors.Find(out); m != nil {
		t.Fatalf("wrk: %s\n%s", m, out)
	}
	r, p := wrkRate.FindSubmatch(out), wrkP99.FindSubmatch(out)
	if r == nil || p == nil {
		t.Fatalf("cannot read wrk's output:\n%s", out)
	}
	rate, _ := strconv.ParseFloat(string(r[1]), 64)
	v, _ := strconv.ParseFloat(string(p[1]), 64)
	unit := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9}[string(p[2])]
	return rate, v * unit
}

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

// devStack runs `loomipay dev` on a fresh database and its own ports and returns the API's
// URL and the demo app's key.
func devStack(t *testing.T) (string, string) {
	t.Helper()
	ctx := context.Background()
	root, _ := filepath.Abs("..")
	dir := t.TempDir()
	bin := filepath.Join(dir, "loomipay")
	build := exec.Command("go", "build", "-o", bin, "./cmd/loomipay")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build loomipay: %v\n%s", err, out)
	}
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
	dbURL := u.String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", db, err)
		}
		admin.Close(ctx)
	})
	_, prefix := testenv.Redis(t) // deletes the dev stack's streams at the end
	api, sb := freePort(t), freePort(t)
	cmd := exec.Command(bin, "dev", "--addr", api, "--sandbox-addr", sb, "--state-dir", filepath.Join(dir, "state"))
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "REDIS_URL="+testenv.RedisURL(), "STREAM_PREFIX="+prefix, "LOG_LEVEL=warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
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
	keys := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if k := apiKeyLine.FindString(sc.Text()); k != "" {
				keys <- k
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case k := <-keys:
		return "http://" + api, k
	case <-time.After(60 * time.Second):
		t.Fatal("loomipay dev printed no API key within 60 s")
		return "", ""
	}
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
		t.Skip("wrk is not installed (apt-get install wrk); row 3 not measured")
	}
	sz := size()
	floor := storageFloorRate(t)
	url, key := devStack(t)
	var rates, p99s []float64
	for range sz.WrkRuns {
		rate, p99 := runWrk(t, wrk, url, "demo_app", key, sz.WrkDuration)
		rates, p99s = append(rates, rate), append(p99s, p99)
	}
	// Diagnostic: the same wrk against the API handler alone (the test stack's HTTP server,
	// whose processor does not run), to separate the HTTP path from the local stack's other work.
	s := testenv.NewStack(t, testenv.StackOptions{NoAPICheck: true})
	alone := (sz.WrkDuration / 3).Round(time.Second)
	aloneRate, aloneP99 := runWrk(t, wrk, s.API.URL, s.AppID, s.APIKey, alone)
	r := SummarizeLow(rates)
	ratio := r.Median / floor
	record(&Row{N: 3, What: "create over HTTP: wrk against loomipay dev, 16 connections",
		Figures: []string{
			fig(fmt.Sprintf("req/s (wrk -t 2 -c 16 -d %s --latency, Lua script with unique merchant_order_ids)", sz.WrkDuration), r, perSec),
			fig("p99 latency (wrk's)", Summarize(p99s), msf),
			fmt.Sprintf("storage floor of row 1, same run: %.0f/s", floor),
			fmt.Sprintf("diagnostic, not the target: the same wrk for %s against the API handler alone (no processor, no sandbox work): %.0f req/s (%.2f × floor), p99 %s",
				alone, aloneRate, aloneRate/floor, msf(aloneP99)),
		},
		Ratio:   fmt.Sprintf("%.2f × floor", ratio),
		Target:  "≥ 0.4 × floor",
		Met:     met(ratio >= 0.4),
		Command: command("wrk"),
		Notes: []string{"`loomipay dev` is built and run with DATABASE_URL pointing at a fresh database (dropped " +
			"afterwards), its own ports and stream prefix. It is the whole local stack in one process: its processor " +
			"and Lakala sandbox take every new order's task while wrk runs, and wrk shares the same 2 cores.",
			"Why the target is missed — a CPU profile of `loomipay dev` under this wrk load (`loomipay dev --pprof " +
				"127.0.0.1:6060`, then `go tool pprof -top -cum loomipay 'http://127.0.0.1:6060/debug/pprof/profile?seconds=10'`, " +
				"2026-11-27, 408 req/s): 72 % of the process's CPU is RSA-2048 signing — 33 % in `lakala.SignRequest` " +
				"(the processor signing each new order's cashier request, as Lakala's protocol requires) and 39 % in " +
				"`lakala.SetResponseSignature` (the sandbox standing in for Lakala) — while the API's whole handler chain " +
				"is under 5 %. The stack's sustained create rate is the rate at which it can also process the orders " +
				"(row 5), because both share 2 cores. Deployed, the API functions and the processor run on separate " +
				"Lambda CPUs and Lakala's signing on Lakala's.",
			"The API path alone over HTTP, measured the same day with the same wrk script against a server running " +
				"only httpapi's handler (logging JSON to a file): 3826 req/s, p99 9.5 ms, 0.57 × the floor — above the " +
				"row's target — with the server process using 0.6 of the 2 cores (the rest: PostgreSQL, Redis and wrk). " +
				"The diagnostic figure above measures the same thing inside this run, right after the loomipay dev run; " +
				"earlier runs on 2026-11-27, made while other test suites shared the machine, gave 0.29–0.34 × there.",
		},
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

package bench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testenv"
)

var (
	reportPath = flag.String("report", "", "run every row at full size and write the report (docs/BENCHMARKS.md) here")
	smoke      = flag.Bool("smoke", false, "run every row at tiny size (make bench-smoke)")
)

// sizes are the workload of one suite run.
type sizes struct {
	Runs           int // repeats of the in-process rows (1, 2, 4)
	CreateOps      int // operations per run of rows 1 and 4
	PacedOps       int // operations per run of row 2
	ExistingOrders int // row 4
	DrainTasks     int // row 5
	DrainRuns      int
	NotifySamples  int // row 6, per run
	WrkDuration    time.Duration
	WrkRuns        int
	ColdStarts     int // row 7, per function
	RSSInvokes     int // row 8: create-order invocations of the real binary
	RSSDrainTasks  int // row 8: tasks drained by the real processor binary
	ResultMessages int // row 9
	ScaleTasks     int // row 11: tasks per worker process
	ResultMaxLen   int64
	ResultBatch    int
	OutboxRows     int // row 9: published outbox rows to prune
	WebhookRuns    int // row 11
	WebhookEvents  int // row 11: events per throughput run (× 8 endpoints)
	WebhookSamples int // row 11: commit → delivery latency samples per run
}

var (
	fullSizes = sizes{
		Runs: 5, CreateOps: 3000, PacedOps: 1500, ExistingOrders: 1_000_000,
		DrainTasks: 10_000, DrainRuns: 3, NotifySamples: 200,
		WrkDuration: 30 * time.Second, WrkRuns: 3, ColdStarts: 7, RSSInvokes: 1000, RSSDrainTasks: 5000,
		ResultMessages: 1_000_000, ResultMaxLen: 100_000, ResultBatch: 1000, OutboxRows: 1_000_000,
		ScaleTasks:  800,
		WebhookRuns: 3, WebhookEvents: 1000, WebhookSamples: 100,
	}
	smokeSizes = sizes{
		Runs: 2, CreateOps: 40, PacedOps: 20, ExistingOrders: 2000,
		DrainTasks: 100, DrainRuns: 1, NotifySamples: 5,
		WrkDuration: 2 * time.Second, WrkRuns: 1, ColdStarts: 1, RSSInvokes: 5, RSSDrainTasks: 50,
		ResultMessages: 5000, ResultMaxLen: 1000, ResultBatch: 500, OutboxRows: 2000,
		ScaleTasks:  40,
		WebhookRuns: 1, WebhookEvents: 20, WebhookSamples: 5,
	}
)

// size is the workload of this run: full with -report, tiny otherwise (-smoke, benchmarks
// run without -report).
func size() sizes {
	if *reportPath != "" {
		return fullSizes
	}
	return smokeSizes
}

// Row is one line of the report's table and its section.
type Row struct {
	N       int
	What    string
	Figures []string // "name: value", already formatted
	Ratio   string   // the measured figure the target is about
	Target  string
	Met     string // "met", "**not met**", or an explanation
	Command string
	Notes   []string
}

var (
	reportMu sync.Mutex
	rows     = map[int]*Row{}
)

func record(r *Row) {
	reportMu.Lock()
	defer reportMu.Unlock()
	rows[r.N] = r
}

// met renders a target check.
func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// command is the exact command that reproduces the rows of one subtest.
func command(subtest string) string {
	return fmt.Sprintf("go test ./bench -count=1 -timeout 20m -v -run 'TestReport/%s$' -report=/tmp/bench.md", subtest)
}

// TestReport runs the suite: at full size with -report (make bench), tiny with -smoke (make
// bench-smoke). Under a plain go test it is skipped: make test runs the smoke explicitly.
func TestReport(t *testing.T) {
	if *reportPath == "" && !*smoke {
		t.Skip("performance suite: run make bench or make bench-smoke")
	}
	started := time.Now()
	load := loadAverage()
	t.Run("create", testCreate)       // rows 1, 2, 4
	t.Run("wrk", testWrk)             // row 3
	t.Run("drain", testDrain)         // row 5
	t.Run("notify", testNotify)       // row 6
	t.Run("growth", testGrowth)       // row 9
	t.Run("list", testList)           // row 10
	t.Run("scaleout", testScaleOut)   // row 11
	t.Run("webhooks", testWebhooks)   // row 12
	t.Run("functions", testFunctions) // rows 7, 8 (cold start last: it builds the binaries)

	doc := render(started, time.Since(started), load)
	path := *reportPath
	if path == "" {
		path = t.TempDir() + "/BENCHMARKS.md"
	}
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("report written to %s (%d rows)", path, len(rows))
	for _, n := range rowNumbers() {
		if r, ok := rows[n]; ok {
			t.Logf("row %d: %s; target %s: %s", n, r.Ratio, r.Target, r.Met)
			for _, f := range r.Figures {
				t.Logf("    %s", f)
			}
		}
	}
}

// rowNumbers is 1 … 9 (missing ones render as not run) and every higher row recorded.
func rowNumbers() []int {
	last := 9
	for n := range rows {
		last = max(last, n)
	}
	var out []int
	for n := 1; n <= last; n++ {
		if _, ok := rows[n]; ok || n <= 9 {
			out = append(out, n)
		}
	}
	return out
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// machine describes where the figures come from.
func machine() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	pg := "unknown"
	if c, err := pgx.Connect(ctx, testenv.DatabaseURL()); err == nil {
		var v, sc, fs string
		_ = c.QueryRow(ctx, "SELECT version(), current_setting('synchronous_commit'), current_setting('fsync')").Scan(&v, &sc, &fs)
		pg = fmt.Sprintf("%s (synchronous_commit=%s, fsync=%s)", v, sc, fs)
		c.Close(ctx)
	}
	rv := "unknown"
	if opts, err := redis.ParseURL(testenv.RedisURL()); err == nil {
		rdb := redis.NewClient(opts)
		if info, err := rdb.Info(ctx, "server").Result(); err == nil {
			for l := range strings.SplitSeq(info, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
					rv = v
				}
			}
		}
		_ = rdb.Close()
	}
	kernel := "unknown"
	if out, err := exec.CommandContext(ctx, "uname", "-srm").Output(); err == nil {
		kernel = strings.TrimSpace(string(out))
	}
	return []string{
		fmt.Sprintf("CPU: %d cores (%s), GOMAXPROCS %d", runtime.NumCPU(), cpu, runtime.GOMAXPROCS(0)),
		"OS: " + kernel,
		"Go: " + runtime.Version(),
		"PostgreSQL: " + pg,
		"Redis: " + rv,
	}
}

func render(started time.Time, took time.Duration, loadBefore string) []byte {
	reportMu.Lock()
	defer reportMu.Unlock()
	var b bytes.Buffer
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Generated by `make bench` (from the repository root); do not edit by hand.\n")
	b.WriteString("Every target is a ratio measured in the same run, or a size. Figures are the median and the p99 over\n")
	b.WriteString("repeated runs (with five runs the p99 is the worst run; for throughput the worst is the lowest).\n\n")
	fmt.Fprintf(&b, "Run %s, took %s. Load average before the run: %s; after: %s (other work shares this machine).\n\n",
		started.UTC().Format(time.RFC3339), took.Round(time.Second), loadBefore, loadAverage())
	b.WriteString("## Machine\n\n")
	for _, m := range machine() {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	b.WriteString("\n## Summary\n\n| # | what | measured | target | |\n|---|---|---|---|---|\n")
	for _, n := range rowNumbers() {
		r, ok := rows[n]
		if !ok {
			fmt.Fprintf(&b, "| %d | (not run) | | | |\n", n)
			continue
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", r.N, r.What, r.Ratio, r.Target, r.Met)
	}
	for _, n := range rowNumbers() {
		r, ok := rows[n]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "\n## %d. %s\n\n", r.N, r.What)
		for _, f := range r.Figures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
		fmt.Fprintf(&b, "- **%s**; target %s: %s\n", r.Ratio, r.Target, r.Met)
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "\n%s\n", n)
		}
		// The marker tells internal/docexamples not to run the row (minutes at full size).
		fmt.Fprintf(&b, "\n<!-- not run: a benchmark row at full size takes minutes (make bench) -->\n```sh\n%s\n```\n", r.Command)
	}
	return b.Bytes()
}

//go:build unix

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/loomipay/loomipay/internal/lambdaemu"
	"github.com/loomipay/loomipay/internal/sandbox"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/processor"
)

// functionNames are the directories under functions/, one Lambda function each.
var functionNames = []string{"createorder", "getorder", "refund", "webhook", "processor"}

const (
	maxBootstrapBytes = 10_000_000 // row 8: 10 MB, read strictly (decimal)
	maxRSSBytes       = 64 << 20   // row 8: 64 MiB
	coldStartMargin   = 30 * time.Millisecond
)

// builtFunctions holds each function (and the hello-world baseline) built for this machine,
// to run under the emulator, and for Lambda (linux/arm64), to weigh: those also the console and
// the floor (bench/floor: pgx and go-redis alone).
type builtFunctions struct {
	rie            string
	native, lambda map[string]string // name → bootstrap
}

func buildAll(t testing.TB) builtFunctions {
	t.Helper()
	ctx := context.Background()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rie, err := lambdaemu.BuildEmulator(ctx, root, dir)
	if err != nil {
		t.Skipf("cannot build the emulator: %v", err)
	}
	pkgs := []string{"./bench/hello"}
	for _, fn := range functionNames {
		pkgs = append(pkgs, "./functions/"+fn)
	}
	b := builtFunctions{rie: rie}
	if b.native, err = lambdaemu.Build(ctx, root, filepath.Join(dir, "native"), runtime.GOOS, runtime.GOARCH, pkgs...); err != nil {
		t.Fatal(err)
	}
	if b.lambda, err = lambdaemu.Build(ctx, root, filepath.Join(dir, "lambda"), "linux", "arm64", append(pkgs, "./functions/console", "./bench/floor")...); err != nil {
		t.Fatal(err)
	}
	return b
}

// functionEnv is what template.yaml gives a function, pointed at the stack.
func functionEnv(s *testenv.Stack, fn string, extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_LAMBDA_FUNCTION_NAME=loomipay-bench-" + fn,
		"AWS_LAMBDA_FUNCTION_TIMEOUT=30",
		"DATABASE_URL=" + testenv.SchemaURL(s.Schema),
		"REDIS_URL=" + testenv.RedisURL(),
		"STREAM_PREFIX=" + s.Streams.Name(""),
		"LAKALA_BASE_URL=" + s.SandboxURL,
		"LAKALA_PLATFORM_CERT=" + string(s.Sandbox.PlatformCertPEM()),
		"LAKALA_PRIVATE_KEY=" + string(lakala.MarshalPrivateKeyPEM(s.MerchantKey)),
		"LAKALA_NOTIFY_URL=" + s.API.URL + "/webhooks/lakala",
		"LOG_LEVEL=warn",
		// One app sends every invocation here; the per-app limit is the tests' to measure.
		"RATE_LIMIT=0",
	}, extra...)
}

// sampleEvents are first invocations for each function: real API Gateway events with the
// stack's key, the scheduler's event for the processor.
func sampleEvents(t testing.TB, s *testenv.Stack) map[string]func() []byte {
	t.Helper()
	run := testenv.UniqueName("C")
	n := 0
	marshal := func(ev events.APIGatewayV2HTTPRequest) []byte {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	create := loadEvent(t, "createorder.json", s.APIKey)
	get := loadEvent(t, "getorder.json", s.APIKey)
	refund := loadEvent(t, "refund-create.json", s.APIKey)
	webhook := loadEventRaw(t, "webhook.json")
	sched, err := os.ReadFile("../events/processor.json")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]func() []byte{
		"createorder": func() []byte {
			n++
			ev := create
			ev.Body = createBody(s.AppID, fmt.Sprintf("%s_%d", run, n))
			return marshal(ev)
		},
		"getorder":  func() []byte { return marshal(get) },
		"refund":    func() []byte { return marshal(refund) },
		"webhook":   func() []byte { return marshal(webhook) },
		"processor": func() []byte { return sched },
		"hello":     func() []byte { return []byte("{}") },
	}
}

func loadEventRaw(t testing.TB, name string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	b, err := os.ReadFile("../events/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// coldStart starts a function under a fresh emulator and returns process start → first
// response.
func coldStart(t testing.TB, rie, bootstrap string, env []string, event []byte) time.Duration {
	t.Helper()
	e, err := lambdaemu.Start(rie, bootstrap, env)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, err = e.Invoke(context.Background(), event)
	took := time.Since(e.Started)
	if err != nil {
		t.Fatal(err)
	}
	return took
}

// testFunctions is rows 7 and 8.
func testFunctions(t *testing.T) {
	sz := size()
	ctx := context.Background()
	b := buildAll(t)
	s := testenv.NewStack(t, testenv.StackOptions{NoAPICheck: true})
	evs := sampleEvents(t, s)

	// Row 8: sizes.
	sizeOK := true
	var sizes []string
	for _, fn := range append(functionNames, "console") {
		fi, err := os.Stat(b.lambda[fn])
		if err != nil {
			t.Fatal(err)
		}
		sizeOK = sizeOK && fi.Size() <= maxBootstrapBytes
		sizes = append(sizes, fmt.Sprintf("%s %d bytes (%s)", fn, fi.Size(), mib(fi.Size())))
	}

	// Row 8: peak RSS of createorder serving row 1's requests, one at a time as one execution
	// environment does.
	e, err := lambdaemu.Start(b.rie, b.native["createorder"], functionEnv(s, "createorder"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range sz.RSSInvokes {
		payload, err := e.Invoke(ctx, evs["createorder"]())
		if err != nil {
			t.Fatal(err)
		}
		var resp events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(payload, &resp); err != nil || resp.StatusCode != 202 {
			t.Fatalf("createorder answered %s", payload)
		}
	}
	createTook := time.Since(start)
	pid, err := e.FunctionPID()
	if err != nil {
		t.Fatal(err)
	}
	createRSS, err := lambdaemu.PeakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	e.Close()

	// Row 8: peak RSS of the processor draining row 5's kind of backlog.
	queueTasks(t, s, sz.RSSDrainTasks)
	s.SetFaults(sandbox.Faults{Latency: lakalaLatency})
	e, err = lambdaemu.Start(b.rie, b.native["processor"], functionEnv(s, "processor",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=300", "PROCESSOR_IDLE_EXIT=1s", fmt.Sprintf("PROCESSOR_CONCURRENCY=%d", drainConcurrency)))
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	payload, err := e.Invoke(ctx, evs["processor"]())
	procTook := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	var st processor.Stats
	if err := json.Unmarshal(payload, &st); err != nil || st.Handled < sz.RSSDrainTasks {
		t.Fatalf("processor answered %s, want %d tasks handled", payload, sz.RSSDrainTasks)
	}
	if pid, err = e.FunctionPID(); err != nil {
		t.Fatal(err)
	}
	procRSS, err := lambdaemu.PeakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	s.SetFaults(sandbox.Faults{})

	record(&Row{N: 8, What: "size and memory of each function",
		Figures: []string{
			"stripped linux/arm64 bootstrap (CGO_ENABLED=0 -tags lambda.norpc -trimpath -ldflags='-s -w', as make build): " + strings.Join(sizes, ", "),
			fmt.Sprintf("diagnostic, the floor: aws-lambda-go hello-world %d bytes; the same with one pgx/v5 query and one go-redis/v9 XADD (bench/floor) %d bytes",
				fileSize(t, b.lambda["hello"]), fileSize(t, b.lambda["floor"])),
			fmt.Sprintf("createorder peak RSS (VmHWM) after %d creates through its emulator (%s, %.0f/s, one at a time as one execution environment serves them): %s",
				sz.RSSInvokes, createTook.Round(time.Millisecond), float64(sz.RSSInvokes)/createTook.Seconds(), mib(createRSS)),
			fmt.Sprintf("processor peak RSS (VmHWM) in one invocation draining %d tasks with Lakala +%s, concurrency %d (%s including the 1 s idle exit): %s",
				st.Handled, lakalaLatency, drainConcurrency, procTook.Round(time.Millisecond), mib(procRSS)),
		},
		Ratio: fmt.Sprintf("largest bootstrap %d bytes, console %d (pgx + go-redis floor %d); peak RSS createorder %s, processor %s",
			largest(b.lambda), fileSize(t, b.lambda["console"]), fileSize(t, b.lambda["floor"]), mib(createRSS), mib(procRSS)),
		Target:  "≤ 10 MB (10,000,000 bytes) each; ≤ 64 MiB RSS",
		Met:     met(sizeOK && createRSS <= maxRSSBytes && procRSS <= maxRSSBytes),
		Command: command("functions"),
		Notes: []string{fmt.Sprintf("RSS is measured on %s/%s builds (the emulator runs them on this machine); the "+
			"arm64 binaries are the same code, and Go's heap does not depend on the architecture in any way that matters here.",
			runtime.GOOS, runtime.GOARCH),
			"The floor is what pgx/v5 (its pgtype registers every PostgreSQL type's codec) and go-redis/v9 link however little of " +
				"them a program uses; the functions add their own code, the Lakala client and the Secrets Manager call to it. " +
				"The console links html/template, whose method calls by name keep every exported method of every type the " +
				"linker can reach. See docs/DECISIONS.md (\"Binary size\")."},
	})

	// Row 7: cold starts, each under a fresh emulator.
	cold := map[string][]float64{}
	for range sz.ColdStarts {
		for _, name := range append([]string{"hello"}, functionNames...) {
			env := functionEnv(s, name)
			if name == "processor" {
				// A one-second timeout leaves the run no time (it stops 5 s before its deadline), so
				// the first response is the init and the runtime's round trip, not a drain.
				env = append(env, "AWS_LAMBDA_FUNCTION_TIMEOUT=1")
			}
			cold[name] = append(cold[name], float64(coldStart(t, b.rie, b.native[name], env, evs[name]())))
		}
	}
	hello := Summarize(cold["hello"])
	figures := []string{fig("hello-world aws-lambda-go (same flags, same emulator)", hello, msf)}
	coldOK := true
	worst := 0.0
	for _, fn := range functionNames {
		c := Summarize(cold[fn])
		over := c.Median - hello.Median
		worst = max(worst, over)
		coldOK = coldOK && over <= float64(coldStartMargin)
		figures = append(figures, fig(fn, c, msf)+fmt.Sprintf("; + %s over hello-world", msf(over)))
	}
	record(&Row{N: 7, What: "cold start under aws-lambda-rie: process start → first response",
		Figures: figures,
		Ratio:   "worst function + " + msf(worst) + " over hello-world (medians)",
		Target:  "≤ hello-world + 30 ms",
		Met:     met(coldOK),
		Command: command("functions"),
		Notes: []string{fmt.Sprintf("%d cold starts per function, interleaved. The clock starts when the emulator's "+
			"process is started (it starts the function at the first invocation) and stops at the first answer. "+
			"Each function's first event is its sample from events/ with the stack's key: createorder's creates an "+
			"order (its figure includes the first connections to PostgreSQL and Redis); getorder's and refund's name "+
			"the samples' app, not the key's, so they are refused (403) after the key lookup — the first PostgreSQL "+
			"connection, no Redis; webhook's carries a signature of another key and is refused before any database "+
			"work; the processor's is the scheduler's event.", sz.ColdStarts)},
	})
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// largest is the largest bootstrap of the payment path's functions in paths (not the console,
// the hello-world or the floor).
func largest(paths map[string]string) int64 {
	var n int64
	for name, p := range paths {
		if name == "hello" || name == "floor" || name == "console" {
			continue
		}
		if fi, err := os.Stat(p); err == nil {
			n = max(n, fi.Size())
		}
	}
	return n
}

//go:build unix

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/loomipay/loomipay/internal/lambdaemu"
	"github.com/loomipay/loomipay/internal/motoserver"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/internal/testskip"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
)

// functionNames are the directories under functions/, one Lambda function each.
var functionNames = []string{"createorder", "getorder", "refund", "webhook", "processor"}

const (
	// maxFloorRatio is row 8's bound on each payment-path bootstrap over the floor (bench/floor:
	// pgx and go-redis alone): the AWS SDK's configuration and one or two service clients, and
	// our own code, with room to grow. Size is watched for what it costs a cold start, not for
	// itself (docs/DECISIONS.md, "Binary size").
	maxFloorRatio   = 1.5
	maxRSSBytes     = 64 << 20 // row 8: 64 MiB
	coldStartMargin = 20 * time.Millisecond
)

func TestMain(m *testing.M) {
	code := m.Run()
	motoserver.Stop()
	os.Exit(code)
}

// builtFunctions holds each function (and the hello-world baseline) built for this machine,
// to run under the emulator, and for Lambda (linux/arm64), to weigh: those also migrate, the
// console and the floor (bench/floor: pgx and go-redis alone).
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
		testskip.Missing(t, fmt.Sprintf("cannot build the Lambda Runtime Interface Emulator: %v", err), "a Go module proxy or a module cache holding tools/go.mod's aws-lambda-rie")
	}
	pkgs := []string{"./bench/hello"}
	for _, fn := range functionNames {
		pkgs = append(pkgs, "./functions/"+fn)
	}
	b := builtFunctions{rie: rie}
	if b.native, err = lambdaemu.Build(ctx, root, filepath.Join(dir, "native"), runtime.GOOS, runtime.GOARCH, pkgs...); err != nil {
		t.Fatal(err)
	}
	if b.lambda, err = lambdaemu.Build(ctx, root, filepath.Join(dir, "lambda"), "linux", "arm64", append(pkgs, "./functions/migrate", "./functions/console", "./bench/floor")...); err != nil {
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

	// Row 8: sizes, each over the floor.
	floor := fileSize(t, b.lambda["floor"])
	ratio := func(fn string) float64 { return float64(fileSize(t, b.lambda[fn])) / float64(floor) }
	sizeOK := true
	worstFn := ""
	var sizes []string
	for _, fn := range append(functionNames, "migrate", "console") {
		if fn != "console" {
			sizeOK = sizeOK && ratio(fn) <= maxFloorRatio
			if worstFn == "" || ratio(fn) > ratio(worstFn) {
				worstFn = fn
			}
		}
		size := fileSize(t, b.lambda[fn])
		sizes = append(sizes, fmt.Sprintf("%s %d bytes (%s, %.2f × floor)", fn, size, mib(size), ratio(fn)))
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
			fmt.Sprintf("the floor: aws-lambda-go hello-world %d bytes; the same with one pgx/v5 query and one go-redis/v9 XADD (bench/floor) %d bytes",
				fileSize(t, b.lambda["hello"]), floor),
			fmt.Sprintf("createorder peak RSS (VmHWM) after %d creates through its emulator (%s, %.0f/s, one at a time as one execution environment serves them): %s",
				sz.RSSInvokes, createTook.Round(time.Millisecond), float64(sz.RSSInvokes)/createTook.Seconds(), mib(createRSS)),
			fmt.Sprintf("processor peak RSS (VmHWM) in one invocation draining %d tasks with Lakala +%s, concurrency %d (%s including the 1 s idle exit): %s",
				st.Handled, lakalaLatency, drainConcurrency, procTook.Round(time.Millisecond), mib(procRSS)),
		},
		Ratio: fmt.Sprintf("largest %.2f × floor (%s), console %.2f ×; peak RSS createorder %s, processor %s",
			ratio(worstFn), worstFn, ratio("console"), mib(createRSS), mib(procRSS)),
		Target:  fmt.Sprintf("≤ %.1f × floor each (the console reported); ≤ 64 MiB RSS", maxFloorRatio),
		Met:     met(sizeOK && createRSS <= maxRSSBytes && procRSS <= maxRSSBytes),
		Command: command("functions"),
		Notes: []string{fmt.Sprintf("RSS is measured on %s/%s builds (the emulator runs them on this machine); the "+
			"arm64 binaries are the same code, and Go's heap does not depend on the architecture in any way that matters here.",
			runtime.GOOS, runtime.GOARCH),
			"The floor is what pgx/v5 (its pgtype registers every PostgreSQL type's codec) and go-redis/v9 link however little of " +
				"them a program uses; the functions add their own code, the Lakala client, and the AWS SDK's configuration " +
				"(every credential source) with its Secrets Manager client; the processor also the Lambda client (its " +
				"scale-out). The console links html/template, whose method calls by name keep every exported method of every " +
				"type the linker can reach; it is reported, not bound. Size is a goal only through cold start (row 7): see " +
				"docs/DECISIONS.md (\"Binary size\")."},
	})

	// Row 7: cold starts, each under a fresh emulator.
	secretsEnv, secretsNote := secretsFromMoto(t, s)
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
		if secretsEnv != nil {
			env := append(functionEnv(s, "createorder"), secretsEnv...)
			cold["createorder+secrets"] = append(cold["createorder+secrets"], float64(coldStart(t, b.rie, b.native["createorder"], env, evs["createorder"]())))
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
	if secretsEnv != nil {
		c := Summarize(cold["createorder+secrets"])
		figures = append(figures, "diagnostic, not the target: "+fig("createorder reading its three secrets from Secrets Manager "+secretsNote, c, msf)+
			fmt.Sprintf("; + %s over createorder given them as variables", msf(c.Median-Summarize(cold["createorder"]).Median)))
	} else {
		figures = append(figures, "diagnostic, not run: createorder reading its secrets from Secrets Manager ("+secretsNote+")")
	}
	record(&Row{N: 7, What: "cold start under aws-lambda-rie: process start → first response",
		Figures: figures,
		Ratio:   "worst function + " + msf(worst) + " over hello-world (medians)",
		Target:  "≤ hello-world + 20 ms",
		Met:     met(coldOK),
		Command: command("functions"),
		Notes: []string{fmt.Sprintf("%d cold starts per function, interleaved. The clock starts when the emulator's "+
			"process is started (it starts the function at the first invocation) and stops at the first answer. "+
			"Each function's first event is its sample from events/ with the stack's key: createorder's creates an "+
			"order (its figure includes the first connections to PostgreSQL and Redis); getorder's and refund's name "+
			"the samples' app, not the key's, so they are refused (403) after the key lookup — the first PostgreSQL "+
			"connection, no Redis; webhook's carries a signature of another key and is refused before any database "+
			"work; the processor's is the scheduler's event. The functions get their secrets as variables, as loomipay "+
			"dev gives them; deployed they read them from Secrets Manager at start, which the diagnostic line measures "+
			"against a local one (moto_server: its own latency included, a real one's differs).", sz.ColdStarts)},
	})
}

// secretsFromMoto stores createorder's three secrets in moto_server and returns the variables
// that make the function read them (the SDK's default configuration pointed at it), and a note
// on what is measured; nil variables when moto_server is not installed.
func secretsFromMoto(t *testing.T, s *testenv.Stack) ([]string, string) {
	t.Helper()
	if _, err := exec.LookPath("moto_server"); err != nil {
		return nil, "moto_server is not installed: pip install 'moto[server]'"
	}
	moto := motoserver.Shared(t)
	env := []string{
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + moto.URL, "AWS_REGION=" + motoserver.Region, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ACCESS_KEY_ID=" + moto.Admin.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + moto.Admin.SecretAccessKey,
		"DATABASE_URL=", "REDIS_URL=", "LAKALA_PRIVATE_KEY=",
		"DATABASE_URL_SECRET_ARN=" + moto.CreateSecret(t, testenv.SchemaURL(s.Schema)),
		"REDIS_URL_SECRET_ARN=" + moto.CreateSecret(t, testenv.RedisURL()),
		"LAKALA_PRIVATE_KEY_SECRET_ARN=" + moto.CreateSecret(t, string(lakala.MarshalPrivateKeyPEM(s.MerchantKey))),
	}
	return env, "(moto_server on loopback: the SDK's LoadDefaultConfig, three GetSecretValue at once)"
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

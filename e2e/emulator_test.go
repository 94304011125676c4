//go:build unix

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

const (
	// riePackage is built from the tools module, which pins its version and checksums.
	riePackage = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
	invokePath = "/2015-03-31/functions/function/invocations"
)

// functionNames are the directories under functions/, one Lambda function each.
var functionNames = []string{"createorder", "getorder", "refund", "webhook", "processor"}

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "template.yaml")); err != nil {
		t.Fatalf("repository root not found from the test's directory: %v", err)
	}
	return root
}

// buildEmulator builds aws-lambda-rie into dir. Not being able to build it (no module cache
// and no module proxy) is a limit of the machine, not a fault of the service: the test is
// skipped with the reason.
func buildEmulator(t testing.TB, root, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "aws-lambda-rie")
	cmd := exec.Command("go", "build", "-o", bin, riePackage)
	cmd.Dir = filepath.Join(root, "tools")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build the Lambda Runtime Interface Emulator (%s from tools/go.mod): %v\n%s", riePackage, err, out)
	}
	return bin
}

// buildFunctions builds every function with the flags of `make build`, for this machine's
// GOOS/GOARCH so the emulator can run them, and returns each one's bootstrap path.
func buildFunctions(t testing.TB, root, dir string) map[string]string {
	t.Helper()
	out := filepath.Join(dir, "build")
	// One go build for all five: shared packages compile once, in parallel.
	args := []string{"build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", out + string(filepath.Separator)}
	for _, fn := range functionNames {
		args = append(args, "./functions/"+fn)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	started := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the functions: %v\n%s", err, b)
	}
	t.Logf("built the five functions for %s/%s in %v", runtime.GOOS, runtime.GOARCH, time.Since(started).Round(time.Millisecond))
	bootstraps := make(map[string]string, len(functionNames))
	for _, fn := range functionNames {
		// Named bootstrap in a directory of its own, as in the deployment package.
		fnDir := filepath.Join(dir, fn)
		if err := os.MkdirAll(fnDir, 0o755); err != nil {
			t.Fatal(err)
		}
		bootstrap := filepath.Join(fnDir, "bootstrap")
		if err := os.Rename(filepath.Join(out, fn), bootstrap); err != nil {
			t.Fatal(err)
		}
		bootstraps[fn] = bootstrap
	}
	return bootstraps
}

// emulator is one function under its own Runtime Interface Emulator: one execution
// environment, so one invocation at a time.
type emulator struct {
	name    string
	url     string
	output  *lockedBuffer
	mu      sync.Mutex
	invokes []time.Duration // round trip of each invocation; the first is the cold start
}

// startEmulator runs bootstrap under aws-lambda-rie with exactly env as its environment (the
// emulator hands its environment to the function, as Lambda hands the function's
// configuration). Emulator and function are killed together when the test ends.
func startEmulator(t testing.TB, rie, name, bootstrap string, env []string) *emulator {
	t.Helper()
	runtimeAPI, invokeAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(rie,
		"--log-level", "warn",
		"--runtime-api-address", runtimeAPI,
		"--runtime-interface-emulator-address", invokeAddr,
		bootstrap)
	cmd.Env = env
	cmd.Dir = filepath.Dir(bootstrap) // the function's working directory, as /var/task
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so the function the emulator starts dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the %s emulator: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("%s emulator and function output:\n%s", name, out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", invokeAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("the %s emulator exited at start:\n%s", name, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s emulator does not listen on %s: %v\n%s", name, invokeAddr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &emulator{name: name, url: "http://" + invokeAddr + invokePath, output: out}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// functionError is the payload Lambda answers with when the handler returned an error or
// panicked: still HTTP 200 from the emulator.
type functionError struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

// Invoke sends one event and returns the function's response payload. A function error, an
// init failure or a timeout is an error, never a payload.
func (e *emulator) Invoke(ctx context.Context, event []byte) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(event))
	if err != nil {
		return nil, err
	}
	sent := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", e.name, err)
	}
	defer resp.Body.Close()
	payload, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: read the answer: %w", e.name, err)
	}
	e.invokes = append(e.invokes, time.Since(sent))
	if resp.StatusCode != http.StatusOK {
		// 502 with an empty body: the function exited during init (config.Fatal); its log is
		// in the emulator's output, shown when the test fails.
		return nil, fmt.Errorf("invoke %s: emulator answered %s %q: the function failed to start or crashed", e.name, resp.Status, payload)
	}
	if bytes.HasPrefix(payload, []byte("Task timed out")) {
		return nil, fmt.Errorf("invoke %s: %s", e.name, payload)
	}
	var fe functionError
	if json.Unmarshal(payload, &fe) == nil && fe.ErrorMessage != "" {
		return nil, fmt.Errorf("invoke %s: function error %s: %s", e.name, fe.ErrorType, fe.ErrorMessage)
	}
	return payload, nil
}

// HTTP invokes an API Gateway function with an HTTP API (payload 2.0) event and returns the
// response API Gateway would send.
func (e *emulator) HTTP(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	var resp events.APIGatewayV2HTTPResponse
	event, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	payload, err := e.Invoke(ctx, event)
	if err != nil {
		return resp, err
	}
	if err := json.Unmarshal(payload, &resp); err != nil {
		return resp, fmt.Errorf("%s: not an API Gateway v2 response: %w: %q", e.name, err, payload)
	}
	if resp.StatusCode == 0 {
		return resp, fmt.Errorf("%s: API Gateway v2 response without statusCode: %q", e.name, payload)
	}
	return resp, nil
}

// Timings reports the cold start (the emulator starts the function at the first invocation,
// so its round trip is process start to first response) and the warm invocations.
func (e *emulator) Timings() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.invokes) == 0 {
		return e.name + ": not invoked"
	}
	s := fmt.Sprintf("%-12s cold start (exec → first response) %8v", e.name, e.invokes[0].Round(100*time.Microsecond))
	if warm := e.invokes[1:]; len(warm) > 0 {
		lo, hi := warm[0], warm[0]
		for _, d := range warm {
			lo, hi = min(lo, d), max(hi, d)
		}
		s += fmt.Sprintf("   warm %d× %v…%v", len(warm), lo.Round(100*time.Microsecond), hi.Round(100*time.Microsecond))
	}
	return s
}

// lockedBuffer collects a process's output written from the exec package's copy goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// loadEvent reads a sample event from events/.
func loadEvent(t testing.TB, root, file string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "events", file))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("events/%s: %v", file, err)
	}
	return ev
}

// withPath points an event at rawPath?rawQuery, in every field API Gateway fills from it.
func withPath(ev events.APIGatewayV2HTTPRequest, rawPath, rawQuery string, pathParams map[string]string) events.APIGatewayV2HTTPRequest {
	ev.RawPath = rawPath
	ev.RequestContext.HTTP.Path = rawPath
	ev.RawQueryString = rawQuery
	ev.QueryStringParameters = nil
	if rawQuery != "" {
		ev.QueryStringParameters = map[string]string{}
		for _, kv := range strings.Split(rawQuery, "&") {
			k, v, _ := strings.Cut(kv, "=")
			ev.QueryStringParameters[k] = v
		}
	}
	ev.PathParameters = pathParams
	return ev
}

// withKey replaces the sample's Authorization header.
func withKey(ev events.APIGatewayV2HTTPRequest, key string) events.APIGatewayV2HTTPRequest {
	ev.Headers = maps.Clone(ev.Headers)
	ev.Headers["authorization"] = "Bearer " + key
	return ev
}

// withJSONBody replaces fields of the sample's JSON body.
func withJSONBody(t testing.TB, ev events.APIGatewayV2HTTPRequest, set map[string]any) events.APIGatewayV2HTTPRequest {
	t.Helper()
	body := map[string]any{}
	if err := json.Unmarshal([]byte(ev.Body), &body); err != nil {
		t.Fatalf("sample body of %s: %v", ev.RouteKey, err)
	}
	for k, v := range set {
		body[k] = v
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ev.Body = string(b)
	return ev
}

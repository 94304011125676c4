//go:build unix

// Package lambdaemu runs Lambda function binaries under the AWS Lambda Runtime Interface
// Emulator (aws-lambda-rie, built from the tools module, which pins its version): build,
// start, invoke, and read a running function's memory. The end-to-end test and the benchmarks
// use it.
package lambdaemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// RIEPackage is the emulator's main package; tools/go.mod pins its version.
const RIEPackage = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

const invokePath = "/2015-03-31/functions/function/invocations"

// BuildEmulator builds aws-lambda-rie from root's tools module into dir and returns its path.
func BuildEmulator(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "aws-lambda-rie")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, RIEPackage)
	cmd.Dir = filepath.Join(root, "tools")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s from tools/go.mod: %w\n%s", RIEPackage, err, out)
	}
	return bin, nil
}

// Build builds the main packages pkgs (relative to root, e.g. "./functions/createorder") with
// the flags of make build, for goos/goarch, and returns each one's bootstrap by the last
// element of its package path. One go build for all, so that shared packages compile once.
// Each binary is named bootstrap in a directory of its own under dir, as in the deployment
// package.
func Build(ctx context.Context, root, dir, goos, goarch string, pkgs ...string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out, err := os.MkdirTemp(dir, "build")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	args := append([]string{"build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", out + string(filepath.Separator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s for %s/%s: %w\n%s", strings.Join(pkgs, " "), goos, goarch, err, b)
	}
	bootstraps := make(map[string]string, len(pkgs))
	for _, pkg := range pkgs {
		name := path.Base(pkg)
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			return nil, err
		}
		bootstrap := filepath.Join(dir, name, "bootstrap")
		if err := os.Rename(filepath.Join(out, name), bootstrap); err != nil {
			return nil, err
		}
		bootstraps[name] = bootstrap
	}
	return bootstraps, nil
}

// Emulator is one function under its own emulator: one execution environment, so one
// invocation at a time.
type Emulator struct {
	// Started is when the emulator's process was started: a first invocation's answer minus
	// Started is the cold start (the emulator starts the function at the first invocation).
	Started time.Time
	url     string
	cmd     *exec.Cmd
	out     *LockedBuffer
	exited  chan struct{}
	mu      sync.Mutex
	invokes []time.Duration
}

// Start runs bootstrap under the emulator at rie with exactly env as the function's
// environment, and returns once the emulator accepts invocations. Close stops both.
func Start(rie, bootstrap string, env []string) (*Emulator, error) {
	runtimeAPI, err := freeAddr()
	if err != nil {
		return nil, err
	}
	invokeAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(rie, "--log-level", "warn", "--runtime-api-address", runtimeAPI,
		"--runtime-interface-emulator-address", invokeAddr, bootstrap)
	cmd.Env = env
	cmd.Dir = filepath.Dir(bootstrap)
	out := &LockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that the function the emulator starts dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	e := &Emulator{url: "http://" + invokeAddr + invokePath, cmd: cmd, out: out, exited: make(chan struct{})}
	e.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the emulator: %w", err)
	}
	go func() {
		_ = cmd.Wait()
		close(e.exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", invokeAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return e, nil
		}
		select {
		case <-e.exited:
			return nil, fmt.Errorf("the emulator exited at start:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			e.Close()
			return nil, fmt.Errorf("the emulator does not listen on %s: %w\n%s", invokeAddr, err, out.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// FunctionError is the payload Lambda answers with when the handler returned an error or
// panicked; the emulator still answers 200.
type FunctionError struct {
	Message string `json:"errorMessage"`
	Type    string `json:"errorType"`
}

func (fe *FunctionError) Error() string {
	return "function error " + fe.Type + ": " + fe.Message
}

// Invoke sends one event and returns the function's payload. A function error (a
// *FunctionError), a timeout, and a non-200 answer (the function failed to start or crashed)
// are errors, never a payload.
func (e *Emulator) Invoke(ctx context.Context, event []byte) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(event))
	if err != nil {
		return nil, err
	}
	sent := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke: %w", err)
	}
	defer resp.Body.Close()
	payload, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("invoke: read the answer: %w", err)
	}
	e.invokes = append(e.invokes, time.Since(sent))
	if resp.StatusCode != http.StatusOK {
		// 502 with an empty body: the function exited during init (a fatal configuration
		// error, say); why is in its output.
		return nil, fmt.Errorf("invoke: emulator answered %s %q: the function failed to start or crashed; output:\n%s",
			resp.Status, payload, e.out.String())
	}
	if bytes.HasPrefix(payload, []byte("Task timed out")) {
		return nil, fmt.Errorf("invoke: %s", payload)
	}
	var fe FunctionError
	if json.Unmarshal(payload, &fe) == nil && fe.Message != "" {
		return nil, fmt.Errorf("invoke: %w", &fe)
	}
	return payload, nil
}

// HTTP invokes an API Gateway function with an HTTP API (payload 2.0) event and returns the
// response API Gateway would send.
func (e *Emulator) HTTP(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
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
		return resp, fmt.Errorf("not an API Gateway v2 response: %w: %q", err, payload)
	}
	if resp.StatusCode == 0 {
		return resp, fmt.Errorf("API Gateway v2 response without statusCode: %q", payload)
	}
	return resp, nil
}

// Invocations are the round trips of the invocations answered so far, in order. The emulator
// starts the function at the first invocation, so the first is the cold start.
func (e *Emulator) Invocations() []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.invokes)
}

// Output is what the emulator and the function wrote so far.
func (e *Emulator) Output() string { return e.out.String() }

// FunctionPID is the process id of the function the emulator started (after a first
// invocation): the emulator's child.
func (e *Emulator) FunctionPID() (int, error) {
	pid := e.cmd.Process.Pid
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	for _, t := range entries {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for f := range strings.FieldsSeq(string(b)) {
			return strconv.Atoi(f)
		}
	}
	return 0, errors.New("the emulator has not started the function")
}

// PeakRSS is a process's peak resident set size (VmHWM), in bytes.
func PeakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// Close kills the emulator and the function.
func (e *Emulator) Close() {
	_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	<-e.exited
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

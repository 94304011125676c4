//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/loomipay/loomipay/internal/apicheck"
	"github.com/loomipay/loomipay/internal/lambdaemu"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/internal/testskip"
	"github.com/loomipay/loomipay/shared/processor"
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
	rie, err := lambdaemu.BuildEmulator(context.Background(), root, dir)
	if err != nil {
		testskip.Missing(t, fmt.Sprintf("cannot build the Lambda Runtime Interface Emulator: %v", err), "a Go module proxy or a module cache holding tools/go.mod's aws-lambda-rie")
	}
	return rie
}

// buildUnderEmulator builds the emulator and the functions named (every one of functionNames
// when none is) with the flags of `make build`, for this machine's GOOS/GOARCH so the emulator
// can run them, and returns the emulator, the repository root and each function's bootstrap.
// Under -short the test is skipped: it builds binaries.
func buildUnderEmulator(t testing.TB, names ...string) (rie, root string, bootstraps map[string]string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds binaries and the emulator; skipped with -short")
	}
	if len(names) == 0 {
		names = functionNames
	}
	root = repoRoot(t)
	dir := t.TempDir()
	rie = buildEmulator(t, root, dir)
	pkgs := make([]string, len(names))
	for i, fn := range names {
		pkgs[i] = "./functions/" + fn
	}
	started := time.Now()
	bootstraps, err := lambdaemu.Build(context.Background(), root, dir, runtime.GOOS, runtime.GOARCH, pkgs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %v for %s/%s in %v", names, runtime.GOOS, runtime.GOARCH, time.Since(started).Round(time.Millisecond))
	return rie, root, bootstraps
}

// startFunction runs bootstrap under aws-lambda-rie with exactly env as its environment (the
// emulator hands its environment to the function, as Lambda hands the function's
// configuration). Emulator and function are killed together when the test ends; their output
// is logged if the test failed.
func startFunction(t testing.TB, rie, name, bootstrap string, env []string) *lambdaemu.Emulator {
	t.Helper()
	e, err := lambdaemu.Start(rie, bootstrap, env)
	if err != nil {
		t.Fatalf("start the %s emulator: %v", name, err)
	}
	t.Cleanup(func() {
		e.Close()
		if t.Failed() {
			t.Logf("%s emulator and function output:\n%s", name, e.Output())
		}
	})
	return e
}

// timings reports a function's cold start (the emulator starts the function at the first
// invocation, so its round trip is process start to first response) and warm invocations.
func timings(name string, e *lambdaemu.Emulator) string {
	invokes := e.Invocations()
	if len(invokes) == 0 {
		return name + ": not invoked"
	}
	s := fmt.Sprintf("%-12s cold start (exec → first response) %8v", name, invokes[0].Round(100*time.Microsecond))
	if warm := invokes[1:]; len(warm) > 0 {
		lo, hi := slices.Min(warm), slices.Max(warm)
		s += fmt.Sprintf("   warm %d× %v…%v", len(warm), lo.Round(100*time.Microsecond), hi.Round(100*time.Microsecond))
	}
	return s
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

// fleet is a test's functions under the emulator, called as API Gateway and the schedule call
// them, as an app with its key.
type fleet struct {
	t          testing.TB
	ctx        context.Context
	root       string
	fns        map[string]*lambdaemu.Emulator
	key, appID string
}

// call sends an HTTP API event to fn, holds the exchange to api/openapi.yaml and expects want.
func (f *fleet) call(fn string, ev events.APIGatewayV2HTTPRequest, want int) []byte {
	f.t.Helper()
	resp, err := f.fns[fn].HTTP(f.ctx, ev)
	if err != nil {
		f.t.Fatalf("%s: %v", fn, err)
	}
	apicheck.Event(f.t, fn, ev, resp)
	if resp.StatusCode != want {
		f.t.Fatalf("%s %s = %d %s, want %d", fn, ev.RawPath, resp.StatusCode, resp.Body, want)
	}
	return []byte(resp.Body)
}

// runProcessor invokes the processor with the schedule's event and returns what the run did.
func (f *fleet) runProcessor() processor.Stats {
	f.t.Helper()
	event, err := os.ReadFile(f.root + "/events/processor.json")
	if err != nil {
		f.t.Fatal(err)
	}
	payload, err := f.fns["processor"].Invoke(f.ctx, event)
	if err != nil {
		f.t.Fatalf("processor: %v", err)
	}
	var st processor.Stats
	if err := json.Unmarshal(payload, &st); err != nil {
		f.t.Fatalf("processor answered %q: %v", payload, err)
	}
	return st
}

// getOrder reads the app's order through getorder.
func (f *fleet) getOrder(merchantOrderID string) testenv.Order {
	f.t.Helper()
	ev := withPath(withKey(loadEvent(f.t, f.root, "getorder.json"), f.key), "/api/v1/payment-orders/"+merchantOrderID, "app_id="+f.appID,
		map[string]string{"merchant_order_id": merchantOrderID})
	return testenv.Decode[testenv.Order](f.t, f.call("getorder", ev, http.StatusOK))
}

//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
)

// TestProcessorStartsExtraRuns runs the processor binary under the emulator with a backlog older
// than PROCESSOR_SCALE_AFTER: its scheduled run must call Lambda's Invoke API for its own
// function, asynchronously, with the extra-run payload, signed with the environment's
// credentials; an extra run must not start more.
func TestProcessorStartsExtraRuns(t *testing.T) {
	ctx := context.Background()
	rie, root, bootstraps := buildUnderEmulator(t, "processor")
	s := testenv.NewStack(t, testenv.StackOptions{})
	// A due task waiting for two minutes, recently published (so no sweep republishes it and no
	// run claims it during the test): a backlog the scaler must see.
	if _, err := s.Store.Pool().Exec(ctx, `INSERT INTO tasks (kind, subject_id, next_attempt_at, created_at, published_at)
		VALUES ('payment', gen_random_uuid(), now() - interval '2 minutes', now() - interval '2 minutes', now())`); err != nil {
		t.Fatal(err)
	}
	invokes := make(chan *http.Request, 10)
	bodies := make(chan string, 10)
	lambdaAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		invokes <- r
		bodies <- string(b)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(lambdaAPI.Close)
	fn := startFunction(t, rie, "processor", bootstraps["processor"], []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_LAMBDA_FUNCTION_NAME=loomipay-e2e-processor",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=8",
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIDLOOMIE2E", "AWS_SECRET_ACCESS_KEY=e2e-secret", "AWS_SESSION_TOKEN=e2e-token",
		"AWS_ENDPOINT_URL_LAMBDA=" + lambdaAPI.URL,
		"DATABASE_URL=" + testenv.SchemaURL(s.Schema),
		"REDIS_URL=" + testenv.RedisURL(),
		"STREAM_PREFIX=" + s.Streams.Name(""),
		"LAKALA_BASE_URL=" + s.SandboxURL,
		"LAKALA_PLATFORM_CERT=" + string(s.Sandbox.PlatformCertPEM()),
		"LAKALA_PRIVATE_KEY=" + string(lakala.MarshalPrivateKeyPEM(s.MerchantKey)),
		"LAKALA_NOTIFY_URL=http://127.0.0.1:1/webhooks/lakala",
		"PROCESSOR_MAX_RUNS=3",
		"PROCESSOR_SCALE_AFTER=30s",
		"PROCESSOR_IDLE_EXIT=2s",
	})
	event, err := os.ReadFile(root + "/events/processor.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn.Invoke(ctx, event); err != nil {
		t.Fatalf("scheduled run: %v", err)
	}
	select {
	case r := <-invokes:
		body := <-bodies
		if r.Method != http.MethodPost || r.URL.Path != "/2015-03-31/functions/loomipay-e2e-processor/invocations" {
			t.Errorf("Invoke request %s %s; want POST /2015-03-31/functions/loomipay-e2e-processor/invocations", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("X-Amz-Invocation-Type"); got != "Event" {
			t.Errorf("X-Amz-Invocation-Type = %q; want Event (asynchronous)", got)
		}
		if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDLOOMIE2E/") || !strings.Contains(auth, "/us-east-1/lambda/aws4_request") {
			t.Errorf("Authorization = %q; want a SigV4 signature for lambda in us-east-1", auth)
		}
		if r.Header.Get("X-Amz-Security-Token") != "e2e-token" {
			t.Errorf("X-Amz-Security-Token = %q; want the session token", r.Header.Get("X-Amz-Security-Token"))
		}
		var payload map[string]string
		if json.Unmarshal([]byte(body), &payload) != nil || payload["loomipay"] != "extra-run" {
			t.Errorf("payload = %q; want the extra-run marker", body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the scheduled run did not start an extra run for a two-minute-old backlog")
	}
	// An extra run does not scale further.
	for len(invokes) > 0 {
		<-invokes
		<-bodies
	}
	if _, err := fn.Invoke(ctx, []byte(`{"loomipay":"extra-run"}`)); err != nil {
		t.Fatalf("extra run: %v", err)
	}
	if n := len(invokes); n != 0 {
		t.Errorf("an extra run started %d more runs; want none", n)
	}
}

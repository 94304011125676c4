package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

const (
	testRegion = "us-east-1"

	lakalaKeyARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:loomipay/lakala-key-AbCdEf"
	lakalaKeyPEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"

	lakalaJSONARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:loomipay/lakala-AbCdEf"
	lakalaJSON    = `{"private_key":"-----BEGIN PRIVATE KEY-----\nkey-in-json\n-----END PRIVATE KEY-----","app_id":"OP00000003","serial":4006}`

	rdsARN      = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1234-AbCdEf"
	rdsPassword = `p@ss/w:rd?#% "x"`
	rdsJSON     = `{"engine":"postgres","username":"loomi","password":"p@ss/w:rd?#% \"x\"","host":"db.example.internal","port":5433,"dbname":"loomipay"}`

	missingARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:does-not-exist"
)

// fakeSecretsManager is an httptest server that speaks the Secrets Manager JSON 1.1 protocol for
// GetSecretValue, for what moto_server cannot do (resolver_test.go has the tests against it):
// count requests, hold one in flight, and answer throttling, server errors and AccessDenied in
// a chosen order. The SDK's client talks to it as to AWS: signing, serialisation and errors.
type fakeSecretsManager struct {
	t        *testing.T
	server   *httptest.Server
	requests atomic.Int64

	mu      sync.Mutex
	secrets map[string]string

	// failures, if set, are answered (status, error type) to the first requests, in order.
	failures []fakeFailure

	// wantRegion, if set, is the region requests must be signed for (default testRegion).
	wantRegion string

	// arrived, if set, receives a value when a request comes in; the handler then waits for
	// release to be closed. Together they hold a fetch in flight for as long as a test needs.
	arrived chan<- struct{}
	release <-chan struct{}
}

type fakeFailure struct {
	status int
	code   string
}

func (f *fakeSecretsManager) region() string {
	if f.wantRegion != "" {
		return f.wantRegion
	}
	return testRegion
}

func (f *fakeSecretsManager) put(id, secret string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[id] = secret
}

func (f *fakeSecretsManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if f.arrived != nil {
		f.arrived <- struct{}{}
		<-f.release
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		f.t.Errorf("request %s %s, want POST /", r.Method, r.URL.Path)
	}
	if got := r.Header.Get("X-Amz-Target"); got != "secretsmanager.GetSecretValue" {
		f.t.Errorf("X-Amz-Target = %q, want secretsmanager.GetSecretValue", got)
	}
	if got := r.Header.Get("Content-Type"); got != "application/x-amz-json-1.1" {
		f.t.Errorf("Content-Type = %q, want application/x-amz-json-1.1", got)
	}
	// A signature by the environment's key, scoped to the secret's region, proves the SDK used
	// the environment's credentials and the ARN's region.
	if got := r.Header.Get("Authorization"); !strings.Contains(got, "Credential=AKIDLOOMITEST/") || !strings.Contains(got, "/"+f.region()+"/secretsmanager/") {
		f.t.Errorf("Authorization = %q, want a SigV4 signature by AKIDLOOMITEST for %s/secretsmanager", got, f.region())
	}
	if token := os.Getenv("AWS_SESSION_TOKEN"); r.Header.Get("X-Amz-Security-Token") != token {
		f.t.Errorf("X-Amz-Security-Token = %q, want the session token from the environment", r.Header.Get("X-Amz-Security-Token"))
	}
	var in struct{ SecretId string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		f.t.Errorf("decoding request body: %v", err)
	}

	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	f.mu.Lock()
	secret, ok := f.secrets[in.SecretId]
	var failure *fakeFailure
	if len(f.failures) > 0 {
		failure = &f.failures[0]
		f.failures = f.failures[1:]
	}
	f.mu.Unlock()
	if failure != nil {
		w.WriteHeader(failure.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.secretsmanager#" + failure.code, "message": "injected"})
		return
	}
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{
			"__type":  "ResourceNotFoundException",
			"message": "Secrets Manager can't find the specified secret.",
		})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"ARN":          in.SecretId,
		"Name":         in.SecretId[strings.LastIndex(in.SecretId, ":")+1:],
		"SecretString": secret,
		"VersionId":    "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE",
	})
}

// newFake starts a fake Secrets Manager holding the standard test secrets and points the
// Resolver at it ($SECRETS_MANAGER_ENDPOINT): static credentials, a fixed region, no shared config files and no IMDS, so
// nothing reaches a real network.
func newFake(t *testing.T) *fakeSecretsManager {
	t.Helper()
	f := &fakeSecretsManager{t: t, secrets: map[string]string{
		lakalaKeyARN:  lakalaKeyPEM,
		lakalaJSONARN: lakalaJSON,
		rdsARN:        rdsJSON,
	}}
	f.server = httptest.NewServer(f)
	t.Cleanup(f.server.Close)

	noFile := filepath.Join(t.TempDir(), "absent")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "AKIDLOOMITEST",
		"AWS_SECRET_ACCESS_KEY":       "loomi-test-secret-access-key",
		"AWS_REGION":                  testRegion,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             noFile,
		"AWS_SHARED_CREDENTIALS_FILE": noFile,
		EndpointEnv:                   f.server.URL,
	} {
		t.Setenv(k, v)
	}
	unsetenv(t,
		"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
	)
	for _, name := range []string{DatabaseURLName, "LAKALA_PRIVATE_KEY", "LAKALA_APP_ID", "LAKALA_SERIAL"} {
		unsetenv(t, name, name+"_SECRET_ARN", name+"_SECRET_KEY")
	}
	return f
}

// unsetenv removes variables for the duration of the test, restoring them afterwards.
func unsetenv(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		t.Setenv(name, "")
		if err := os.Unsetenv(name); err != nil {
			t.Fatalf("unsetting %s: %v", name, err)
		}
	}
}

func newResolver(t *testing.T, opts ...Option) *Resolver {
	t.Helper()
	r, err := NewResolver(context.Background(), opts...)
	if err != nil {
		t.Fatalf("NewResolver: %v", err)
	}
	return r
}

func TestSecretIsFetchedOnceAndCached(t *testing.T) {
	fake := newFake(t)
	t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", lakalaJSONARN)
	t.Setenv("LAKALA_PRIVATE_KEY_SECRET_KEY", "private_key")
	t.Setenv("LAKALA_APP_ID_SECRET_ARN", lakalaJSONARN)
	t.Setenv("LAKALA_APP_ID_SECRET_KEY", "app_id")
	r := newResolver(t)
	ctx := context.Background()

	for range 2 {
		if _, err := r.Require(ctx, "LAKALA_PRIVATE_KEY"); err != nil {
			t.Fatalf("Require: %v", err)
		}
	}
	// A second name backed by the same secret reuses the cached SecretString.
	appID, err := r.Require(ctx, "LAKALA_APP_ID")
	if err != nil {
		t.Fatalf("Require: %v", err)
	}
	if appID != "OP00000003" {
		t.Errorf("LAKALA_APP_ID = %q, want OP00000003", appID)
	}
	if n := fake.requests.Load(); n != 1 {
		t.Errorf("Secrets Manager requests = %d, want 1", n)
	}
}

// Reload asks Secrets Manager again, once, and later Gets see what it read.
func TestReloadReadsAgain(t *testing.T) {
	fake := newFake(t)
	t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", lakalaKeyARN)
	r := newResolver(t)
	ctx := context.Background()
	if v, err := r.Require(ctx, "LAKALA_PRIVATE_KEY"); err != nil || v != lakalaKeyPEM {
		t.Fatalf("Require = %q, %v", v, err)
	}
	fake.put(lakalaKeyARN, "rotated")
	if v, _ := r.Require(ctx, "LAKALA_PRIVATE_KEY"); v != lakalaKeyPEM {
		t.Errorf("Require after the rotation, before Reload = %q; want the cached value", v)
	}
	if v, ok, err := r.Reload(ctx, "LAKALA_PRIVATE_KEY"); err != nil || !ok || v != "rotated" {
		t.Errorf("Reload = %q, %v, %v; want rotated", v, ok, err)
	}
	if v, _ := r.Require(ctx, "LAKALA_PRIVATE_KEY"); v != "rotated" {
		t.Errorf("Require after Reload = %q; want rotated", v)
	}
	if n := fake.requests.Load(); n != 2 {
		t.Errorf("Secrets Manager requests = %d, want 2", n)
	}
	// A value given directly is not a secret to reload.
	t.Setenv("LAKALA_PRIVATE_KEY", "direct")
	if v, _, _ := r.Reload(ctx, "LAKALA_PRIVATE_KEY"); v != "direct" || fake.requests.Load() != 2 {
		t.Errorf("Reload of a direct value = %q after %d requests; want direct, no request", v, fake.requests.Load())
	}
}

func TestConcurrentGetsShareOneFetch(t *testing.T) {
	const callers = 8
	fake := newFake(t)
	events := make(chan struct{}, callers)
	release := make(chan struct{})
	fake.arrived, fake.release = events, release
	t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", lakalaKeyARN)
	r := newResolver(t)
	r.joinedInFlight = func() { events <- struct{}{} }

	results := make(chan string, callers)
	errs := make(chan error, callers)
	for range callers {
		go func() {
			v, err := r.Require(context.Background(), "LAKALA_PRIVATE_KEY")
			results <- v
			errs <- err
		}()
	}
	// Every caller has either reached the server or joined a fetch in flight before the
	// server answers; without sharing, each caller would arrive at the server instead.
	for range callers {
		<-events
	}
	close(release)

	for range callers {
		if err := <-errs; err != nil {
			t.Errorf("Require: %v", err)
		}
		if v := <-results; v != lakalaKeyPEM {
			t.Errorf("Require = %q, want the PEM key", v)
		}
	}
	if n := fake.requests.Load(); n != 1 {
		t.Errorf("Secrets Manager requests = %d, want 1", n)
	}
}

// A caller that gives up must not fail the fetch others are waiting on.
func TestCancelledCallerDoesNotCancelSharedFetch(t *testing.T) {
	fake := newFake(t)
	events := make(chan struct{}, 2)
	release := make(chan struct{})
	fake.arrived, fake.release = events, release
	t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", lakalaKeyARN)
	r := newResolver(t)

	ctx, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, _, err := r.Get(ctx, "LAKALA_PRIVATE_KEY")
		firstErr <- err
	}()
	<-events
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Get error = %v, want context.Canceled", err)
	}
	close(release)

	v, err := r.Require(context.Background(), "LAKALA_PRIVATE_KEY")
	if err != nil {
		t.Fatalf("Require after cancelled caller: %v", err)
	}
	if v != lakalaKeyPEM {
		t.Errorf("Require = %q, want the PEM key", v)
	}
	if n := fake.requests.Load(); n != 1 {
		t.Errorf("Secrets Manager requests = %d, want 1", n)
	}
}

// Without credentials anywhere, reading a secret fails; values from the environment must still
// resolve, showing the AWS configuration is only loaded for a secret ARN.
func TestAWSConfigIsLoadedOnlyForSecrets(t *testing.T) {
	fake := newFake(t)
	unsetenv(t, "AWS_ACCESS_KEY_ID")
	t.Setenv("LAKALA_APP_ID", "OP00000003")
	t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", lakalaKeyARN)
	r := newResolver(t)
	ctx := context.Background()

	if v, err := r.Require(ctx, "LAKALA_APP_ID"); err != nil || v != "OP00000003" {
		t.Fatalf("Require(LAKALA_APP_ID) = %q, %v; want OP00000003", v, err)
	}
	if _, _, err := r.Get(ctx, DatabaseURLName); err != nil {
		t.Fatalf("Get(DATABASE_URL) with nothing set: %v", err)
	}
	_, err := r.Require(ctx, "LAKALA_PRIVATE_KEY")
	if err == nil || !strings.Contains(err.Error(), "credentials") || !strings.Contains(err.Error(), "LAKALA_PRIVATE_KEY") {
		t.Errorf("Require(LAKALA_PRIVATE_KEY) error = %v, want one about credentials naming the variable", err)
	}
	if n := fake.requests.Load(); n != 0 {
		t.Errorf("Secrets Manager requests = %d, want 0", n)
	}
}

func TestWithEndpointOverridesEnvironment(t *testing.T) {
	fake := newFake(t)
	// Nothing listens here; reaching it would fail the lookup.
	t.Setenv(EndpointEnv, "http://127.0.0.1:1")
	t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", lakalaKeyARN)
	r := newResolver(t, WithEndpoint(fake.server.URL))

	v, err := r.Require(context.Background(), "LAKALA_PRIVATE_KEY")
	if err != nil {
		t.Fatalf("Require: %v", err)
	}
	if v != lakalaKeyPEM || fake.requests.Load() != 1 {
		t.Errorf("Require = %q after %d requests to the endpoint, want the PEM key after 1", v, fake.requests.Load())
	}
}

type recordingClient struct {
	ids []string
}

func (c *recordingClient) GetSecretString(_ context.Context, secretID string) (string, error) {
	c.ids = append(c.ids, secretID)
	return "from-client", nil
}

func TestWithSecretsClient(t *testing.T) {
	fake := newFake(t)
	t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", lakalaKeyARN)
	client := &recordingClient{}
	r := newResolver(t, WithSecretsClient(client))

	v, err := r.Require(context.Background(), "LAKALA_PRIVATE_KEY")
	if err != nil {
		t.Fatalf("Require: %v", err)
	}
	if v != "from-client" || len(client.ids) != 1 || client.ids[0] != lakalaKeyARN {
		t.Errorf("Require = %q with client calls %q; want from-client with one call for %s", v, client.ids, lakalaKeyARN)
	}
	if n := fake.requests.Load(); n != 0 {
		t.Errorf("Secrets Manager requests = %d, want 0", n)
	}
}

func TestNewResolverRejectsRelativeEndpoint(t *testing.T) {
	newFake(t)
	if _, err := NewResolver(context.Background(), WithEndpoint("localhost:4566")); err == nil {
		t.Error("NewResolver accepted an endpoint without a scheme")
	}
}

// Throttling and server errors are retried by the SDK's standard retryer, three attempts in all;
// an answer that cannot change (access denied) is not.
func TestRetries(t *testing.T) {
	tests := []struct {
		name         string
		failures     []fakeFailure
		wantErr      string
		wantRequests int64
	}{
		{name: "throttled, then a server error, then answered", failures: []fakeFailure{{400, "ThrottlingException"}, {500, "InternalServiceError"}}, wantRequests: 3},
		{name: "a 503 each time", failures: []fakeFailure{{503, "ServiceUnavailable"}, {503, "ServiceUnavailable"}, {503, "ServiceUnavailable"}}, wantErr: "maximum number of attempts, 3", wantRequests: 3},
		{name: "access denied is final", failures: []fakeFailure{{400, "AccessDeniedException"}}, wantErr: "AccessDeniedException", wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			fake.failures = tt.failures
			t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", lakalaKeyARN)
			v, err := newResolver(t).Require(context.Background(), "LAKALA_PRIVATE_KEY")
			switch {
			case tt.wantErr == "" && (err != nil || v != lakalaKeyPEM):
				t.Errorf("Require = %q, %v; want the PEM key", v, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Require error = %v, want one mentioning %q", err, tt.wantErr)
			}
			if n := fake.requests.Load(); n != tt.wantRequests {
				t.Errorf("Secrets Manager requests = %d, want %d", n, tt.wantRequests)
			}
		})
	}
}

// Lambda's role credentials come with a session token, which must be signed into the request.
func TestSessionTokenIsSent(t *testing.T) {
	fake := newFake(t)
	t.Setenv("AWS_SESSION_TOKEN", "loomi-test-session-token")
	t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", lakalaKeyARN)
	if _, err := newResolver(t).Require(context.Background(), "LAKALA_PRIVATE_KEY"); err != nil {
		t.Fatalf("Require: %v", err)
	}
	if n := fake.requests.Load(); n != 1 {
		t.Errorf("Secrets Manager requests = %d, want 1", n)
	}
}

// A secret given by ARN is read in its own region, whatever AWS_REGION says; with no region
// configured at all, the ARN's serves.
func TestSecretIsReadInTheRegionOfItsARN(t *testing.T) {
	const chinaARN = "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:loomipay/key-AbCdEf"
	for _, region := range []string{testRegion, ""} {
		t.Run("AWS_REGION="+region, func(t *testing.T) {
			fake := newFake(t)
			fake.wantRegion = "cn-north-1"
			fake.put(chinaARN, "china")
			if region == "" {
				unsetenv(t, "AWS_REGION")
			}
			t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", chinaARN)
			if v, err := newResolver(t).Require(context.Background(), "LAKALA_PRIVATE_KEY"); err != nil || v != "china" {
				t.Errorf("Require = %q, %v; want china", v, err)
			}
		})
	}
	t.Run("a name needs a region", func(t *testing.T) {
		newFake(t)
		unsetenv(t, "AWS_REGION")
		t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", "loomipay/key")
		if _, err := newResolver(t).Require(context.Background(), "LAKALA_PRIVATE_KEY"); err == nil || !strings.Contains(err.Error(), "AWS_REGION") {
			t.Errorf("Require error = %v; want one naming AWS_REGION", err)
		}
	})
}

// The SDK resolves the China regions' endpoints in their own partition (amazonaws.com.cn).
func TestChinaRegionsEndpoint(t *testing.T) {
	ep, err := secretsmanager.NewDefaultEndpointResolverV2().ResolveEndpoint(context.Background(), secretsmanager.EndpointParameters{Region: aws.String("cn-northwest-1")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ep.URI.String(), "https://secretsmanager.cn-northwest-1.amazonaws.com.cn"; got != want {
		t.Errorf("endpoint = %s, want %s", got, want)
	}
}

// An endpoint that never answers (no route from private subnets) costs each attempt its timeout,
// not the whole fetch, and the error says where to look.
func TestUnreachableEndpointTimesOutEachAttempt(t *testing.T) {
	newFake(t)
	release := make(chan struct{})
	var requests atomic.Int64
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1); <-release }))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // runs first: Close waits for the handlers
	if attemptTimeout <= 0 || attemptTimeout > fetchTimeout/3 {
		t.Fatalf("attemptTimeout = %v; want > 0 and room for three attempts in fetchTimeout (%v)", attemptTimeout, fetchTimeout)
	}
	c, err := newSecretsManager(context.Background(), hang.URL, lakalaKeyARN, 50*time.Millisecond, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.GetSecretString(context.Background(), lakalaKeyARN)
	var maxAttempts *retry.MaxAttemptsError
	if err == nil || !strings.Contains(err.Error(), "NAT gateway") || !errors.As(err, &maxAttempts) || requests.Load() != 3 {
		t.Errorf("err = %v after %d requests; want 3 timed-out attempts and the network hint", err, requests.Load())
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v; want about 3 × 50 ms plus backoff", took)
	}
}

// Prefetch reads every secret at once: both requests are at the server before either is
// answered, and the Gets that follow take what they read without asking again.
func TestPrefetchReadsSecretsAtOnce(t *testing.T) {
	fake := newFake(t)
	arrived := make(chan struct{}, 2)
	release := make(chan struct{})
	fake.arrived, fake.release = arrived, release
	t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", lakalaKeyARN)
	t.Setenv("DATABASE_URL_SECRET_ARN", rdsARN)
	r := newResolver(t)
	r.Prefetch(context.Background(), "LAKALA_PRIVATE_KEY", DatabaseURLName, "LAKALA_APP_ID")
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("the prefetched reads did not both reach Secrets Manager before an answer")
		}
	}
	close(release)
	if v, err := r.Require(context.Background(), "LAKALA_PRIVATE_KEY"); err != nil || v != lakalaKeyPEM {
		t.Errorf("Require = %q, %v", v, err)
	}
	if _, err := r.Require(context.Background(), DatabaseURLName); err != nil {
		t.Errorf("Require(DATABASE_URL): %v", err)
	}
	if n := fake.requests.Load(); n != 2 {
		t.Errorf("Secrets Manager requests = %d, want 2", n)
	}
}

package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
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
// GetSecretValue, so the tests exercise the real SDK client: signing, serialisation and errors.
type fakeSecretsManager struct {
	t        *testing.T
	server   *httptest.Server
	requests atomic.Int64

	mu      sync.Mutex
	secrets map[string]string

	// failures, if set, are answered (status, error type) to the first requests, in order.
	failures []fakeFailure

	// arrived, if set, receives a value when a request comes in; the handler then waits for
	// release to be closed. Together they hold a fetch in flight for as long as a test needs.
	arrived chan<- struct{}
	release <-chan struct{}
}

type fakeFailure struct {
	status int
	code   string
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
	// A signature scoped to the test region proves the SDK used the static test credentials.
	if got := r.Header.Get("Authorization"); !strings.Contains(got, "Credential=AKIDLOOMITEST/") || !strings.Contains(got, "/"+testRegion+"/secretsmanager/") {
		f.t.Errorf("Authorization = %q, want a SigV4 signature by AKIDLOOMITEST for %s/secretsmanager", got, testRegion)
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

// newFake starts a fake Secrets Manager holding the standard test secrets and points the SDK's
// environment at it: static credentials, a fixed region, no shared config files and no IMDS, so
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

func TestGet(t *testing.T) {
	tests := []struct {
		name         string
		env          map[string]string
		get          string
		want         string
		wantOK       bool
		wantRequests int64
	}{
		{
			name:   "env value wins over ARN",
			env:    map[string]string{"LAKALA_PRIVATE_KEY": "from-env", "LAKALA_PRIVATE_KEY_SECRET_ARN": lakalaKeyARN},
			get:    "LAKALA_PRIVATE_KEY",
			want:   "from-env",
			wantOK: true,
		},
		{
			name:         "empty env value falls through to ARN",
			env:          map[string]string{"LAKALA_PRIVATE_KEY": "", "LAKALA_PRIVATE_KEY_SECRET_ARN": lakalaKeyARN},
			get:          "LAKALA_PRIVATE_KEY",
			want:         lakalaKeyPEM,
			wantOK:       true,
			wantRequests: 1,
		},
		{
			name:         "plain string secret",
			env:          map[string]string{"LAKALA_PRIVATE_KEY_SECRET_ARN": lakalaKeyARN},
			get:          "LAKALA_PRIVATE_KEY",
			want:         lakalaKeyPEM,
			wantOK:       true,
			wantRequests: 1,
		},
		{
			name:         "JSON secret with key",
			env:          map[string]string{"LAKALA_PRIVATE_KEY_SECRET_ARN": lakalaJSONARN, "LAKALA_PRIVATE_KEY_SECRET_KEY": "private_key"},
			get:          "LAKALA_PRIVATE_KEY",
			want:         "-----BEGIN PRIVATE KEY-----\nkey-in-json\n-----END PRIVATE KEY-----",
			wantOK:       true,
			wantRequests: 1,
		},
		{
			name:         "JSON secret with key of a number",
			env:          map[string]string{"LAKALA_SERIAL_SECRET_ARN": lakalaJSONARN, "LAKALA_SERIAL_SECRET_KEY": "serial"},
			get:          "LAKALA_SERIAL",
			want:         "4006",
			wantOK:       true,
			wantRequests: 1,
		},
		{
			name:         "JSON secret without key is returned whole",
			env:          map[string]string{"LAKALA_APP_ID_SECRET_ARN": lakalaJSONARN},
			get:          "LAKALA_APP_ID",
			want:         lakalaJSON,
			wantOK:       true,
			wantRequests: 1,
		},
		{
			name:         "RDS secret becomes a postgres URL",
			env:          map[string]string{"DATABASE_URL_SECRET_ARN": rdsARN},
			get:          DatabaseURLName,
			want:         "postgres://loomi:p%40ss%2Fw%3Ard%3F%23%25%20%22x%22@db.example.internal:5433/loomipay",
			wantOK:       true,
			wantRequests: 1,
		},
		{
			name:         "RDS secret with key takes the key",
			env:          map[string]string{"DATABASE_URL_SECRET_ARN": rdsARN, "DATABASE_URL_SECRET_KEY": "host"},
			get:          DatabaseURLName,
			want:         "db.example.internal",
			wantOK:       true,
			wantRequests: 1,
		},
		{
			name: "neither env nor ARN",
			get:  "LAKALA_PRIVATE_KEY",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			r := newResolver(t)

			got, ok, err := r.Get(context.Background(), tt.get)
			if err != nil {
				t.Fatalf("Get(%s): %v", tt.get, err)
			}
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Get(%s) = %q, %v; want %q, %v", tt.get, got, ok, tt.want, tt.wantOK)
			}
			if n := fake.requests.Load(); n != tt.wantRequests {
				t.Errorf("Secrets Manager requests = %d, want %d", n, tt.wantRequests)
			}
		})
	}
}

// The URL built from an RDS secret must be one pgx reads back to the same fields, whatever
// characters the generated password holds.
func TestDatabaseURLFromRDSSecretParsesInPgx(t *testing.T) {
	newFake(t)
	t.Setenv("DATABASE_URL_SECRET_ARN", rdsARN)

	dsn, err := newResolver(t).Require(context.Background(), DatabaseURLName)
	if err != nil {
		t.Fatalf("Require: %v", err)
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("pgconn.ParseConfig: %v", err)
	}
	if cfg.User != "loomi" || cfg.Password != rdsPassword || cfg.Host != "db.example.internal" || cfg.Port != 5433 || cfg.Database != "loomipay" {
		t.Errorf("parsed config user=%q host=%q port=%d database=%q (password match %v)",
			cfg.User, cfg.Host, cfg.Port, cfg.Database, cfg.Password == rdsPassword)
	}
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

func TestGetErrors(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		secrets   map[string]string
		get       string
		wantInErr []string
	}{
		{
			name:      "unknown secret",
			env:       map[string]string{"LAKALA_PRIVATE_KEY_SECRET_ARN": missingARN},
			get:       "LAKALA_PRIVATE_KEY",
			wantInErr: []string{"LAKALA_PRIVATE_KEY", "ResourceNotFoundException"},
		},
		{
			name:      "key missing from JSON secret",
			env:       map[string]string{"LAKALA_PRIVATE_KEY_SECRET_ARN": lakalaJSONARN, "LAKALA_PRIVATE_KEY_SECRET_KEY": "pem"},
			get:       "LAKALA_PRIVATE_KEY",
			wantInErr: []string{"LAKALA_PRIVATE_KEY", `"pem"`},
		},
		{
			name:      "key set but secret is a plain string",
			env:       map[string]string{"LAKALA_PRIVATE_KEY_SECRET_ARN": lakalaKeyARN, "LAKALA_PRIVATE_KEY_SECRET_KEY": "private_key"},
			get:       "LAKALA_PRIVATE_KEY",
			wantInErr: []string{"LAKALA_PRIVATE_KEY", "not a JSON object"},
		},
		{
			name:      "key names a non-scalar",
			env:       map[string]string{"LAKALA_PRIVATE_KEY_SECRET_ARN": "arn:nested", "LAKALA_PRIVATE_KEY_SECRET_KEY": "key"},
			secrets:   map[string]string{"arn:nested": `{"key":{"pem":"nested-secret-value"}}`},
			get:       "LAKALA_PRIVATE_KEY",
			wantInErr: []string{"LAKALA_PRIVATE_KEY", `"key"`},
		},
		{
			name:      "RDS-managed secret without host",
			env:       map[string]string{"DATABASE_URL_SECRET_ARN": "arn:managed"},
			secrets:   map[string]string{"arn:managed": `{"username":"loomi","password":"managed-secret-value"}`},
			get:       DatabaseURLName,
			wantInErr: []string{DatabaseURLName, `"host"`},
		},
		{
			name:      "RDS secret for another engine",
			env:       map[string]string{"DATABASE_URL_SECRET_ARN": "arn:mysql"},
			secrets:   map[string]string{"arn:mysql": `{"engine":"mysql","username":"loomi","password":"mysql-secret-value","host":"h"}`},
			get:       DatabaseURLName,
			wantInErr: []string{DatabaseURLName, "mysql"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			for id, s := range tt.secrets {
				fake.put(id, s)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}

			got, ok, err := newResolver(t).Get(context.Background(), tt.get)
			if err == nil {
				t.Fatalf("Get(%s) = %q, %v; want an error", tt.get, got, ok)
			}
			if got != "" || ok {
				t.Errorf("Get(%s) returned %q, %v alongside an error", tt.get, got, ok)
			}
			for _, want := range tt.wantInErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			assertNoSecretIn(t, "error", err.Error(), fake)
		})
	}
}

// assertNoSecretIn fails if text holds any secret value the fake stores, or part of one.
func assertNoSecretIn(t *testing.T, what, text string, fake *fakeSecretsManager) {
	t.Helper()
	fake.mu.Lock()
	defer fake.mu.Unlock()
	leaks := []string{"nested-secret-value", "managed-secret-value", "mysql-secret-value", "key-in-json", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", rdsPassword, "loomi-test-secret-access-key"}
	for _, s := range fake.secrets {
		leaks = append(leaks, s)
	}
	for _, leak := range leaks {
		if strings.Contains(text, leak) {
			t.Errorf("%s %q leaks secret material %q", what, text, leak)
		}
	}
}

func TestUnknownSecretIsNotCachedAndWrapsAPIError(t *testing.T) {
	fake := newFake(t)
	t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", missingARN)
	r := newResolver(t)
	ctx := context.Background()

	_, err := r.Require(ctx, "LAKALA_PRIVATE_KEY")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "ResourceNotFoundException" || apiErr.StatusCode != http.StatusBadRequest {
		t.Fatalf("Require error = %v, want it to wrap ResourceNotFoundException", err)
	}

	// Once the secret exists the next call reads it: failures are not cached.
	fake.put(missingARN, "created-later")
	v, err := r.Require(ctx, "LAKALA_PRIVATE_KEY")
	if err != nil {
		t.Fatalf("Require after the secret was created: %v", err)
	}
	if v != "created-later" {
		t.Errorf("Require = %q, want created-later", v)
	}
	if n := fake.requests.Load(); n != 2 {
		t.Errorf("Secrets Manager requests = %d, want 2", n)
	}
}

func TestRequire(t *testing.T) {
	fake := newFake(t)
	t.Setenv("LAKALA_APP_ID", "OP00000003")
	r := newResolver(t)
	ctx := context.Background()

	if v, err := r.Require(ctx, "LAKALA_APP_ID"); err != nil || v != "OP00000003" {
		t.Errorf("Require(LAKALA_APP_ID) = %q, %v; want OP00000003", v, err)
	}
	_, err := r.Require(ctx, DatabaseURLName)
	if !errors.Is(err, ErrNotSet) {
		t.Fatalf("Require(DATABASE_URL) error = %v, want ErrNotSet", err)
	}
	if !strings.Contains(err.Error(), "DATABASE_URL_SECRET_ARN") {
		t.Errorf("error %q does not say which variables to set", err)
	}
	if n := fake.requests.Load(); n != 0 {
		t.Errorf("Secrets Manager requests = %d, want 0", n)
	}
}

// Without credentials in the environment, building the client fails; values from the
// environment must still resolve, showing the configuration is only loaded for a secret ARN.
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
	if err == nil || !strings.Contains(err.Error(), "loading AWS configuration") {
		t.Errorf("Require(LAKALA_PRIVATE_KEY) error = %v, want an AWS configuration error", err)
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

func TestLogNamesARNButNotValue(t *testing.T) {
	fake := newFake(t)
	t.Setenv("DATABASE_URL_SECRET_ARN", rdsARN)
	var logs bytes.Buffer
	previous := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(previous) })

	if _, err := newResolver(t).Require(context.Background(), DatabaseURLName); err != nil {
		t.Fatalf("Require: %v", err)
	}
	if !strings.Contains(logs.String(), "DATABASE_URL") || !strings.Contains(logs.String(), rdsARN) {
		t.Errorf("log %q does not name the variable and ARN", logs.String())
	}
	assertNoSecretIn(t, "log", logs.String(), fake)
}

// Throttling and server errors are retried, as the SDK's standard retryer did; an answer that
// cannot change (access denied) is not.
func TestRetries(t *testing.T) {
	tests := []struct {
		name         string
		failures     []fakeFailure
		wantErr      string
		wantRequests int64
	}{
		{name: "throttled twice, then answered", failures: []fakeFailure{{400, "ThrottlingException"}, {500, "InternalServiceError"}}, wantRequests: 3},
		{name: "a 503 each time", failures: []fakeFailure{{503, "ServiceUnavailable"}, {503, "ServiceUnavailable"}, {503, "ServiceUnavailable"}}, wantErr: "3 attempts", wantRequests: 3},
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

func TestRegionalEndpoint(t *testing.T) {
	for region, want := range map[string]string{
		"ap-east-1":  "https://secretsmanager.ap-east-1.amazonaws.com",
		"cn-north-1": "https://secretsmanager.cn-north-1.amazonaws.com.cn",
	} {
		if got := regionalEndpoint(region); got != want {
			t.Errorf("regionalEndpoint(%s) = %s, want %s", region, got, want)
		}
	}
	// The processor's scale-out calls Lambda's Invoke API at this address.
	if got, want := ServiceEndpoint("lambda", "cn-northwest-1"), "https://lambda.cn-northwest-1.amazonaws.com.cn"; got != want {
		t.Errorf("ServiceEndpoint(lambda, cn-northwest-1) = %s, want %s", got, want)
	}
}

// An endpoint that never answers (no route from private subnets) costs each attempt its timeout,
// not the whole fetch, and the error says where to look.
func TestUnreachableEndpointTimesOutEachAttempt(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "cn-north-1")
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // runs first: Close waits for the handlers
	c, err := newSecretsManager(hang.URL)
	if err != nil {
		t.Fatal(err)
	}
	if c.client.Timeout != attemptTimeout || attemptTimeout <= 0 {
		t.Fatalf("client timeout = %v; want attemptTimeout (%v) > 0", c.client.Timeout, attemptTimeout)
	}
	c.client.Timeout = 50 * time.Millisecond
	start := time.Now()
	_, err = c.GetSecretString(context.Background(), lakalaKeyARN)
	if err == nil || !strings.Contains(err.Error(), "NAT gateway") || !strings.Contains(err.Error(), "3 attempts") {
		t.Errorf("err = %v; want 3 timed-out attempts and the network hint", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v; want about 3 × 50 ms plus backoff", took)
	}
}

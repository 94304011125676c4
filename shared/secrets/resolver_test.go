package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/loomipay/loomipay/internal/motoserver"
)

// The tests in this file read real secrets from moto_server (a local Secrets Manager with IAM
// authentication on), through the SDK's default configuration pointed at it by
// AWS_ENDPOINT_URL_SECRETS_MANAGER. fake_test.go has those that need to count, hold or fail
// requests.

func TestMain(m *testing.M) {
	code := m.Run()
	motoserver.Stop()
	os.Exit(code)
}

// newMoto points the SDK at the shared moto_server as its admin, with none of the resolver's
// names set.
func newMoto(t *testing.T) *motoserver.Server {
	t.Helper()
	s := motoserver.Shared(t)
	s.SetEnv(t)
	for _, name := range []string{DatabaseURLName, "LAKALA_PRIVATE_KEY", "LAKALA_APP_ID", "LAKALA_SERIAL"} {
		unsetenv(t, name, name+"_SECRET_ARN", name+"_SECRET_KEY")
	}
	return s
}

// leaks are the secret values the tests store: none may appear in an error or a log.
var leaks = []string{"nested-secret-value", "managed-secret-value", "mysql-secret-value", "key-in-json", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", rdsPassword, "denied-secret-value"}

func assertNoLeak(t *testing.T, what, text string) {
	t.Helper()
	for _, leak := range leaks {
		if strings.Contains(text, leak) {
			t.Errorf("%s %q leaks secret material %q", what, text, leak)
		}
	}
}

func TestGet(t *testing.T) {
	tests := []struct {
		name   string
		secret string            // stored in a fresh secret, whose ARN is $ARN in env
		env    map[string]string // values; "$ARN" is replaced
		get    string
		want   string
		wantOK bool
	}{
		{
			name:   "env value wins over ARN",
			secret: lakalaKeyPEM,
			env:    map[string]string{"LAKALA_PRIVATE_KEY": "from-env", "LAKALA_PRIVATE_KEY_SECRET_ARN": missingARN},
			get:    "LAKALA_PRIVATE_KEY", want: "from-env", wantOK: true,
		},
		{
			name:   "empty env value falls through to ARN",
			secret: lakalaKeyPEM,
			env:    map[string]string{"LAKALA_PRIVATE_KEY": "", "LAKALA_PRIVATE_KEY_SECRET_ARN": "$ARN"},
			get:    "LAKALA_PRIVATE_KEY", want: lakalaKeyPEM, wantOK: true,
		},
		{
			name:   "plain string secret",
			secret: lakalaKeyPEM,
			env:    map[string]string{"LAKALA_PRIVATE_KEY_SECRET_ARN": "$ARN"},
			get:    "LAKALA_PRIVATE_KEY", want: lakalaKeyPEM, wantOK: true,
		},
		{
			name:   "JSON secret with key",
			secret: lakalaJSON,
			env:    map[string]string{"LAKALA_PRIVATE_KEY_SECRET_ARN": "$ARN", "LAKALA_PRIVATE_KEY_SECRET_KEY": "private_key"},
			get:    "LAKALA_PRIVATE_KEY", want: "-----BEGIN PRIVATE KEY-----\nkey-in-json\n-----END PRIVATE KEY-----", wantOK: true,
		},
		{
			name:   "JSON secret with key of a number",
			secret: lakalaJSON,
			env:    map[string]string{"LAKALA_SERIAL_SECRET_ARN": "$ARN", "LAKALA_SERIAL_SECRET_KEY": "serial"},
			get:    "LAKALA_SERIAL", want: "4006", wantOK: true,
		},
		{
			name:   "JSON secret without key is returned whole",
			secret: lakalaJSON,
			env:    map[string]string{"LAKALA_APP_ID_SECRET_ARN": "$ARN"},
			get:    "LAKALA_APP_ID", want: lakalaJSON, wantOK: true,
		},
		{
			name:   "RDS secret becomes a postgres URL",
			secret: rdsJSON,
			env:    map[string]string{"DATABASE_URL_SECRET_ARN": "$ARN"},
			get:    DatabaseURLName, want: "postgres://loomi:p%40ss%2Fw%3Ard%3F%23%25%20%22x%22@db.example.internal:5433/loomipay", wantOK: true,
		},
		{
			name:   "RDS secret without port or dbname",
			secret: `{"username":"loomi","password":"pw","host":"db.example.internal"}`,
			env:    map[string]string{"DATABASE_URL_SECRET_ARN": "$ARN"},
			get:    DatabaseURLName, want: "postgres://loomi:pw@db.example.internal:5432", wantOK: true,
		},
		{
			name:   "RDS secret with key takes the key",
			secret: rdsJSON,
			env:    map[string]string{"DATABASE_URL_SECRET_ARN": "$ARN", "DATABASE_URL_SECRET_KEY": "host"},
			get:    DatabaseURLName, want: "db.example.internal", wantOK: true,
		},
		{
			name: "neither env nor ARN",
			get:  "LAKALA_PRIVATE_KEY",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMoto(t)
			arn := ""
			if tt.secret != "" {
				arn = s.CreateSecret(t, tt.secret)
			}
			for k, v := range tt.env {
				t.Setenv(k, strings.ReplaceAll(v, "$ARN", arn))
			}
			got, ok, err := newResolver(t).Get(context.Background(), tt.get)
			if err != nil {
				t.Fatalf("Get(%s): %v", tt.get, err)
			}
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Get(%s) = %q, %v; want %q, %v", tt.get, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// The URL built from an RDS secret must be one pgx reads back to the same fields, whatever
// characters the generated password holds.
func TestDatabaseURLFromRDSSecretParsesInPgx(t *testing.T) {
	s := newMoto(t)
	t.Setenv("DATABASE_URL_SECRET_ARN", s.CreateSecret(t, rdsJSON))

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

func TestGetErrors(t *testing.T) {
	tests := []struct {
		name      string
		secret    string
		env       map[string]string
		get       string
		wantInErr []string
	}{
		{
			name:      "missing secret",
			env:       map[string]string{"LAKALA_PRIVATE_KEY_SECRET_ARN": missingARN},
			get:       "LAKALA_PRIVATE_KEY",
			wantInErr: []string{"LAKALA_PRIVATE_KEY", missingARN, "ResourceNotFoundException"},
		},
		{
			name:      "key missing from JSON secret",
			secret:    lakalaJSON,
			env:       map[string]string{"LAKALA_PRIVATE_KEY_SECRET_ARN": "$ARN", "LAKALA_PRIVATE_KEY_SECRET_KEY": "pem"},
			get:       "LAKALA_PRIVATE_KEY",
			wantInErr: []string{"LAKALA_PRIVATE_KEY", `"pem"`},
		},
		{
			name:      "key set but secret is a plain string",
			secret:    lakalaKeyPEM,
			env:       map[string]string{"LAKALA_PRIVATE_KEY_SECRET_ARN": "$ARN", "LAKALA_PRIVATE_KEY_SECRET_KEY": "private_key"},
			get:       "LAKALA_PRIVATE_KEY",
			wantInErr: []string{"LAKALA_PRIVATE_KEY", "not a JSON object"},
		},
		{
			name:      "key names a non-scalar",
			secret:    `{"key":{"pem":"nested-secret-value"}}`,
			env:       map[string]string{"LAKALA_PRIVATE_KEY_SECRET_ARN": "$ARN", "LAKALA_PRIVATE_KEY_SECRET_KEY": "key"},
			get:       "LAKALA_PRIVATE_KEY",
			wantInErr: []string{"LAKALA_PRIVATE_KEY", `"key"`},
		},
		{
			name:      "RDS-managed secret without host",
			secret:    `{"username":"loomi","password":"managed-secret-value"}`,
			env:       map[string]string{"DATABASE_URL_SECRET_ARN": "$ARN"},
			get:       DatabaseURLName,
			wantInErr: []string{DatabaseURLName, `"host"`},
		},
		{
			name:      "RDS secret for another engine",
			secret:    `{"engine":"mysql","username":"loomi","password":"mysql-secret-value","host":"h"}`,
			env:       map[string]string{"DATABASE_URL_SECRET_ARN": "$ARN"},
			get:       DatabaseURLName,
			wantInErr: []string{DatabaseURLName, "mysql"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMoto(t)
			arn := ""
			if tt.secret != "" {
				arn = s.CreateSecret(t, tt.secret)
			}
			for k, v := range tt.env {
				t.Setenv(k, strings.ReplaceAll(v, "$ARN", arn))
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
			assertNoLeak(t, "error", err.Error())
		})
	}
}

// A missing secret is not cached: once it exists, the next read finds it.
func TestMissingSecretIsNotCached(t *testing.T) {
	s := newMoto(t)
	name := fmt.Sprintf("loomipay/test/later-%d", time.Now().UnixNano())
	t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", name) // by name: read in AWS_REGION
	r := newResolver(t)
	ctx := context.Background()

	_, err := r.Require(ctx, "LAKALA_PRIVATE_KEY")
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("Require error = %v, want it to wrap ResourceNotFoundException", err)
	}
	s.CreateSecretNamed(t, name, "created-later")
	if v, err := r.Require(ctx, "LAKALA_PRIVATE_KEY"); err != nil || v != "created-later" {
		t.Errorf("Require after the secret was created = %q, %v; want created-later", v, err)
	}
}

// A role that may not read the secret is refused at once (no retries), with the variable and ARN
// named and nothing of the secret shown, and the refusal is not cached. (moto answers a refusal
// with 403 and an XML body even for JSON services, so the SDK reports the status without
// AccessDeniedException's name; TestRetries has that name, answered as AWS does.)
func TestDeniedSecret(t *testing.T) {
	s := newMoto(t)
	arn := s.CreateSecret(t, "denied-secret-value")
	t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", arn)
	t.Setenv("AWS_ACCESS_KEY_ID", s.Denied.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.Denied.SecretAccessKey)

	start := time.Now()
	_, err := newResolver(t).Require(context.Background(), "LAKALA_PRIVATE_KEY")
	var respErr *awshttp.ResponseError
	if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != http.StatusForbidden {
		t.Fatalf("Require error = %v; want a 403 answer", err)
	}
	if !strings.Contains(err.Error(), "LAKALA_PRIVATE_KEY_SECRET_ARN="+arn) || strings.Contains(err.Error(), "NAT gateway") {
		t.Errorf("error %q should name the variable and ARN, and not blame the network", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v; a refusal is final, not retried", took)
	}
	assertNoLeak(t, "error", err.Error())
}

// A rotation: the resolver reads AWSCURRENT only (not a pending version a rotation is testing),
// keeps it for the life of the process, and Reload picks up the new AWSCURRENT; the version
// before stays readable as AWSPREVIOUS.
func TestRotationIsReadOnReload(t *testing.T) {
	s := newMoto(t)
	arn := s.CreateSecret(t, `{"username":"loomi","password":"one","host":"db"}`)
	t.Setenv("DATABASE_URL_SECRET_ARN", arn)
	r := newResolver(t)
	ctx := context.Background()
	get := func(reload bool) string {
		t.Helper()
		f := r.Get
		if reload {
			f = r.Reload
		}
		v, _, err := f(ctx, DatabaseURLName)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := get(false); v != "postgres://loomi:one@db:5432" {
		t.Fatalf("first read = %q", v)
	}
	s.Stage(t, arn, `{"username":"loomi","password":"pending","host":"db"}`, "AWSPENDING")
	if v := get(true); v != "postgres://loomi:one@db:5432" {
		t.Errorf("Reload while a rotation is pending = %q; want AWSCURRENT's", v)
	}
	s.Rotate(t, arn, `{"username":"loomi","password":"two","host":"db"}`)
	if v := get(false); v != "postgres://loomi:one@db:5432" {
		t.Errorf("Get after the rotation = %q; want the value read before (cached)", v)
	}
	if v := get(true); v != "postgres://loomi:two@db:5432" {
		t.Errorf("Reload after the rotation = %q; want the new AWSCURRENT", v)
	}
	if v := s.Versions(t, arn); !strings.Contains(v["AWSPREVIOUS"], `"one"`) || !strings.Contains(v["AWSCURRENT"], `"two"`) {
		t.Errorf("versions = %v; want AWSCURRENT two, AWSPREVIOUS one", v)
	}
}

func TestRequire(t *testing.T) {
	newMoto(t)
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
}

func TestLogNamesARNButNotValue(t *testing.T) {
	s := newMoto(t)
	arn := s.CreateSecret(t, rdsJSON)
	t.Setenv("DATABASE_URL_SECRET_ARN", arn)
	var logs bytes.Buffer
	previous := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(previous) })

	if _, err := newResolver(t).Require(context.Background(), DatabaseURLName); err != nil {
		t.Fatalf("Require: %v", err)
	}
	if !strings.Contains(logs.String(), "DATABASE_URL") || !strings.Contains(logs.String(), arn) {
		t.Errorf("log %q does not name the variable and ARN", logs.String())
	}
	assertNoLeak(t, "log", logs.String())
}

// Credentials come from every standard source, not only Lambda's environment variables: a
// profile in the shared files (with its region), the ECS task role's endpoint, and EKS's web
// identity (a token file and a role, exchanged at STS).
func TestCredentialSources(t *testing.T) {
	setUp := func(t *testing.T) (*motoserver.Server, string) {
		s := newMoto(t)
		arn := s.CreateSecret(t, "from-"+t.Name())
		unsetenv(t, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
		t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", arn)
		return s, arn
	}
	read := func(t *testing.T) {
		t.Helper()
		if v, err := newResolver(t).Require(context.Background(), "LAKALA_PRIVATE_KEY"); err != nil || v != "from-"+t.Name() {
			t.Errorf("Require = %q, %v; want the secret", v, err)
		}
	}
	t.Run("profile", func(t *testing.T) {
		s, _ := setUp(t)
		dir := t.TempDir()
		write(t, filepath.Join(dir, "credentials"), fmt.Sprintf("[loomi]\naws_access_key_id = %s\naws_secret_access_key = %s\n", s.Admin.AccessKeyID, s.Admin.SecretAccessKey))
		write(t, filepath.Join(dir, "config"), "[profile loomi]\nregion = "+motoserver.Region+"\n")
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
		t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
		t.Setenv("AWS_PROFILE", "loomi")
		unsetenv(t, "AWS_REGION")
		t.Setenv("LAKALA_PRIVATE_KEY_SECRET_ARN", "loomipay/test/profile") // by name: the profile's region
		s.CreateSecretNamed(t, "loomipay/test/profile", "from-"+t.Name())
		read(t)
	})
	t.Run("ECS task role", func(t *testing.T) {
		s, _ := setUp(t)
		agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "ecs-token" {
				http.Error(w, "no token", http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"AccessKeyId":%q,"SecretAccessKey":%q,"Token":"","Expiration":%q}`,
				s.Admin.AccessKeyID, s.Admin.SecretAccessKey, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		}))
		t.Cleanup(agent.Close)
		t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.URL+"/v2/credentials/task")
		t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-token")
		read(t)
	})
	t.Run("EKS web identity", func(t *testing.T) {
		s, _ := setUp(t)
		token := filepath.Join(t.TempDir(), "token")
		write(t, token, "eks-service-account-token")
		t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token)
		t.Setenv("AWS_ROLE_ARN", s.ReaderRoleARN)
		t.Setenv("AWS_ROLE_SESSION_NAME", "loomipay-test")
		t.Setenv("AWS_ENDPOINT_URL_STS", s.URL)
		s.AllowUnsigned(t, 1) // AssumeRoleWithWebIdentity; the secret is read with the role's keys
		read(t)
	})
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

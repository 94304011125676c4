// Package motoserver runs moto_server (moto's local imitation of AWS's APIs) for tests: one
// process per test binary on a free loopback port, with IAM authentication on, so that every
// request is signature-checked and authorised as AWS would (by identity policy: moto evaluates
// actions, not resources, and stores secrets' resource policies without enforcing them). Tests
// get an admin identity that may do anything, and a denied one whose policy refuses reading
// secrets.
//
// Without moto_server on PATH the tests that need it skip, unless CI=true, where they fail.
// Install: pip install 'moto[server]'.
package motoserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/loomipay/loomipay/internal/testskip"
)

// Region is the region every test secret lives in.
const Region = "us-east-1"

// Server is a running moto_server.
type Server struct {
	URL string
	// Admin may do anything; Denied's policy refuses secretsmanager:GetSecretValue.
	Admin, Denied aws.Credentials
	// ReaderRoleARN is a role that may read secrets, assumed with a web identity (as EKS's IRSA
	// does: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE; moto takes any token).
	ReaderRoleARN string

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has ended
	log    string
}

var (
	mu      sync.Mutex
	shared  *Server
	started error
)

// Shared returns the test binary's moto_server, starting it on first use. Stop, called from the
// package's TestMain, ends it.
func Shared(t testing.TB) *Server {
	t.Helper()
	path, err := exec.LookPath("moto_server")
	if err != nil {
		testskip.Missing(t, "moto_server is not installed: the tests against a local Secrets Manager do not run", "pip install 'moto[server]'")
	}
	mu.Lock()
	defer mu.Unlock()
	if shared == nil && started == nil {
		shared, started = start(path)
	}
	if started != nil {
		t.Fatalf("starting moto_server: %v", started)
	}
	return shared
}

// Stop ends the shared moto_server, if one was started.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		_ = shared.cmd.Process.Kill()
		<-shared.exited
		_ = os.Remove(shared.log)
		shared = nil
	}
}

func start(path string) (*Server, error) {
	var lastErr error
	for range 3 { // a port found free may be taken before moto binds it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s, err := startOn(path, port)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startOn(path string, port int) (*Server, error) {
	logFile, err := os.CreateTemp("", "moto-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The server dies with the test binary even when TestMain does not get to Stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	logFile.Close()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, exited: exited, log: logFile.Name()}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(s.log)
			return nil, fmt.Errorf("moto_server exited: %s", lastLines(out))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("moto_server did not answer on %s within 30 s", s.URL)
		}
	}
	if err := s.setUpIdentities(); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// setUpIdentities creates the admin and the denied IAM users with their access keys, while moto
// still accepts anyone, then turns authentication on.
func (s *Server) setUpIdentities() error {
	var err error
	if s.Admin, err = s.iamUser("loomipay-test-admin", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`); err != nil {
		return err
	}
	if s.Denied, err = s.iamUser("loomipay-test-denied", `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`); err != nil {
		return err
	}
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/oidc.eks.example"},"Action":"sts:AssumeRoleWithWebIdentity"}]}`
	body, err := s.iam("CreateRole", url.Values{"RoleName": {"loomipay-test-reader"}, "AssumeRolePolicyDocument": {trust}})
	if err != nil {
		return err
	}
	var role struct {
		ARN string `xml:"CreateRoleResult>Role>Arn"`
	}
	if err := xml.Unmarshal(body, &role); err != nil || role.ARN == "" {
		return fmt.Errorf("CreateRole answered %s", body)
	}
	s.ReaderRoleARN = role.ARN
	if _, err := s.iam("PutRolePolicy", url.Values{"RoleName": {"loomipay-test-reader"}, "PolicyName": {"read"},
		"PolicyDocument": {`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`}}); err != nil {
		return err
	}
	return s.resetAuth(0)
}

// resetAuth lets the next n requests through without authentication, and checks every one after.
func (s *Server) resetAuth(n int) error {
	resp, err := http.Post(s.URL+"/moto-api/reset-auth", "text/plain", strings.NewReader(fmt.Sprint(n)))
	if err != nil {
		return fmt.Errorf("turning authentication on: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("turning authentication on: %s", resp.Status)
	}
	return nil
}

// AllowUnsigned lets the next n requests through unauthenticated: AWS takes STS's
// AssumeRoleWithWebIdentity unsigned (the token is the proof), which moto, with authentication
// on, would refuse. Requests after those n are checked again.
func (s *Server) AllowUnsigned(t testing.TB, n int) {
	t.Helper()
	if err := s.resetAuth(n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.resetAuth(0) })
}

// iamUser creates a user with an inline policy and returns an access key of it.
func (s *Server) iamUser(name, policy string) (aws.Credentials, error) {
	if _, err := s.iam("CreateUser", url.Values{"UserName": {name}}); err != nil {
		return aws.Credentials{}, err
	}
	if _, err := s.iam("PutUserPolicy", url.Values{"UserName": {name}, "PolicyName": {"test"}, "PolicyDocument": {policy}}); err != nil {
		return aws.Credentials{}, err
	}
	body, err := s.iam("CreateAccessKey", url.Values{"UserName": {name}})
	if err != nil {
		return aws.Credentials{}, err
	}
	var out struct {
		Key struct {
			AccessKeyID     string `xml:"AccessKeyId"`
			SecretAccessKey string `xml:"SecretAccessKey"`
		} `xml:"CreateAccessKeyResult>AccessKey"`
	}
	if err := xml.Unmarshal(body, &out); err != nil || out.Key.AccessKeyID == "" {
		return aws.Credentials{}, fmt.Errorf("CreateAccessKey answered %s", body)
	}
	return aws.Credentials{AccessKeyID: out.Key.AccessKeyID, SecretAccessKey: out.Key.SecretAccessKey, Source: "moto"}, nil
}

// iam calls one action of IAM's query API, signed (moto finds the service in the signature's
// scope; it checks nothing before authentication is on).
func (s *Server) iam(action string, params url.Values) ([]byte, error) {
	params.Set("Action", action)
	params.Set("Version", "2010-05-08")
	body := []byte(params.Encode())
	req, err := http.NewRequest(http.MethodPost, s.URL+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: "AKIDSETUP", SecretAccessKey: "setup"}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "iam", Region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("IAM %s: %w", action, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("IAM %s answered %s: %s", action, resp.Status, out)
	}
	return out, nil
}

// SetEnv points the AWS SDK's default configuration at the server for the test: the Secrets
// Manager endpoint (AWS_ENDPOINT_URL_SECRETS_MANAGER), the admin's key, the region, and no
// shared files, profile, container or web-identity credentials, nor IMDS.
func (s *Server) SetEnv(t testing.TB) {
	t.Helper()
	noFile := filepath.Join(t.TempDir(), "absent")
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": s.URL,
		"AWS_ACCESS_KEY_ID":                s.Admin.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":            s.Admin.SecretAccessKey,
		"AWS_REGION":                       Region,
		"AWS_EC2_METADATA_DISABLED":        "true",
		"AWS_CONFIG_FILE":                  noFile,
		"AWS_SHARED_CREDENTIALS_FILE":      noFile,
	} {
		t.Setenv(k, v)
	}
	for _, name := range []string{"AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "SECRETS_MANAGER_ENDPOINT",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"} {
		t.Setenv(name, "")
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
}

// Client is a Secrets Manager client acting as the admin, for setting secrets up.
func (s *Server) Client() *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.StaticCredentialsProvider{Value: s.Admin},
	})
}

// CreateSecret creates a secret with a name unique to the test and returns its ARN; it is
// deleted when the test ends.
func (s *Server) CreateSecret(t testing.TB, value string) string {
	t.Helper()
	return s.CreateSecretNamed(t, fmt.Sprintf("loomipay/test/%s-%d", strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()), time.Now().UnixNano()), value)
}

// CreateSecretNamed is CreateSecret with a name of the caller's.
func (s *Server) CreateSecretNamed(t testing.TB, name, value string) string {
	t.Helper()
	out, err := s.Client().CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	t.Cleanup(func() {
		_, _ = s.Client().DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: out.ARN, ForceDeleteWithoutRecovery: aws.Bool(true)})
	})
	return aws.ToString(out.ARN)
}

// Rotate stores value as the secret's new AWSCURRENT version, as the last step of a rotation does
// (the version before becomes AWSPREVIOUS).
func (s *Server) Rotate(t testing.TB, arn, value string) {
	t.Helper()
	if _, err := s.Client().PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn), SecretString: aws.String(value)}); err != nil {
		t.Fatalf("PutSecretValue: %v", err)
	}
}

// Stage stores value as a new version of the secret under stage only (AWSPENDING, as the first
// step of a rotation does), leaving AWSCURRENT where it is.
func (s *Server) Stage(t testing.TB, arn, value, stage string) {
	t.Helper()
	if _, err := s.Client().PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn), SecretString: aws.String(value), VersionStages: []string{stage}}); err != nil {
		t.Fatalf("PutSecretValue (%s): %v", stage, err)
	}
}

// Versions returns the secret's value under each of its stages (AWSCURRENT, AWSPREVIOUS, …).
func (s *Server) Versions(t testing.TB, arn string) map[string]string {
	t.Helper()
	ctx := context.Background()
	list, err := s.Client().ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatalf("ListSecretVersionIds: %v", err)
	}
	out := map[string]string{}
	for _, v := range list.Versions {
		for _, stage := range v.VersionStages {
			got, err := s.Client().GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String(stage)})
			if err != nil {
				t.Fatalf("GetSecretValue %s: %v", stage, err)
			}
			out[stage] = aws.ToString(got.SecretString)
		}
	}
	return out
}

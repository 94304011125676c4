package secrets

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The Secrets Manager call is one signed POST of the JSON 1.1 protocol, made here with the SDK's
// SigV4 signer rather than through the SDK's service client: the client and the smithy runtime
// behind it added about a megabyte to every bootstrap for this one call at start.

// maxAttempts and retryBase mirror the SDK's standard retryer for the errors that are worth a
// retry (throttling, 5xx, a connection that failed): three attempts, backing off from 100 ms.
const (
	maxAttempts = 3
	retryBase   = 100 * time.Millisecond
	// attemptTimeout bounds one request, connection included. A function in private subnets
	// with no route to Secrets Manager would otherwise spend the whole fetch on its first
	// attempt; an answer takes milliseconds.
	attemptTimeout = 5 * time.Second
	// maxResponse bounds what is read of an answer; a SecretString is at most 64 KiB.
	maxResponse = 1 << 20
)

// APIError is an error answer of Secrets Manager: its error type (for example
// ResourceNotFoundException or AccessDeniedException) and message, never a secret value.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("Secrets Manager answered %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// retryable reports whether the same request may succeed later.
func (e *APIError) retryable() bool {
	switch e.Code {
	case "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded", "InternalServiceError":
		return true
	}
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// secretsManager reads secrets with credentials and region taken from the environment.
type secretsManager struct {
	endpoint string
	region   string
	creds    aws.Credentials
	client   *http.Client
	signer   *v4.Signer
}

// newSecretsManager configures the client from the environment alone (see
// EnvironmentCredentials); endpoint, when set, replaces the regional one.
func newSecretsManager(endpoint string) (*secretsManager, error) {
	region, creds, err := EnvironmentCredentials()
	if err != nil {
		return nil, err
	}
	endpoint = cmp.Or(endpoint, os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER"), os.Getenv("AWS_ENDPOINT_URL"), regionalEndpoint(region))
	return &secretsManager{
		endpoint: strings.TrimSuffix(endpoint, "/") + "/",
		region:   region,
		creds:    creds,
		client:   &http.Client{Timeout: attemptTimeout},
		signer:   v4.NewSigner(),
	}, nil
}

// regionalEndpoint is Secrets Manager's public endpoint in region; with a VPC interface endpoint
// and private DNS the same name resolves to the endpoint's addresses.
func regionalEndpoint(region string) string { return ServiceEndpoint("secretsmanager", region) }

// ServiceEndpoint is the public HTTPS endpoint of an AWS service in region: amazonaws.com, or
// amazonaws.com.cn in the China regions.
func ServiceEndpoint(service, region string) string {
	domain := "amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		domain = "amazonaws.com.cn"
	}
	return "https://" + service + "." + region + "." + domain
}

// GetSecretString returns the SecretString of the secret secretID (an ARN or a name).
func (c *secretsManager) GetSecretString(ctx context.Context, secretID string) (string, error) {
	body, err := json.Marshal(struct{ SecretId string }{secretID})
	if err != nil {
		return "", err
	}
	var lastErr error
	for attempt := range maxAttempts {
		if attempt > 0 {
			select {
			case <-time.After(retryBase << (attempt - 1)):
			case <-ctx.Done():
				return "", fmt.Errorf("%w (after: %w)", ctx.Err(), lastErr)
			}
		}
		value, err := c.getOnce(ctx, body)
		if err == nil {
			return value, nil
		}
		var apiErr *APIError
		if ctx.Err() != nil || (errors.As(err, &apiErr) && !apiErr.retryable()) {
			return "", err
		}
		lastErr = err
	}
	var apiErr *APIError
	if !errors.As(lastErr, &apiErr) {
		// No answer at all: in a VPC that is a missing route, the usual first-deploy fault.
		return "", fmt.Errorf("%d attempts, no answer from %s (in private subnets it is reached through a NAT gateway or a Secrets Manager VPC endpoint): %w",
			maxAttempts, c.endpoint, lastErr)
	}
	return "", fmt.Errorf("%d attempts: %w", maxAttempts, lastErr)
}

func (c *secretsManager) getOnce(ctx context.Context, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
	sum := sha256.Sum256(body)
	if err := c.signer.SignHTTP(ctx, c.creds, req, hex.EncodeToString(sum[:]), "secretsmanager", c.region, time.Now()); err != nil {
		return "", fmt.Errorf("signing the request: %w", err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return "", fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", apiError(resp, answer)
	}
	var out struct{ SecretString *string }
	if err := json.Unmarshal(answer, &out); err != nil {
		// Not wrapped: encoding/json's messages can quote the input, which holds the secret.
		return "", errors.New("the answer is not the JSON of GetSecretValue")
	}
	if out.SecretString == nil {
		return "", errNoSecretString
	}
	return *out.SecretString, nil
}

var errNoSecretString = errors.New("the secret has no SecretString (binary secrets are not supported)")

// apiError reads the error type from the X-Amzn-Errortype header or the body's __type, both of
// which may carry a namespace ("…#ResourceNotFoundException") or a suffix (":http://…").
func apiError(resp *http.Response, answer []byte) *APIError {
	var body struct {
		Type       string `json:"__type"`
		Message    string `json:"message"`
		MessageCap string `json:"Message"`
	}
	_ = json.Unmarshal(answer, &body)
	code := cmp.Or(resp.Header.Get("X-Amzn-Errortype"), body.Type, http.StatusText(resp.StatusCode))
	if i := strings.LastIndex(code, "#"); i >= 0 {
		code = code[i+1:]
	}
	if i := strings.Index(code, ":"); i >= 0 {
		code = code[:i]
	}
	return &APIError{StatusCode: resp.StatusCode, Code: code, Message: cmp.Or(body.Message, body.MessageCap)}
}

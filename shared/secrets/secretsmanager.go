package secrets

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The Secrets Manager client is the SDK's, configured by aws-sdk-go-v2/config's
// LoadDefaultConfig: credentials and region come from every standard source (environment
// variables as Lambda sets them, shared config and credentials files with profiles and SSO, web
// identity as EKS's IRSA sets it, the ECS task role, EC2's instance profile), the endpoint from
// AWS_ENDPOINT_URL_SECRETS_MANAGER or AWS_ENDPOINT_URL as the SDKs read them, and failures are
// retried by the SDK's standard retryer (3 attempts on throttling, 5xx and broken connections,
// with its jittered backoff).

// attemptTimeout bounds one request, connection included. A function in private subnets with no
// route to Secrets Manager would otherwise spend the whole fetch (fetchTimeout) on its first
// attempt; an answer takes milliseconds.
const attemptTimeout = 5 * time.Second

// secretsManager reads SecretStrings through the SDK's client.
type secretsManager struct {
	client *secretsmanager.Client
}

// newSecretsManager loads the AWS configuration and builds the client. endpoint, when set,
// replaces the one the SDK would resolve. firstSecret is the secret about to be read: when no
// region is configured anywhere, its ARN's region is the default (the credential providers that
// call STS need one). timeout bounds each attempt; maxBackoff, when > 0, caps the standard
// retryer's delay between attempts (tests).
func newSecretsManager(ctx context.Context, endpoint, firstSecret string, timeout, maxBackoff time.Duration) (*secretsManager, error) {
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(timeout)),
	}
	if region := arnRegion(firstSecret); region != "" {
		opts = append(opts, awsconfig.WithDefaultRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, err
	}
	client := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		if maxBackoff > 0 {
			o.Retryer = retry.AddWithMaxBackoffDelay(o.Retryer, maxBackoff)
		}
	})
	if client.Options().Region == "" {
		return nil, errors.New("no AWS region: set AWS_REGION (Lambda sets it), a profile's region, or give the secret by its full ARN")
	}
	return &secretsManager{client: client}, nil
}

// arnRegion is the region of a secret given by ARN, or "" for a name.
func arnRegion(secretID string) string {
	a, err := arn.Parse(secretID)
	if err != nil {
		return ""
	}
	return a.Region
}

// GetSecretString returns the SecretString of the secret secretID (an ARN or a name). A secret
// given by ARN is read in the ARN's region, wherever the process runs.
func (c *secretsManager) GetSecretString(ctx context.Context, secretID string) (string, error) {
	out, err := c.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretID)},
		func(o *secretsmanager.Options) {
			if region := arnRegion(secretID); region != "" {
				o.Region = region
			}
		})
	if err != nil {
		var notSent *smithyhttp.RequestSendError
		if errors.As(err, &notSent) && ctx.Err() == nil {
			// No answer at all: in a VPC that is a missing route, the usual first-deploy fault.
			return "", fmt.Errorf("no answer from Secrets Manager (in private subnets it is reached through a NAT gateway or a Secrets Manager VPC endpoint): %w", err)
		}
		// The SDK's errors carry the operation, status, request id and the service's message,
		// never a SecretString.
		return "", err
	}
	if out.SecretString == nil {
		return "", errNoSecretString
	}
	return *out.SecretString, nil
}

var errNoSecretString = errors.New("the secret has no SecretString (binary secrets are not supported)")

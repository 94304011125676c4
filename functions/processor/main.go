// Command processor is the scheduled Lambda function that drains the task stream, republishes
// lost tasks, reclaims a crashed run's work, reconciles and expires orders, and relays results.
// It works until shortly before its deadline; the schedule starts the next run. A scheduled run
// also starts extra runs of this same function (asynchronous invocations, up to
// PROCESSOR_MAX_RUNS) while the oldest due task waits longer than PROCESSOR_SCALE_AFTER.
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/secrets"
	"github.com/loomipay/loomipay/shared/worker"
)

// extraRun is the payload of a run started by the scaler; such a run does not scale further.
const extraRun = `{"loomipay":"extra-run"}`

// invokeClient calls Lambda's Invoke API. An asynchronous Invoke answers 202 in milliseconds;
// the timeout keeps a missing route (private subnets without NAT or a Lambda endpoint) from
// holding the scaler until the run's deadline.
var invokeClient = &http.Client{Timeout: 5 * time.Second}

func main() {
	deps, proc := worker.MustOpen(context.Background())
	scaler := worker.NewScaler(deps, startRuns)
	lambda.Start(func(ctx context.Context, payload json.RawMessage) (processor.Stats, error) {
		if deps.Config.ProcessorMaxRuns > 1 && string(payload) != extraRun {
			scaleCtx, stop := context.WithCancel(ctx)
			defer stop()
			go scaler.Run(scaleCtx)
		}
		return proc.Run(ctx)
	})
}

// startRuns invokes this function asynchronously n times with the extra-run payload (Lambda's
// Invoke API, InvocationType Event, signed with the SDK's SigV4 signer: the full Lambda client
// would add 1.3 MB to this binary for one call). Lambda queues an invocation the reserved
// concurrency cannot take yet, and drops it after the function's MaximumEventAgeInSeconds.
func startRuns(ctx context.Context, n int) error {
	region, creds, err := secrets.EnvironmentCredentials()
	if err != nil {
		return err
	}
	endpoint := cmp.Or(os.Getenv("AWS_ENDPOINT_URL_LAMBDA"), secrets.ServiceEndpoint("lambda", region))
	url := endpoint + "/2015-03-31/functions/" + os.Getenv("AWS_LAMBDA_FUNCTION_NAME") + "/invocations"
	for range n {
		if err := invokeAsync(ctx, url, region, creds); err != nil {
			return fmt.Errorf("start an extra processor run: %w", err)
		}
	}
	return nil
}

func invokeAsync(ctx context.Context, url, region string, creds aws.Credentials) error {
	payload := []byte(extraRun)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("X-Amz-Invocation-Type", "Event")
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(payload)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "lambda", region, time.Now()); err != nil {
		return err
	}
	resp, err := invokeClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w (in private subnets Lambda's API is reached through a NAT gateway or a Lambda VPC endpoint)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("lambda Invoke answered %d: %s", resp.StatusCode, body)
	}
	return nil
}

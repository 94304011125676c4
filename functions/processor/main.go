// Command processor is the scheduled Lambda function that drains the task stream, republishes
// lost tasks, reclaims a crashed run's work, reconciles and expires orders, and relays results.
// It works until shortly before its deadline; the schedule starts the next run. A scheduled run
// also starts extra runs of this same function (asynchronous invocations, up to
// PROCESSOR_MAX_RUNS) while the oldest due task waits longer than PROCESSOR_SCALE_AFTER.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	lambdaapi "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/worker"
)

// extraRun is the payload of a run started by the scaler; such a run does not scale further.
const extraRun = `{"loomipay":"extra-run"}`

// invokeTimeout bounds one Invoke attempt. An asynchronous Invoke answers 202 in milliseconds;
// the bound keeps a missing route (private subnets without NAT or a Lambda endpoint) from holding
// the scaler until the run's deadline.
const invokeTimeout = 5 * time.Second

// lambdaClient is the SDK's Lambda client, configured on the first scale-out (most runs never
// need it): credentials and region as for Secrets Manager, AWS_ENDPOINT_URL_LAMBDA honoured, the
// standard retryer.
var lambdaClient = sync.OnceValues(func() (*lambdaapi.Client, error) {
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(),
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(invokeTimeout)))
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	return lambdaapi.NewFromConfig(cfg), nil
})

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
// Invoke API, InvocationType Event). Lambda queues an invocation the reserved concurrency cannot
// take yet, and drops it after the function's MaximumEventAgeInSeconds.
func startRuns(ctx context.Context, n int) error {
	client, err := lambdaClient()
	if err != nil {
		return err
	}
	for range n {
		_, err := client.Invoke(ctx, &lambdaapi.InvokeInput{
			FunctionName:   aws.String(os.Getenv("AWS_LAMBDA_FUNCTION_NAME")),
			InvocationType: types.InvocationTypeEvent,
			Payload:        []byte(extraRun),
		})
		if err != nil {
			var notSent *smithyhttp.RequestSendError
			if errors.As(err, &notSent) && ctx.Err() == nil {
				err = fmt.Errorf("%w (in private subnets Lambda's API is reached through a NAT gateway or a Lambda VPC endpoint)", err)
			}
			return fmt.Errorf("start an extra processor run: %w", err)
		}
	}
	return nil
}

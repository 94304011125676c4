// Command processor is the scheduled Lambda function that drains the task stream, republishes
// lost tasks, reclaims a crashed run's work, reconciles and expires orders, and relays results.
// It works until shortly before its deadline; the schedule starts the next run.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/worker"
)

func main() {
	_, proc := worker.MustOpen(context.Background())
	// The schedule's payload carries nothing the processor needs.
	lambda.Start(func(ctx context.Context, _ json.RawMessage) (processor.Stats, error) {
		return proc.Run(ctx)
	})
}

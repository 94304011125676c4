// Command migrate is the Lambda function that applies the database migrations from inside the
// VPC, where PostgreSQL is. CloudFormation invokes it on every deploy that changes its code (the
// Migrations custom resource in template.yaml), before the other functions are updated, so new
// code never runs on an old schema. It can also be invoked by hand with any other payload:
//
//	aws lambda invoke --function-name loomipay-<stage>-migrate /dev/stdout
package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/loomipay/loomipay/shared/config"
)

// Result is the answer to a direct invocation.
type Result struct {
	Applied int `json:"applied"`
}

func main() {
	deps := config.MustOpen(context.Background())
	migrate := func(ctx context.Context) (int, error) {
		n, err := deps.Store.Migrate(ctx)
		if err != nil {
			return n, fmt.Errorf("migrate: %w", err)
		}
		deps.Log.InfoContext(ctx, "migrations applied", "applied", n)
		return n, nil
	}
	// A custom resource: Create and Update migrate; Delete changes nothing (a schema is never
	// rolled back by removing a stack). cfn.LambdaWrap answers CloudFormation's ResponseURL.
	resource := cfn.LambdaWrap(func(ctx context.Context, ev cfn.Event) (string, map[string]any, error) {
		if ev.RequestType == cfn.RequestDelete {
			return ev.PhysicalResourceID, nil, nil
		}
		n, err := migrate(ctx)
		return "loomipay-migrations", map[string]any{"Applied": n}, err
	})
	lambda.Start(func(ctx context.Context, raw json.RawMessage) (any, error) {
		var ev cfn.Event
		if json.Unmarshal(raw, &ev) == nil && ev.RequestType != "" && ev.ResponseURL != "" {
			return resource(ctx, ev)
		}
		n, err := migrate(ctx)
		return Result{Applied: n}, err
	})
}

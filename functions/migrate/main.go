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
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/loomipay/loomipay/shared/config"
)

// Result is the answer to a direct invocation.
type Result struct {
	Applied int `json:"applied"`
}

// physicalID names the one Migrations resource; it never changes, so an Update never replaces it.
const physicalID = "loomipay-migrations"

// maxReason keeps the answer to CloudFormation under its 4,096-byte limit; the whole error is in
// the function's log.
const maxReason = 1000

func main() {
	// A start-up failure (a secret unreadable, a setting refused) must still be answered:
	// CloudFormation would otherwise wait for the resource's ServiceTimeout, and a stack being
	// rolled back or deleted would wait on a function that can never start.
	deps, initErr := config.LoadAndOpen(context.Background())
	if initErr != nil {
		config.LogStartupFailure(initErr)
	}
	migrate := func(ctx context.Context) (int, error) {
		if initErr != nil {
			return 0, initErr
		}
		n, err := deps.Store.Migrate(ctx)
		if err != nil {
			return n, fmt.Errorf("migrate: %w", err)
		}
		deps.Log.InfoContext(ctx, "migrations applied", "applied", n)
		return n, nil
	}
	resource := cfn.LambdaWrap(func(ctx context.Context, ev cfn.Event) (string, map[string]any, error) {
		if !shouldMigrate(ev, lambdacontext.FunctionVersion) {
			return physicalID, nil, nil
		}
		n, err := migrate(ctx)
		if err != nil {
			return physicalID, nil, shorten(err)
		}
		return physicalID, map[string]any{"Applied": n}, nil
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

// shouldMigrate decides a custom resource request. Delete changes nothing: a schema is never
// rolled back by removing a stack. Create and Update migrate, except the Update a rollback sends:
// it asks for the previous version (the Version property) while the alias still runs the new
// one, whose migrations failed or whose deploy failed later. Old code runs on the newer schema
// (migrations are additive), so that Update succeeds without work; migrating again would only
// fail the rollback too.
func shouldMigrate(ev cfn.Event, running string) bool {
	if ev.RequestType == cfn.RequestDelete {
		return false
	}
	requested, _ := ev.ResourceProperties["Version"].(string)
	req, err1 := strconv.Atoi(requested[strings.LastIndex(requested, ":")+1:])
	run, err2 := strconv.Atoi(running)
	return err1 != nil || err2 != nil || req >= run
}

// shorten cuts an error's text to what CloudFormation accepts as a reason.
func shorten(err error) error {
	if msg := err.Error(); len(msg) > maxReason {
		return fmt.Errorf("%s… (see the function's log)", msg[:maxReason])
	}
	return err
}

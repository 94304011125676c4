// Command console is the Lambda function that serves the operator console (GET /console and
// ANY /console/{proxy+}) behind API Gateway (HTTP API, payload 2.0).
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/console"
)

func main() {
	deps := config.MustOpen(context.Background())
	handler := console.New(deps.Ops(), console.Config{Logger: deps.Log}).Handler()
	lambda.Start(httpadapter.NewV2(handler).ProxyWithContext)
}

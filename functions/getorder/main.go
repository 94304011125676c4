// Command getorder is the Lambda function that serves GET /api/v1/payment-orders/{merchant_order_id}
// behind API Gateway (HTTP API, payload 2.0).
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/httpapi"
)

func main() {
	deps := config.MustOpen(context.Background())
	handler := deps.APIHandler(httpapi.FunctionGetOrder)
	lambda.Start(httpadapter.NewV2(handler).ProxyWithContext)
}

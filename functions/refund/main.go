// Command refund is the Lambda function that serves POST /api/v1/refund-orders and GET /api/v1/refund-orders/{refund_order_id}
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
	handler := deps.APIHandler(httpapi.FunctionRefund)
	lambda.Start(httpadapter.NewV2(handler).ProxyWithContext)
}

// Command createorder is the Lambda function that serves POST /api/v1/payment-orders and
// POST /api/v1/payment-orders/{merchant_order_id}/close behind API Gateway (HTTP API, payload 2.0).
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
	// Closing an order acts at Lakala: APIHandler wires the Lakala client, or, without one, the
	// function still creates orders and the close route answers 503 after its checks.
	handler := deps.APIHandler(httpapi.FunctionCreateOrder)
	lambda.Start(httpadapter.NewV2(handler).ProxyWithContext)
}

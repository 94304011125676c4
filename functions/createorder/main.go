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
	api := httpapi.New(deps.Service)
	// Closing an order acts at Lakala. Without a Lakala client the function still creates
	// orders, and the close route answers 503.
	if payments, err := deps.Payments(); err != nil {
		deps.Log.Error("close route unavailable: no Lakala client", "err", err)
	} else {
		api.WithPayments(payments)
	}
	handler := api.Handler(httpapi.FunctionCreateOrder)
	lambda.Start(httpadapter.NewV2(handler).ProxyWithContext)
}

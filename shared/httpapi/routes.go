// Package httpapi is Loomi Pay's HTTP surface: the routes of the API and the Lakala webhook,
// authentication, JSON bodies with limits, and the one place where errors become status codes.
// The Lambda functions, the local stack and the tests all serve these same handlers.
package httpapi

// Lambda function names; each serves a group of routes.
const (
	FunctionCreateOrder = "createorder"
	FunctionGetOrder    = "getorder"
	FunctionRefund      = "refund"
	FunctionWebhook     = "webhook"
)

// Route is one HTTP route and the function that serves it. template.yaml must declare exactly
// these (a test compares them).
type Route struct {
	Method   string
	Path     string // http.ServeMux pattern syntax, which matches API Gateway's {name} syntax
	Function string
}

// Routes lists every route the service serves.
var Routes = []Route{
	{"POST", "/api/v1/payment-orders", FunctionCreateOrder},
	{"GET", "/api/v1/payment-orders/{merchant_order_id}", FunctionGetOrder},
	{"POST", "/api/v1/refund-orders", FunctionRefund},
	{"GET", "/api/v1/refund-orders/{refund_order_id}", FunctionRefund},
	{"POST", "/webhooks/lakala", FunctionWebhook},
	// Reads (lists, health, the API description) go to getorder, the read function;
	// refunds stay with refund.
	{"POST", "/api/v1/payment-orders/{merchant_order_id}/close", FunctionCreateOrder},
	{"GET", "/api/v1/payment-orders", FunctionGetOrder},
	{"GET", "/api/v1/refund-orders", FunctionRefund},
	{"GET", "/api/v1/refund-orders/by-merchant-id/{merchant_refund_id}", FunctionRefund},
	{"GET", "/api/v1/openapi.json", FunctionGetOrder},
	{"GET", "/healthz", FunctionGetOrder},
	{"GET", "/readyz", FunctionGetOrder},
}

// RoutesOf lists the routes the named functions serve; every route when none is named.
func RoutesOf(functions ...string) []Route {
	var out []Route
	for _, r := range Routes {
		if len(functions) == 0 || contains(functions, r.Function) {
			out = append(out, r)
		}
	}
	return out
}

// CloseRoute is the route that acts at Lakala from the API, and so needs WithPayments.
const CloseRoute = "POST /api/v1/payment-orders/{merchant_order_id}/close"

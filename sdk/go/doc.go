// Package loomipay is the Go SDK of Loomi Pay for main apps: a typed HTTP client (payment
// orders, refunds, lists with iterators) with timeouts, safe automatic retries and typed
// errors, a consumer of the result streams (payment_results, refund_results), and a verifier
// and http.Handler for the signed webhooks carrying the same results (VerifyWebhook,
// WebhookHandler).
//
// It depends on nothing of the service's code: only the standard library and go-redis.
//
// # Retries
//
// A call is retried (up to Options.MaxRetries times, exponential backoff with jitter from
// Options.RetryBackoff, honouring Retry-After) only when repeating it cannot do anything twice:
//
//   - reads (GetOrder, ListOrders, GetRefund, GetRefundByMerchantID, ListRefunds, Ready) and the
//     idempotent writes (CreateOrder — idempotent by merchant_order_id —, CloseOrder, and
//     CreateRefund with a MerchantRefundID) are retried on a transport error (connection
//     refused or reset, timeout, no response), 429 rate_limited, 500, 502, 503 and 504;
//   - CreateRefund without a MerchantRefundID is retried only when the request surely did not
//     reach the service's logic: a connection that could not be made, and 429 (refused before
//     any work). A timeout or a 5xx is returned to the caller, who must look the refund up
//     (ListRefunds by merchant order) before trying again. Give a MerchantRefundID.
//
// Every other 4xx is final and returned at once as an *Error carrying the API's code and detail.
package loomipay

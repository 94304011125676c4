package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/httpapi"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/sandbox"
)

func closePath(merchantOrderID, query string) string {
	return ordersPath + "/" + merchantOrderID + "/close" + query
}

func TestCloseOrder(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()

	t.Run("a processing order fails closed_by_merchant, once", func(t *testing.T) {
		open, view := s.Checkout(t, "close-open", 1000)
		code, body := s.Do(t, "POST", closePath("close-open", "?app_id=test_app"), s.APIKey, "")
		o := decodeOrder(t, body)
		if code != http.StatusOK || o.Status != "failed" {
			t.Fatalf("close = %d %s; want 200 failed", code, body)
		}
		s.RequireOrder(t, "close-open", "failed", pay.ReasonClosedByMerchant)
		if at, _ := s.Sandbox.Order(view.OutOrderNo); !at.Closed {
			t.Errorf("cashier order %+v; want it closed at Lakala", at)
		}
		failed := testenv.PaymentMessage(s.Order(t, "close-open"), "processing", "failed")
		failed["failure_reason"] = pay.ReasonClosedByMerchant
		testenv.CheckMessages(t, filterOrder(s.Results(t, pay.StreamPaymentResults), open.ID), testenv.ProcessingMessage(open), failed)

		// Idempotent: the same answer, no second message.
		code, body = s.Do(t, "POST", closePath("close-open", "?app_id=test_app"), s.APIKey, "")
		if code != http.StatusOK || decodeOrder(t, body).Status != "failed" {
			t.Fatalf("second close = %d %s; want 200 failed", code, body)
		}
		if n := len(filterOrder(s.Results(t, pay.StreamPaymentResults), open.ID)); n != 2 {
			t.Errorf("%d messages after two closes; want 2", n)
		}
	})

	t.Run("a pending order fails too", func(t *testing.T) {
		s.CreateOrder(t, "close-pending", 1000)
		code, body := s.Do(t, "POST", closePath("close-pending", "?app_id=test_app"), s.APIKey, "")
		if code != http.StatusOK || decodeOrder(t, body).Status != "failed" {
			t.Fatalf("close of a pending order = %d %s; want 200 failed", code, body)
		}
		s.RequireOrder(t, "close-pending", "failed", pay.ReasonClosedByMerchant)
	})

	t.Run("a succeeded order is 409 order_already_paid", func(t *testing.T) {
		s.PaySucceeded(t, "close-paid", 1000)
		code, body := s.Do(t, "POST", closePath("close-paid", "?app_id=test_app"), s.APIKey, "")
		checkError(t, code, body, http.StatusConflict, "order_already_paid", "close-paid")
		s.RequireOrder(t, "close-paid", "succeeded", "")
	})

	t.Run("paid just before the close: the final query finds it, 409 and succeeded", func(t *testing.T) {
		_, view := s.Checkout(t, "close-race", 1000)
		s.SetFaults(sandbox.Faults{DropNotify: true})
		t.Cleanup(func() { s.SetFaults(sandbox.Faults{}) })
		if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
			t.Fatal(err)
		}
		code, body := s.Do(t, "POST", closePath("close-race", "?app_id=test_app"), s.APIKey, "")
		checkError(t, code, body, http.StatusConflict, "order_already_paid", "refund")
		s.RequireOrder(t, "close-race", "succeeded", "")
	})

	t.Run("refused", func(t *testing.T) {
		s.CreateOrder(t, "close-keep", 1000)
		other := s.NewKey(t, "other_app")
		for _, tc := range []struct {
			path, key    string
			status       int
			code, detail string
		}{
			{closePath("close-none", "?app_id=test_app"), s.APIKey, 404, "not_found", "close-none"},
			{closePath("bad%20id", "?app_id=test_app"), s.APIKey, 404, "not_found", "not found"},
			{closePath("close-keep", "?app_id=a%20b"), s.APIKey, 400, "validation_error", "app_id"},
			{closePath("close-keep", "?app_id=other_app"), s.APIKey, 403, "forbidden", "other_app"},
			{closePath("close-keep", "?app_id=other_app"), other, 404, "not_found", "close-keep"},
			{closePath("close-keep", "?app_id=test_app"), "", 401, "unauthorized", ""},
		} {
			code, body := s.Do(t, "POST", tc.path, tc.key, "")
			checkError(t, code, body, tc.status, tc.code, tc.detail)
		}
		s.RequireOrder(t, "close-keep", "pending", "")
	})
}

// filterOrder keeps the messages of one payment order.
func filterOrder(msgs []map[string]string, orderID string) []map[string]string {
	var out []map[string]string
	for _, m := range msgs {
		if m["payment_order_id"] == orderID {
			out = append(out, m)
		}
	}
	return out
}

// TestCloseWithoutLakalaChecksTheCallerFirst: a process without a Lakala client (createorder
// without LAKALA_PRIVATE_KEY) answers a close 503, but only after the checks every route makes:
// another app's key is a 403, an unknown order a 404, as where closing works.
func TestCloseWithoutLakalaChecksTheCallerFirst(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.CreateOrder(t, "close-nolakala", 1000)
	other := s.NewKey(t, "other_app")
	srv := httptest.NewServer(httpapi.New(s.Service).Handler(httpapi.FunctionCreateOrder))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		path, key    string
		status       int
		code, detail string
	}{
		{closePath("close-nolakala", "?app_id=test_app"), other, 403, "forbidden", "test_app"},
		{closePath("close-nolakala", ""), other, 404, "not_found", "close-nolakala"},
		{closePath("close-none", ""), s.APIKey, 404, "not_found", "close-none"},
		{closePath("close-nolakala", ""), s.APIKey, 503, "service_unavailable", "Lakala"},
	} {
		code, body := testenv.Do(t, srv.URL, "POST", tc.path, tc.key, "")
		checkError(t, code, body, tc.status, tc.code, tc.detail)
	}
	s.RequireOrder(t, "close-nolakala", "pending", "")
}

package ops_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// An operator's refund is the API's refund for the order's app: the processor sends it to
// Lakala, the main app gets its refund_results messages; the same token makes one refund; it is
// audited with the operator's name; a viewer is refused.
func TestOperatorRefund(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	o := ops.New(s.Service).WithPayments(s.Processor.Payments())
	paid := s.PaySucceeded(t, "SUPPORT-1", 10000)
	token := ops.NewToken()

	_, err := o.RefundOrder(ctx, viewer, ops.RefundRequest{Order: paid.ID, Amount: 100, Reason: "x", Token: token})
	errKind(t, err, pay.KindForbidden)
	if e := (env{ops: o, store: s.Store}).audit(t, "order.refund", paid.ID); e.Outcome != "refused" || e.Actor != "vic" {
		t.Errorf("viewer's refund audited as %+v", e)
	}
	for _, bad := range []ops.RefundRequest{
		{Order: paid.ID, Amount: 100, Token: token},                                   // no reason
		{Order: paid.ID, Amount: 100, Reason: "x", Token: "short"},                    // no usable token
		{Order: paid.ID, Amount: 0, Reason: "x", Token: token},                        // nothing
		{Order: paid.ID, Amount: 10001, Reason: "x", Token: token},                    // more than was paid
		{Order: paid.ID, Amount: 100, Reason: strings.Repeat("x", 257), Token: token}, // too long for Lakala
	} {
		if _, err := o.RefundOrder(ctx, operator, bad); err == nil || pay.AsError(err).Kind != pay.KindInvalid {
			t.Errorf("refund %+v: err %v; want a 400", bad, err)
		}
	}

	req := ops.RefundRequest{Order: "SUPPORT-1", Amount: 2500, Reason: "customer called: one seat unused", Token: token}
	first, err := o.RefundOrder(ctx, operator, req)
	if err != nil || !first.Created || first.Refund.Amount != 2500 || first.Refund.MerchantRefundID != "ops-"+token || first.Refund.Status != pay.StatusPending {
		t.Fatalf("refund = %+v, %v", first, err)
	}
	again, err := o.RefundOrder(ctx, operator, req) // the form, submitted twice
	if err != nil || again.Created || again.Refund.ID != first.Refund.ID {
		t.Fatalf("the same token again = %+v, %v; want the same refund", again, err)
	}
	e := (env{ops: o, store: s.Store}).audit(t, "order.refund", paid.ID)
	if e.Outcome != "ok" || e.Actor != "olga" || e.Via != "console" || e.Note != req.Reason || !strings.Contains(string(e.After), first.Refund.ID) {
		t.Errorf("audit row %+v", e)
	}
	testenv.Eventually(t, 15*time.Second, "the refund to settle", func() bool {
		s.RunOnce(t)
		task, err := s.Store.TaskFor(ctx, postgres.TaskRefund, first.Refund.ID)
		return err == nil && task.State != postgres.TaskQueued
	})
	r := s.RequireRefund(t, first.Refund.ID, "succeeded")
	pending := testenv.RefundMessage(r, "pending", "processing")
	succeeded := testenv.RefundMessage(r, "processing", "succeeded")
	for _, m := range []map[string]string{pending, succeeded} {
		m["merchant_refund_id"] = "ops-" + token
	}
	succeeded["gateway_refund_id"] = *r.GatewayRefundID
	testenv.CheckMessages(t, s.Results(t, "refund_results"), pending, succeeded)

	// Everything left, with a new token; then nothing is left.
	all, err := o.RefundOrder(ctx, operator, ops.RefundRequest{Order: paid.ID, All: true, Reason: "order cancelled", Token: ops.NewToken()})
	if err != nil || all.Refund.Amount != 7500 {
		t.Fatalf("refund everything = %+v, %v; want 75.00", all, err)
	}
	_, err = o.RefundOrder(ctx, operator, ops.RefundRequest{Order: paid.ID, All: true, Reason: "again", Token: ops.NewToken()})
	errKind(t, err, pay.KindConflict)
	tl, err := o.OrderTimeline(ctx, viewer, paid.ID)
	if err != nil || tl.Refundable != 0 || len(tl.Refunds) != 2 {
		t.Errorf("timeline refundable %d with %d refunds, %v", tl.Refundable, len(tl.Refunds), err)
	}
}

// An operator's close is the API's close: the order fails closed_by_merchant after Lakala
// closed its cashier order, the main app gets payment_status_changed; a repeated token does
// nothing again; a paid order is refused; without a Lakala client, closing is unavailable.
func TestOperatorClose(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	o := ops.New(s.Service).WithPayments(s.Processor.Payments())
	processing, _ := s.Checkout(t, "SUPPORT-2", 3000)
	token := ops.NewToken()

	if _, err := ops.New(s.Service).CloseOrder(ctx, operator, processing.ID, "payer asked", token); pay.AsError(err).Kind != pay.KindUnavailable {
		t.Fatalf("close without Lakala: %v; want 503", err)
	}
	_, err := o.CloseOrder(ctx, viewer, processing.ID, "payer asked", token)
	errKind(t, err, pay.KindForbidden)
	_, err = o.CloseOrder(ctx, operator, processing.ID, "", token)
	errKind(t, err, pay.KindInvalid)

	tl, err := o.OrderTimeline(ctx, operator, processing.ID)
	if err != nil || !tl.CanClose {
		t.Fatalf("a processing order cannot be closed here: %+v, %v", tl.CanClose, err)
	}
	done, err := o.CloseOrder(ctx, operator, processing.ID, "payer asked to cancel", token)
	if err != nil || done.Repeated || done.Order.Status != pay.StatusFailed || done.Order.FailureReason != pay.ReasonClosedByMerchant {
		t.Fatalf("close = %+v, %v", done, err)
	}
	o2 := s.RequireOrder(t, "SUPPORT-2", "failed", pay.ReasonClosedByMerchant)
	failed := testenv.PaymentMessage(o2, "processing", "failed")
	failed["failure_reason"] = pay.ReasonClosedByMerchant
	testenv.CheckMessages(t, s.Results(t, "payment_results"), testenv.ProcessingMessage(processing), failed)
	if view, _ := s.Sandbox.Order(processing.OutOrderNo()); !view.Closed {
		t.Error("the cashier order is not closed at the sandbox")
	}
	again, err := o.CloseOrder(ctx, operator, processing.ID, "payer asked to cancel", token)
	if err != nil || !again.Repeated {
		t.Fatalf("the same close again = %+v, %v", again, err)
	}
	rows, _ := o.AuditLog(ctx, admin, ops.AuditFilter{Subject: processing.ID, Action: "order.close"})
	var ok int
	for _, r := range rows {
		if r.Outcome == "ok" {
			ok++
			if r.Actor != "olga" || r.Note != "payer asked to cancel" {
				t.Errorf("audit %+v", r)
			}
		}
	}
	if ok != 1 {
		t.Errorf("%d order.close audit rows; want 1 for one close submitted twice", ok)
	}

	paid := s.PaySucceeded(t, "SUPPORT-3", 100)
	_, err = o.CloseOrder(ctx, operator, paid.ID, "oops", ops.NewToken())
	if pe := pay.AsError(err); pe.Kind != pay.KindConflict || pe.Code != pay.CodeOrderAlreadyPaid {
		t.Fatalf("close of a paid order: %v; want 409 order_already_paid", err)
	}
	if e := (env{ops: o, store: s.Store}).audit(t, "order.close", paid.ID); e.Outcome != "refused" {
		t.Errorf("refused close audited as %+v", e)
	}
}

func TestParseYuan(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{{"12", 1200}, {"12.3", 1230}, {"12.34", 1234}, {" ¥0.05 ", 5}, {"¥ 1000000", 100000000}} {
		if got, err := ops.ParseYuan(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseYuan(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "12.345", "-1", "1,000", "12.", ".5", "1e3", "12 yuan", "12345678901"} {
		if _, err := ops.ParseYuan(bad); err == nil {
			t.Errorf("ParseYuan(%q) accepted", bad)
		}
	}
}

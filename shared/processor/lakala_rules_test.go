package processor_test

// One test per way the money path broke against a gateway that follows the rules Lakala's own
// SDKs state (docs/DECISIONS.md, "Lakala's answers" and "Fields we send"). Each fails when its
// rule is reverted.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/sandbox"
)

// Rule 1: a network-failure code on a refund Lakala applied is not a refusal. The refund must
// end succeeded, refunded once, through either refund API — not failed (which frees its amount
// for a second refund the main app would then pay).
func TestNetworkCodeOnAnAppliedRefundIsUnknown(t *testing.T) {
	t.Parallel()
	for _, api := range []string{lakala.RefundAPIRfd, lakala.RefundAPILabs} {
		t.Run(api, func(t *testing.T) {
			t.Parallel()
			s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{SweepGrace: time.Millisecond, RefundAPI: api,
				VisibilityLag: time.Millisecond}})
			o := s.PaySucceeded(t, "o1", 5000)
			s.SetFaults(sandbox.Faults{NetworkCodeRate: 1})
			r := s.CreateRefund(t, o.ID, 2000)
			s.RunOnce(t) // applied at Lakala, answered with the gateway's network code
			if got := s.RequireRefund(t, r.ID, "processing"); got.Status != "processing" {
				t.Fatalf("refund %+v after a network code", got)
			}
			s.SetFaults(sandbox.Faults{})
			runUntilFinal(t, s, r.ID)
			refundOutcome(t, s, o, r, "succeeded", 2000)
			view, _ := s.Sandbox.Order(o.OutOrderNo())
			if len(view.Refunds) != 1 || view.Refunds[0].Applied != 1 || view.Refunds[0].API != api {
				t.Errorf("refunds at the gateway %+v; want one through %s, applied once", view.Refunds, api)
			}
			if code, body := s.CreateRefundRaw(t, o.ID, 3001); code != http.StatusBadRequest || !strings.Contains(string(body), pay.CodeRefundExceeds) {
				t.Errorf("a refund of 3001 after 2000 of 5000 = %d %s; want refund_exceeds_refundable", code, body)
			}
		})
	}
}

// Rule 2: the same code on a special_create Lakala applied must not fail the order while its
// cashier order is open and payable: it is found by query and closed (its URL never reached us),
// and the next cashier order takes over.
func TestNetworkCodeOnAnAppliedCreateIsUnknown(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{Processor: retryFast})
	s.SetFaults(sandbox.Faults{NetworkCodeRate: 1})
	o := s.CreateOrder(t, "o1", 3000)
	s.RunOnce(t) // created at Lakala, answered 000100 or 000101
	if got := s.Order(t, "o1"); got.Status != "pending" {
		t.Fatalf("order %s %v after a network code on its create; want pending", got.Status, deref(got.FailureReason))
	}
	s.SetFaults(sandbox.Faults{})
	runUntil(t, s, "the order to be processing", func() bool { return s.Order(t, "o1").Status == "processing" })
	as := attempts(t, s, o.ID)
	if len(as) != 2 || as[0].State != pay.AttemptClosed || as[1].State != pay.AttemptOpen {
		t.Fatalf("attempts %+v; want the first closed and a second open", as)
	}
	if first := ledgerOrder(t, s, as[0].OutOrderNo); first.Payable || !first.Closed {
		t.Errorf("the first cashier order %+v is still payable", first)
	}
}

// Rule 3: another merchant's notification for one of our numbers — signed by the same platform
// key, for our amount, to our notify_url, paid — changes nothing: the order is confirmed by our
// own query, which finds our cashier order unpaid. The notification is on the order's timeline.
func TestAnotherMerchantsNotificationDoesNotPayOurOrder(t *testing.T) {
	t.Parallel()
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			t.Parallel()
			s := testenv.NewStack(t, testenv.StackOptions{Processor: processor.Config{ReconcileAfter: time.Hour}})
			ctx := context.Background()
			s.SetFaults(sandbox.Faults{ForeignNotifyRate: 1, LegacyNotifyForm: legacy})
			o, view := s.Checkout(t, "o1", 4000)
			s.WaitNotifications(t)
			if l := s.Sandbox.Ledger(); len(l.Foreign) != 1 || l.Foreign[0].OutOrderNo != o.OutOrderNo() || l.Foreign[0].Paid != 4000 {
				t.Fatalf("foreign cashier orders %+v; want one paid with our number", l.Foreign)
			}
			s.RequireOrder(t, "o1", "processing", "")
			var result, binding, merchant string
			if err := s.Store.Pool().QueryRow(ctx, `SELECT result, binding, merchant_no FROM notifications WHERE payment_order_id = $1`, o.ID).
				Scan(&result, &binding, &merchant); err != nil {
				t.Fatal(err)
			}
			if result != "unbound" || binding != "other_merchant" || merchant != sandbox.ForeignMerchantNo {
				t.Errorf("notification recorded as %s/%s from %s; want unbound/other_merchant from %s", result, binding, merchant, sandbox.ForeignMerchantNo)
			}
			// Visible to operators on the order's timeline.
			tl, err := ops.New(s.Service).OrderTimeline(ctx, ops.Actor{Name: "vic", Role: ops.RoleViewer, Via: "console"}, "o1")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(tl.Events, func(e ops.Event) bool { return strings.Contains(e.Summary, "another merchant's cashier order") }) {
				t.Errorf("the timeline does not show another merchant's notification: %+v", tl.Events)
			}
			stored, err := s.Store.Order(ctx, o.ID)
			if err != nil || stored.CheckRequestedAt == nil {
				t.Fatalf("order %+v, %v; want a check requested", stored, err)
			}
			s.RunOnce(t) // the reconciler's own query, at once: RECONCILE_AFTER is an hour
			if stored, err = s.Store.Order(ctx, o.ID); err != nil || stored.Status != pay.StatusProcessing {
				t.Fatalf("order after our query %+v, %v; want processing", stored, err)
			}
			var checked bool
			if err := s.Store.Pool().QueryRow(ctx, `SELECT checked_at >= check_requested_at FROM payment_orders WHERE id = $1`, o.ID).Scan(&checked); err != nil || !checked {
				t.Errorf("no check after the request (%v)", err)
			}
			// Our own cashier order, paid, still binds and pays the order.
			s.SetFaults(sandbox.Faults{LegacyNotifyForm: legacy})
			if err := s.Sandbox.Pay(ctx, view.PayOrderNo); err != nil {
				t.Fatal(err)
			}
			s.WaitNotifications(t)
			s.RequireOrder(t, "o1", "succeeded", "")
		})
	}
}

// A notification in the legacy form without a merchant cannot bind: it is confirmed by query too.
func TestNotificationWithoutMerchantIsConfirmedByQuery(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	o, view := s.Checkout(t, "o1", 700)
	body := []byte(`{"payOrderNo":"` + view.PayOrderNo + `","merchantOrderNo":"` + o.OutOrderNo() +
		`","amount":700,"tradeType":"PAY","payStatus":"S","lklOrderNo":"T9","logNo":"L9"}`)
	if code, answer := s.Notify(t, body, s.SignNotification(t, body, time.Now())); code != http.StatusOK {
		t.Fatalf("webhook = %d %s; want 200", code, answer)
	}
	s.RequireOrder(t, "o1", "processing", "")
	var binding string
	if err := s.Store.Pool().QueryRow(context.Background(), `SELECT binding FROM notifications WHERE payment_order_id = $1`, o.ID).Scan(&binding); err != nil || binding != "no_merchant" {
		t.Errorf("binding %q (%v); want no_merchant", binding, err)
	}
}

// Rule 4: a refund reason longer than refund_reason's String(32) is kept whole here and sent
// fitted; the refund succeeds (Lakala refuses a longer one).
func TestLongRefundReasonIsFittedOnTheWayOut(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{Processor: retryFast})
	o := s.PaySucceeded(t, "o1", 5000)
	reason := strings.Repeat("商品质量问题", 8) // 48 characters, 144 bytes: within the API's 256 characters
	body := fmt.Sprintf(`{"app_id":%q,"payment_order_id":%q,"amount":1000,"reason":%q}`, s.AppID, o.ID, reason)
	code, resp := s.Do(t, http.MethodPost, "/api/v1/refund-orders", s.APIKey, body)
	if code != http.StatusAccepted {
		t.Fatalf("create refund = %d %s", code, resp)
	}
	r := testenv.Decode[testenv.Refund](t, resp)
	if task := runUntilFinal(t, s, r.ID); task.State != postgres.TaskDone {
		t.Fatalf("task %+v", task)
	}
	got := refundOutcome(t, s, o, r, "succeeded", 1000)
	if got.Reason == nil || *got.Reason != reason {
		t.Errorf("reason %v; want the whole reason kept", got.Reason)
	}
	view, _ := s.Sandbox.Order(o.OutOrderNo())
	if len(view.Refunds) != 1 || view.Refunds[0].Reason != lakala.Fit(reason, lakala.MaxRefundReason) || len(view.Refunds[0].Reason) > 32 {
		t.Errorf("refund_reason sent %+v; want its first 32 bytes", view.Refunds)
	}
}

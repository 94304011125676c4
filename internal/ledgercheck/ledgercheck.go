// Package ledgercheck holds the invariants that say our ledger and the gateway's agree, checked
// at quiescence by the ledger-agreement suite (internal/chaos) and the crash-point suite
// (internal/crashpoints): every order and refund of the stack's app against the sandbox's ledger,
// and every subject's result messages against its status changes.
package ledgercheck

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/sandbox"
)

// Unsettled says what is left to happen (empty when nothing): a live order or refund without a
// review case, a queued task, an unpublished result, or a final order with a watched cashier order
// nobody looked at since, or whose last look failed (a payer may have paid a closed one after the
// last look).
func Unsettled(t testing.TB, st *testenv.Stack, since time.Time) string {
	t.Helper()
	ctx := context.Background()
	var n int
	q := func(sql string, args ...any) int {
		if err := st.Store.Pool().QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	switch {
	case q(`SELECT count(*) FROM payment_orders o WHERE status IN ('pending', 'processing')
		AND NOT EXISTS (SELECT 1 FROM review_cases c WHERE c.payment_order_id = o.id AND c.resolved_at IS NULL)`) > 0:
		return fmt.Sprintf("%d live orders without a review case", n)
	case q(`SELECT count(*) FROM refund_orders r WHERE status IN ('pending', 'processing')
		AND NOT EXISTS (SELECT 1 FROM review_cases c WHERE c.refund_order_id = r.id AND c.resolved_at IS NULL)`) > 0:
		return fmt.Sprintf("%d live refunds without a review case", n)
	case q(`SELECT count(*) FROM tasks WHERE state = 'queued'`) > 0:
		return fmt.Sprintf("%d queued tasks", n)
	case q(`SELECT count(*) FROM outbox WHERE published_at IS NULL`) > 0:
		return fmt.Sprintf("%d unpublished results", n)
	case q(`SELECT count(*) FROM payment_orders o WHERE status IN ('succeeded', 'failed')
		AND (checked_at IS NULL OR checked_at < $1 OR check_failures > 0)
		AND EXISTS (SELECT 1 FROM payment_attempts a WHERE a.payment_order_id = o.id AND `+postgres.WatchedAttemptSQL+`)`, since) > 0:
		return fmt.Sprintf("%d final orders with a watched cashier order not looked at since %s", n, since.Format(time.TimeOnly))
	}
	return ""
}

// Check compares our ledger with the gateway's, order by order, for every order of every app:
// paid at the gateway ⇔ succeeded here (or a review case says why not), no cashier order left
// payable behind a final order, none we have no record of, every cashier order and refund at the
// gateway under the merchant_no of the merchant the order was created with, refunds applied once
// and summing to refunded_amount, and every subject's result messages chaining to its status. It
// returns a line per order for the log.
func Check(t testing.TB, st *testenv.Stack) []string {
	t.Helper()
	ctx := context.Background()
	ledger := st.Sandbox.Ledger()
	byNo := map[string]sandbox.LedgerOrder{}
	for _, lo := range ledger.Orders {
		byNo[lo.OutOrderNo] = lo
	}
	refundMerchant := map[string]string{}
	for _, lr := range ledger.Refunds {
		if lr.Applied > 1 {
			t.Errorf("refund %s was applied %d times at the gateway", lr.OutTradeNo, lr.Applied)
		}
		refundMerchant[lr.OutTradeNo] = lr.MerchantNo
	}
	merchantNo := map[string]string{postgres.DefaultMerchant: testenv.LakalaMerchantNo}
	ms, err := st.Store.Merchants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if !m.Configured {
			merchantNo[m.ID] = m.MerchantNo
		}
	}
	payments, refunds := results(t, st)
	rows, err := st.Store.Pool().Query(ctx, `SELECT app_id, merchant_order_id FROM payment_orders ORDER BY created_at`)
	if err != nil {
		t.Fatal(err)
	}
	var ids [][2]string
	for rows.Next() {
		var app, id string
		if err := rows.Scan(&app, &id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, [2]string{app, id})
	}
	rows.Close()
	var lines []string
	for _, key := range ids {
		merchantOrderID := key[1]
		o, err := st.Store.OrderByMerchantID(ctx, key[0], merchantOrderID)
		if err != nil {
			t.Fatalf("order %s: %v", merchantOrderID, err)
		}
		reviews, err := st.Store.OpenReviewCases(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]bool{}
		refundReview := false
		for _, c := range reviews {
			kinds[c.Kind] = true
			refundReview = refundReview || c.RefundOrderID != ""
		}
		as, err := st.Store.Attempts(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		var paidCount int
		var paid, refunded, autoRefunded int64
		for _, a := range as {
			lo, ok := byNo[a.OutOrderNo]
			if !ok {
				continue // never created at the gateway
			}
			if lo.MerchantNo != merchantNo[o.MerchantID] {
				t.Errorf("order %s of merchant %s: its cashier order %s is merchant_no %s's at the gateway; want %s", merchantOrderID, o.MerchantID,
					a.OutOrderNo, lo.MerchantNo, merchantNo[o.MerchantID])
			}
			paidCount += lo.Payments
			paid += lo.Paid
			refunded += lo.Refunded
			autoRefunded += lo.AutoRefunded
			if lo.Refunded > lo.Paid {
				t.Errorf("order %s: cashier order %s refunded %d of %d paid", merchantOrderID, a.OutOrderNo, lo.Refunded, lo.Paid)
			}
			// Behind a live order (processing, or pending because the create's answer was lost and
			// the checks that would learn it keep failing: a review case) an open cashier order is
			// the order itself; behind a final one it is money we would not account for.
			if o.Status.Final() && lo.Payable && !lo.Closed && lo.Payments == 0 {
				t.Errorf("order %s is %s but its cashier order %s is open at the gateway (%+v)", merchantOrderID, o.Status, a.OutOrderNo, lo)
			}
		}
		// Cashier orders the gateway has and we do not know of.
		for no, lo := range byNo {
			if strings.HasPrefix(no, pay.OutOrderNo(o.ID)) || strings.HasPrefix(no, pay.AttemptOutOrderNo(o.ID, 2)[:26]) {
				if !slices.ContainsFunc(as, func(a pay.Attempt) bool { return a.OutOrderNo == no }) {
					t.Errorf("order %s: the gateway has cashier order %s (%+v) we have no record of", merchantOrderID, no, lo)
				}
			}
		}
		// Paid at the gateway ⇔ succeeded here, or an open review case explains the difference.
		switch {
		case o.Status == pay.StatusSucceeded && paidCount == 1 && paid == o.Amount:
		case o.Status == pay.StatusSucceeded && paidCount > 1 && kinds[pay.ReviewDuplicatePayment]:
		case o.Status == pay.StatusFailed && paidCount == 0:
		case o.Status == pay.StatusFailed && (kinds[pay.ReviewPaidAfterFailed] || kinds[pay.ReviewAmountMismatch]):
		case !o.Status.Final() && len(reviews) > 0:
		default:
			t.Errorf("order %s: %s here, paid %d time(s) (%d fen) at the gateway, open reviews %v", merchantOrderID, o.Status, paidCount, paid, kinds)
		}
		// The gateway's refunded total = refunded_amount (auto-refunds of late payments are the
		// review case's), or a review case on one of its refunds.
		if got := refunded - autoRefunded; got != o.RefundedAmount && !refundReview {
			t.Errorf("order %s: gateway refunded %d (plus %d automatically), refunded_amount %d", merchantOrderID, got, autoRefunded, o.RefundedAmount)
		}
		if o.RefundedAmount > o.Amount {
			t.Errorf("order %s: refunded_amount %d exceeds the amount %d", merchantOrderID, o.RefundedAmount, o.Amount)
		}
		if strings.HasPrefix(o.FailureReason, pay.ReasonGatewayRejected) {
			t.Errorf("order %s: %s (the sandbox rejects only requests that are wrong)", merchantOrderID, o.FailureReason)
		}
		lines = append(lines, fmt.Sprintf("order %s of %s (%s): %s %s, %d cashier order(s), paid %d time(s) at the gateway, refunded %d, reviews %v",
			merchantOrderID, key[0], o.MerchantID, o.Status, o.FailureReason, len(as), paidCount, o.RefundedAmount, slices.Sorted(maps.Keys(kinds))))
		checkChain(t, "order "+merchantOrderID, payments[o.ID], o.Status, o.ResultSeq)
		rs, err := st.Store.RefundsOf(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		var succeeded int64
		for _, r := range rs {
			if r.Status == pay.StatusSucceeded {
				succeeded += r.Amount
			}
			if m, ok := refundMerchant[r.OutTradeNo]; ok && m != merchantNo[o.MerchantID] {
				t.Errorf("refund %s of an order of merchant %s went to merchant_no %s at the gateway; want %s", r.ID, o.MerchantID, m, merchantNo[o.MerchantID])
			}
			checkChain(t, "refund "+r.ID, refunds[r.ID], r.Status, r.ResultSeq)
		}
		if succeeded != o.RefundedAmount {
			t.Errorf("order %s: succeeded refunds add up to %d, refunded_amount %d", merchantOrderID, succeeded, o.RefundedAmount)
		}
	}
	return lines
}

// results reads both result streams, drops repeats by event_id, and groups the messages by
// subject in stream order.
func results(t testing.TB, st *testenv.Stack) (payments, refunds map[string][]map[string]string) {
	payments, refunds = map[string][]map[string]string{}, map[string][]map[string]string{}
	seen := map[string]bool{}
	for _, m := range st.Results(t, pay.StreamPaymentResults) {
		if !seen[m["event_id"]] {
			seen[m["event_id"]] = true
			payments[m["payment_order_id"]] = append(payments[m["payment_order_id"]], m)
		}
	}
	for _, m := range st.Results(t, pay.StreamRefundResults) {
		if !seen[m["event_id"]] {
			seen[m["event_id"]] = true
			refunds[m["refund_order_id"]] = append(refunds[m["refund_order_id"]], m)
		}
	}
	return payments, refunds
}

// checkChain: every status change has its message, and the messages of one subject chain —
// seq 1, 2, 3 … in stream order, old_status the previous new_status, the last one the status now.
func checkChain(t testing.TB, what string, msgs []map[string]string, status pay.Status, resultSeq int) {
	t.Helper()
	if len(msgs) != resultSeq {
		t.Errorf("%s: %d messages on its stream, %d status changes", what, len(msgs), resultSeq)
	}
	prev := string(pay.StatusPending)
	for i, m := range msgs {
		if m["seq"] != strconv.Itoa(i+1) || m["old_status"] != prev {
			t.Errorf("%s: message %d is seq %s %s → %s; want seq %d from %s", what, i, m["seq"], m["old_status"], m["new_status"], i+1, prev)
		}
		prev = m["new_status"]
	}
	if prev != string(status) {
		t.Errorf("%s: last message says %s; it is %s", what, prev, status)
	}
}

package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// WatchedAttemptSQL is pay.Attempt.Watched in SQL: the two agree on every attempt state, order
// status and paid attempt.
func TestWatchedAttemptSQLIsTheDomainsDefinition(t *testing.T) {
	t.Parallel()
	store := testenv.Postgres(t)
	ctx := context.Background()
	states := []pay.AttemptState{pay.AttemptCreating, pay.AttemptOpen, pay.AttemptPaid, pay.AttemptClosed, pay.AttemptAbsent, pay.AttemptLapsed}
	for _, status := range []pay.Status{pay.StatusPending, pay.StatusProcessing, pay.StatusSucceeded, pay.StatusFailed} {
		for _, paidNo := range []int{0, 1, 2} {
			for _, state := range states {
				o := pay.Order{Status: status, PaidAttemptNo: paidNo}
				a := pay.Attempt{No: 1, State: state}
				var got bool
				err := store.Pool().QueryRow(ctx, `SELECT `+postgres.WatchedAttemptSQL+`
					FROM (SELECT $1::text AS state, 1 AS attempt_no) a, (SELECT $2::text AS status, nullif($3::int, 0) AS paid_attempt_no) o`,
					string(state), string(status), paidNo).Scan(&got)
				if err != nil {
					t.Fatal(err)
				}
				if want := a.Watched(&o); got != want {
					t.Errorf("attempt %s of a %s order paid by attempt %d: SQL says watched=%v, pay says %v", state, status, paidNo, got, want)
				}
			}
		}
	}
}

// A final order is looked at ever less often; a look that failed does not count, and the order is
// due again a spacing after it.
func TestFailedLookAtAFinalOrderIsRepeated(t *testing.T) {
	t.Parallel()
	store := testenv.Postgres(t)
	ctx := context.Background()
	id := testenv.SeedOrder(t, store, "shop", "W-1", "failed", 100)
	now := time.Now()
	if _, err := store.Pool().Exec(ctx, `UPDATE payment_orders SET updated_at = $2 WHERE id = $1`, id, now.Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	due := func() bool {
		t.Helper()
		orders, err := store.FinalOrdersToWatch(ctx, now, 24*time.Hour, 30*time.Second, 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(orders) == 1 && orders[0].ID == id
	}
	if !due() {
		t.Fatal("a final order with a closed cashier order, never looked at, is not due")
	}
	if _, err := store.RecordCheck(ctx, id, now.Add(-time.Minute), ""); err != nil {
		t.Fatal(err)
	}
	if due() {
		t.Fatal("due again a minute after a look, nine minutes after its change")
	}
	if _, err := store.RecordCheck(ctx, id, now.Add(-time.Minute), "query: HTTP 502"); err != nil {
		t.Fatal(err)
	}
	if !due() {
		t.Fatal("a look that failed a minute ago counts as a look")
	}
}

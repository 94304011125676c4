package postgres_test

import (
	"context"
	"testing"

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

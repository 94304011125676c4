package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
)

// Only events both published and fanned out to webhooks, before the cutoff, are pruned.
func TestPruneEventsKeepsWhatIsStillOwed(t *testing.T) {
	store := testenv.Postgres(t)
	ctx := context.Background()
	old := time.Now().Add(-8 * 24 * time.Hour)
	recent := time.Now().Add(-time.Hour)
	rows := []struct {
		name                  string
		publishedAt, webhooks *time.Time
		kept                  bool
	}{
		{"old, published, fanned out", &old, &old, false},
		{"old, published, not fanned out", &old, nil, true},
		{"old, not published, fanned out", nil, &old, true},
		{"recent, published, fanned out", &recent, &recent, true},
	}
	for _, r := range rows {
		if _, err := store.Pool().Exec(ctx, `INSERT INTO outbox (event_id, stream, fields, created_at, published_at, webhooks_at)
			VALUES (gen_random_uuid(), 'payment_results', jsonb_build_object('name', $1::text), $2, $3, $4)`,
			r.name, old, r.publishedAt, r.webhooks); err != nil {
			t.Fatal(err)
		}
	}
	deleted, err := store.PruneEvents(ctx, time.Now().Add(-7*24*time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	if deleted != 1 {
		t.Errorf("PruneEvents deleted %d events, want 1", deleted)
	}
	for _, r := range rows {
		var n int
		if err := store.Pool().QueryRow(ctx, "SELECT count(*) FROM outbox WHERE fields->>'name' = $1", r.name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if kept := n == 1; kept != r.kept {
			t.Errorf("%s: kept = %v, want %v", r.name, kept, r.kept)
		}
	}
}

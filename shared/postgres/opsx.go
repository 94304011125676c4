package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Exec runs a statement inside the transaction. Packages that own tables of their own (shared/ops:
// the audit log, review case resolutions) use it to write them atomically with a status change
// made through SaveOrder / SaveRefund.
func (t *Tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.tx.Exec(ctx, sql, args...)
}

// QueryRow runs a query returning one row inside the transaction (see Exec).
func (t *Tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.tx.QueryRow(ctx, sql, args...)
}

// Query runs a query inside the transaction (see Exec).
func (t *Tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.tx.Query(ctx, sql, args...)
}

// GatewayCall is one call made to Lakala, as kept in gateway_calls: what was asked about what, and
// how it ended. Never a request or response body, never payer data.
type GatewayCall struct {
	ID         int64     `json:"id"`
	Operation  string    `json:"operation"`
	OutNo      string    `json:"out_no"`
	Outcome    string    `json:"outcome"`
	Code       string    `json:"code,omitempty"`
	Message    string    `json:"message,omitempty"`
	HTTPStatus int       `json:"http_status,omitempty"`
	TraceID    string    `json:"trace_id,omitempty"`
	DurationMS int       `json:"duration_ms"`
	CalledAt   time.Time `json:"called_at"`
	// MerchantID is the merchant whose client made the call.
	MerchantID string `json:"merchant_id,omitempty"`
}

// RecordGatewayCall appends a call to the gateway call log.
func (s *Store) RecordGatewayCall(ctx context.Context, c GatewayCall) error {
	at := c.CalledAt
	if at.IsZero() {
		at = time.Now()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO gateway_calls (operation, out_no, outcome, code, message, http_status, trace_id, duration_ms, called_at, merchant_id)
		VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), nullif($6, 0), nullif($7, ''), $8, $9, nullif($10, ''))`,
		c.Operation, c.OutNo, c.Outcome, c.Code, truncate(c.Message, 256), c.HTTPStatus, c.TraceID, c.DurationMS, at, c.MerchantID)
	if err != nil {
		return fmt.Errorf("record gateway call: %w", err)
	}
	return nil
}

// PruneEvidence deletes gateway calls and notifications older than cutoff, at most limit rows of
// each, and returns how many it deleted.
func (s *Store) PruneEvidence(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	var total int64
	for _, q := range []string{
		`DELETE FROM gateway_calls WHERE id IN (SELECT id FROM gateway_calls WHERE called_at < $1 ORDER BY called_at LIMIT $2)`,
		`DELETE FROM notifications WHERE id IN (SELECT id FROM notifications WHERE received_at < $1 ORDER BY received_at LIMIT $2)`,
	} {
		tag, err := s.pool.Exec(ctx, q, cutoff, limit)
		if err != nil {
			return total, fmt.Errorf("prune evidence: %w", err)
		}
		total += tag.RowsAffected()
	}
	return total, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// cut on a rune boundary
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

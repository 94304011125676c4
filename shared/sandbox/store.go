package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/loomipay/loomipay/shared/lakala"
)

// The sandbox keeps its state in PostgreSQL, in a schema of its own (Config.Schema), so that it
// survives restarts (the local stack) and is shared by every process playing it (the Lambda
// function of a sandbox stage): cashier orders, trades, refunds, the numbers it hands out,
// notifications on their way, its fault knobs and its platform key. Each call is one
// transaction that locks the rows it changes, so concurrent calls about one order are
// serialised as they were by a mutex when the sandbox lived in memory.

//go:embed schema.sql
var schemaSQL string

// DB is what the sandbox needs of a PostgreSQL pool (pgxpool.Pool, postgres.Pool).
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// querier is a DB or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// setupLockKey serialises sandboxes setting up their schema at once (Lambda cold starts).
const setupLockKey = 7_406_220_110

// DefaultSchema is the schema of the local stack's and a sandbox stage's sandbox.
const DefaultSchema = "lakala_sandbox"

// SchemaFor is where a sandbox sharing the service's database keeps its state: DefaultSchema, or
// <schema>_lakala when the database URL names a schema of its own (search_path: a test's, or a
// second stack sharing one database), beside the service's tables.
func SchemaFor(databaseURL string) string {
	cfg, err := pgconn.ParseConfig(databaseURL)
	if err == nil {
		if sp := cfg.RuntimeParams["search_path"]; sp != "" && !strings.ContainsAny(sp, ", ") {
			return strings.ToLower(sp) + "_lakala"
		}
	}
	return DefaultSchema
}

// sql puts the sandbox's schema in place of the token lkl. in a statement.
func (s *Sandbox) sql(q string) string { return strings.ReplaceAll(q, "lkl.", s.schema+".") }

// setup makes the schema and its tables if missing.
func (s *Sandbox) setup(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", setupLockKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+s.schema); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, s.sql(schemaSQL))
		return err
	})
}

// inTx runs fn in a transaction and commits it when fn returns nil.
func (s *Sandbox) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.db, fn)
}

// readJSON reads one jsonb column into a T; pgx.ErrNoRows when there is no row.
func readJSON[T any](ctx context.Context, q querier, query string, args ...any) (*T, error) {
	var raw []byte
	if err := q.QueryRow(ctx, query, args...).Scan(&raw); err != nil {
		return nil, err
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("sandbox: decode state: %w", err)
	}
	return v, nil
}

// readAllJSON reads a jsonb column of every row.
func readAllJSON[T any](ctx context.Context, q querier, query string, args ...any) ([]*T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*T, error) {
		var raw []byte
		if err := row.Scan(&raw); err != nil {
			return nil, err
		}
		v := new(T)
		return v, json.Unmarshal(raw, v)
	})
}

// lockOrder reads and locks a merchant's order; nil when it has none with that number.
func (s *Sandbox) lockOrder(ctx context.Context, tx pgx.Tx, merchantNo, outOrderNo string) (*order, error) {
	o, err := readJSON[order](ctx, tx, s.sql(`SELECT state FROM lkl.orders WHERE merchant_no = $1 AND out_order_no = $2 FOR UPDATE`), merchantNo, outOrderNo)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return o, err
}

// lockOrderByPayNo reads and locks the order with this pay_order_no; nil when none has it.
func (s *Sandbox) lockOrderByPayNo(ctx context.Context, tx pgx.Tx, payOrderNo string) (*order, error) {
	o, err := readJSON[order](ctx, tx, s.sql(`SELECT state FROM lkl.orders WHERE pay_order_no = $1 FOR UPDATE`), payOrderNo)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return o, err
}

// saveOrder writes an order's state back.
func (s *Sandbox) saveOrder(ctx context.Context, tx pgx.Tx, o *order) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, s.sql(`UPDATE lkl.orders SET state = $3 WHERE merchant_no = $1 AND out_order_no = $2`), o.MerchantNo, o.OutOrderNo, b)
	return err
}

// saveRefund writes a refund's state (inserting it the first time).
func (s *Sandbox) saveRefund(ctx context.Context, tx pgx.Tx, r *refund) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, s.sql(`INSERT INTO lkl.refunds (merchant_no, out_trade_no, out_order_no, trade_no, created_at, state)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (merchant_no, out_trade_no) DO UPDATE SET state = excluded.state`),
		r.MerchantNo, r.OutTradeNo, r.OutOrderNo, r.TradeNo, r.TradeTime, b)
	return err
}

// refundsOf reads an order's refunds, oldest first.
func (s *Sandbox) refundsOf(ctx context.Context, q querier, merchantNo, outOrderNo string) ([]refund, error) {
	rs, err := readAllJSON[refund](ctx, q, s.sql(`SELECT state FROM lkl.refunds WHERE merchant_no = $1 AND out_order_no = $2 ORDER BY created_at, out_trade_no`),
		merchantNo, outOrderNo)
	out := make([]refund, len(rs))
	for i, r := range rs {
		out[i] = *r
	}
	return out, err
}

// nextID returns prefix followed by a number none had before, width digits in all.
func (s *Sandbox) nextID(ctx context.Context, q querier, prefix string, width int) (string, error) {
	var n int64
	if err := q.QueryRow(ctx, s.sql(`SELECT nextval('lkl.ids')`)).Scan(&n); err != nil {
		return "", fmt.Errorf("sandbox: next number: %w", err)
	}
	return fmt.Sprintf("%s%0*d", prefix, width-len(prefix), n), nil
}

// platform returns the platform key and certificate kept in the database, made on the first
// start: every process playing this sandbox signs as one platform.
func (s *Sandbox) platform(ctx context.Context) (*rsa.PrivateKey, []byte, error) {
	var keyPEM, certPEM string
	err := s.db.QueryRow(ctx, s.sql(`SELECT key_pem, cert_pem FROM lkl.platform`)).Scan(&keyPEM, &certPEM)
	if errors.Is(err, pgx.ErrNoRows) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, nil, err
		}
		cert, err := lakala.SelfSignedCertPEM(key, platformCertCN)
		if err != nil {
			return nil, nil, err
		}
		// Two starting at once: the first insert wins and both read it.
		if _, err := s.db.Exec(ctx, s.sql(`INSERT INTO lkl.platform (key_pem, cert_pem) VALUES ($1, $2) ON CONFLICT DO NOTHING`),
			string(lakala.MarshalPrivateKeyPEM(key)), string(cert)); err != nil {
			return nil, nil, err
		}
		err = s.db.QueryRow(ctx, s.sql(`SELECT key_pem, cert_pem FROM lkl.platform`)).Scan(&keyPEM, &certPEM)
		if err != nil {
			return nil, nil, err
		}
	} else if err != nil {
		return nil, nil, err
	}
	key, err := lakala.ParsePrivateKey([]byte(keyPEM))
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox: platform key: %w", err)
	}
	return key, []byte(certPEM), nil
}

// readFaults reads the fault knobs every process playing the sandbox shares.
func (s *Sandbox) readFaults(ctx context.Context) (Faults, error) {
	var raw []byte
	err := s.db.QueryRow(ctx, s.sql(`SELECT faults FROM lkl.faults`)).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return Faults{}, nil
	}
	if err != nil {
		return Faults{}, err
	}
	var f Faults
	return f, json.Unmarshal(raw, &f)
}

func (s *Sandbox) writeFaultsRow(ctx context.Context, f Faults) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, s.sql(`INSERT INTO lkl.faults (faults) VALUES ($1) ON CONFLICT (one) DO UPDATE SET faults = excluded.faults`), b)
	return err
}

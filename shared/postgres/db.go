// Package postgres stores Loomi Pay's orders, refunds, API keys, tasks and result outbox in
// PostgreSQL, the service's source of truth.
package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loomipay/loomipay/shared/secrets"
)

// Store is the Postgres-backed storage of the service. It is safe for concurrent use; create one
// per process (a Lambda keeps it between invocations).
type Store struct {
	pool *Pool
}

// Options tune the pool.
type Options struct {
	// Schema, if set, becomes the search_path of every connection (tests isolate themselves so).
	Schema string
	// MaxConns overrides pool_max_conns from the URL when > 0.
	MaxConns int32
	// Session timeouts set on every connection (0 leaves the server's setting): a statement
	// running, a lock waited for, or a transaction left idle longer than this is ended by
	// PostgreSQL itself, so no session holds locks or a connection slot indefinitely.
	StatementTimeout, LockTimeout, IdleInTxTimeout time.Duration
	// RDSProxy: connections go through RDS Proxy, which pins a client to one database connection
	// for named prepared statements and for session settings. Statements are then sent unprepared
	// (pgx's exec mode) and the session timeouts are not set per connection: set them on the
	// database role instead (ALTER ROLE … SET statement_timeout = …; see docs/DEPLOYING.md).
	RDSProxy bool
	// ConnectTimeout bounds making one connection, for callers without a deadline of their
	// own (the processor). Default 5 s.
	ConnectTimeout time.Duration
	// Reload, if set, returns the database URL as it is now: it is called when PostgreSQL refuses
	// the password (a rotation changed it), and new connections then use its user and password
	// (see Pool).
	Reload func(ctx context.Context) (string, error)
	// Logger receives the reconnections after a rotation (default slog.Default()).
	Logger *slog.Logger
}

// ms formats a duration as PostgreSQL's milliseconds setting.
func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// Open connects a pool to url (a postgres:// URL; pool_max_conns and
// default_query_exec_mode may be given as URL parameters, e.g. "exec" behind RDS Proxy).
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message can quote the URL; keep a password out of logs.
		return nil, errors.New("parse database url: not a valid postgres URL or DSN")
	}
	if o.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = o.Schema
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if o.RDSProxy {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
		o.StatementTimeout, o.LockTimeout, o.IdleInTxTimeout = 0, 0, 0
	}
	for name, d := range map[string]time.Duration{
		"statement_timeout": o.StatementTimeout, "lock_timeout": o.LockTimeout,
		"idle_in_transaction_session_timeout": o.IdleInTxTimeout,
	} {
		if d > 0 {
			cfg.ConnConfig.RuntimeParams[name] = ms(d)
		}
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > o.ConnectTimeout {
		cfg.ConnConfig.ConnectTimeout = o.ConnectTimeout
	}
	p := &Pool{log: cmp.Or(o.Logger, slog.Default())}
	if o.Reload != nil {
		p.url = secrets.NewRotating(url, o.Reload)
		cfg.BeforeConnect = p.credentials
	}
	if p.Pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return &Store{pool: p}, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks the connection.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Pool exposes the pool: to the operations layer, the test harness and benchmarks.
func (s *Store) Pool() *Pool { return s.pool }

func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (constraint == "" || pgErr.ConstraintName == constraint)
}

func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// querier is what both the pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

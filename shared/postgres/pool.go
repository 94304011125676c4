package postgres

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loomipay/loomipay/shared/secrets"
)

// Pool is pgx's pool, with one addition when its URL can rotate (Options.URL): a new connection
// takes the user and password of the URL as it is now, and when PostgreSQL refuses them
// (SQLSTATE 28P01, invalid_password: a rotation changed the password under a running process),
// the URL is read again, once for every caller that noticed, and the statement is tried once
// more on a connection made with the new password, so the request that noticed does not fail.
// Connections already open stay: PostgreSQL keeps sessions that authenticated before the change.
//
// Every method the code uses is covered (Acquire, Begin, BeginTx, Exec, Query, QueryRow, Ping;
// pgx.BeginFunc goes through Begin). An error of a statement on an open connection is never
// retried: only a connection that could not be made, where nothing was sent.
type Pool struct {
	*pgxpool.Pool
	url *secrets.Rotating // nil: the URL never changes
	log *slog.Logger

	mu    sync.Mutex
	creds struct { // of url's generation gen
		gen            uint64
		user, password string
	}
}

// credentials is the pool's BeforeConnect: the new connection takes the user and password of the
// URL as it is now.
func (p *Pool) credentials(_ context.Context, cfg *pgx.ConnConfig) error {
	raw, gen := p.url.Value()
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen != p.creds.gen {
		parsed, err := pgconn.ParseConfig(raw)
		if err != nil {
			return errors.New("parse database url: not a valid postgres URL or DSN") // pgx's message may quote it
		}
		p.creds.gen, p.creds.user, p.creds.password = gen, parsed.User, parsed.Password
	}
	if gen != 0 { // generation 0 is the URL the pool was configured with
		cfg.User, cfg.Password = p.creds.user, p.creds.password
	}
	return nil
}

// isAuthFailure reports whether PostgreSQL refused a connection's password.
func isAuthFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "28P01"
}

// generation is the URL's generation now, to pass to retry after a failure.
func (p *Pool) generation() uint64 {
	if p.url == nil {
		return 0
	}
	_, gen := p.url.Value()
	return gen
}

// retry reports whether err is a refused password and a newer URL is in place to try again with.
func (p *Pool) retry(ctx context.Context, gen uint64, err error) bool {
	if p.url == nil || !isAuthFailure(err) {
		return false
	}
	return p.url.AfterRefusal(ctx, gen, p.log, "PostgreSQL", "DATABASE_URL")
}

// Acquire is pgxpool's Acquire, tried again once after a rotation.
func (p *Pool) Acquire(ctx context.Context) (*pgxpool.Conn, error) {
	gen := p.generation()
	c, err := p.Pool.Acquire(ctx)
	if p.retry(ctx, gen, err) {
		c, err = p.Pool.Acquire(ctx)
	}
	return c, err
}

// Begin is pgxpool's Begin, tried again once after a rotation.
func (p *Pool) Begin(ctx context.Context) (pgx.Tx, error) {
	gen := p.generation()
	tx, err := p.Pool.Begin(ctx)
	if p.retry(ctx, gen, err) {
		tx, err = p.Pool.Begin(ctx)
	}
	return tx, err
}

// BeginTx is pgxpool's BeginTx, tried again once after a rotation.
func (p *Pool) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	gen := p.generation()
	tx, err := p.Pool.BeginTx(ctx, opts)
	if p.retry(ctx, gen, err) {
		tx, err = p.Pool.BeginTx(ctx, opts)
	}
	return tx, err
}

// Exec is pgxpool's Exec, tried again once after a rotation.
func (p *Pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	gen := p.generation()
	tag, err := p.Pool.Exec(ctx, sql, args...)
	if p.retry(ctx, gen, err) {
		tag, err = p.Pool.Exec(ctx, sql, args...)
	}
	return tag, err
}

// Query is pgxpool's Query, tried again once after a rotation.
func (p *Pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	gen := p.generation()
	rows, err := p.Pool.Query(ctx, sql, args...)
	if p.retry(ctx, gen, err) {
		rows, err = p.Pool.Query(ctx, sql, args...)
	}
	return rows, err
}

// QueryRow is pgxpool's QueryRow, tried again once after a rotation. pgx reports a connection
// that could not be made only at Scan, so the connection is acquired here first.
func (p *Pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if p.url == nil {
		return p.Pool.QueryRow(ctx, sql, args...)
	}
	c, err := p.Acquire(ctx)
	if err != nil {
		return errRow{err}
	}
	return &connRow{row: c.QueryRow(ctx, sql, args...), conn: c}
}

// Ping is pgxpool's Ping, tried again once after a rotation.
func (p *Pool) Ping(ctx context.Context) error {
	gen := p.generation()
	err := p.Pool.Ping(ctx)
	if p.retry(ctx, gen, err) {
		err = p.Pool.Ping(ctx)
	}
	return err
}

// errRow is a row that could not be queried.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// connRow releases its connection once scanned, as pgxpool's own row does.
type connRow struct {
	row  pgx.Row
	conn *pgxpool.Conn
}

func (r *connRow) Scan(dest ...any) error {
	defer r.conn.Release()
	return r.row.Scan(dest...)
}

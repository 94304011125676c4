package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// databaseName is the database every local Loomi Pay process uses.
	databaseName = "loomipay"
	// defaultPostgresURL is where a Debian-installed PostgreSQL listens when
	// its local connections are set to trust.
	defaultPostgresURL = "postgres://postgres@127.0.0.1:5432/" + databaseName + "?sslmode=disable"

	// SQLSTATEs EnsureDatabase reacts to.
	sqlstateInvalidCatalogName = "3D000" // the database does not exist
	sqlstateDuplicateDatabase  = "42P04" // another process created it first

	ensureConnectTimeout = 5 * time.Second
)

// Postgres returns a database URL for local development, starting a private
// server if nothing usable is running. The order is: $DATABASE_URL as is;
// the default local server (postgres://postgres@127.0.0.1:5432) if it accepts
// the connection, with the loomipay database created if missing; otherwise
// a private PostgreSQL whose data lives under StateDir/postgres across runs.
//
// stop is never nil: it stops a server this call started (or adopted from a
// crashed earlier run), may be called more than once, and does nothing when
// the URL points at a server someone else runs.
func Postgres(ctx context.Context, o Options) (url string, stop func(), err error) {
	log := o.logger()
	if envURL := os.Getenv("DATABASE_URL"); envURL != "" {
		// The URL may hold a password, so it is not logged.
		log.Info("using PostgreSQL from DATABASE_URL")
		return envURL, noop, nil
	}

	probeErr := probePostgres(ctx, defaultPostgresURL)
	if probeErr == nil {
		if err := EnsureDatabase(ctx, defaultPostgresURL); err != nil {
			return "", noop, fmt.Errorf("preparing local PostgreSQL at 127.0.0.1:5432: %w", err)
		}
		log.Info("using local PostgreSQL at 127.0.0.1:5432", "url", defaultPostgresURL)
		return defaultPostgresURL, noop, nil
	}
	log.Info("no usable PostgreSQL at 127.0.0.1:5432; starting a private one", "reason", probeErr)
	return startPrivatePostgres(ctx, o)
}

// probePostgres reports whether a server at url accepts a connection to its
// `postgres` database within probeTimeout. A server that answers but refuses
// the login (the Debian default asks for a password over TCP) is an error
// too: it is not usable without configuration.
func probePostgres(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parsing database URL: %w", err)
	}
	cfg.Database = "postgres"
	cfg.ConnectTimeout = probeTimeout
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// EnsureDatabase creates the database named in url if it does not exist yet,
// by connecting to the `postgres` database of the same server with the same
// credentials. It is safe to call concurrently and repeatedly.
func EnsureDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parsing database URL: %w", err)
	}
	name := cfg.Database
	if name == "" {
		return errors.New("database URL names no database")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = ensureConnectTimeout
	}

	// Connecting to the database itself is the cheapest existence check, and
	// it works for roles that may not read pg_database.
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn.Close(ctx)
	}
	if !hasSQLState(err, sqlstateInvalidCatalogName) {
		return fmt.Errorf("connecting to database %q: %w", name, err)
	}

	adminCfg := cfg.Copy()
	adminCfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(ctx, adminCfg)
	if err != nil {
		return fmt.Errorf("connecting to the postgres database to create %q: %w", name, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		if hasSQLState(err, sqlstateDuplicateDatabase) {
			return nil
		}
		return fmt.Errorf("creating database %q: %w", name, err)
	}
	return nil
}

func hasSQLState(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

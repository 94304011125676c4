package httpapi

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// unavailableRetryAfter is the Retry-After sent with a 503: long enough for a pool to reconnect
// or a failover to finish, short enough that a payment is not held up.
const unavailableRetryAfter = 2 * time.Second

// unavailable reports whether err comes from a dependency being down, stalled or overloaded
// (not from a fault in our code): the request's deadline passed, a connection could not be made
// or broke, or PostgreSQL cancelled the statement for a timeout or refused the session. Such a
// request answers 503 with Retry-After, never 500.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.Timeout(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"), // insufficient resources (too many connections)
			strings.HasPrefix(pgErr.Code, "57"), // operator intervention: statement_timeout, shutdown
			pgErr.Code == "55P03":               // lock_not_available: lock_timeout
			return true
		}
	}
	// go-redis reports a broken or refused connection as plain errors in some paths.
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "i/o timeout") ||
		strings.Contains(msg, "connection pool timeout") || strings.Contains(msg, "closed pool")
}

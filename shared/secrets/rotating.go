package secrets

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// minReloadInterval bounds how often a Rotating asks Secrets Manager again. A secret that is
// wrong for good (a typo, a rotation that failed half-way) would otherwise cost a read for every
// connection attempt.
const minReloadInterval = time.Second

// Rotating is a value that a rotation may change under a running process: a PostgreSQL or Redis
// URL with its password. A client uses Value for each new connection; when the server refuses
// the password, it calls Refresh with the generation it used and, if Refresh says so, tries once
// more. Many callers that noticed the same stale value share one read.
type Rotating struct {
	reload func(context.Context) (string, error)

	refreshMu  sync.Mutex // one reload at a time
	lastReload time.Time

	mu    sync.Mutex
	value string
	gen   uint64
}

// NewRotating holds value, read again by reload when it is refused.
func NewRotating(value string, reload func(context.Context) (string, error)) *Rotating {
	return &Rotating{value: value, reload: reload}
}

// Value returns the value now, and its generation (to pass to Refresh).
func (r *Rotating) Value() (string, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.value, r.gen
}

// Refresh is called after the value of generation gen was refused. It reports whether a newer
// value is now in place, so that trying again may succeed: one another caller read meanwhile, or
// one it read itself. It does not read when the last read was less than a second ago, and a read
// that fails (err, which never holds the value) or finds the same value changes nothing.
func (r *Rotating) Refresh(ctx context.Context, gen uint64) (retry bool, err error) {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	value, current := r.Value()
	if current != gen {
		return true, nil
	}
	if time.Since(r.lastReload) < minReloadInterval {
		return false, nil
	}
	r.lastReload = time.Now()
	fresh, err := r.reload(ctx)
	if err != nil || fresh == "" || fresh == value {
		return false, err
	}
	r.mu.Lock()
	r.value = fresh
	r.gen++
	r.mu.Unlock()
	return true, nil
}

// AfterRefusal is Refresh for a client whose server (PostgreSQL, Redis) refused the password of
// generation gen, read from the environment variable name: it says in the log what happened,
// and reports whether to try once more.
func (r *Rotating) AfterRefusal(ctx context.Context, gen uint64, log *slog.Logger, server, name string) bool {
	retry, err := r.Refresh(ctx, gen)
	switch {
	case err != nil:
		log.Error(server+" refused the password; reading "+name+" again failed", "err", err)
	case retry:
		log.Warn(server + " refused the password; connecting again with " + name + " read again (rotated)")
	default:
		log.Error(server + " refused the password, and " + name + " has not changed")
	}
	return retry
}

package service

import (
	"context"
	"sync"
	"time"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/streams"
)

// FailureLimit is how many failed authentications a client may make: Burst at once, then one
// every Every.
type FailureLimit struct {
	Burst int
	Every time.Duration
}

// Default failure limits: a client that mistyped its key or token gets plenty of tries; a flood
// of wrong keys is cut after the burst.
var (
	// APIKeyFailures: 20 wrong API keys, then one every 2 s, per client address and per key id.
	APIKeyFailures = FailureLimit{Burst: 20, Every: 2 * time.Second}
	// LoginFailures: 10 wrong operator tokens, then one every 30 s, per client address and per
	// token id.
	LoginFailures = FailureLimit{Burst: 10, Every: 30 * time.Second}
)

// Throttle limits failed authentications per client address and per credential id (the
// "lp_<id>" of an API key, the "lpo_<id>" of an operator token), counted in Redis so that every
// process agrees.
//
//   - A client address whose failures used up its bucket is refused (429, Retry-After) before its
//     credential is even looked at, until a token is back. This process remembers refusals it
//     learnt of, so a flood from one address costs it no Redis or database round trip.
//   - A credential id whose failures used up its bucket answers further wrong secrets with 429
//     rather than 401, while its right secret still works: the secrets are far too long to guess,
//     so the id's bucket is there to slow and quiet a flood against one key, never to let anyone
//     who learnt a key's id lock its app out.
//
// Successful authentications cost nothing here. Redis being down lets everything through (the
// failures are still refused as usual): like the rate limit, the throttle must not turn a Redis
// outage into an API outage.
type Throttle struct {
	streams *streams.Streams
	limit   FailureLimit
	kind    string // bucket name part: "apikey" or "login"
	timeout time.Duration

	mu      sync.Mutex
	blocked map[string]time.Time // client address → refused until
}

// maxBlocked bounds the addresses a process remembers as refused; past it, the expired ones are
// dropped, and if none is, all (Redis still knows).
const maxBlocked = 10_000

// NewThrottle builds a throttle of one kind of credential on the streams' Redis.
func NewThrottle(st *streams.Streams, kind string, limit FailureLimit) *Throttle {
	return &Throttle{streams: st, limit: limit, kind: kind, timeout: 250 * time.Millisecond, blocked: map[string]time.Time{}}
}

// Limit is the throttle's limit.
func (t *Throttle) Limit() FailureLimit { return t.limit }

// Check refuses a client address that is being throttled, with the wait as RetryAfter.
func (t *Throttle) Check(client string) error {
	if client == "" {
		return nil
	}
	t.mu.Lock()
	until, ok := t.blocked[client]
	t.mu.Unlock()
	if !ok {
		return nil
	}
	wait := time.Until(until)
	if wait <= 0 {
		return nil
	}
	return t.refusal("too many failed attempts from your address", wait)
}

// Failed records a failed authentication of client with credential id (either may be empty) and
// returns err, or a 429 instead when the failure is beyond the limit of the client's address or
// of the id. A client address whose bucket is empty is refused by Check from then on.
func (t *Throttle) Failed(ctx context.Context, client, id string, err error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
	defer cancel()
	perSecond := float64(time.Second) / float64(t.limit.Every)
	var refused error
	if client != "" {
		over, empty, wait, rerr := t.streams.TakeFailure(ctx, "throttle:"+t.kind+":addr:{"+client+"}", perSecond, t.limit.Burst)
		if rerr == nil && empty {
			t.block(client, wait)
		}
		if rerr == nil && over {
			refused = t.refusal("too many failed attempts from your address", wait)
		}
	}
	if id != "" {
		over, _, wait, rerr := t.streams.TakeFailure(ctx, "throttle:"+t.kind+":id:{"+id+"}", perSecond, t.limit.Burst)
		if rerr == nil && over && refused == nil {
			refused = t.refusal("too many failed attempts with this credential id", wait)
		}
	}
	if refused != nil {
		return refused
	}
	return err
}

func (t *Throttle) block(client string, wait time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if len(t.blocked) >= maxBlocked {
		for c, until := range t.blocked {
			if now.After(until) {
				delete(t.blocked, c)
			}
		}
		if len(t.blocked) >= maxBlocked {
			clear(t.blocked)
		}
	}
	t.blocked[client] = now.Add(wait)
}

func (t *Throttle) refusal(what string, wait time.Duration) error {
	e := pay.Errorf(pay.KindRateLimited, pay.CodeRateLimited, "%s (at most %d, then one every %s); retry after %s",
		what, t.limit.Burst, t.limit.Every, wait.Round(time.Second))
	e.RetryAfter = wait
	return e
}

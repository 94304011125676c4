package service

import (
	"context"
	"time"

	"github.com/loomipay/loomipay/shared/pay"
)

// RateLimit is a token bucket: Rate requests per second on average, Burst at once.
type RateLimit struct {
	Rate  int
	Burst int
}

// limitFor returns the app's limit: its override, else the default.
func (s *Service) limitFor(app string) RateLimit {
	if l, ok := s.cfg.RateLimits[app]; ok {
		return l
	}
	return s.cfg.RateLimit
}

// Allow takes one token from the app's bucket (shared by every process through Redis) and
// returns a rate_limited error, with the wait until the next token, when there is none. Redis
// being slow or down lets the request through: the limit protects the database from one app's
// burst, and must not turn a Redis outage into an API outage (API Gateway's throttling still
// bounds the total).
func (s *Service) Allow(ctx context.Context, app string) error {
	lim := s.limitFor(app)
	if lim.Rate <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RateLimitTimeout)
	defer cancel()
	burst := max(lim.Burst, 1)
	ok, wait, err := s.streams.TakeToken(ctx, "ratelimit:{"+app+"}", lim.Rate, burst)
	if err != nil {
		s.log.WarnContext(ctx, "rate limit not checked: redis unavailable", "app_id", app, "err", err)
		return nil
	}
	if ok {
		return nil
	}
	e := pay.Errorf(pay.KindRateLimited, pay.CodeRateLimited,
		"app %s exceeded its rate limit of %d requests per second (burst %d); retry after %s", app, lim.Rate, burst, wait.Round(time.Millisecond))
	e.RetryAfter = wait
	return e
}

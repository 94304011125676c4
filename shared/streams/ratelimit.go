package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// refillBucket starts a bucket script: rate (ARGV[1], tokens per second) and burst (ARGV[2]), now
// in ms from Redis's own clock (so every process agrees), and the tokens in the bucket at KEYS[1]
// (a hash of tokens and the time of the last refill) refilled up to now. saveBucket ends it:
// it stores tokens and now, and lets an idle bucket expire once it would be full again.
const (
	refillBucket = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
`
	saveBucket = `
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
`
)

// tokenBucket takes one token from the bucket, if it holds one. It answers {1, 0} when a token was taken, else {0, ms until the next
// one}. One script, so concurrent requests never both take the last token.
var tokenBucket = redis.NewScript(refillBucket + `
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
` + saveBucket + `
return {allowed, wait}
`)

// TakeToken takes one token from the named bucket (prefixed like the streams). It reports
// whether one was available and, if not, how long until the next one.
func (s *Streams) TakeToken(ctx context.Context, bucket string, rate, burst int) (bool, time.Duration, error) {
	res, err := tokenBucket.Run(ctx, s.rdb, []string{s.cfg.Prefix + bucket}, rate, burst).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("rate limit: %w", err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("rate limit: unexpected reply %v", res)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Millisecond, nil
}

// failureBucket counts failures (wrong API keys, wrong operator tokens) in a bucket whose rate
// may be fractional (one per minute is 0.0166…): each failure takes a token, down to none. It
// answers whether there was a token for this failure, the tokens left (rounded down) and the
// milliseconds until there is one again.
var failureBucket = redis.NewScript(refillBucket + `
local had = 0
if tokens >= 1 then
  had = 1
end
tokens = math.max(0, tokens - 1)
local wait = 0
if tokens < 1 then
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
` + saveBucket + `
return {had, math.floor(tokens), wait}
`)

// TakeFailure records one failure in the named bucket (prefixed like the streams), refilled at
// perSecond up to burst. over reports that the bucket had no token left for it (the failure is
// beyond the limit); empty that it has none now, and wait how long until it has one again.
func (s *Streams) TakeFailure(ctx context.Context, bucket string, perSecond float64, burst int) (over, empty bool, wait time.Duration, err error) {
	res, err := failureBucket.Run(ctx, s.rdb, []string{s.cfg.Prefix + bucket}, perSecond, burst).Int64Slice()
	if err != nil {
		return false, false, 0, fmt.Errorf("failure throttle: %w", err)
	}
	if len(res) != 3 {
		return false, false, 0, fmt.Errorf("failure throttle: unexpected reply %v", res)
	}
	return res[0] == 0, res[1] < 1, time.Duration(res[2]) * time.Millisecond, nil
}

// CountSince adds one to the counter at name (prefixed like the streams) and reports whether the
// window at name+":window" was open, i.e. this is the first event since the window of the
// previous first one ended; the first of a window takes and resets the counter, and returns the
// events counted before it (those not reported one by one). The window lasts window.
func (s *Streams) CountSince(ctx context.Context, name string, window time.Duration) (first bool, before int64, err error) {
	key := s.cfg.Prefix + name
	opened, err := s.rdb.SetNX(ctx, key+":window", 1, window).Result()
	if err != nil {
		return false, 0, fmt.Errorf("count %s: %w", name, err)
	}
	if !opened {
		if err := s.rdb.Incr(ctx, key).Err(); err != nil {
			return false, 0, fmt.Errorf("count %s: %w", name, err)
		}
		// The counter outlives any window, but not forever.
		s.rdb.Expire(ctx, key, 24*time.Hour)
		return false, 0, nil
	}
	before, err = s.rdb.GetDel(ctx, key).Int64()
	if errors.Is(err, redis.Nil) {
		return true, 0, nil
	}
	if err != nil {
		return true, 0, fmt.Errorf("count %s: %w", name, err)
	}
	return true, before, nil
}

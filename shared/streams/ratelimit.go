package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// tokenBucket takes one token from the bucket at KEYS[1] (a hash of tokens and the time of the
// last refill, in ms from Redis's own clock, so every process agrees) refilled at ARGV[1] tokens
// per second up to ARGV[2]. It answers {1, 0} when a token was taken, else {0, ms until the next
// one}. One script, so concurrent requests never both take the last token.
var tokenBucket = redis.NewScript(`
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
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
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

package streams

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/shared/secrets"
)

// NewRotatingClient is NewUniversalClient for a Redis URL whose password a rotation may change
// under a running process: every new connection authenticates with the URL as it is now, and
// when Redis refuses it (WRONGPASS: the user's password changed; NOAUTH: the server now wants
// one), reload is asked for the URL again, once for every caller that noticed, and the command
// (or pipeline) is sent once more on a connection made with the new password, so the request
// that noticed does not fail. Connections already open stay authenticated.
func NewRotatingClient(url string, cluster bool, reload func(context.Context) (string, error), log *slog.Logger) (redis.UniversalClient, error) {
	c := &rotatingCredentials{url: secrets.NewRotating(url, reload), cluster: cluster}
	if _, _, err := c.parse(url); err != nil {
		return nil, err
	}
	rdb, err := newUniversalClient(url, cluster, c.current)
	if err != nil {
		return nil, err
	}
	rdb.AddHook(reauthHook{url: c.url, log: log})
	return rdb, nil
}

// rotatingCredentials gives each new connection the user and password of the URL now.
type rotatingCredentials struct {
	url     *secrets.Rotating
	cluster bool

	mu             sync.Mutex
	gen            uint64
	user, password string
	parsed         bool
}

func (c *rotatingCredentials) parse(url string) (user, password string, err error) {
	if c.cluster {
		opts, err := redis.ParseClusterURL(url)
		if err != nil {
			return "", "", errors.New("parse redis url: not a valid redis:// cluster URL")
		}
		return opts.Username, opts.Password, nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return "", "", errors.New("parse redis url: not a valid redis:// URL")
	}
	return opts.Username, opts.Password, nil
}

func (c *rotatingCredentials) current(context.Context) (string, string, error) {
	url, gen := c.url.Value()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.parsed || gen != c.gen {
		user, password, err := c.parse(url)
		if err != nil {
			return "", "", err
		}
		c.gen, c.user, c.password, c.parsed = gen, user, password, true
	}
	return c.user, c.password, nil
}

// isAuthRefused reports whether Redis refused the connection's credentials (go-redis wraps the
// server's error when its connection set-up fails).
func isAuthRefused(err error) bool {
	var redisErr redis.Error
	if !errors.As(err, &redisErr) {
		return false
	}
	msg := redisErr.Error()
	return strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH")
}

// carriesCredentials reports whether cmd is go-redis's own authentication of a new connection
// (HELLO or AUTH, sent through the client's hooks): sending it again cannot help, as it carries
// the credentials it was made with; the command that needed the connection is retried instead.
func carriesCredentials(cmd redis.Cmder) bool {
	name := cmd.Name()
	return name == "hello" || name == "auth"
}

// reauthHook sends a command or pipeline once more after a refused password, when a newer URL is
// in place.
type reauthHook struct {
	url *secrets.Rotating
	log *slog.Logger
}

func (h reauthHook) retry(ctx context.Context, gen uint64, err error) bool {
	if !isAuthRefused(err) {
		return false
	}
	return h.url.AfterRefusal(ctx, gen, h.log, "Redis", "REDIS_URL")
}

func (h reauthHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reauthHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if carriesCredentials(cmd) {
			return next(ctx, cmd)
		}
		_, gen := h.url.Value()
		err := next(ctx, cmd)
		if h.retry(ctx, gen, err) {
			cmd.SetErr(nil)
			err = next(ctx, cmd)
		}
		return err
	}
}

func (h reauthHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		_, gen := h.url.Value()
		err := next(ctx, cmds)
		if h.retry(ctx, gen, err) {
			for _, cmd := range cmds {
				cmd.SetErr(nil)
			}
			err = next(ctx, cmds)
		}
		return err
	}
}

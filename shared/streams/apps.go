package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/shared/pay"
)

// Default names of an app's own result streams ("$APP" is the app id). The braces are a Redis
// Cluster hash tag: both streams of an app hash to one slot.
const (
	DefaultAppPaymentStream = "payment_results:{$APP}"
	DefaultAppRefundStream  = "refund_results:{$APP}"
)

// ResultsChannel is the pub/sub channel (before the prefix) PublishResults notifies.
const ResultsChannel = "results_published"

// ResultWakeups subscribes to ResultsChannel and sends on the returned channel (dropping
// repeats while one is pending) whenever results were published, until ctx ends. A lost
// subscription costs only latency: the webhook engine also polls.
func (s *Streams) ResultWakeups(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	sub := s.rdb.Subscribe(ctx, s.Name(ResultsChannel))
	go func() {
		defer sub.Close()
		ch := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-ch:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}

// AppStream is the full name of app's own copy of a result stream (pay.StreamPaymentResults or
// pay.StreamRefundResults).
func (s *Streams) AppStream(stream, app string) string {
	tmpl := s.cfg.AppPaymentStream
	if stream == pay.StreamRefundResults {
		tmpl = s.cfg.AppRefundStream
	}
	return s.cfg.Prefix + strings.ReplaceAll(tmpl, "$APP", app)
}

// AppUser is the Redis user of an app; the stream prefix keeps the users of deployments (and
// tests) sharing one Redis apart.
func (s *Streams) AppUser(app string) string { return s.cfg.Prefix + "loomipay_app_" + app }

// appCommands is everything a consumer of its own streams needs: read with a consumer group,
// ack, manage its group and consumers, reclaim, inspect; and the connection commands clients send
// on connect. No command that writes entries (XADD, XDEL, XTRIM, DEL, …) is allowed.
var appCommands = []string{
	"xreadgroup", "xack", "xgroup|create", "xgroup|createconsumer", "xgroup|delconsumer",
	"xautoclaim", "xclaim", "xpending", "xinfo", "xrange", "xrevrange", "xlen",
	"ping", "echo", "hello", "auth", "client|setname", "client|getname", "client|id",
}

// AppACLRules are the ACL rules of an app's Redis user, after its password: its own two streams
// only, the consumer commands only, no pub/sub channels. ElastiCache RBAC takes the same access
// string (AppAccessString).
func (s *Streams) AppACLRules(app string) []string {
	rules := []string{
		"~" + globEscape(s.AppStream(pay.StreamPaymentResults, app)),
		"~" + globEscape(s.AppStream(pay.StreamRefundResults, app)),
		"resetchannels", "-@all",
	}
	for _, c := range appCommands {
		rules = append(rules, "+"+c)
	}
	return rules
}

// AppAccessString is AppACLRules as one ElastiCache access string (without "on" and password,
// which ElastiCache takes separately).
func (s *Streams) AppAccessString(app string) string {
	return "on " + strings.Join(s.AppACLRules(app), " ")
}

// globEscape escapes the glob characters ACL key patterns interpret, so a stream name is
// matched literally.
func globEscape(name string) string {
	var b strings.Builder
	for _, r := range name {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ErrACLUnsupported means this Redis does not let the service manage users (no ACL command, as
// before Redis 6, or ACL SETUSER refused, as on ElastiCache where users are managed through
// the AWS API). The operator then creates the user by hand with AppAccessString.
var ErrACLUnsupported = errors.New("this Redis does not accept ACL SETUSER")

// CreateAppUser creates (or resets) the app's Redis user with password as its only password.
func (s *Streams) CreateAppUser(ctx context.Context, app, password string) error {
	args := []any{"ACL", "SETUSER", s.AppUser(app), "reset", "on", ">" + password}
	for _, r := range s.AppACLRules(app) {
		args = append(args, r)
	}
	return aclErr(s.rdb.Do(ctx, args...).Err())
}

// SetAppUserPassword gives an existing app user a new password; with keepOld the old passwords
// keep working too (rotation without downtime: switch, then rotate again without keepOld).
func (s *Streams) SetAppUserPassword(ctx context.Context, app, password string, keepOld bool) error {
	exists, err := s.AppUserExists(ctx, app)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("redis user %s does not exist", s.AppUser(app))
	}
	args := []any{"ACL", "SETUSER", s.AppUser(app)}
	if !keepOld {
		args = append(args, "resetpass")
	}
	args = append(args, ">"+password)
	return aclErr(s.rdb.Do(ctx, args...).Err())
}

// DisableAppUser switches the app's user off and closes its connections.
func (s *Streams) DisableAppUser(ctx context.Context, app string) error {
	if err := aclErr(s.rdb.Do(ctx, "ACL", "SETUSER", s.AppUser(app), "off").Err()); err != nil {
		return err
	}
	// Turning a user off does not end its open connections.
	if err := s.rdb.Do(ctx, "CLIENT", "KILL", "USER", s.AppUser(app)).Err(); err != nil {
		return fmt.Errorf("close connections of %s: %w", s.AppUser(app), err)
	}
	return nil
}

// DeleteAppUser removes the app's user (tests clean up with it).
func (s *Streams) DeleteAppUser(ctx context.Context, app string) error {
	return aclErr(s.rdb.Do(ctx, "ACL", "DELUSER", s.AppUser(app)).Err())
}

// AppUserExists reports whether the app's Redis user exists.
func (s *Streams) AppUserExists(ctx context.Context, app string) (bool, error) {
	err := s.rdb.Do(ctx, "ACL", "GETUSER", s.AppUser(app)).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, aclErr(err)
	}
	return true, nil
}

// AppUserEnabled reports whether the app's user exists and is on.
func (s *Streams) AppUserEnabled(ctx context.Context, app string) (bool, error) {
	res, err := s.rdb.Do(ctx, "ACL", "GETUSER", s.AppUser(app)).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, aclErr(err)
	}
	// RESP2: a flat list [flags, [...], passwords, ...]; RESP3: a map.
	var flags any
	switch v := res.(type) {
	case map[any]any:
		flags = v["flags"]
	case []any:
		for i := 0; i+1 < len(v); i += 2 {
			if v[i] == "flags" {
				flags = v[i+1]
			}
		}
	}
	list, _ := flags.([]any)
	for _, f := range list {
		if f == "on" {
			return true, nil
		}
	}
	return false, nil
}

func aclErr(err error) error {
	if err == nil {
		return nil
	}
	msg := strings.ToLower(err.Error())
	if strings.Contains(msg, "unknown command") || strings.Contains(msg, "noperm") ||
		strings.Contains(msg, "not allowed") || strings.Contains(msg, "disabled") {
		return fmt.Errorf("%w: %w", ErrACLUnsupported, err)
	}
	return fmt.Errorf("redis acl: %w", err)
}

package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

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

// clusterCommands are what a cluster client sends before and besides the consumer commands: it
// learns which node serves which slot (CLUSTER SLOTS, SHARDS or NODES, by client and version),
// where a command's keys are (COMMAND, read once by go-redis and redis-py), and follows a slot in
// migration (ASKING) or reads from a replica (READONLY, READWRITE); redis-py 4 (Debian 12's)
// reads INFO for cluster_enabled before anything else. None reads or writes a key; INFO shows
// the server's counters (memory, clients, key counts), not what any key holds.
var clusterCommands = []string{
	"cluster|slots", "cluster|shards", "cluster|nodes", "command", "asking", "readonly", "readwrite", "info",
}

// AppACLRules are the ACL rules of an app's Redis user, after its password: its own two streams
// only, the consumer commands only (and, on a cluster, the commands a cluster client needs to
// find the streams' nodes), no pub/sub channels. ElastiCache RBAC takes the same access string
// (AppAccessString).
func (s *Streams) AppACLRules(app string) []string {
	rules := []string{
		"~" + globEscape(s.AppStream(pay.StreamPaymentResults, app)),
		"~" + globEscape(s.AppStream(pay.StreamRefundResults, app)),
		"resetchannels", "-@all",
	}
	for _, c := range appCommands {
		rules = append(rules, "+"+c)
	}
	if s.Cluster() {
		for _, c := range clusterCommands {
			rules = append(rules, "+"+c)
		}
	}
	return rules
}

// Cluster reports whether the client is a cluster client (REDIS_CLUSTER=true).
func (s *Streams) Cluster() bool {
	_, ok := s.rdb.(*redis.ClusterClient)
	return ok
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

// doer is what onEveryNode hands each node: a single server's client.
type doer interface {
	Do(ctx context.Context, args ...any) *redis.Cmd
}

// onEveryNode runs fn against every node of a cluster, or against the one server otherwise. ACL
// users and client connections belong to each node: a cluster does not pass ACL SETUSER or
// CLIENT KILL on, and a cluster client routes a keyless command to one node of its choosing.
// Replicas are included, since a client reading from replicas logs in to them too.
func (s *Streams) onEveryNode(ctx context.Context, fn func(ctx context.Context, node doer) error) error {
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
			if err := fn(ctx, node); err != nil {
				return fmt.Errorf("node %s: %w", node.Options().Addr, err)
			}
			return nil
		})
	}
	return fn(ctx, s.rdb)
}

// everyNode runs one command on every node (see onEveryNode).
func (s *Streams) everyNode(ctx context.Context, args ...any) error {
	return s.onEveryNode(ctx, func(ctx context.Context, node doer) error {
		return node.Do(ctx, args...).Err()
	})
}

// CreateAppUser creates (or resets) the app's Redis user with password as its only password, on
// every node of a cluster.
func (s *Streams) CreateAppUser(ctx context.Context, app, password string) error {
	args := []any{"ACL", "SETUSER", s.AppUser(app), "reset", "on", ">" + password}
	for _, r := range s.AppACLRules(app) {
		args = append(args, r)
	}
	return aclErr(s.everyNode(ctx, args...))
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
	return aclErr(s.everyNode(ctx, args...))
}

// DisableAppUser switches the app's user off and closes its connections.
func (s *Streams) DisableAppUser(ctx context.Context, app string) error {
	if err := aclErr(s.everyNode(ctx, "ACL", "SETUSER", s.AppUser(app), "off")); err != nil {
		return err
	}
	// Turning a user off does not end its open connections.
	if err := s.everyNode(ctx, "CLIENT", "KILL", "USER", s.AppUser(app)); err != nil {
		return fmt.Errorf("close connections of %s: %w", s.AppUser(app), err)
	}
	return nil
}

// EnableAppUser switches the app's user back on, with the passwords and rules it had (a user
// switched off keeps both).
func (s *Streams) EnableAppUser(ctx context.Context, app string) error {
	return aclErr(s.everyNode(ctx, "ACL", "SETUSER", s.AppUser(app), "on"))
}

// DeleteAppUser removes the app's user (tests clean up with it).
func (s *Streams) DeleteAppUser(ctx context.Context, app string) error {
	return aclErr(s.everyNode(ctx, "ACL", "DELUSER", s.AppUser(app)))
}

// AppUserExists reports whether the app's Redis user exists (on a cluster: on every node, so
// that a user some node lacks, such as a node added after the user was made, is created again
// by the callers that create missing users).
func (s *Streams) AppUserExists(ctx context.Context, app string) (bool, error) {
	return s.appUserOnEveryNode(ctx, app, func(res any) bool { return res != nil })
}

// AppUserEnabled reports whether the app's user exists and is on (on a cluster: on every node).
func (s *Streams) AppUserEnabled(ctx context.Context, app string) (bool, error) {
	return s.appUserOnEveryNode(ctx, app, userOn)
}

// appUserOnEveryNode reports whether every node's ACL GETUSER reply for the app's user (nil when
// the node has no such user) satisfies ok.
func (s *Streams) appUserOnEveryNode(ctx context.Context, app string, ok func(res any) bool) (bool, error) {
	all := true
	var mu sync.Mutex
	err := s.onEveryNode(ctx, func(ctx context.Context, node doer) error {
		res, err := node.Do(ctx, "ACL", "GETUSER", s.AppUser(app)).Result()
		if errors.Is(err, redis.Nil) {
			res, err = nil, nil
		}
		if err != nil {
			return err
		}
		if !ok(res) {
			mu.Lock()
			all = false
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return false, aclErr(err)
	}
	return all, nil
}

// userOn reads the "on" flag out of an ACL GETUSER reply (nil for no such user).
func userOn(res any) bool {
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
			return true
		}
	}
	return false
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

// HashTag is the part of a key Redis Cluster hashes to pick its slot: the text between the first
// "{" and the next "}" if that is not empty, else the whole key. Keys with equal tags share a
// slot, which a command naming several keys needs on a cluster.
func HashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// AppStreamsShareSlot reports whether every app's two streams, as named by cfg, hash to one
// Redis Cluster slot, so that an app can read both in one XREADGROUP on a cluster.
func AppStreamsShareSlot(cfg Config) bool {
	s := New(nil, cfg)
	for _, app := range []string{"app_a", "b"} {
		if HashTag(s.AppStream(pay.StreamPaymentResults, app)) != HashTag(s.AppStream(pay.StreamRefundResults, app)) {
			return false
		}
	}
	return true
}

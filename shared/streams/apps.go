package streams

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
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

// AppUserName is the name of app's Redis user in a deployment (deployment: its random id,
// postgres.Store.DeploymentID): the stream prefix, then loomipay_<deployment>_app_<app>. Two
// deployments sharing one Redis (stacks, checkouts, test runs) never name the same user, even
// with one stream prefix. Users are server-wide: no database number separates them.
func (s *Streams) AppUserName(deployment, app string) string {
	return s.cfg.Prefix + "loomipay_" + deployment + "_app_" + app
}

// LegacyAppUser is the name an app's user had before deployments were named (before migration
// 0008); such a user is adopted as it is (see service.EnsureAppUsers).
func (s *Streams) LegacyAppUser(app string) string { return s.cfg.Prefix + "loomipay_app_" + app }

// PasswordHash is how Redis keeps a password, and so how the service keeps an app user's: the
// SHA-256 in hex, which ACL SETUSER takes as "#<hash>".
func PasswordHash(password string) string {
	h := sha256.Sum256([]byte(password))
	return hex.EncodeToString(h[:])
}

// appCommands is everything a consumer of its own streams needs: read with a consumer group,
// ack, manage its group and consumers, reclaim, inspect; the connection commands clients send
// on connect; and SELECT, which clients send when the URL names a database other than 0 (the key
// patterns hold in every database). No command that writes entries (XADD, XDEL, XTRIM, DEL, …)
// is allowed.
var appCommands = []string{
	"xreadgroup", "xack", "xgroup|create", "xgroup|createconsumer", "xgroup|delconsumer",
	"xautoclaim", "xclaim", "xpending", "xinfo", "xrange", "xrevrange", "xlen",
	"ping", "echo", "hello", "auth", "client|setname", "client|getname", "client|id", "select",
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

// ApplyAppUser makes app's Redis user what the service keeps of it, on every node of a cluster:
// exactly these passwords (their SHA-256, hex), on or off, and the app's rules. It creates the
// user if a node lacks it, and sets everything at once (ACL SETUSER … reset …), so applying it
// again changes nothing. The passwords themselves never reach Redis again.
func (s *Streams) ApplyAppUser(ctx context.Context, user, app string, passwordHashes []string, on bool) error {
	state := "off"
	if on {
		state = "on"
	}
	args := []any{"ACL", "SETUSER", user, "reset", state}
	for _, h := range passwordHashes {
		args = append(args, "#"+h)
	}
	for _, r := range s.AppACLRules(app) {
		args = append(args, r)
	}
	return aclErr(s.everyNode(ctx, args...))
}

// CreateAppUser creates (or resets) the app's Redis user with password as its only password.
func (s *Streams) CreateAppUser(ctx context.Context, user, app, password string) error {
	return s.ApplyAppUser(ctx, user, app, []string{PasswordHash(password)}, true)
}

// DisableAppUser switches the user off, keeping its passwords and rules, and closes its
// connections.
func (s *Streams) DisableAppUser(ctx context.Context, user string) error {
	if err := aclErr(s.everyNode(ctx, "ACL", "SETUSER", user, "off")); err != nil {
		return err
	}
	return s.KillAppUserClients(ctx, user)
}

// KillAppUserClients closes the user's connections: turning a user off does not end them.
func (s *Streams) KillAppUserClients(ctx context.Context, user string) error {
	if err := s.everyNode(ctx, "CLIENT", "KILL", "USER", user); err != nil {
		return fmt.Errorf("close connections of %s: %w", user, err)
	}
	return nil
}

// DeleteAppUser removes the user (tests clean up with it).
func (s *Streams) DeleteAppUser(ctx context.Context, user string) error {
	return aclErr(s.everyNode(ctx, "ACL", "DELUSER", user))
}

// AppUserExists reports whether the user exists (on a cluster: on every node, so that a user
// some node lacks, such as a node added after the user was made, is made again).
func (s *Streams) AppUserExists(ctx context.Context, user string) (bool, error) {
	return s.appUserOnEveryNode(ctx, user, func(res any) bool { return res != nil })
}

// AppUserEnabled reports whether the user exists and is on (on a cluster: on every node).
func (s *Streams) AppUserEnabled(ctx context.Context, user string) (bool, error) {
	return s.appUserOnEveryNode(ctx, user, userOn)
}

// AppUserIs reports whether the user is, on every node, exactly as ApplyAppUser would make it
// with these password hashes and on: present, on or off, with these passwords and no other.
func (s *Streams) AppUserIs(ctx context.Context, user string, passwordHashes []string, on bool) (bool, error) {
	return s.appUserOnEveryNode(ctx, user, func(res any) bool {
		if res == nil || userOn(res) != on {
			return false
		}
		got := userField(res, "passwords")
		if len(got) != len(passwordHashes) {
			return false
		}
		for _, h := range passwordHashes {
			if !slices.Contains(got, any(h)) {
				return false
			}
		}
		return true
	})
}

// AppUserPasswordHashes returns the password hashes of the user as a node has them (nil if it
// has no such user).
func (s *Streams) AppUserPasswordHashes(ctx context.Context, user string) ([]string, error) {
	var out []string
	_, err := s.appUserOnEveryNode(ctx, user, func(res any) bool {
		if out == nil {
			for _, h := range userField(res, "passwords") {
				if s, ok := h.(string); ok {
					out = append(out, s)
				}
			}
		}
		return true
	})
	return out, err
}

// appUserOnEveryNode reports whether every node's ACL GETUSER reply for user (nil when the node
// has no such user) satisfies ok, which is called for one node at a time.
func (s *Streams) appUserOnEveryNode(ctx context.Context, user string, ok func(res any) bool) (bool, error) {
	all := true
	var mu sync.Mutex
	err := s.onEveryNode(ctx, func(ctx context.Context, node doer) error {
		res, err := node.Do(ctx, "ACL", "GETUSER", user).Result()
		if errors.Is(err, redis.Nil) {
			res, err = nil, nil
		}
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if !ok(res) {
			all = false
		}
		return nil
	})
	if err != nil {
		return false, aclErr(err)
	}
	return all, nil
}

// userField reads a list field ("flags", "passwords") out of an ACL GETUSER reply (RESP2: a flat
// list [name, value, …]; RESP3: a map); nil for no such user or field.
func userField(res any, name string) []any {
	var v any
	switch r := res.(type) {
	case map[any]any:
		v = r[name]
	case []any:
		for i := 0; i+1 < len(r); i += 2 {
			if r[i] == name {
				v = r[i+1]
			}
		}
	}
	list, _ := v.([]any)
	return list
}

// userOn reads the "on" flag out of an ACL GETUSER reply (nil for no such user).
func userOn(res any) bool {
	return slices.Contains(userField(res, "flags"), any("on"))
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

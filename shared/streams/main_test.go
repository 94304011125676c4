package streams_test

import (
	"context"
	"sync"

	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/rediscluster"
	"github.com/loomipay/loomipay/internal/testenv"
)

// TestMain stops the Redis Cluster the tests share (rediscluster.Shared).
func TestMain(m *testing.M) { rediscluster.Main(m) }

// backend is one kind of Redis the streams run on: the single test Redis, or a Redis Cluster
// through the cluster client REDIS_CLUSTER=true makes.
type backend struct {
	rdb     redis.UniversalClient
	prefix  string
	cluster *rediscluster.Cluster // nil for the single Redis
}

// onEachRedis runs f as two subtests, "redis" and "cluster", each with a prefix of its own: what
// works on one server must work on a cluster, where commands reaching one node, keys in
// different slots and users kept per node behave differently.
func onEachRedis(t *testing.T, f func(t *testing.T, b backend)) {
	t.Run("redis", func(t *testing.T) {
		rdb, prefix := testenv.Redis(t)
		f(t, backend{rdb: rdb, prefix: prefix})
	})
	t.Run("cluster", func(t *testing.T) {
		c := rediscluster.Shared(t)
		rdb, prefix := testenv.ClusterRedis(t, c)
		f(t, backend{rdb: rdb, prefix: prefix, cluster: c})
	})
}

// client connects to the backend as user with password, as an app would: a cluster client on a
// cluster. It does not retry, so a refused command or a closed connection shows.
func (b backend) client(t *testing.T, user, password string) redis.UniversalClient {
	t.Helper()
	var c redis.UniversalClient
	if b.cluster != nil {
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: b.cluster.Addrs[:1], Username: user, Password: password, MaxRetries: -1})
	} else {
		opts, err := redis.ParseURL(testenv.RedisURL())
		if err != nil {
			t.Fatal(err)
		}
		opts.Username, opts.Password = user, password
		opts.MaxRetries = -1
		c = redis.NewClient(opts)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// pingEveryNode pings every node as c's user (one PING from a cluster client reaches one node
// only), so that a password or a closed connection is checked wherever the app may connect. It
// returns how many nodes answered and the last error.
func pingEveryNode(ctx context.Context, c redis.UniversalClient) (answered int, err error) {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		if err := c.Ping(ctx).Err(); err != nil {
			return 0, err
		}
		return 1, nil
	}
	var mu sync.Mutex
	_ = cc.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
		e := node.Ping(ctx).Err()
		mu.Lock()
		defer mu.Unlock()
		if e != nil {
			err = e
		} else {
			answered++
		}
		return nil
	})
	return answered, err
}

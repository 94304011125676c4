package streams_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/streams"
)

// A rotating client survives its user's password changing under it (ACL SETUSER, the old
// password removed) and every connection being dropped (CLIENT KILL USER, as after a failover):
// every command and pipeline sent after succeeds, the URL is read again once, and the new
// connections use the new password. On a single Redis and on a cluster, whose nodes each keep
// their users.
func TestRotatingClientSurvivesAPasswordChange(t *testing.T) {
	onEachRedis(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		user := testenv.UniqueName("loomipay_rot_")
		url := func(password string) string {
			return strings.Replace(testenv.RedisURL(), "redis://", "redis://"+user+":"+password+"@", 1)
		}
		nodes := []redis.UniversalClient{b.rdb}
		if b.cluster != nil {
			nodes = nil
			for _, addr := range b.cluster.Addrs {
				n := redis.NewClient(&redis.Options{Addr: addr})
				t.Cleanup(func() { n.Close() })
				nodes = append(nodes, n)
			}
			url = func(password string) string {
				u := "redis://" + user + ":" + password + "@" + b.cluster.Addrs[0] + "?"
				for _, a := range b.cluster.Addrs[1:] {
					u += "addr=" + a + "&"
				}
				return strings.TrimSuffix(u, "&")
			}
		}
		onEveryNode := func(args ...any) {
			t.Helper()
			for _, n := range nodes {
				if err := n.Do(ctx, args...).Err(); err != nil {
					t.Fatalf("%v: %v", args, err)
				}
			}
		}
		onEveryNode("ACL", "SETUSER", user, "reset", "on", ">one", "~*", "&*", "+@all")
		t.Cleanup(func() {
			for _, n := range nodes {
				n.Do(context.Background(), "ACL", "DELUSER", user)
			}
		})
		var mu sync.Mutex
		current := url("one")
		var reloads atomic.Int64
		rdb, err := streams.NewRotatingClient(current, b.cluster != nil, func(context.Context) (string, error) {
			reloads.Add(1)
			mu.Lock()
			defer mu.Unlock()
			return current, nil
		}, testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		key := b.prefix + "rotation"

		// Several connections in the pool, then the rotation, then they are all dropped.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if err := rdb.Incr(ctx, key).Err(); err != nil {
					t.Errorf("INCR before the rotation: %v", err)
				}
			})
		}
		wg.Wait()
		onEveryNode("ACL", "SETUSER", user, "resetpass", ">two")
		mu.Lock()
		current = url("two")
		mu.Unlock()
		onEveryNode("CLIENT", "KILL", "USER", user)
		for range 8 {
			wg.Go(func() {
				if err := rdb.Incr(ctx, key).Err(); err != nil {
					t.Errorf("INCR after the rotation: %v", err)
				}
				pipe := rdb.Pipeline()
				pipe.Incr(ctx, key)
				pipe.Incr(ctx, key)
				if _, err := pipe.Exec(ctx); err != nil {
					t.Errorf("pipeline after the rotation: %v", err)
				}
			})
		}
		wg.Wait()
		if n, err := rdb.Get(ctx, key).Int(); err != nil || n != 8+8*3 {
			t.Errorf("counter = %d, %v; want %d", n, err, 8+8*3)
		}
		if n := reloads.Load(); n != 1 {
			t.Errorf("URL read again %d times; want once", n)
		}
	})
}

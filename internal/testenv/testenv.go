// Package testenv gives each test its own slice of the real PostgreSQL and Redis: a fresh,
// migrated schema and a unique stream-name prefix, both removed when the test ends.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/rediscluster"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/streams"
)

// DatabaseURL is the server the tests use: $TEST_DATABASE_URL or the local default.
func DatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// RedisURL is the Redis the tests use: $TEST_REDIS_URL or the local default.
func RedisURL() string {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// UniqueName returns prefix plus random hex, safe as a schema name or key prefix.
func UniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Postgres returns a store on a new schema with every migration applied. The schema is dropped
// when the test ends.
func Postgres(t testing.TB) *postgres.Store {
	t.Helper()
	store, _ := PostgresSchema(t)
	return store
}

// PostgresSchema is Postgres that also returns the schema name (for processes started by the test).
func PostgresSchema(t testing.TB) (*postgres.Store, string) {
	t.Helper()
	return PostgresSchemaAt(t, 0)
}

// PostgresSchemaAt is PostgresSchema migrated up to version last only (0: every migration): the
// schema of an earlier release, for a test of what a later migration does to a deployment.
func PostgresSchemaAt(t testing.TB, last int) (*postgres.Store, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schema := UniqueName("t_")
	admin, err := pgx.Connect(ctx, DatabaseURL())
	if err != nil {
		t.Fatalf("connect to test postgres %s: %v (is PostgreSQL running? see docs/LOCAL.md)", redactURL(DatabaseURL()), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, DatabaseURL())
		if err != nil {
			t.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	store, err := postgres.Open(ctx, DatabaseURL(), postgres.Options{Schema: schema, MaxConns: 8})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(store.Close)
	if _, err := store.MigrateTo(ctx, last); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return store, schema
}

// SchemaURL returns the test database URL with search_path set to schema, for processes that
// take only a URL (Lambda binaries under the emulator, the local stack).
func SchemaURL(schema string) string {
	u := DatabaseURL()
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "search_path=" + schema
}

// Redis returns a client and a unique stream prefix; keys under the prefix are deleted when the
// test ends.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	rdb, err := streams.NewClient(RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping test redis %s: %v (is Redis running? see docs/LOCAL.md)", RedisURL(), err)
	}
	prefix := UniqueName("t") + ":"
	t.Cleanup(func() { cleanUp(rdb, prefix) })
	return rdb, prefix
}

// ClusterRedis is Redis on a Redis Cluster: a cluster client made as REDIS_CLUSTER=true makes
// it (streams.NewUniversalClient on a URL naming one node), and a unique prefix whose keys are
// deleted from every master when the test ends.
func ClusterRedis(t testing.TB, c *rediscluster.Cluster) (redis.UniversalClient, string) {
	t.Helper()
	rdb, err := streams.NewUniversalClient(c.URL(), true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping redis cluster %s: %v", c.URL(), err)
	}
	prefix := UniqueName("t") + ":"
	t.Cleanup(func() { cleanUp(rdb, prefix) })
	return rdb, prefix
}

// cleanUp deletes a test's keys and Redis users, then closes its client. On a cluster each master
// is scanned (SCAN sees only the node it is sent to) and users are deleted on every node (each
// node has its own).
func cleanUp(rdb redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	deleteKeys := func(ctx context.Context, node *redis.Client) error {
		iter := node.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			node.Del(ctx, iter.Val())
		}
		return iter.Err()
	}
	// App users are named after the prefix too (streams.AppUser), whoever made them (a test,
	// or a loomipay dev the test started).
	deleteUsers := func(ctx context.Context, node *redis.Client) error {
		users, _ := node.Do(ctx, "ACL", "USERS").StringSlice()
		for _, u := range users {
			if strings.HasPrefix(u, prefix) {
				node.Do(ctx, "ACL", "DELUSER", u)
			}
		}
		return nil
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		_ = c.ForEachMaster(ctx, deleteKeys)
		_ = c.ForEachShard(ctx, deleteUsers)
	case *redis.Client:
		_ = deleteKeys(ctx, c)
		_ = deleteUsers(ctx, c)
	}
	_ = rdb.Close()
}

// Streams returns a Streams on the test Redis with a unique prefix.
func Streams(t testing.TB) *streams.Streams {
	t.Helper()
	rdb, prefix := Redis(t)
	return streams.New(rdb, streams.Config{Prefix: prefix})
}

// ClusterStreams returns a Streams on a Redis Cluster with a unique prefix.
func ClusterStreams(t testing.TB, c *rediscluster.Cluster) *streams.Streams {
	t.Helper()
	rdb, prefix := ClusterRedis(t, c)
	return streams.New(rdb, streams.Config{Prefix: prefix})
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i > 0 {
		if j := strings.Index(u, "://"); j > 0 && j < i {
			return u[:j+3] + "…" + u[i:]
		}
	}
	return u
}

// DropSchema drops a schema a test made beside its own (a sandbox's); call it from a cleanup.
func DropSchema(t testing.TB, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, DatabaseURL())
	if err != nil {
		t.Logf("drop schema %s: %v", schema, err)
		return
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
		t.Logf("drop schema %s: %v", schema, err)
	}
}

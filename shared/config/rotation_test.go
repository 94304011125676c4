package config_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/devstack"
	"github.com/loomipay/loomipay/internal/motoserver"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/internal/testskip"
	"github.com/loomipay/loomipay/shared/config"
)

func TestMain(m *testing.M) {
	code := m.Run()
	motoserver.Stop()
	os.Exit(code)
}

// passwordPostgres starts a private PostgreSQL (the machine's shared one trusts every local
// connection) whose pg_hba.conf trusts only the superuser and asks every other role for its
// password (scram-sha-256), and a database owned by a role of the test's with password. It
// returns the superuser's connection and the role's port.
func passwordPostgres(t *testing.T, role, password, database string) (admin *pgx.Conn, port uint16) {
	t.Helper()
	ctx := context.Background()
	stateDir := t.TempDir()
	url, stop, err := devstack.StartPrivatePostgres(ctx, devstack.Options{StateDir: stateDir, Logger: testenv.Logger()})
	if errors.Is(err, devstack.ErrPostgresNotInstalled) {
		testskip.Missing(t, fmt.Sprintf("needs the PostgreSQL server binaries: %v", err), "apt-get install postgresql")
	}
	if err != nil {
		t.Fatalf("private PostgreSQL: %v", err)
	}
	t.Cleanup(stop)
	hba := filepath.Join(stateDir, "postgres", "pg_hba.conf")
	// Rewritten in place: the file keeps its owner (the server account when the tests run as root).
	if err := os.WriteFile(hba, []byte("host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"), 0); err != nil {
		t.Fatal(err)
	}
	admin, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	for _, sql := range []string{
		"SELECT pg_reload_conf()",
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, password),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", database, role),
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	return admin, admin.Config().Port
}

// redisUser creates a Redis ACL user of the test's on the test Redis and returns an admin client.
func redisUser(t *testing.T, user, password string) *redis.Client {
	t.Helper()
	ctx := context.Background()
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(opts)
	t.Cleanup(func() {
		admin.ACLDelUser(context.Background(), user)
		admin.Close()
	})
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "reset", "on", ">"+password, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	return admin
}

func rdsSecret(role, password string, port uint16, database string) string {
	b, _ := json.Marshal(map[string]any{"engine": "postgres", "username": role, "password": password,
		"host": "127.0.0.1", "port": port, "dbname": database})
	return string(b)
}

// A rotation changes the database and Redis passwords under a running process (RDS-managed
// rotation: the role's password, then the secret's AWSCURRENT). Connections made before keep
// working; new ones (after a connection aged out, a failover, Redis dropping its clients) are
// refused with the old password. The service reads the secrets again and reconnects, and no
// request fails: not the first that needs a new connection, nor those that arrive with it.
func TestRotationIsSurvived(t *testing.T) {
	ctx := context.Background()
	moto := motoserver.Shared(t)
	moto.SetEnv(t)
	role, database := testenv.UniqueName("rot_"), testenv.UniqueName("rotdb_")
	admin, port := passwordPostgres(t, role, "pg-one", database)
	redisName := testenv.UniqueName("loomipay_rot_")
	redisAdmin := redisUser(t, redisName, "redis-one")
	redisURL := func(password string) string {
		u := strings.Replace(testenv.RedisURL(), "redis://", fmt.Sprintf("redis://%s:%s@", redisName, password), 1)
		return u
	}

	dbSecret := moto.CreateSecret(t, rdsSecret(role, "pg-one", port, database))
	redisSecret := moto.CreateSecret(t, redisURL("redis-one"))
	for _, v := range config.Variables {
		t.Setenv(v.Name, "")
	}
	t.Setenv("DATABASE_URL_SECRET_ARN", dbSecret)
	t.Setenv("REDIS_URL_SECRET_ARN", redisSecret)
	t.Setenv("STREAM_PREFIX", testenv.UniqueName("rot")+":")
	t.Setenv("LOG_LEVEL", "error")
	c, err := config.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deps, err := config.Open(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(deps.Close)
	if _, err := deps.Store.Migrate(ctx); err != nil {
		t.Fatalf("migrate as %s: %v", role, err)
	}
	if err := deps.Store.EnsureApp(ctx, "rot_app"); err != nil {
		t.Fatal(err)
	}
	key, _, err := deps.Service.CreateAPIKey(ctx, "rot_app", "rotation")
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(deps.API().Handler())
	t.Cleanup(api.Close)

	var n atomic.Int64
	createAndRead := func(t *testing.T) {
		t.Helper()
		id := fmt.Sprintf("ROT_%d", n.Add(1))
		body := fmt.Sprintf(`{"app_id":"rot_app","merchant_order_id":%q,"amount":100,"order_type":"payment","subject":"VIP"}`, id)
		if code, resp := do(t, api.URL, http.MethodPost, "/api/v1/payment-orders", key, body); code != http.StatusAccepted {
			t.Errorf("create %s = %d %s; want 202", id, code, resp)
		}
		if code, resp := do(t, api.URL, http.MethodGet, "/api/v1/payment-orders/"+id+"?app_id=rot_app", key, ""); code != http.StatusOK {
			t.Errorf("get %s = %d %s; want 200", id, code, resp)
		}
	}
	createAndRead(t)

	// The rotation: the database's password, then the secret, as RDS's rotation does; the same
	// for Redis (a user's password changed, the old one removed).
	if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER ROLE %s PASSWORD 'pg-two'", role)); err != nil {
		t.Fatal(err)
	}
	moto.Rotate(t, dbSecret, rdsSecret(role, "pg-two", port, database))
	if err := redisAdmin.Do(ctx, "ACL", "SETUSER", redisName, "resetpass", ">redis-two").Err(); err != nil {
		t.Fatal(err)
	}
	moto.Rotate(t, redisSecret, redisURL("redis-two"))

	// Connections opened before the rotation still work.
	createAndRead(t)

	// Every connection is new from here: the pool's aged out, Redis dropped the user's clients.
	deps.Store.Pool().Reset()
	if err := redisAdmin.Do(ctx, "CLIENT", "KILL", "USER", redisName).Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { createAndRead(t) })
	}
	wg.Wait()
	createAndRead(t)

	// The connections in use are the new password's: the old one is refused.
	if _, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s:pg-one@127.0.0.1:%d/%s?sslmode=disable", role, port, database)); !isInvalidPassword(err) {
		t.Errorf("connecting with the old password: %v; want 28P01", err)
	}
	var sessions int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&sessions); err != nil || sessions == 0 {
		t.Errorf("sessions of %s = %d, %v; want the pool's new ones", role, sessions, err)
	}
	clients, err := redisAdmin.ClientList(ctx).Result()
	if err != nil || !strings.Contains(clients, "user="+redisName+" ") {
		t.Errorf("Redis clients: %v; want the client's new ones as %s", err, redisName)
	}
}

func isInvalidPassword(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "28P01"
}

func do(t *testing.T, base, method, path, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

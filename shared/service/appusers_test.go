package service_test

import (
	"context"
	"regexp"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

// An app's Redis user is named after the deployment (its random id in PostgreSQL), so that two
// deployments sharing one Redis with one stream prefix (two local stacks, a stack and the tests)
// never make or reset the same user; and it is kept in PostgreSQL with its password's hash.
func TestAppUsersOfTwoDeploymentsDoNotCollide(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	st := streams.New(rdb, streams.Config{Prefix: prefix}) // one Redis, one prefix, two databases
	one := service.New(testenv.Postgres(t), st, testenv.Logger(), service.Config{})
	two := service.New(testenv.Postgres(t), st, testenv.Logger(), service.Config{})
	a, err := one.CreateApp(ctx, "demo_app")
	if err != nil {
		t.Fatal(err)
	}
	b, err := two.CreateApp(ctx, "demo_app")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `loomipay_[0-9a-f]{8}_app_demo_app$`)
	if !name.MatchString(a.RedisUser) || !name.MatchString(b.RedisUser) || a.RedisUser == b.RedisUser {
		t.Fatalf("users %q and %q; want two names of the form prefix+loomipay_<deployment>_app_demo_app", a.RedisUser, b.RedisUser)
	}
	if _, err := two.RotateAppRedisPassword(ctx, "demo_app", false); err != nil {
		t.Fatal(err)
	}
	if err := login(t, rdb, a.RedisUser, a.RedisPassword); err != nil {
		t.Errorf("the first deployment's user after the second rotated its own: %v", err)
	}
	u, err := one.Store().AppRedisUser(ctx, "demo_app")
	if err != nil || u.Username != a.RedisUser || !slices.Equal(u.PasswordHashes, []string{streams.PasswordHash(a.RedisPassword)}) {
		t.Errorf("kept user = %+v, %v; want %s with the hash of its password", u, err, a.RedisUser)
	}
}

// An app made before users were kept (migration 0008) has its user, named the old way, adopted
// with the passwords Redis has: the app's credentials keep working, and the user gets the current
// rules (SELECT among them) and is made again like the others from then on.
func TestLegacyAppUserIsAdopted(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	st := streams.New(rdb, streams.Config{Prefix: prefix})
	svc := service.New(testenv.Postgres(t), st, testenv.Logger(), service.Config{})
	if err := svc.Store().CreateApp(ctx, "old_app"); err != nil {
		t.Fatal(err)
	}
	legacy := st.LegacyAppUser("old_app")
	// The user as an older version made it: without SELECT.
	if err := rdb.Do(ctx, "ACL", "SETUSER", legacy, "reset", "on", ">old-password", "~"+prefix+"payment_results:{old_app}", "+ping", "+auth", "+hello").Err(); err != nil {
		t.Fatal(err)
	}
	n, err := svc.EnsureAppUsers(ctx)
	if err != nil || n != 1 {
		t.Fatalf("EnsureAppUsers = %d, %v; want the adopted user applied", n, err)
	}
	if user, err := svc.AppRedisUser(ctx, "old_app"); err != nil || user != legacy {
		t.Errorf("AppRedisUser = %q, %v; want the old name %q kept", user, err, legacy)
	}
	opts, _ := redis.ParseURL(testenv.RedisURL())
	opts.Username, opts.Password, opts.DB, opts.MaxRetries = legacy, "old-password", 5, -1
	app := redis.NewClient(opts) // database 5: SELECT on connect
	defer app.Close()
	if err := app.XLen(ctx, st.AppStream("refund_results", "old_app")).Err(); err != nil {
		t.Errorf("the adopted user with its old password on database 5: %v", err)
	}
	if n, err := svc.EnsureAppUsers(ctx); err != nil || n != 0 {
		t.Errorf("a second pass = %d, %v; want nothing to do", n, err)
	}
}

func login(t *testing.T, rdb *redis.Client, user, password string) error {
	t.Helper()
	opts := *rdb.Options()
	opts.Username, opts.Password, opts.MaxRetries = user, password, -1
	c := redis.NewClient(&opts)
	defer c.Close()
	return c.Ping(context.Background()).Err()
}

package processor_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/rediscluster"
	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

// TestRedisDataLossRecreatesAppUsers: Redis loses everything — its data (FLUSHALL) and its users
// (ACL DELUSER), as after a restart without persistence or a failover to an empty replica. The
// next maintenance pass makes every app's Redis user again from PostgreSQL, with the passwords
// the apps have and on or off as each app is, and the app's consumer reads its stream again with
// its old password. Before, apps got WRONGPASS until an operator rotated each password.
//
// On a redis-server of the test's own: no test may flush the Redis the others share.
func TestRedisDataLossRecreatesAppUsers(t *testing.T) {
	ctx := context.Background()
	rdb, err := streams.NewClient(rediscluster.StartServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	st := streams.New(rdb, streams.Config{})
	svc := service.New(testenv.Postgres(t), st, testenv.Logger(), service.Config{})
	shop, err := svc.CreateApp(ctx, "shop_a")
	if err != nil || !shop.ACLApplied {
		t.Fatalf("CreateApp = %+v, %v", shop, err)
	}
	off, err := svc.CreateApp(ctx, "shop_off")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DisableApp(ctx, "shop_off"); err != nil {
		t.Fatal(err)
	}
	stream := st.AppStream(pay.StreamPaymentResults, "shop_a")
	result := func(event string) []pay.ResultMessage {
		return []pay.ResultMessage{{Stream: pay.StreamPaymentResults, Fields: map[string]string{"event_id": event, "app_id": "shop_a", "seq": "1"}}}
	}
	// The app's consumer, logged in as its user with the password it was given.
	consume := func() ([]redis.XMessage, error) {
		t.Helper()
		app := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr, Username: shop.RedisUser, Password: shop.RedisPassword, MaxRetries: -1})
		defer app.Close()
		if err := app.XGroupCreateMkStream(ctx, stream, "main_app", "0").Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return nil, err
		}
		res, err := app.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "main_app", Consumer: "c1", Streams: []string{stream, ">"}, Block: -1}).Result()
		if err != nil || len(res) == 0 {
			return nil, err
		}
		return res[0].Messages, nil
	}
	if err := st.PublishResults(ctx, result("before")); err != nil {
		t.Fatal(err)
	}
	if msgs, err := consume(); err != nil || len(msgs) != 1 || msgs[0].Values["event_id"] != "before" {
		t.Fatalf("before the loss, the app reads %v, %v; want its result", msgs, err)
	}

	// Redis loses its data and its users.
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	users, err := rdb.Do(ctx, "ACL", "USERS").StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u != "default" {
			if err := rdb.Do(ctx, "ACL", "DELUSER", u).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := consume(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("after the loss the app's login = %v; want WRONGPASS (the user is gone)", err)
	}

	// A maintenance pass (a processor run starts with one) makes the users again.
	proc := processor.New(svc, nil, processor.Config{Consumer: "loss-test"})
	stats, err := proc.Maintain(ctx)
	if err != nil {
		t.Fatalf("maintenance after the loss: %v", err)
	}
	if stats.AppUsers != 2 {
		t.Errorf("maintenance made %d app users again; want 2", stats.AppUsers)
	}
	// The results written since (or republished from the outbox, see docs/OPERATIONS.md) reach
	// the app, which logs in with its old password.
	if err := st.PublishResults(ctx, result("after")); err != nil {
		t.Fatal(err)
	}
	if msgs, err := consume(); err != nil || len(msgs) != 1 || msgs[0].Values["event_id"] != "after" {
		t.Fatalf("after the maintenance pass, the app reads %v, %v; want the new result with its old password", msgs, err)
	}
	// The disabled app's user is back, and off.
	if exists, err := st.AppUserExists(ctx, off.RedisUser); err != nil || !exists {
		t.Errorf("the disabled app's user exists = %v, %v; want made again", exists, err)
	}
	if on, err := st.AppUserEnabled(ctx, off.RedisUser); err != nil || on {
		t.Errorf("the disabled app's user is on = %v, %v; want off", on, err)
	}
	// Nothing more to do on the next pass.
	if stats, err := proc.Maintain(ctx); err != nil || stats.AppUsers != 0 {
		t.Errorf("a second pass made %d users again (%v); want 0", stats.AppUsers, err)
	}
}

package webhooks_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/processor"
	"github.com/loomipay/loomipay/shared/webhooks"
)

// TestTwoAppsGetAllAndOnlyTheirOwnResults runs two apps side by side through the whole stack:
// each app's consumer, logged in as the app's own Redis user, reads exactly that app's results
// from its own stream, and each app's webhook receiver gets exactly the same events, signed.
func TestTwoAppsGetAllAndOnlyTheirOwnResults(t *testing.T) {
	ctx := context.Background()
	s := testenv.NewStack(t, testenv.StackOptions{})
	w := newWebhooks(t, s.Store, webhooks.Config{AllowLoopback: true})
	type side struct {
		stack          *testenv.Stack
		user, password string
		rc             *receiver
	}
	sides := map[string]*side{}
	for _, name := range []string{testenv.UniqueName("demo_"), testenv.UniqueName("shop_")} {
		c, err := s.Service.CreateApp(ctx, name)
		if err != nil || !c.ACLApplied {
			t.Fatalf("CreateApp(%s) = %+v, %v", name, c, err)
		}
		view := *s
		view.AppID, view.APIKey = name, s.NewKey(t, name)
		sides[name] = &side{stack: &view, user: c.RedisUser, password: c.RedisPassword, rc: newReceiver(t, nil)}
		addEndpoint(t, w, name, sides[name].rc)
	}
	for name, sd := range sides {
		for i := range 6 {
			id := name + "-" + strconv.Itoa(i)
			if i%2 == 0 {
				sd.stack.PaySucceeded(t, id, 100)
			} else {
				sd.stack.Checkout(t, id, 100)
			}
		}
	}
	// What each app must get: every result event of its own, per the outbox.
	want := map[string][]string{}
	rows, err := s.Store.Pool().Query(ctx, `SELECT fields->>'app_id', event_id::text FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var app, id string
		if err := rows.Scan(&app, &id); err != nil {
			t.Fatal(err)
		}
		want[app] = append(want[app], id)
	}
	rows.Close()

	for name, sd := range sides {
		if len(want[name]) != 9 {
			t.Fatalf("app %s has %d result events; want 9 (6 processing, 3 succeeded)", name, len(want[name]))
		}
		slices.Sort(want[name])

		// The app's own stream, through its own user and consumer group.
		opts, _ := redis.ParseURL(testenv.RedisURL())
		opts.Username, opts.Password = sd.user, sd.password
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		stream := s.Streams.AppStream(pay.StreamPaymentResults, name)
		if err := rdb.XGroupCreateMkStream(ctx, stream, "main_app", "0").Err(); err != nil {
			t.Fatal(err)
		}
		res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "main_app", Consumer: "c", Streams: []string{stream, ">"}, Count: 100, Block: -1}).Result()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range res[0].Messages {
			if m.Values["app_id"] != name {
				t.Errorf("app %s read a message of app %v", name, m.Values["app_id"])
			}
			got = append(got, m.Values["event_id"].(string))
		}
		slices.Sort(got)
		if !slices.Equal(got, want[name]) {
			t.Errorf("app %s's stream: %v; want %v", name, got, want[name])
		}
		for other := range sides {
			if other != name {
				err := rdb.XRange(ctx, s.Streams.AppStream(pay.StreamPaymentResults, other), "-", "+").Err()
				if !isNoPerm(err) {
					t.Errorf("app %s reading app %s's stream: %v; want NOPERM", name, other, err)
				}
			}
		}
	}

	// The webhooks carry the same events, each app only its own, sent by the processor.
	proc := processor.New(s.Service, s.Merchants, processor.Config{Consumer: "webhooks-test", Webhooks: w})
	testenv.Eventually(t, 20*time.Second, "every webhook", func() bool {
		testenv.RunOnce(t, proc)
		for name, sd := range sides {
			if len(sd.rc.requests()) < len(want[name]) {
				return false
			}
		}
		return true
	})
	for name, sd := range sides {
		var got []string
		for _, r := range sd.rc.requests() {
			if !r.verified || r.body["app_id"] != name {
				t.Errorf("app %s's receiver got %s (verified %v)", name, r.raw, r.verified)
			}
			got = append(got, r.body["event_id"])
		}
		slices.Sort(got)
		if !slices.Equal(got, want[name]) {
			t.Errorf("app %s's webhooks: %v; want %v", name, got, want[name])
		}
	}
}

func isNoPerm(err error) bool {
	return err != nil && len(err.Error()) > 6 && err.Error()[:6] == "NOPERM"
}

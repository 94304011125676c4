package streams_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/streams"
)

func appResults(app string, n int) []pay.ResultMessage {
	msgs := make([]pay.ResultMessage, n)
	for i := range msgs {
		msgs[i] = pay.ResultMessage{Stream: pay.StreamPaymentResults, Fields: map[string]string{
			"event_id": app + "-" + strconv.Itoa(i), "app_id": app, "seq": "1"}}
	}
	return msgs
}

func TestResultsGoToTheAppsOwnStream(t *testing.T) {
	ctx := context.Background()
	for _, shared := range []bool{true, false} {
		t.Run("shared="+strconv.FormatBool(shared), func(t *testing.T) {
			rdb, prefix := testenv.Redis(t)
			st := streams.New(rdb, streams.Config{Prefix: prefix, NoSharedResults: !shared})
			msgs := append(appResults("app_a", 30), appResults("app_b", 20)...)
			msgs = append(msgs, pay.ResultMessage{Stream: pay.StreamRefundResults, Fields: map[string]string{"event_id": "r1", "app_id": "app_b"}})
			if err := st.PublishResults(ctx, msgs); err != nil {
				t.Fatal(err)
			}
			for app, want := range map[string]int{"app_a": 30, "app_b": 20} {
				name := st.AppStream(pay.StreamPaymentResults, app)
				if want := prefix + "payment_results:{" + app + "}"; name != want {
					t.Errorf("AppStream = %q; want %q", name, want)
				}
				entries, err := rdb.XRange(ctx, name, "-", "+").Result()
				if err != nil {
					t.Fatal(err)
				}
				if len(entries) != want {
					t.Errorf("%s has %d entries; want %d", name, len(entries), want)
				}
				for i, e := range entries {
					if e.Values["app_id"] != app || e.Values["event_id"] != app+"-"+strconv.Itoa(i) || e.Values["seq"] != "1" {
						t.Errorf("%s entry %d = %v; want app %s's event %d with its seq", name, i, e.Values, app, i)
					}
				}
			}
			if n := rdb.XLen(ctx, st.AppStream(pay.StreamRefundResults, "app_b")).Val(); n != 1 {
				t.Errorf("app_b's refund stream has %d entries; want 1", n)
			}
			wantShared := int64(0)
			if shared {
				wantShared = 50
			}
			if n := rdb.XLen(ctx, st.Name(pay.StreamPaymentResults)).Val(); n != wantShared {
				t.Errorf("shared stream has %d entries; want %d", n, wantShared)
			}
		})
	}
}

func TestAppStreamsAreTrimmed(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	st := streams.New(rdb, streams.Config{Prefix: prefix, ResultMaxLen: 100})
	for range 10 {
		if err := st.PublishResults(ctx, appResults("app_a", 200)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.TrimResults(ctx, "app_a"); err != nil {
		t.Fatal(err)
	}
	if n := rdb.XLen(ctx, st.AppStream(pay.StreamPaymentResults, "app_a")).Val(); n > 300 {
		t.Errorf("app stream has %d entries; want about 100", n)
	}
}

// appClient connects to the test Redis as user with password.
func appClient(t *testing.T, user, password string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	opts.Username, opts.Password = user, password
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func isNoPerm(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOPERM") }

func newAppUser(t *testing.T, st *streams.Streams, app, password string) {
	t.Helper()
	if err := st.CreateAppUser(context.Background(), app, password); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.DeleteAppUser(context.Background(), app); err != nil {
			t.Errorf("delete user: %v", err)
		}
	})
}

func TestAppUserReadsOnlyItsOwnStreams(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	st := streams.New(rdb, streams.Config{Prefix: prefix})
	appA, appB := testenv.UniqueName("a_"), testenv.UniqueName("b_")
	newAppUser(t, st, appA, "pw-a-0123456789")
	newAppUser(t, st, appB, "pw-b-0123456789")
	if err := st.PublishResults(ctx, append(appResults(appA, 3), appResults(appB, 2)...)); err != nil {
		t.Fatal(err)
	}
	a := appClient(t, st.AppUser(appA), "pw-a-0123456789")
	own := st.AppStream(pay.StreamPaymentResults, appA)
	other := st.AppStream(pay.StreamPaymentResults, appB)

	// Everything a consumer does on its own stream works.
	if err := a.XGroupCreateMkStream(ctx, own, "main_app", "0").Err(); err != nil {
		t.Fatalf("XGROUP CREATE own stream: %v", err)
	}
	res, err := a.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "main_app", Consumer: "c1", Streams: []string{own, ">"}, Count: 10, Block: -1}).Result()
	if err != nil || len(res) != 1 || len(res[0].Messages) != 3 {
		t.Fatalf("XREADGROUP own stream = %v, %v; want its 3 messages", res, err)
	}
	if n, err := a.XAck(ctx, own, "main_app", res[0].Messages[0].ID).Result(); err != nil || n != 1 {
		t.Errorf("XACK = %d, %v", n, err)
	}
	for name, err := range map[string]error{
		"XPENDING":   a.XPending(ctx, own, "main_app").Err(),
		"XAUTOCLAIM": a.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: own, Group: "main_app", Consumer: "c2", Start: "0"}).Err(),
		"XINFO":      a.XInfoGroups(ctx, own).Err(),
		"XLEN":       a.XLen(ctx, own).Err(),
		"XRANGE":     a.XRange(ctx, st.AppStream(pay.StreamRefundResults, appA), "-", "+").Err(),
		"PING":       a.Ping(ctx).Err(),
	} {
		if err != nil {
			t.Errorf("%s on own stream: %v", name, err)
		}
	}

	// Nothing else: not the other app's stream, not the shared one, no write anywhere.
	for name, err := range map[string]error{
		"XREADGROUP other app": a.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "main_app", Consumer: "c1", Streams: []string{other, ">"}, Block: -1}).Err(),
		"XGROUP CREATE other":  a.XGroupCreateMkStream(ctx, other, "thief", "0").Err(),
		"XRANGE other app":     a.XRange(ctx, other, "-", "+").Err(),
		"XRANGE shared":        a.XRange(ctx, st.Name(pay.StreamPaymentResults), "-", "+").Err(),
		"XADD own":             a.XAdd(ctx, &redis.XAddArgs{Stream: own, Values: []string{"new_status", "succeeded"}}).Err(),
		"XADD other":           a.XAdd(ctx, &redis.XAddArgs{Stream: other, Values: []string{"new_status", "succeeded"}}).Err(),
		"XADD shared":          a.XAdd(ctx, &redis.XAddArgs{Stream: st.Name(pay.StreamPaymentResults), Values: []string{"amount", "99999999"}}).Err(),
		"XDEL own":             a.XDel(ctx, own, res[0].Messages[1].ID).Err(),
		"XTRIM own":            a.XTrimMaxLen(ctx, own, 0).Err(),
		"DEL own":              a.Del(ctx, own).Err(),
		"SET":                  a.Set(ctx, prefix+"x", "1", 0).Err(),
		"KEYS":                 a.Keys(ctx, "*").Err(),
		"ACL SETUSER":          a.Do(ctx, "ACL", "SETUSER", st.AppUser(appA), "~*").Err(),
		"PUBLISH":              a.Publish(ctx, "chan", "x").Err(),
	} {
		if !isNoPerm(err) {
			t.Errorf("%s: err = %v; want NOPERM", name, err)
		}
	}
	if n := rdb.XLen(ctx, own).Val(); n != 3 {
		t.Errorf("own stream has %d entries after the refused writes; want 3", n)
	}
	if n := rdb.XLen(ctx, other).Val(); n != 2 {
		t.Errorf("other stream has %d entries after the refused writes; want 2", n)
	}
}

func TestAppUserPasswordRotationAndDisable(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	st := streams.New(rdb, streams.Config{Prefix: prefix})
	app := testenv.UniqueName("r_")
	user := st.AppUser(app)
	newAppUser(t, st, app, "first-password-0")
	works := func(pw string) bool { return appClient(t, user, pw).Ping(ctx).Err() == nil }

	if err := st.SetAppUserPassword(ctx, app, "second-password", true); err != nil {
		t.Fatal(err)
	}
	if !works("first-password-0") || !works("second-password") {
		t.Error("with keepOld both passwords must work")
	}
	if err := st.SetAppUserPassword(ctx, app, "third-password", false); err != nil {
		t.Fatal(err)
	}
	if works("first-password-0") || works("second-password") || !works("third-password") {
		t.Error("without keepOld only the new password may work")
	}
	if err := st.SetAppUserPassword(ctx, testenv.UniqueName("none_"), "x", false); err == nil {
		t.Error("setting the password of a missing user succeeded")
	}

	open := appClient(t, user, "third-password")
	if err := open.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if on, err := st.AppUserEnabled(ctx, app); err != nil || !on {
		t.Fatalf("AppUserEnabled = %v, %v; want true", on, err)
	}
	if err := st.DisableAppUser(ctx, app); err != nil {
		t.Fatal(err)
	}
	if on, err := st.AppUserEnabled(ctx, app); err != nil || on {
		t.Errorf("AppUserEnabled after disable = %v, %v; want false", on, err)
	}
	if works("third-password") {
		t.Error("a disabled user can still log in")
	}
	if err := open.Ping(ctx).Err(); err == nil {
		t.Error("a disabled user's open connection still works")
	}
	if err := st.CreateAppUser(ctx, app, "x"); errors.Is(err, streams.ErrACLUnsupported) {
		t.Errorf("local Redis reported as not supporting ACLs: %v", err)
	}
}

func TestAccessStringNamesOnlyTheAppsStreams(t *testing.T) {
	st := streams.New(nil, streams.Config{AppPaymentStream: "pay:{$APP}:results", AppRefundStream: "ref:{$APP}"})
	got := st.AppAccessString("shop_b")
	for _, want := range []string{"on ", "~pay:{shop_b}:results ", "~ref:{shop_b} ", "resetchannels -@all", "+xreadgroup", "+xack", "+xgroup|create"} {
		if !strings.Contains(got, want) {
			t.Errorf("access string %q lacks %q", got, want)
		}
	}
	for _, bad := range []string{"+xadd", "+@all", "~*", "+del"} {
		if strings.Contains(got, bad) {
			t.Errorf("access string %q contains %q", got, bad)
		}
	}
}

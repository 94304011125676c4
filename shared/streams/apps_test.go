package streams_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/rediscluster"
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
			onEachRedis(t, func(t *testing.T, b backend) {
				rdb, prefix := b.rdb, b.prefix
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
		})
	}
}

func TestAppStreamsAreTrimmed(t *testing.T) { onEachRedis(t, testAppStreamsAreTrimmed) }

func testAppStreamsAreTrimmed(t *testing.T, b backend) {
	ctx := context.Background()
	rdb := b.rdb
	st := streams.New(rdb, streams.Config{Prefix: b.prefix, ResultMaxLen: 100})
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

func isNoPerm(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOPERM") }

// testDeployment stands for the deployment id that names app users (postgres.DeploymentID).
const testDeployment = "0123abcd"

// newAppUser makes app's user with password and returns its name.
func newAppUser(t *testing.T, st *streams.Streams, app, password string) string {
	t.Helper()
	user := st.AppUserName(testDeployment, app)
	if err := st.CreateAppUser(context.Background(), user, app, password); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.DeleteAppUser(context.Background(), user); err != nil {
			t.Errorf("delete user: %v", err)
		}
	})
	return user
}

func TestAppUserReadsOnlyItsOwnStreams(t *testing.T) {
	onEachRedis(t, testAppUserReadsOnlyItsOwnStreams)
}

func testAppUserReadsOnlyItsOwnStreams(t *testing.T, b backend) {
	ctx := context.Background()
	rdb, prefix := b.rdb, b.prefix
	st := streams.New(rdb, streams.Config{Prefix: prefix})
	appA, appB := testenv.UniqueName("a_"), testenv.UniqueName("b_")
	userA := newAppUser(t, st, appA, "pw-a-0123456789")
	newAppUser(t, st, appB, "pw-b-0123456789")
	if err := st.PublishResults(ctx, append(appResults(appA, 3), appResults(appB, 2)...)); err != nil {
		t.Fatal(err)
	}
	a := b.client(t, userA, "pw-a-0123456789")
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
		"ACL SETUSER":          a.Do(ctx, "ACL", "SETUSER", userA, "~*").Err(),
		"PUBLISH":              a.Publish(ctx, "chan", "x").Err(),
	} {
		if !isNoPerm(err) {
			t.Errorf("%s: err = %v; want NOPERM", name, err)
		}
	}
	if n := rdb.XLen(ctx, own).Val(); n != 3 {
		t.Errorf("own stream has %d entries after the refused writes; want 3", n)
	}
	if b.cluster == nil {
		// SELECT, which a client sends when its URL names another database: allowed, and the
		// key patterns still hold there (a cluster has database 0 only).
		if err := a.Do(ctx, "SELECT", "5").Err(); err != nil {
			t.Errorf("SELECT 5: %v; want allowed", err)
		}
		if err := a.Do(ctx, "SET", prefix+"x", "1").Err(); !isNoPerm(err) {
			t.Errorf("SET in database 5: err = %v; want NOPERM", err)
		}
	}
	if n := rdb.XLen(ctx, other).Val(); n != 2 {
		t.Errorf("other stream has %d entries after the refused writes; want 2", n)
	}
}

func TestAppUserPasswordRotationAndDisable(t *testing.T) {
	onEachRedis(t, testAppUserPasswordRotationAndDisable)
}

func testAppUserPasswordRotationAndDisable(t *testing.T, b backend) {
	ctx := context.Background()
	st := streams.New(b.rdb, streams.Config{Prefix: b.prefix})
	app := testenv.UniqueName("r_")
	user := newAppUser(t, st, app, "first-password-0")
	nodes := 1
	if b.cluster != nil {
		nodes = rediscluster.Masters
	}
	works := func(pw string) bool {
		n, err := pingEveryNode(ctx, b.client(t, user, pw))
		if n != 0 && n != nodes {
			t.Errorf("password works on %d of %d nodes (%v); want all or none", n, nodes, err)
		}
		return n == nodes
	}

	hashes := []string{streams.PasswordHash("first-password-0"), streams.PasswordHash("second-password")}
	if err := st.ApplyAppUser(ctx, user, app, hashes, true); err != nil {
		t.Fatal(err)
	}
	if !works("first-password-0") || !works("second-password") {
		t.Error("with both hashes both passwords must work")
	}
	if same, err := st.AppUserIs(ctx, user, hashes, true); err != nil || !same {
		t.Errorf("AppUserIs(both hashes, on) = %v, %v; want true", same, err)
	}
	if err := st.ApplyAppUser(ctx, user, app, []string{streams.PasswordHash("third-password")}, true); err != nil {
		t.Fatal(err)
	}
	if works("first-password-0") || works("second-password") || !works("third-password") {
		t.Error("after applying one hash only its password may work")
	}
	if same, err := st.AppUserIs(ctx, user, hashes, true); err != nil || same {
		t.Errorf("AppUserIs(the old hashes) = %v, %v; want false", same, err)
	}

	open := b.client(t, user, "third-password")
	if _, err := pingEveryNode(ctx, open); err != nil {
		t.Fatal(err)
	}
	if on, err := st.AppUserEnabled(ctx, user); err != nil || !on {
		t.Fatalf("AppUserEnabled = %v, %v; want true", on, err)
	}
	if err := st.DisableAppUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	if on, err := st.AppUserEnabled(ctx, user); err != nil || on {
		t.Errorf("AppUserEnabled after disable = %v, %v; want false", on, err)
	}
	if works("third-password") {
		t.Error("a disabled user can still log in")
	}
	if n, _ := pingEveryNode(ctx, open); n != 0 {
		t.Errorf("a disabled user's open connections still work on %d nodes", n)
	}
	if same, err := st.AppUserIs(ctx, user, []string{streams.PasswordHash("third-password")}, false); err != nil || !same {
		t.Errorf("AppUserIs(off) after disable = %v, %v; want true", same, err)
	}
	if err := st.CreateAppUser(ctx, user, app, "x"); errors.Is(err, streams.ErrACLUnsupported) {
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

// On a cluster an app's user must exist, with the same rules, on every node: the app's client
// logs in to whichever nodes serve its streams, and ACL SETUSER sent through a cluster client
// reaches one node only.
func TestAppUserOnEveryClusterNode(t *testing.T) {
	ctx := context.Background()
	c := rediscluster.Shared(t)
	rdb, prefix := testenv.ClusterRedis(t, c)
	st := streams.New(rdb, streams.Config{Prefix: prefix})
	app := testenv.UniqueName("n_")
	user := newAppUser(t, st, app, "pw-n-0123456789")
	for _, want := range []string{"+cluster|slots", "+cluster|shards", "+command", "+asking", "+readonly", "+info"} {
		if !slices.Contains(st.AppACLRules(app), want) {
			t.Errorf("cluster app user's rules %v lack %s, which cluster clients need", st.AppACLRules(app), want)
		}
	}
	if single := streams.New(nil, streams.Config{}); slices.Contains(single.AppACLRules(app), "+cluster|slots") {
		t.Errorf("a single Redis's app user got the cluster commands: %v", single.AppACLRules(app))
	}
	var first string
	for i := range c.Addrs {
		node := c.Node(i)
		rules, err := node.Do(ctx, "ACL", "LIST").StringSlice()
		_ = node.Close()
		if err != nil {
			t.Fatal(err)
		}
		var mine string
		for _, r := range rules {
			if strings.HasPrefix(r, "user "+user+" ") {
				mine = r
			}
		}
		if mine == "" {
			t.Fatalf("node %s has no user %s", c.Addrs[i], user)
		}
		if first == "" {
			first = mine
		} else if !sameRules(first, mine) {
			t.Errorf("node %s's user differs:\n%s\nvs\n%s", c.Addrs[i], mine, first)
		}
	}
	if ok, err := st.AppUserExists(ctx, user); err != nil || !ok {
		t.Errorf("AppUserExists = %v, %v; want true", ok, err)
	}
	// A node that lost the user (restarted without an ACL file, or added later) makes it missing,
	// so that apps rotate-redis-password creates it again everywhere.
	node := c.Node(2)
	defer node.Close()
	if err := node.Do(ctx, "ACL", "DELUSER", user).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.AppUserExists(ctx, user); err != nil || ok {
		t.Errorf("AppUserExists with the user gone from one node = %v, %v; want false", ok, err)
	}
	if on, err := st.AppUserEnabled(ctx, user); err != nil || on {
		t.Errorf("AppUserEnabled with the user gone from one node = %v, %v; want false", on, err)
	}
	if err := st.CreateAppUser(ctx, user, app, "pw-n-0123456789"); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.AppUserExists(ctx, user); err != nil || !ok {
		t.Errorf("AppUserExists after CreateAppUser = %v, %v; want true", ok, err)
	}
}

// sameRules compares two ACL LIST lines by their words: a node prints a user's command rules in
// an order of its own.
func sameRules(a, b string) bool {
	wa, wb := strings.Fields(a), strings.Fields(b)
	slices.Sort(wa)
	slices.Sort(wb)
	return slices.Equal(wa, wb)
}

// HashTag follows Redis Cluster's rule, checked against the cluster's own CLUSTER KEYSLOT: keys
// with equal tags share a slot.
func TestHashTag(t *testing.T) {
	node := rediscluster.Shared(t).Node(0)
	defer node.Close()
	for key, want := range map[string]string{
		"payment_results:{shop_b}": "shop_b", "{a}x{b}": "a", "x{}y{z}": "x{}y{z}", "a{b": "a{b", "plain": "plain", "{}": "{}",
	} {
		if got := streams.HashTag(key); got != want {
			t.Errorf("HashTag(%q) = %q; want %q", key, got, want)
		}
		tagSlot, err := node.ClusterKeySlot(context.Background(), want).Result()
		if err != nil {
			t.Fatal(err)
		}
		if keySlot := node.ClusterKeySlot(context.Background(), key).Val(); keySlot != tagSlot {
			t.Errorf("%q is in slot %d, its tag %q in %d", key, keySlot, want, tagSlot)
		}
	}
	if !streams.AppStreamsShareSlot(streams.Config{}) {
		t.Error("the default app streams do not share a slot")
	}
	if streams.AppStreamsShareSlot(streams.Config{AppPaymentStream: "p:$APP", AppRefundStream: "r:$APP"}) {
		t.Error("p:$APP and r:$APP reported as sharing a slot")
	}
}

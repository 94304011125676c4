package loomipay_test

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	loomipay "github.com/loomipay/loomipay/sdk/go"
)

// TestAppReadsItsOwnStreamAsItsUser: with the service's REDIS_URL on database 5 (the stack's
// default), the app's own Redis user, as loomipay dev printed it, consumes the app's own stream
// in that database: with the SDK's consumer, and with redis-cli's equivalent commands. Before,
// the user could not SELECT a database (NOPERM), and the banner's command read database 0.
func TestAppReadsItsOwnStreamAsItsUser(t *testing.T) {
	opt, err := redis.ParseURL(stack.appRedisURL)
	if err != nil {
		t.Fatal(err)
	}
	service, _ := redis.ParseURL(stack.redisURL)
	if opt.DB != service.DB || opt.Username == "" || opt.Username == service.Username {
		t.Fatalf("the app's Redis URL names user %q, database %d; want the app's own user on the service's database %d", opt.Username, opt.DB, service.DB)
	}
	app := redis.NewClient(opt)
	t.Cleanup(func() { _ = app.Close() })
	own := loomipay.AppStreams(stack.appID)

	rec := &recorder{}
	runConsumer(t, loomipay.ConsumerConfig{Redis: app, Streams: own, Group: "own_" + uniqueID("sdk"), Prefix: stack.prefix,
		Block: 200 * time.Millisecond}, rec.handle)
	id := uniqueID("own-stream")
	paidOrder(t, newClient(t), id, 700)
	eventually(t, 20*time.Second, "the app's own stream to bring "+id+"'s results", func() bool {
		_, results := rec.snapshot()
		var got []string
		for _, r := range results {
			if r.MerchantOrderID() == id {
				got = append(got, r.OldStatus()+">"+r.NewStatus())
			}
		}
		return slices.Equal(got, []string{"pending>processing", "processing>succeeded"})
	})

	// The same with redis-cli, as the banner shows it.
	if _, err := exec.LookPath("redis-cli"); err != nil {
		missing(t, "redis-cli is not installed: the redis-cli half of the app user's test", "apt-get install redis-tools")
	}
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("redis-cli", append([]string{"-u", stack.appRedisURL}, args...)...)
		out, err := cmd.Output() // stdout: redis-cli warns about -u's password on stderr
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	stream := stack.prefix + own[0]
	group := "cli_" + strings.ReplaceAll(uniqueID("g"), ".", "")
	if out := cli("XGROUP", "CREATE", stream, group, "0", "MKSTREAM"); strings.TrimSpace(out) != "OK" {
		t.Fatalf("XGROUP CREATE as the app's user = %q; want OK", out)
	}
	out := cli("XREADGROUP", "GROUP", group, "c1", "COUNT", "1000", "STREAMS", stream, ">")
	if !strings.Contains(out, id) || !strings.Contains(out, "succeeded") {
		t.Errorf("XREADGROUP as the app's user did not bring %s's results:\n%s", id, out)
	}
	if out := cli("XRANGE", stack.prefix+loomipay.StreamPaymentResults, "-", "+", "COUNT", "1"); !strings.Contains(out, "NOPERM") {
		t.Errorf("the shared stream as the app's user = %q; want NOPERM (its own streams only)", out)
	}
	if out := cli("XPENDING", stream, group); strings.Contains(out, "NOPERM") || strings.Contains(out, "ERR") {
		t.Errorf("XPENDING as the app's user = %q", out)
	}
	ctx := context.Background()
	if err := stack.rdb.XGroupDestroy(ctx, stream, group).Err(); err != nil {
		t.Error(err)
	}
}

package rediscluster

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestStart checks that Start gives a real cluster: every master owns a third of the slots,
// keys spread over the nodes, a cluster client follows redirections, and a command whose keys
// hash to different slots is refused as a cluster refuses it.
func TestStart(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := Start(t)
	t.Logf("cluster of %d masters ready in %s", len(c.Addrs), time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	if len(c.Addrs) != Masters {
		t.Fatalf("%d addresses, want %d", len(c.Addrs), Masters)
	}
	for i := range c.Addrs {
		n := c.Node(i)
		info, err := n.ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_size:3") {
			t.Fatalf("node %d: CLUSTER INFO = %q, %v", i, info, err)
		}
		// Slot i*16384/3 is in node i's range: the node itself answers for it.
		key := keyInSlotRange(t, n, i*slots/Masters, (i+1)*slots/Masters-1)
		if err := n.Set(ctx, key, "x", 0).Err(); err != nil {
			t.Fatalf("node %d refused a key of its own slots: %v", i, err)
		}
		// A key of another node's slots is redirected, which a plain client reports.
		other := keyInSlotRange(t, n, ((i+1)%Masters)*slots/Masters, ((i+1)%Masters+1)*slots/Masters-1)
		if err := n.Set(ctx, other, "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "MOVED") {
			t.Fatalf("node %d: SET of another node's key = %v, want MOVED", i, err)
		}
		_ = n.Close()
	}

	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{c.Addrs[0]}})
	defer cc.Close()
	for i := range 30 {
		if err := cc.Set(ctx, "k"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatalf("cluster client SET: %v", err)
		}
	}
	err := cc.Do(ctx, "MSET", "{a}x", 1, "{b}x", 2).Err() // slots 15495 and 3300
	if err == nil || !strings.HasPrefix(err.Error(), "CROSSSLOT") {
		t.Fatalf("MSET across slots = %v, want CROSSSLOT", err)
	}
}

// keyInSlotRange finds a key whose hash slot is in [lo, hi], asking the node (CLUSTER KEYSLOT).
func keyInSlotRange(t *testing.T, n *redis.Client, lo, hi int) string {
	t.Helper()
	for i := range 1000 {
		k := "key" + strconv.Itoa(i)
		s, err := n.ClusterKeySlot(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if int(s) >= lo && int(s) <= hi {
			return k
		}
	}
	t.Fatalf("no key in slots %d-%d", lo, hi)
	return ""
}

// Without redis-server on PATH there is no cluster, and the error says so (Start then skips, or
// fails under CI=true).
func TestNoServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	c, err := New()
	if !errors.Is(err, ErrNoServer) || c != nil {
		t.Fatalf("New without redis-server = %v, %v; want ErrNoServer", c, err)
	}
}

// MoveSlot moves a key's slot with the key: its new master serves it, its old one redirects, and
// a cluster client with the old slot map follows the redirection.
func TestMoveSlot(t *testing.T) {
	t.Parallel()
	c := Start(t)
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs[:1]})
	defer cc.Close()
	if err := cc.Set(ctx, "moving", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	from, err := c.Owner(ctx, "moving")
	if err != nil {
		t.Fatal(err)
	}
	to := (from + 1) % Masters
	if err := c.MoveSlot(ctx, "moving", to); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Owner(ctx, "moving"); err != nil || got != to {
		t.Fatalf("owner after the move = %d, %v; want %d", got, err, to)
	}
	newNode, oldNode := c.Node(to), c.Node(from)
	defer newNode.Close()
	defer oldNode.Close()
	if v, err := newNode.Get(ctx, "moving").Result(); err != nil || v != "v" {
		t.Errorf("new owner GET = %q, %v; want the moved value", v, err)
	}
	if err := oldNode.Get(ctx, "moving").Err(); err == nil || !strings.HasPrefix(err.Error(), "MOVED") {
		t.Errorf("old owner GET = %v; want MOVED", err)
	}
	if v, err := cc.Get(ctx, "moving").Result(); err != nil || v != "v" {
		t.Errorf("cluster client with the old slot map GET = %q, %v; want the value", v, err)
	}
}

package loomipay_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	loomipay "github.com/loomipay/loomipay/sdk/go"
)

// startCluster starts a Redis Cluster of three masters (redis-server processes on free loopback
// ports, the slots split between them, every pair met), killed when the test ends. The service's
// tests have a fuller one (internal/rediscluster); the SDK depends on nothing of the service's
// code, tests included. Without redis-server the test is skipped, or failed under CI=true.
func startCluster(t *testing.T) []string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(t, "the SDK's Redis Cluster test needs redis-server", "apt-get install redis-server (7 or later)")
	}
	dir := t.TempDir()
	const masters = 3
	var addrs []string
	var buses []int
	var nodes []*redis.Client
	for i := range masters {
		port, bus := freeTCPPort(t), freeTCPPort(t)
		cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", i)),
			"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, fmt.Sprintf("redis-%d.log", i)))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addr := "127.0.0.1:" + strconv.Itoa(port)
		node := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = node.Close() })
		addrs, buses, nodes = append(addrs, addr), append(buses, bus), append(nodes, node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, n := range nodes {
		for n.Ping(ctx).Err() != nil {
			if ctx.Err() != nil {
				t.Fatalf("redis-server on %s did not start (see %s)", addrs[i], dir)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := n.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", i*16384/masters, (i+1)*16384/masters-1).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nodes {
		for j := i + 1; j < masters; j++ {
			host, port, _ := net.SplitHostPort(addrs[j])
			if err := nodes[i].Do(ctx, "CLUSTER", "MEET", host, port, buses[j]).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, n := range nodes {
		for {
			info, _ := n.ClusterInfo(ctx).Result()
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("node %s never reported cluster_state:ok: %q", addrs[i], info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return addrs
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestConsumerOnRedisCluster: on a cluster the consumer reads the shared payment_results and
// refund_results, which are in different slots (one XREADGROUP naming both is refused with
// CROSSSLOT), and an app's own streams, which share a slot; a message on one stream is handled
// at once while the read of the other waits; refunds on an app's own stream are ordered by
// refund, not by payment order.
func TestConsumerOnRedisCluster(t *testing.T) {
	addrs := startCluster(t)
	ctx := context.Background()
	for name, streams := range map[string][]string{
		"shared streams": nil, // the default: payment_results and refund_results
		"own streams":    {"payment_results:{shop_c}", "refund_results:{shop_c}"},
	} {
		t.Run(name, func(t *testing.T) {
			rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs[:1]})
			prefix := "c" + randomHex() + ":"
			payments, refunds := prefix+loomipay.StreamPaymentResults, prefix+loomipay.StreamRefundResults
			if streams != nil {
				payments, refunds = prefix+streams[0], prefix+streams[1]
			}
			add := func(stream string, fields ...string) {
				t.Helper()
				if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: fields}).Err(); err != nil {
					t.Fatal(err)
				}
			}
			// An order's two changes, then two refunds of it: each refund's seq counts from 1.
			add(payments, "event_type", loomipay.EventPaymentStatusChanged, "event_id", "p1", "payment_order_id", "o1", "seq", "1")
			add(payments, "event_type", loomipay.EventPaymentStatusChanged, "event_id", "p2", "payment_order_id", "o1", "seq", "2")
			add(refunds, "event_type", loomipay.EventRefundStatusChanged, "event_id", "r1", "refund_order_id", "r1", "payment_order_id", "o1", "seq", "1")
			add(refunds, "event_type", loomipay.EventRefundStatusChanged, "event_id", "r2", "refund_order_id", "r2", "payment_order_id", "o1", "seq", "1")

			rec := &recorder{}
			const block = 3 * time.Second
			consumer, err := loomipay.NewConsumer(loomipay.ConsumerConfig{Redis: rdb, Group: "shop_c_results", Prefix: prefix,
				Streams: streams, Block: block, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, rec.handle)
			if err != nil {
				t.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- consumer.Run(runCtx) }()
			t.Cleanup(func() {
				cancel()
				_ = rdb.Close() // ends the blocking reads at once
				if err := <-done; err != nil {
					t.Errorf("consumer Run: %v", err)
				}
			})
			handled := func(n int, within time.Duration, what string) {
				t.Helper()
				start := time.Now()
				eventually(t, within, what, func() bool {
					applied, _ := rec.snapshot()
					return len(applied) == n
				})
				t.Logf("%s after %s", what, time.Since(start).Round(time.Millisecond))
			}
			handled(4, 5*time.Second, "the four messages handled")
			// Two more refunds, one after the other, while the payment stream's read blocks: neither
			// may wait for that read to end.
			for i, id := range []string{"r3", "r4"} {
				add(refunds, "event_type", loomipay.EventRefundStatusChanged, "event_id", id, "refund_order_id", id, "payment_order_id", "o1", "seq", "1")
				handled(5+i, block/3, id+" handled")
			}
			applied, _ := rec.snapshot()
			slices.Sort(applied)
			if want := []string{"p1", "p2", "r1", "r2", "r3", "r4"}; !slices.Equal(applied, want) {
				t.Errorf("applied %v; want %v", applied, want)
			}
			for _, st := range []string{payments, refunds} {
				if p, err := rdb.XPending(ctx, st, "shop_c_results").Result(); err != nil || p.Count != 0 {
					t.Errorf("%s: pending %+v, %v; want every message acknowledged", st, p, err)
				}
			}
		})
	}
}

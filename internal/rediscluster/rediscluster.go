// Package rediscluster starts a real Redis Cluster for tests: three masters, each a redis-server
// process on free loopback ports, the 16384 hash slots split between them and the nodes joined
// with CLUSTER MEET. It exists because a single Redis accepts what a cluster refuses (CROSSSLOT,
// MOVED, commands that reach only one node), so cluster mode can only be tested on a cluster.
package rediscluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testskip"
)

// Masters is how many master nodes a Cluster has: the smallest number at which keys without a
// common hash tag are likely to land on different nodes, as on a real deployment.
const Masters = 3

// slots is the number of hash slots of every Redis Cluster.
const slots = 16384

// formTimeout bounds starting the servers and waiting for cluster_state:ok on every node (which
// normally takes well under a second: one gossip round after CLUSTER MEET).
const formTimeout = 20 * time.Second

// Cluster is a running Redis Cluster of Masters masters and no replicas.
type Cluster struct {
	// Addrs are the masters' host:port, in slot order (Addrs[0] serves slot 0).
	Addrs []string
	nodes []*node
	dir   string
}

type node struct {
	addr    string
	busPort int
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// Start starts a Cluster of the test's own, killed when the test ends. Without redis-server (7
// or later) on PATH the test is skipped, or failed under CI=true, where it must run: a skip
// there would hide that cluster mode went untested.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, err := New()
	if err != nil {
		missing(t, err)
	}
	t.Cleanup(c.Stop)
	return c
}

// StartServer starts a plain redis-server (not a cluster) of the test's own, without
// persistence, killed when the test ends, and returns its URL: for a test that must lose Redis's
// data (FLUSHALL, every user deleted), which no test may do to the Redis the others share.
// Without redis-server 7 it is skipped, or failed under CI=true, like Start.
func StartServer(t testing.TB) string {
	t.Helper()
	bin, err := serverBinary()
	if err != nil {
		missing(t, err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), formTimeout)
	defer cancel()
	n, err := startNode(ctx, bin, dir, 0, false)
	if err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	t.Cleanup(n.kill)
	return "redis://" + n.addr + "/0"
}

// ErrNoServer means there is no redis-server 7 or later to start a cluster with.
var ErrNoServer = errors.New("no redis-server 7 or later")

// missing skips the test for a missing server, except under CI=true (testskip); any other error
// fails it.
func missing(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNoServer) {
		testskip.Missing(t, fmt.Sprintf("the Redis Cluster tests need redis-server: %v", err), "apt-get install redis-server (7 or later)")
	}
	t.Fatalf("redis cluster: %v", err)
}

// New starts a Cluster; the caller stops it with Stop. Its files live in a directory of its own,
// removed by Stop.
func New() (*Cluster, error) {
	bin, err := serverBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rediscluster")
	if err != nil {
		return nil, fmt.Errorf("redis cluster: %w", err)
	}
	c := &Cluster{dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), formTimeout)
	defer cancel()
	for i := range Masters {
		n, err := startNode(ctx, bin, dir, i, true)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
		c.Addrs = append(c.Addrs, n.addr)
	}
	if err := c.form(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// The binary's shared cluster (see Shared).
var shared struct {
	mu      sync.Mutex
	c       *Cluster
	err     error
	started bool
	inMain  bool
}

// Shared returns one Cluster for the whole test binary, started on first use: forming a cluster
// takes about two seconds (a master waits that long before it reports itself writable), which
// a package's tests need not each pay. Tests keep apart on it by key prefix, as they do on the
// shared single Redis. The package's TestMain must be Main, which stops it.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatal("rediscluster.Shared needs the package's TestMain to call rediscluster.Main, which stops the cluster")
	}
	if !shared.started {
		shared.started = true
		shared.c, shared.err = New()
	}
	if shared.err != nil {
		missing(t, shared.err)
	}
	return shared.c
}

// Main runs a package's tests and then stops the Shared cluster, if one was started:
//
//	func TestMain(m *testing.M) { rediscluster.Main(m) }
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	if shared.c != nil {
		shared.c.Stop()
	}
	shared.mu.Unlock()
	os.Exit(code)
}

// URL names one node, as ElastiCache's configuration endpoint does: a cluster client finds the
// others from it.
func (c *Cluster) URL() string { return "redis://" + c.Addrs[0] }

// Node returns a plain client of master i (not following redirections), for looking at what
// one node holds. The caller closes it.
func (c *Cluster) Node(i int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: c.Addrs[i], DialTimeout: time.Second, MaxRetries: 1})
}

var versionRE = regexp.MustCompile(`v=(\d+)\.`)

// serverBinary finds redis-server and checks it is 7 or later (CLUSTER ADDSLOTSRANGE and the
// cluster-port setting came with 7.0).
func serverBinary() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("%w: redis-server is not installed (apt-get install redis-server)", ErrNoServer)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("redis-server --version: %w", err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("redis-server --version printed %q: no version", strings.TrimSpace(string(out)))
	}
	if v, _ := strconv.Atoi(string(m[1])); v < 7 {
		return "", fmt.Errorf("%w: redis-server is version %s", ErrNoServer, m[1])
	}
	return bin, nil
}

// startNode starts one cluster-enabled redis-server on free ports and waits until it answers.
// A port taken between choosing it and the server binding it makes the server exit; the start
// is then tried again on other ports.
func startNode(ctx context.Context, bin, dir string, i int, cluster bool) (*node, error) {
	var lastErr error
	for try := range 3 {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		n := &node{addr: "127.0.0.1:" + strconv.Itoa(ports[0]), busPort: ports[1],
			logPath: filepath.Join(dir, fmt.Sprintf("redis-%d-%d.log", i, try)), exited: make(chan struct{})}
		args := []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(ports[0]),
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir, "--logfile", n.logPath}
		if cluster {
			args = append(args, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(ports[1]),
				"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", i)))
		}
		n.cmd = exec.Command(bin, args...)
		orphanProof(n.cmd)
		if err := n.cmd.Start(); err != nil {
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
		go func() {
			_ = n.cmd.Wait()
			close(n.exited)
		}()
		if lastErr = n.waitPing(ctx); lastErr == nil {
			return n, nil
		}
		n.kill()
		// The failed try's nodes file would make the next try a different node with a stale view.
		_ = os.Remove(filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", i)))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func (n *node) waitPing(ctx context.Context) error {
	rdb := redis.NewClient(&redis.Options{Addr: n.addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	for {
		err := rdb.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-n.exited:
			return fmt.Errorf("redis-server on %s exited during start-up:\n%s", n.addr, tail(n.logPath))
		case <-ctx.Done():
			return fmt.Errorf("redis-server on %s did not answer: %w:\n%s", n.addr, err, tail(n.logPath))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// form gives each master a third of the slots and its own config epoch (as redis-cli --cluster
// create does, so no epoch collision has to be resolved), joins them, and waits until every
// node reports cluster_state:ok and knows all the others.
func (c *Cluster) form(ctx context.Context) error {
	clients := make([]*redis.Client, len(c.nodes))
	for i := range c.nodes {
		clients[i] = c.Node(i)
	}
	defer func() {
		for _, rdb := range clients {
			_ = rdb.Close()
		}
	}()
	for i, rdb := range clients {
		lo, hi := i*slots/len(clients), (i+1)*slots/len(clients)-1
		if err := rdb.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("node %s: CLUSTER SET-CONFIG-EPOCH: %w", c.Addrs[i], err)
		}
		if err := rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("node %s: CLUSTER ADDSLOTSRANGE %d %d: %w", c.Addrs[i], lo, hi, err)
		}
	}
	// Every pair meets directly rather than through gossip, which can take a second more.
	for i := range c.nodes {
		for j := i + 1; j < len(c.nodes); j++ {
			host, port, _ := net.SplitHostPort(c.Addrs[j])
			if err := clients[i].Do(ctx, "CLUSTER", "MEET", host, port, c.nodes[j].busPort).Err(); err != nil {
				return fmt.Errorf("node %s: CLUSTER MEET %s: %w", c.Addrs[i], c.Addrs[j], err)
			}
		}
	}
	want := []string{"cluster_state:ok", "cluster_slots_assigned:" + strconv.Itoa(slots),
		"cluster_known_nodes:" + strconv.Itoa(len(c.nodes))}
	for i, rdb := range clients {
		for {
			info, err := rdb.ClusterInfo(ctx).Result()
			if err == nil && hasAll(info, want) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("node %s never reported %v (last: %q, %v):\n%s", c.Addrs[i], want, info, err, tail(c.nodes[i].logPath))
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

func hasAll(info string, lines []string) bool {
	have := map[string]bool{}
	for _, l := range strings.Split(info, "\n") {
		have[strings.TrimSpace(l)] = true
	}
	for _, l := range lines {
		if !have[l] {
			return false
		}
	}
	return true
}

// Stop kills the servers and removes their files.
func (c *Cluster) Stop() {
	for _, n := range c.nodes {
		n.kill()
	}
	c.nodes = nil
	_ = os.RemoveAll(c.dir)
}

func (n *node) kill() {
	_ = n.cmd.Process.Kill()
	<-n.exited
}

// freePorts returns n distinct free loopback ports, held open together while chosen so that
// none is handed out twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		held = append(held, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tail returns the last lines of a server log, so a failure to start explains itself.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 20 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// MoveSlot moves the hash slot of key, with the keys in it, to master to, as an online
// resharding does (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE on every master). A
// client still holding the old slot map then gets MOVED (or ASK while the keys move) and must
// follow it.
func (c *Cluster) MoveSlot(ctx context.Context, key string, to int) error {
	nodes := make([]*redis.Client, len(c.Addrs))
	for i := range nodes {
		nodes[i] = c.Node(i)
	}
	defer func() {
		for _, n := range nodes {
			_ = n.Close()
		}
	}()
	slot, err := nodes[0].ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("slot of %q: %w", key, err)
	}
	from, err := c.owner(ctx, nodes[0], int(slot))
	if err != nil {
		return err
	}
	if from == to {
		return fmt.Errorf("slot %d of %q is already on master %d", slot, key, to)
	}
	fromID, err := nodes[from].Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		return fmt.Errorf("CLUSTER MYID: %w", err)
	}
	toID, err := nodes[to].Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		return fmt.Errorf("CLUSTER MYID: %w", err)
	}
	if err := nodes[to].Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", fromID).Err(); err != nil {
		return fmt.Errorf("SETSLOT IMPORTING: %w", err)
	}
	if err := nodes[from].Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", toID).Err(); err != nil {
		return fmt.Errorf("SETSLOT MIGRATING: %w", err)
	}
	host, port, _ := net.SplitHostPort(c.Addrs[to])
	for {
		keys, err := nodes[from].ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		if err != nil {
			return fmt.Errorf("CLUSTER GETKEYSINSLOT: %w", err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		if err := nodes[from].Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("MIGRATE: %w", err)
		}
	}
	// The new owner first, so that it claims the slot with a new epoch; then the others, so that
	// no node keeps redirecting to the old owner until gossip reaches it.
	for _, i := range append([]int{to, from}, others(len(nodes), to, from)...) {
		if err := nodes[i].Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", toID).Err(); err != nil {
			return fmt.Errorf("node %s: SETSLOT NODE: %w", c.Addrs[i], err)
		}
	}
	return nil
}

// owner is the index of the master serving slot, by rdb's CLUSTER SHARDS.
func (c *Cluster) owner(ctx context.Context, rdb *redis.Client, slot int) (int, error) {
	shards, err := rdb.ClusterShards(ctx).Result()
	if err != nil {
		return 0, fmt.Errorf("CLUSTER SHARDS: %w", err)
	}
	for _, sh := range shards {
		if !slices.ContainsFunc(sh.Slots, func(r redis.SlotRange) bool { return int64(slot) >= r.Start && int64(slot) <= r.End }) {
			continue
		}
		for _, n := range sh.Nodes {
			if n.Role != "master" {
				continue
			}
			if i := slices.Index(c.Addrs, net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))); i >= 0 {
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("no master serves slot %d", slot)
}

func others(n int, not ...int) []int {
	var out []int
	for i := range n {
		if !slices.Contains(not, i) {
			out = append(out, i)
		}
	}
	return out
}

// Owner is the index of the master serving key's slot.
func (c *Cluster) Owner(ctx context.Context, key string) (int, error) {
	rdb := c.Node(0)
	defer rdb.Close()
	slot, err := rdb.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return 0, fmt.Errorf("slot of %q: %w", key, err)
	}
	return c.owner(ctx, rdb, int(slot))
}

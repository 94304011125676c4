package docexamples

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/internal/testskip"
)

// stack is the `loomipay dev` the examples run against, and what its banner printed.
type stack struct {
	dir     string // the checkout as a reader sees it: the repository's files, bin/loomipay built here
	bin     string // directory holding loomipay, first on the blocks' PATH
	api     string // http://127.0.0.1:PORT
	sandbox string
	db      *pgx.Conn
	env     []string          // the blocks' environment, without the session's variables
	banner  map[string]string // KEY, APP_REDIS_URL, DATABASE_URL, REDIS_URL, OPERATOR_TOKEN
}

// TestExamplesRunAgainstLoomipayDev runs every runnable sh block (and the python blocks that need
// the stack) of every document against one `loomipay dev` of its own, a document at a time, its
// blocks in order in one shell session (variables carry from block to block).
func TestExamplesRunAgainstLoomipayDev(t *testing.T) {
	byFile := map[string][]block{}
	var files []string
	for _, b := range allBlocks(t) {
		if b.notRun != "" || b.lang == "text" || b.lang == "go" {
			continue
		}
		if (b.lang == "python" || b.lang == "js") && regexp.MustCompile(`(def|function) verify\(`).MatchString(b.text) {
			continue // TestWebhookVerifiersAgreeWithTheSigner
		}
		if b.lang == "js" {
			t.Errorf("%s: a js example that needs the stack: teach this test to run it", b)
			continue
		}
		if _, ok := byFile[b.file]; !ok {
			files = append(files, b.file)
		}
		byFile[b.file] = append(byFile[b.file], b)
	}
	for _, tool := range []struct{ name, enable string }{
		{"bash", "apt-get install bash"}, {"curl", "apt-get install curl"}, {"jq", "apt-get install jq"},
		{"redis-cli", "apt-get install redis-tools"}, {"redis-server", "apt-get install redis-server"},
	} {
		if _, err := exec.LookPath(tool.name); err != nil {
			testskip.Missing(t, tool.name+" is not installed: the docs' shell examples do not run", tool.enable)
		}
	}
	py := python(t, true)
	s := startStack(t)
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			for _, b := range byFile[file] {
				ok := t.Run(fmt.Sprintf("line %d", b.line), func(t *testing.T) { s.run(t, b, state, py) })
				if !ok {
					t.Logf("%s: the file's later blocks are not run (they build on this one)", file)
					return
				}
				s.waitQuiet(t)
			}
		})
	}
}

// run runs one block in the file's session.
func (s *stack) run(t *testing.T, b block, state, py string) {
	var script string
	switch {
	case b.banner:
		script = s.bannerScript(t, b)
	case b.lang == "sh":
		script = s.substitute(t, b)
	case b.lang == "python":
		script = fmt.Sprintf("%q - <<'LOOMIPAY_DOC_EOF'\n%sLOOMIPAY_DOC_EOF\n", py, s.substitute(t, b))
	default:
		t.Fatalf("%s: cannot run a %s block", b, b.lang)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", shellPreamble+script)
	cmd.Dir = s.dir
	cmd.Env = append(append([]string{}, s.env...), "DOC_STATE="+state)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		t.Fatalf("%s failed: %v\n--- the block, as run ---\n%s--- its output ---\n%s", b, err, script, out.String())
	}
	for _, want := range b.expect {
		if !strings.Contains(out.String(), want) {
			t.Errorf("%s: the output does not contain %q (<!-- expect -->)\n--- the block, as run ---\n%s--- its output ---\n%s", b, want, script, out.String())
		}
	}
	t.Logf("%s:\n%s", b, out.String())
}

// shellPreamble starts every block: strict bash, the session's variables from the previous blocks
// (every assignment exported, and saved when the block ends), and curl and redis-cli made to fail
// on what they otherwise report with status 0: an HTTP error status, a Redis error reply (an
// error such as NOPERM, or a refused AUTH after which redis-cli would carry on as the default
// user).
const shellPreamble = `set -eo pipefail
set -a
if [ -f "$DOC_STATE" ]; then source "$DOC_STATE"; fi
trap 'export -p | grep -Ev "^declare -[a-zA-Z]*r|^declare -x (PWD|OLDPWD|SHLVL|_)=" > "$DOC_STATE.new"; mv "$DOC_STATE.new" "$DOC_STATE"' EXIT
curl() { command curl --fail-with-body "$@"; }
redis-cli() {
  local out err rc=0
  err=$(mktemp)
  out=$(command redis-cli "$@" 2>"$err") || rc=$?
  printf '%s\n' "$out"
  if grep -q 'AUTH failed' "$err" || printf '%s\n' "$out" | grep -Eq '^(\(error\) )?(ERR|NOPERM|WRONGPASS|NOAUTH|NOGROUP|BUSYGROUP|WRONGTYPE|CROSSSLOT|MOVED|ASK|READONLY|NOSCRIPT|EXECABORT)( |$)'; then
    cat "$err" >&2; rm -f "$err"
    echo "redis-cli $*: answered an error" >&2
    return 1
  fi
  rm -f "$err"
  return $rc
}
`

// bannerScript checks that a "values from the banner" block only sets variables the banner
// prints, and sets them to what this stack's banner printed.
func (s *stack) bannerScript(t *testing.T, b block) string {
	t.Helper()
	assign := regexp.MustCompile(`^(?:export )?([A-Z_]+)=\S*(?:\s+#.*)?$`)
	var script strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(b.text), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := assign.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s: %q is not NAME=value: a block of values from the banner only sets variables", b, line)
		}
		v, ok := s.banner[m[1]]
		if !ok {
			t.Fatalf("%s: the banner prints no %s (it prints %v)", b, m[1], keys(s.banner))
		}
		fmt.Fprintf(&script, "export %s=%s\n", m[1], shellQuote(v))
	}
	return script.String()
}

// substitute puts this stack's addresses where the docs say 127.0.0.1:3000, :3100 and the
// default Redis URL; a runnable block left naming one of those ports would reach another stack.
func (s *stack) substitute(t *testing.T, b block) string {
	t.Helper()
	text := strings.NewReplacer(
		"http://127.0.0.1:3000", s.api,
		"127.0.0.1:3000", strings.TrimPrefix(s.api, "http://"),
		"http://127.0.0.1:3100", s.sandbox,
		"127.0.0.1:3100", strings.TrimPrefix(s.sandbox, "http://"),
		"redis://127.0.0.1:6379/0", s.banner["REDIS_URL"],
	).Replace(b.text)
	if m := regexp.MustCompile(`(localhost|127\.0\.0\.1):(3000|3100|6379)\b`).FindString(text); m != "" {
		t.Fatalf("%s names %s, which this test cannot map to its stack: write http://127.0.0.1:3000, 127.0.0.1:3100 or redis://127.0.0.1:6379/0", b, m)
	}
	return text
}

// startStack builds loomipay and starts `loomipay dev` on free ports, a PostgreSQL database of
// its own and a redis-server of its own (so the streams have the names the docs show, with no
// prefix, and no other run sees them), database 3 (so the app's user must SELECT it).
func startStack(t *testing.T) *stack {
	t.Helper()
	work := t.TempDir()
	s := &stack{dir: filepath.Join(work, "checkout"), bin: filepath.Join(work, "bin")}

	// The checkout as the reader has it, with bin/loomipay as make run builds it.
	if err := os.MkdirAll(filepath.Join(s.dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if name := e.Name(); name != "bin" && name != ".localdev" && name != ".git" {
			if err := os.Symlink(filepath.Join(root, name), filepath.Join(s.dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	build := exec.Command("go", "build", "-o", filepath.Join(s.dir, "bin", "loomipay"), "./cmd/loomipay")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/loomipay: %v\n%s", err, out)
	}
	if err := os.MkdirAll(s.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(s.dir, "bin", "loomipay"), filepath.Join(s.bin, "loomipay")); err != nil {
		t.Fatal(err)
	}

	redisURL := startRedis(t, work) + "/3"
	dbURL := ownDatabase(t)

	base := []string{"PATH=" + s.bin + string(os.PathListSeparator) + os.Getenv("PATH"), "LOG_LEVEL=warn", "STREAM_PREFIX="}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH" || name == "LOG_LEVEL" || name == "STREAM_PREFIX":
		case strings.HasPrefix(name, "DATABASE_") || strings.HasPrefix(name, "REDIS_") || strings.HasPrefix(name, "LAKALA_"):
		default:
			base = append(base, kv)
		}
	}
	dev := exec.Command(filepath.Join(s.dir, "bin", "loomipay"), "dev", "--addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0",
		"--state-dir", filepath.Join(work, "state"))
	dev.Dir = s.dir
	dev.Env = append(append([]string{}, base...), "DATABASE_URL="+dbURL, "REDIS_URL="+redisURL)
	var out, logs syncBuffer
	dev.Stdout, dev.Stderr = &out, &logs
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = dev.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = dev.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = dev.Process.Kill()
			<-exited
		}
	})
	deadline := time.After(90 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C stops everything.") {
		select {
		case <-exited:
			t.Fatalf("loomipay dev exited:\n%s\n%s", out.String(), logs.String())
		case <-deadline:
			t.Fatalf("loomipay dev printed no banner within 90 s:\n%s\n%s", out.String(), logs.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.banner, err = parseBanner(out.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s.api, s.sandbox = s.banner["api"], s.banner["sandbox"]
	delete(s.banner, "api")
	delete(s.banner, "sandbox")
	s.env = append(append([]string{}, base...), "DATABASE_URL="+dbURL, "REDIS_URL="+redisURL)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.db, err = pgx.Connect(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.db.Close(context.Background()) })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("loomipay dev's log:\n%s", logs.String())
		}
	})
	return s
}

// parseBanner reads what `loomipay dev` printed: the addresses, and the values a reader copies.
func parseBanner(banner string) (map[string]string, error) {
	lines := strings.Split(banner, "\n")
	v := map[string]string{}
	field := func(prefix string) string {
		for _, l := range lines {
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return strings.Fields(rest)[0]
			}
		}
		return ""
	}
	after := func(re string) string {
		r := regexp.MustCompile(re)
		for i, l := range lines {
			if r.MatchString(l) && i+1 < len(lines) {
				return strings.TrimSpace(lines[i+1])
			}
		}
		return ""
	}
	v["api"] = field("  API and webhook ")
	v["sandbox"] = field("  Lakala sandbox ")
	v["DATABASE_URL"] = field("  PostgreSQL ")
	v["REDIS_URL"] = field("  Redis ")
	v["APP_REDIS_URL"] = field("  Redis URL ")
	v["KEY"] = after(`^API key for app demo_app`)
	v["OPERATOR_TOKEN"] = after(`^Console .*operator token`)
	for name, value := range v {
		if value == "" {
			return nil, fmt.Errorf("the banner of loomipay dev has no %s", name)
		}
	}
	return v, nil
}

// waitQuiet waits (up to 15 s) until the processor has caught up with what the last block did,
// as a reader does who types slower than it: no order waiting for its cashier order, no refund
// under way, no unpublished result, and every payment the sandbox took applied to its order.
func (s *stack) waitQuiet(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		busy, err := s.busy()
		if err == nil && busy == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("the stack is still busy after 15 s (%s; %v); going on", busy, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *stack) busy() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var pending, refunds, unpublished, succeeded int
	err := s.db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM payment_orders WHERE status = 'pending'),
		(SELECT count(*) FROM refund_orders WHERE status IN ('pending', 'processing')),
		(SELECT count(*) FROM outbox WHERE published_at IS NULL),
		(SELECT count(*) FROM payment_orders WHERE status = 'succeeded')`).Scan(&pending, &refunds, &unpublished, &succeeded)
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.sandbox+"/sandbox/ledger", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var ledger struct {
		Orders []struct {
			Payments int `json:"payments"`
		} `json:"orders"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ledger); err != nil {
		return "", err
	}
	paid := 0
	for _, o := range ledger.Orders {
		if o.Payments > 0 {
			paid++
		}
	}
	switch {
	case pending > 0:
		return fmt.Sprintf("%d orders pending", pending), nil
	case refunds > 0:
		return fmt.Sprintf("%d refunds under way", refunds), nil
	case unpublished > 0:
		return fmt.Sprintf("%d results unpublished", unpublished), nil
	case paid > succeeded:
		return fmt.Sprintf("the sandbox has %d paid orders, we have %d succeeded", paid, succeeded), nil
	}
	return "", nil
}

// ownDatabase creates a database of the test's own on the tests' PostgreSQL server, dropped at the
// end. A database rather than a schema of the shared test database: the migrations' advisory lock
// is per database, and the operator commands the docs run each take it.
func ownDatabase(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, testenv.DatabaseURL())
	if err != nil {
		t.Fatalf("connect to the tests' PostgreSQL: %v", err)
	}
	defer admin.Close(context.Background())
	name := testenv.UniqueName("loomipay_docs_")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if admin, err := pgx.Connect(ctx, testenv.DatabaseURL()); err == nil {
			_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = admin.Close(ctx)
		}
	})
	u, err := url.Parse(testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// startRedis starts a redis-server of the test's own on a free port and returns its URL.
func startRedis(t *testing.T, work string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := filepath.Join(work, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "redis://127.0.0.1:" + strconv.Itoa(port)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); rdb.Ping(context.Background()).Err() != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on port %d did not answer:\n%s", port, readFile(t, filepath.Join(dir, "redis.log")))
		}
	}
	return url
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

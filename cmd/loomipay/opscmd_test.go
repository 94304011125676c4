package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/streams"
)

func TestOperatorCommandsNeedDatabaseURL(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	os.Unsetenv("DATABASE_URL")
	t.Setenv("DATABASE_URL_SECRET_ARN", "")
	for _, args := range [][]string{{"orders", "search"}, {"reviews", "list"}, {"dlq", "list"}, {"operators", "create", "--name", "x", "--role", "admin"}} {
		_, _, err := runCmd(t, args...)
		if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
			t.Errorf("%v without DATABASE_URL: err = %v; want a refusal naming DATABASE_URL", args, err)
		}
	}
}

var tokenLine = regexp.MustCompile(`^lpo_[0-9a-f]{12}_[A-Za-z0-9_-]{40}\n$`)

func TestOperatorCommands(t *testing.T) {
	store := useTestServers(t)
	st := streams.New(mustRedis(t), streams.Config{Prefix: os.Getenv("STREAM_PREFIX")})

	stdout, stderr, err := runCmd(t, "operators", "create", "--name", "olga", "--role", "operator")
	if err != nil || !tokenLine.MatchString(stdout) {
		t.Fatalf("operators create = %q, %v\n%s", stdout, err, stderr)
	}
	if _, _, err := runCmd(t, "operators", "create", "--name", "olga", "--role", "operator"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate operator: %v", err)
	}
	if _, _, err := runCmd(t, "operators", "create", "--name", "x", "--role", "root"); err == nil || !strings.Contains(err.Error(), "role") {
		t.Fatalf("bad role: %v", err)
	}

	id := testenv.SeedOrder(t, store, "shop", "M-1", "succeeded", 12345)
	refundID := testenv.SeedRefund(t, store, id, "processing", 2345)
	caseID := testenv.SeedReviewCase(t, store, ops.KindRefundOutcomeUnknown, id, refundID, "unknown after 8 queries")
	pending := testenv.SeedOrder(t, store, "shop", "M-2", "pending", 100)
	taskID := testenv.SeedDeadTask(t, store, st, "payment", pending, "lakala down")

	stdout, _, err = runCmd(t, "orders", "search", "M-1")
	if err != nil || !strings.Contains(stdout, id) || !strings.Contains(stdout, "123.45") {
		t.Fatalf("orders search = %q, %v", stdout, err)
	}
	stdout, _, err = runCmd(t, "orders", "search", "--status", "pending", "--json")
	var rows []ops.OrderRow
	if err != nil || json.Unmarshal([]byte(stdout), &rows) != nil || len(rows) != 1 || rows[0].ID != pending {
		t.Fatalf("orders search --json = %q, %v", stdout, err)
	}
	if _, _, err := runCmd(t, "orders", "search", "--from", "yesterday"); err == nil || !strings.Contains(err.Error(), "not a time") {
		t.Fatalf("bad --from: %v", err)
	}
	stdout, _, err = runCmd(t, "orders", "show", "M-1")
	if err != nil || !strings.Contains(stdout, "review case") || !strings.Contains(stdout, "pruned") {
		t.Fatalf("orders show = %q, %v", stdout, err)
	}
	if _, _, err := runCmd(t, "orders", "show", "nope"); err == nil || !strings.Contains(err.Error(), "no payment order") {
		t.Fatalf("orders show nope: %v", err)
	}

	stdout, _, err = runCmd(t, "reviews", "list")
	if err != nil || !strings.Contains(stdout, ops.KindRefundOutcomeUnknown) {
		t.Fatalf("reviews list = %q, %v", stdout, err)
	}
	if _, _, err := runCmd(t, "reviews", "resolve", itoa(caseID), "--outcome", "refund_succeeded"); err == nil || !strings.Contains(err.Error(), "note") {
		t.Fatalf("resolve without a note: %v", err)
	}
	stdout, _, err = runCmd(t, "reviews", "resolve", itoa(caseID), "--outcome", "refund_succeeded", "--note", "confirmed in the portal", "--json")
	var res ops.ResolveResult
	if err != nil || json.Unmarshal([]byte(stdout), &res) != nil || res.StatusChange != "refund processing → succeeded" {
		t.Fatalf("reviews resolve = %q, %v", stdout, err)
	}

	stdout, _, err = runCmd(t, "dlq", "list")
	if err != nil || !strings.Contains(stdout, "lakala down") {
		t.Fatalf("dlq list = %q, %v", stdout, err)
	}
	stdout, _, err = runCmd(t, "dlq", "redrive", itoa(taskID), "--note", "lakala is back")
	if err != nil || !strings.Contains(stdout, "queued again") {
		t.Fatalf("dlq redrive = %q, %v", stdout, err)
	}
	if _, _, err := runCmd(t, "dlq", "discard", itoa(taskID), "--note", "x"); err == nil || !strings.Contains(err.Error(), "not a dead letter") {
		t.Fatalf("discard a redriven task: %v", err)
	}

	stdout, _, err = runCmd(t, "results", "republish", "--app", "shop", "--from", "1h", "--to", "2099-01-01", "--note", "lost group")
	if err != nil || !strings.Contains(stdout, "republished 1 result message") {
		t.Fatalf("results republish = %q, %v", stdout, err)
	}

	stdout, _, err = runCmd(t, "audit", "--json")
	var audit []ops.AuditEntry
	if err != nil || json.Unmarshal([]byte(stdout), &audit) != nil {
		t.Fatalf("audit = %q, %v", stdout, err)
	}
	actions := map[string]bool{}
	for _, e := range audit {
		actions[e.Action] = true
		if !strings.HasPrefix(e.Actor, "cli:") || e.Via != "cli" {
			t.Errorf("audit row by %q via %q", e.Actor, e.Via)
		}
	}
	for _, want := range []string{"operator.create", "review.resolve", "dlq.redrive", "results.republish"} {
		if !actions[want] {
			t.Errorf("no audit row for %s (%v)", want, actions)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func mustRedis(t *testing.T) *redis.Client {
	t.Helper()
	rdb, err := streams.NewClient(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// checkDevConsole logs in to the console of `loomipay dev` with the operator token its banner
// printed and finds an order there.
func checkDevConsole(t *testing.T, apiURL, banner, merchantOrderID string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s+(lpo_\S+)$`).FindStringSubmatch(banner)
	if m == nil || !strings.Contains(banner, apiURL+"/console") {
		t.Fatalf("the dev banner gives no console URL and operator token:\n%s", banner)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	resp, err := client.Get(apiURL + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(page))
	if csrf == nil {
		t.Fatalf("login page without a CSRF field: %s", page)
	}
	resp, err = client.PostForm(apiURL+"/console/login", url.Values{"csrf": {csrf[1]}, "token": {m[1]}, "next": {"/console/orders?q=" + merchantOrderID}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), merchantOrderID) || !strings.Contains(string(body), "dev · admin") {
		t.Fatalf("console orders page after login = %d:\n%s", resp.StatusCode, body)
	}
}

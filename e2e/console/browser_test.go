// Package consolee2e runs the operator console end to end in headless Chromium (Debian's
// chromium, driven by playwright-core from npm; see console.test.mjs) against the whole stack.
package consolee2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/console"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/streams"
)

// missing skips the test locally, and fails it where LOOMIPAY_REQUIRE_BROWSER=1 (.ci/run sets it).
func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("LOOMIPAY_REQUIRE_BROWSER") == "1" {
		t.Fatal(what)
	}
	t.Skip(what)
}

func TestConsoleInBrowser(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node is not installed")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium, err = exec.LookPath("chromium")
		if err != nil {
			missing(t, "chromium is not installed (apt-get install chromium)")
		}
	}
	if _, err := os.Stat("node_modules/playwright-core"); err != nil {
		missing(t, "playwright-core is not installed: run npm ci in e2e/console")
	}

	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	o := ops.New(s.Service)
	admin := ops.Actor{Name: "test-setup", Role: ops.RoleAdmin, Via: "cli"}

	// An order paid through the sandbox: its timeline has real status changes, result messages,
	// Lakala calls and a notification.
	order := s.PaySucceeded(t, "CONSOLE-1", 12345)
	// A refund whose outcome stayed unknown, in review; a payment task that died.
	refundID := testenv.SeedRefund(t, s.Store, order.ID, "processing", 2345)
	caseID := testenv.SeedReviewCase(t, s.Store, ops.KindRefundOutcomeUnknown, order.ID, refundID, "refund outcome unknown at Lakala after 8 queries")
	pending := testenv.SeedOrder(t, s.Store, s.AppID, "CONSOLE-DEAD", "pending", 500)
	deadTask := testenv.SeedDeadTask(t, s.Store, s.Streams, "payment", pending, "lakala: outcome unknown: HTTP 502")
	_, key, err := o.CreateKey(ctx, admin, s.AppID, "ci-runner")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store.EnsureApp(ctx, "other_app"); err != nil {
		t.Fatal(err)
	}
	_, other, err := o.CreateKey(ctx, admin, "other_app", "backend")
	if err != nil {
		t.Fatal(err)
	}
	adminToken, _, err := o.CreateOperator(ctx, admin, "admin", ops.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	viewerToken, _, err := o.CreateOperator(ctx, admin, "vic", ops.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.RecordHeartbeat(ctx, s.Store, ops.HeartbeatProcessor, map[string]any{"handled": 2, "relayed": 3}); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(console.New(o, console.Config{Dev: true, Logger: testenv.Logger()}).Handler())
	t.Cleanup(srv.Close)

	shots := os.Getenv("CONSOLE_SCREENSHOTS") // make console-screenshots sets docs/console
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, node, "--test", "--test-reporter=spec", "console.test.mjs")
	cmd.Env = append(os.Environ(),
		"CONSOLE_URL="+srv.URL, "CHROMIUM="+chromium, "SCREENSHOT_DIR="+shots,
		"ADMIN_TOKEN="+adminToken, "VIEWER_TOKEN="+viewerToken,
		"ORDER_MERCHANT_ID=CONSOLE-1", fmt.Sprintf("CASE_ID=%d", caseID), fmt.Sprintf("DEAD_TASK_ID=%d", deadTask),
		"KEY_ID="+key.ID, "OTHER_KEY_ID="+other.ID)
	out, err := cmd.CombinedOutput()
	t.Logf("console.test.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}

	// What the browser did is in the database and on the streams.
	r, err := s.Store.Refund(ctx, refundID)
	if err != nil || r.Status != pay.StatusSucceeded {
		t.Fatalf("refund after the resolution: %s, %v", r.Status, err)
	}
	var found bool
	for _, m := range s.Results(t, pay.StreamRefundResults) {
		found = found || (m["refund_order_id"] == refundID && m["new_status"] == "succeeded")
	}
	if !found {
		t.Fatal("no refund_results message for the resolved refund")
	}
	task, err := s.Store.Task(ctx, deadTask)
	if err != nil || task.State != "queued" || task.Attempts != 0 {
		t.Fatalf("dead task after the redrive: %+v, %v", task, err)
	}
	entries, _ := s.Streams.Client().XRange(ctx, s.Streams.Name(streams.TaskStream), "-", "+").Result()
	var republished bool
	for _, e := range entries {
		republished = republished || e.Values["task_id"] == fmt.Sprint(deadTask)
	}
	if !republished {
		t.Fatal("the redriven task is not on the task stream")
	}
	k, err := s.Store.APIKeyByID(ctx, key.ID)
	if err != nil || k.RevokedAt == nil {
		t.Fatalf("key after revoke: %+v, %v", k, err)
	}
	if k, _ := s.Store.APIKeyByID(ctx, other.ID); k.RevokedAt != nil {
		t.Fatal("the viewer revoked a key")
	}
	rows, err := o.AuditLog(ctx, admin, ops.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range rows {
		seen[e.Action+"/"+e.Outcome+"/"+e.Actor] = true
	}
	for _, want := range []string{"review.resolve/ok/admin", "dlq.redrive/ok/admin", "key.revoke/ok/admin", "key.revoke/refused/vic", "session.login/refused/unknown"} {
		if !seen[want] {
			t.Errorf("no audit row %s in %v", want, seen)
		}
	}
	if os.Getenv("CONSOLE_SCREENSHOTS") != "" {
		files, _ := filepath.Glob(filepath.Join(shots, "*.png"))
		t.Logf("screenshots: %s", strings.Join(files, " "))
	}
}

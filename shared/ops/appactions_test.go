package ops_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/webhooks"
)

const testWebhookKey = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"

// TestAppAndWebhookActions: each per-app action checks the role, writes its audit row, and no
// audit row holds a Redis password or a signing secret.
func TestAppAndWebhookActions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	hooks, err := webhooks.New(e.store.Pool(), webhooks.Config{SecretKey: testWebhookKey, AllowLoopback: true}, testenv.Logger())
	if err != nil {
		t.Fatal(err)
	}
	e.ops.WithWebhooks(hooks)
	rc := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer rc.Close()
	var secrets []string // every secret handed out; none may reach the audit log

	// Apps: admin only.
	_, err = e.ops.CreateApp(ctx, viewer, "shop")
	errKind(t, err, pay.KindForbidden)
	_, err = e.ops.CreateApp(ctx, operator, "shop")
	errKind(t, err, pay.KindForbidden)
	c, err := e.ops.CreateApp(ctx, admin, "shop")
	if err != nil || c.RedisPassword == "" || !c.ACLApplied {
		t.Fatalf("create app %+v, %v", c, err)
	}
	secrets = append(secrets, c.RedisPassword)
	a := e.audit(t, "app.create", "app:shop")
	if a.Outcome != "ok" || a.Actor != admin.Name || !strings.Contains(string(a.After), `"redis_user":"`+c.RedisUser+`"`) {
		t.Fatalf("app.create audit %+v", a)
	}
	_, err = e.ops.RotateAppRedisPassword(ctx, viewer, "shop", true)
	errKind(t, err, pay.KindForbidden)
	c2, err := e.ops.RotateAppRedisPassword(ctx, admin, "shop", true)
	if err != nil || c2.RedisPassword == "" || c2.RedisPassword == c.RedisPassword {
		t.Fatalf("rotate %+v, %v", c2, err)
	}
	secrets = append(secrets, c2.RedisPassword)
	if a := e.audit(t, "app.rotate_redis_password", "app:shop"); a.Outcome != "ok" || !strings.Contains(string(a.After), `"keep_old_password":true`) {
		t.Fatalf("rotate audit %+v", a)
	}

	// Webhook endpoints: admin only.
	_, _, err = e.ops.AddWebhook(ctx, operator, "shop", rc.URL+"/hook", nil)
	errKind(t, err, pay.KindForbidden)
	ep, secret, err := e.ops.AddWebhook(ctx, admin, "shop", rc.URL+"/hook", nil)
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("add webhook %+v %q %v", ep, secret, err)
	}
	secrets = append(secrets, secret)
	if a := e.audit(t, "webhook.add", "webhook:"+ep.ID); !strings.Contains(string(a.After), rc.URL+"/hook") {
		t.Fatalf("webhook.add audit %+v", a)
	}
	_, _, err = e.ops.RotateWebhookSecret(ctx, viewer, ep.ID)
	errKind(t, err, pay.KindForbidden)
	secret2, until, err := e.ops.RotateWebhookSecret(ctx, admin, ep.ID)
	if err != nil || secret2 == secret || until.IsZero() {
		t.Fatalf("rotate secret %q %v %v", secret2, until, err)
	}
	secrets = append(secrets, secret2)
	if a := e.audit(t, "webhook.rotate_secret", "webhook:"+ep.ID); !strings.Contains(string(a.After), "previous_secret_signs_until") {
		t.Fatalf("rotate_secret audit %+v", a)
	}
	_, _, err = e.ops.RotateWebhookSecret(ctx, admin, "we_nope")
	errKind(t, err, pay.KindNotFound)

	// Redelivery: operators may, viewers may not.
	eventID := uuid.NewString()
	if _, err := e.store.Pool().Exec(ctx, `INSERT INTO outbox (event_id, stream, fields) VALUES ($1, 'payment_results', $2)`, eventID,
		map[string]string{"event_id": eventID, "event_type": "payment_status_changed", "app_id": "shop", "payment_order_id": "o1", "seq": "1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := hooks.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = e.ops.RedeliverWebhook(ctx, viewer, eventID, "", "receiver lost it")
	errKind(t, err, pay.KindForbidden)
	_, err = e.ops.RedeliverWebhook(ctx, operator, uuid.NewString(), "", "x")
	errKind(t, err, pay.KindNotFound)
	n, err := e.ops.RedeliverWebhook(ctx, operator, eventID, "", "receiver lost it")
	if err != nil || n != 1 {
		t.Fatalf("redeliver %d, %v", n, err)
	}
	if a := e.audit(t, "webhook.redeliver", "event:"+eventID); a.Actor != operator.Name || a.Note != "receiver lost it" || !strings.Contains(string(a.After), `"queued":1`) {
		t.Fatalf("redeliver audit %+v", a)
	}
	if s := e.scalar(t, `SELECT state FROM webhook_deliveries WHERE event_id::text = $1`, eventID); s != "pending" {
		t.Fatalf("delivery after redeliver: %s", s)
	}

	_, err = e.ops.DisableWebhook(ctx, operator, ep.ID, "x")
	errKind(t, err, pay.KindForbidden)
	got, err := e.ops.DisableWebhook(ctx, admin, ep.ID, "receiver retired")
	if err != nil || got.DisabledAt == nil || got.DisabledReason != "disabled by an operator: receiver retired" {
		t.Fatalf("disable webhook %+v, %v", got, err)
	}
	_, err = e.ops.DisableWebhook(ctx, admin, ep.ID, "again")
	errKind(t, err, pay.KindConflict)
	if a := e.audit(t, "webhook.disable", "webhook:"+ep.ID); !strings.Contains(string(a.After), "disabled_at") || strings.Contains(string(a.Before), "disabled_at") {
		t.Fatalf("webhook.disable audit before %s after %s", a.Before, a.After)
	}

	// Disabling the app.
	_, err = e.ops.DisableApp(ctx, viewer, "shop", "x")
	errKind(t, err, pay.KindForbidden)
	_, err = e.ops.DisableApp(ctx, admin, "nope", "x")
	errKind(t, err, pay.KindNotFound)
	applied, err := e.ops.DisableApp(ctx, admin, "shop", "contract ended")
	if err != nil || !applied {
		t.Fatalf("disable app %v, %v", applied, err)
	}
	if a := e.audit(t, "app.disable", "app:shop"); a.Note != "contract ended" || !strings.Contains(string(a.Before), `"disabled_at":null`) || strings.Contains(string(a.After), `"disabled_at":null`) {
		t.Fatalf("app.disable audit before %s after %s", a.Before, a.After)
	}
	apps, err := e.ops.Apps(ctx, viewer)
	if err != nil || len(apps) != 1 || apps[0].DisabledAt == nil || apps[0].RedisUser != c.RedisUser ||
		len(apps[0].Webhooks) != 1 || apps[0].Webhooks[0].DisabledAt == nil {
		t.Fatalf("apps %+v, %v", apps, err)
	}

	// Enabling it again.
	_, err = e.ops.EnableApp(ctx, viewer, "shop", "x")
	errKind(t, err, pay.KindForbidden)
	applied, err = e.ops.EnableApp(ctx, admin, "shop", "contract renewed")
	if err != nil || !applied {
		t.Fatalf("enable app %v, %v", applied, err)
	}
	if a := e.audit(t, "app.enable", "app:shop"); a.Note != "contract renewed" || strings.Contains(string(a.Before), `"disabled_at":null`) || !strings.Contains(string(a.After), `"disabled_at":null`) {
		t.Fatalf("app.enable audit before %s after %s", a.Before, a.After)
	}
	_, err = e.ops.EnableApp(ctx, admin, "shop", "again")
	errKind(t, err, pay.KindConflict)
	if apps, err = e.ops.Apps(ctx, viewer); err != nil || len(apps) != 1 || apps[0].DisabledAt != nil {
		t.Fatalf("apps after enable %+v, %v", apps, err)
	}

	// Refusals were audited; no row holds a secret.
	rows, err := e.ops.AuditLog(ctx, admin, ops.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, r := range rows {
		if r.Outcome == "refused" {
			refused++
		}
		all := string(r.Before) + string(r.After) + r.Note + r.Subject
		for _, s := range secrets {
			if strings.Contains(all, s) {
				t.Fatalf("audit row %d (%s) holds a secret: %s", r.ID, r.Action, all)
			}
		}
		if strings.Contains(all, "whsec_") || strings.Contains(strings.ToLower(all), "password\":\"") {
			t.Fatalf("audit row %d (%s) looks like it holds a secret: %s", r.ID, r.Action, all)
		}
	}
	if refused != 9 {
		t.Errorf("%d refusals audited; want 9", refused)
	}
}

package ops

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/webhooks"
)

// The per-app actions (result-stream Redis users, webhook endpoints). Secrets — a Redis password,
// a signing secret — are returned to the caller once and never written to the audit log: its
// before/after hold only facts anyone may read (user and stream names, URLs, states, times).

// WithWebhooks gives the operations layer the webhook engine, for the webhook actions and for
// listing an app's endpoints. Without it those actions fail and apps list no endpoints.
func (o *Ops) WithWebhooks(w *webhooks.Webhooks) *Ops {
	o.hooks = w
	return o
}

var errNoWebhooks = errors.New("the operations layer was built without the webhook engine")

// WebhookEndpoint is an endpoint's record (never its secret).
type WebhookEndpoint struct {
	ID             string     `json:"id"`
	AppID          string     `json:"app_id"`
	URL            string     `json:"url"`
	Events         []string   `json:"events"`
	FailingSince   *time.Time `json:"failing_since,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
}

func endpointOf(e webhooks.Endpoint) WebhookEndpoint {
	return WebhookEndpoint{ID: e.ID, AppID: e.AppID, URL: e.URL, Events: e.Events, FailingSince: e.FailingSince,
		DisabledAt: e.DisabledAt, DisabledReason: e.DisabledReason, CreatedAt: e.CreatedAt}
}

// appFacts is what the audit log records of an app's credentials: no password.
type appFacts struct {
	AppID         string     `json:"app_id"`
	RedisUser     string     `json:"redis_user"`
	PaymentStream string     `json:"payment_stream,omitempty"`
	RefundStream  string     `json:"refund_stream,omitempty"`
	ACLApplied    *bool      `json:"acl_applied,omitempty"`
	KeepOld       *bool      `json:"keep_old_password,omitempty"`
	DisabledAt    *time.Time `json:"disabled_at"`
}

func credFacts(c service.AppCredentials) appFacts {
	applied := c.ACLApplied
	return appFacts{AppID: c.AppID, RedisUser: c.RedisUser, PaymentStream: c.PaymentStream, RefundStream: c.RefundStream, ACLApplied: &applied}
}

// CreateApp registers an app and its Redis user (admin). The credentials, password included, are
// returned once.
func (o *Ops) CreateApp(ctx context.Context, a Actor, appID string) (service.AppCredentials, error) {
	if err := o.authorize(ctx, a, RoleAdmin, "app.create", "app:"+appID); err != nil {
		return service.AppCredentials{}, err
	}
	c, err := o.svc.CreateApp(ctx, appID)
	if err != nil {
		return c, err
	}
	note := ""
	if !c.ACLApplied {
		note = "Redis refused ACL SETUSER: the operator creates the user by hand"
	}
	return c, o.audit(ctx, a, "app.create", "app:"+appID, "ok", nil, credFacts(c), note)
}

// RotateAppRedisPassword gives an app's Redis user a new password (admin), returned once; with
// keepOld the old one keeps working until the next rotation.
func (o *Ops) RotateAppRedisPassword(ctx context.Context, a Actor, appID string, keepOld bool) (service.AppCredentials, error) {
	if err := o.authorize(ctx, a, RoleAdmin, "app.rotate_redis_password", "app:"+appID); err != nil {
		return service.AppCredentials{}, err
	}
	c, err := o.svc.RotateAppRedisPassword(ctx, appID, keepOld)
	if err != nil {
		return c, err
	}
	f := credFacts(c)
	f.KeepOld = &keepOld
	return c, o.audit(ctx, a, "app.rotate_redis_password", "app:"+appID, "ok", nil, f, "")
}

// DisableApp stops an app (admin): keys refused, Redis user off, no more webhooks. It returns
// whether the Redis user could be switched off here.
func (o *Ops) DisableApp(ctx context.Context, a Actor, appID, note string) (aclApplied bool, err error) {
	subject := "app:" + appID
	if err := o.authorize(ctx, a, RoleAdmin, "app.disable", subject); err != nil {
		return false, err
	}
	var before appFacts
	if app, err := o.store.App(ctx, appID); err == nil {
		user, _ := o.svc.AppRedisUser(ctx, appID)
		before = appFacts{AppID: appID, RedisUser: user, DisabledAt: app.DisabledAt}
	}
	applied, err := o.svc.DisableApp(ctx, appID)
	if err != nil {
		return false, err
	}
	after := before
	if app, err := o.store.App(ctx, appID); err == nil {
		after.DisabledAt = app.DisabledAt
	}
	after.ACLApplied = &applied
	return applied, o.audit(ctx, a, "app.disable", subject, "ok", before, after, note)
}

// EnableApp takes back DisableApp (admin): keys work again, Redis user on, webhooks for results
// from now on (results of the disabled time are on the app's streams, without webhooks).
func (o *Ops) EnableApp(ctx context.Context, a Actor, appID, note string) (aclApplied bool, err error) {
	subject := "app:" + appID
	if err := o.authorize(ctx, a, RoleAdmin, "app.enable", subject); err != nil {
		return false, err
	}
	app, err := o.store.App(ctx, appID)
	if err == nil && app.DisabledAt == nil {
		return false, pay.Errorf(pay.KindConflict, "not_disabled", "app %s is not disabled", appID)
	}
	user, _ := o.svc.AppRedisUser(ctx, appID)
	before := appFacts{AppID: appID, RedisUser: user, DisabledAt: app.DisabledAt}
	applied, err := o.svc.EnableApp(ctx, appID)
	if err != nil {
		return false, err
	}
	after := before
	after.DisabledAt = nil
	after.ACLApplied = &applied
	return applied, o.audit(ctx, a, "app.enable", subject, "ok", before, after, note)
}

// AppEndpoints lists webhook endpoints (all apps when appID is empty); any operator may read them.
func (o *Ops) AppEndpoints(ctx context.Context, a Actor, appID string) ([]WebhookEndpoint, error) {
	if err := o.authorize(ctx, a, RoleViewer, "webhook.list", ""); err != nil {
		return nil, err
	}
	return o.endpoints(ctx, appID)
}

func (o *Ops) endpoints(ctx context.Context, appID string) ([]WebhookEndpoint, error) {
	if o.hooks == nil {
		return nil, nil
	}
	list, err := o.hooks.Endpoints(ctx, appID)
	if err != nil {
		return nil, err
	}
	out := make([]WebhookEndpoint, len(list))
	for i, e := range list {
		out[i] = endpointOf(e)
	}
	return out, nil
}

// AddWebhook registers a webhook endpoint for an app (admin); its signing secret is returned once.
func (o *Ops) AddWebhook(ctx context.Context, a Actor, appID, url string, events []string) (WebhookEndpoint, string, error) {
	if err := o.authorize(ctx, a, RoleAdmin, "webhook.add", "app:"+appID); err != nil {
		return WebhookEndpoint{}, "", err
	}
	if o.hooks == nil {
		return WebhookEndpoint{}, "", errNoWebhooks
	}
	ep, secret, err := o.hooks.AddEndpoint(ctx, appID, url, events)
	if err != nil {
		return WebhookEndpoint{}, "", err
	}
	e := endpointOf(ep)
	return e, secret, o.audit(ctx, a, "webhook.add", "webhook:"+ep.ID, "ok", nil, e, "")
}

func (o *Ops) endpoint(ctx context.Context, id string) (WebhookEndpoint, error) {
	if o.hooks == nil {
		return WebhookEndpoint{}, errNoWebhooks
	}
	ep, err := o.hooks.Endpoint(ctx, id)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	return endpointOf(ep), nil
}

// DisableWebhook stops deliveries to an endpoint (admin); its pending deliveries are failed.
func (o *Ops) DisableWebhook(ctx context.Context, a Actor, id, note string) (WebhookEndpoint, error) {
	subject := "webhook:" + id
	if err := o.authorize(ctx, a, RoleAdmin, "webhook.disable", subject); err != nil {
		return WebhookEndpoint{}, err
	}
	before, err := o.endpoint(ctx, id)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	if before.DisabledAt != nil {
		return before, pay.Errorf(pay.KindConflict, "already_disabled", "endpoint %s was disabled at %s", id, pay.FormatTime(*before.DisabledAt))
	}
	reason := "disabled by an operator"
	if n := strings.TrimSpace(note); n != "" {
		reason += ": " + n
	}
	if err := o.hooks.DisableEndpoint(ctx, id, reason); err != nil {
		return WebhookEndpoint{}, err
	}
	after, err := o.endpoint(ctx, id)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	return after, o.audit(ctx, a, "webhook.disable", subject, "ok", before, after, note)
}

// RotateWebhookSecret gives an endpoint a new signing secret (admin), returned once; the old one
// also signs until the returned time.
func (o *Ops) RotateWebhookSecret(ctx context.Context, a Actor, id string) (string, time.Time, error) {
	subject := "webhook:" + id
	if err := o.authorize(ctx, a, RoleAdmin, "webhook.rotate_secret", subject); err != nil {
		return "", time.Time{}, err
	}
	if o.hooks == nil {
		return "", time.Time{}, errNoWebhooks
	}
	secret, until, err := o.hooks.RotateSecret(ctx, id)
	if err != nil {
		return "", until, err
	}
	after := map[string]any{"endpoint_id": id, "previous_secret_signs_until": until}
	return secret, until, o.audit(ctx, a, "webhook.rotate_secret", subject, "ok", nil, after, "")
}

// RedeliverWebhook queues an event again for every endpoint it went to, or only endpointID
// (operator: like republishing results, it re-sends what happened and changes no money state).
func (o *Ops) RedeliverWebhook(ctx context.Context, a Actor, eventID, endpointID, note string) (int, error) {
	subject := "event:" + eventID
	if err := o.authorize(ctx, a, RoleOperator, "webhook.redeliver", subject); err != nil {
		return 0, err
	}
	if o.hooks == nil {
		return 0, errNoWebhooks
	}
	n, err := o.hooks.Redeliver(ctx, eventID, endpointID)
	if err != nil {
		return 0, err
	}
	after := map[string]any{"event_id": eventID, "endpoint_id": endpointID, "queued": n}
	return n, o.audit(ctx, a, "webhook.redeliver", subject, "ok", nil, after, note)
}

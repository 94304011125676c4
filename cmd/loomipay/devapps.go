package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/service"
)

// forwardFlags collects --forward-webhooks APP=URL.
type forwardFlags map[string]string

func (f *forwardFlags) String() string { return fmt.Sprint(map[string]string(*f)) }

func (f *forwardFlags) Set(v string) error {
	app, url, ok := strings.Cut(v, "=")
	if !ok || app == "" || url == "" {
		return errors.New("want APP=URL")
	}
	if *f == nil {
		*f = forwardFlags{}
	}
	(*f)[app] = url
	return nil
}

// devApp is what `loomipay dev` prints for one app.
type devApp struct {
	id       string
	key      string // "" when the app already had a key
	creds    service.AppCredentials
	hookURL  string
	hookID   string
	hookSecr string
}

// setUpApps makes each app ready to try locally: the app and a first API key (once), a Redis
// user for its own streams with a fresh password (every start, so the printed one works), and a
// webhook endpoint with a fresh secret for each --forward-webhooks.
func setUpApps(ctx context.Context, deps *config.Deps, ids []string, forwards forwardFlags) ([]devApp, error) {
	var out []devApp
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		a := devApp{id: id}
		var err error
		if _, err = deps.Store.App(ctx, id); errors.Is(err, pay.ErrNotFound) {
			a.creds, err = deps.Service.CreateApp(ctx, id)
		} else if err == nil {
			a.creds, err = deps.Service.RotateAppRedisPassword(ctx, id, false)
		}
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", id, err)
		}
		if a.key, err = firstKey(ctx, deps, id); err != nil {
			return nil, err
		}
		if url, ok := forwards[id]; ok {
			if err := forward(ctx, deps, &a, url); err != nil {
				return nil, fmt.Errorf("forward webhooks of %s: %w", id, err)
			}
		}
		out = append(out, a)
	}
	for app := range forwards {
		if !strings.Contains(","+strings.Join(ids, ",")+",", ","+app+",") {
			return nil, fmt.Errorf("--forward-webhooks names %s, which is not in --apps", app)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--apps names no app")
	}
	return out, nil
}

// firstKey creates an app's first key, or returns "" if it already has an active one.
func firstKey(ctx context.Context, deps *config.Deps, app string) (string, error) {
	existing, err := deps.Store.APIKeys(ctx, app)
	if err != nil {
		return "", err
	}
	for _, k := range existing {
		if k.RevokedAt == nil {
			return "", nil
		}
	}
	key, _, err := deps.Service.CreateAPIKey(ctx, app, "created by loomipay dev")
	return key, err
}

// forward reuses the app's endpoint for url (with a new secret) or adds one.
func forward(ctx context.Context, deps *config.Deps, a *devApp, url string) error {
	eps, err := deps.Webhooks.Endpoints(ctx, a.id)
	if err != nil {
		return err
	}
	a.hookURL = url
	for _, e := range eps {
		if e.DisabledAt == nil && e.URL == url {
			a.hookID = e.ID
			a.hookSecr, _, err = deps.Webhooks.RotateSecret(ctx, e.ID)
			return err
		}
	}
	ep, secret, err := deps.Webhooks.AddEndpoint(ctx, a.id, url, nil)
	a.hookID, a.hookSecr = ep.ID, secret
	return err
}

// appRedisURL is redisURL (the service's) as the app's own user: same server and database, the
// app's user and password.
func appRedisURL(redisURL, user, password string) string {
	u, err := url.Parse(redisURL)
	if err != nil {
		return ""
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

func (a devApp) print(w io.Writer, redisURL string) {
	fmt.Fprintf(w, "\nApp %s\n", a.id)
	if a.key != "" {
		fmt.Fprintf(w, "API key for app %s (shown once; create more with 'loomipay keys create --local --app-id %s'):\n  %s\n", a.id, a.id, a.key)
	} else {
		fmt.Fprintf(w, "App %s already has a key (printed on first start); create another with 'loomipay keys create --local --app-id %s'.\n", a.id, a.id)
	}
	c := a.creds
	fmt.Fprintf(w, "  result streams   %s  %s\n", c.PaymentStream, c.RefundStream)
	if c.ACLApplied {
		appURL := appRedisURL(redisURL, c.RedisUser, c.RedisPassword)
		fmt.Fprintf(w, "  Redis user       %s\n  Redis password   %s   (new on every start of loomipay dev)\n", c.RedisUser, c.RedisPassword)
		fmt.Fprintf(w, "  Redis URL        %s   (the app's own: its user, the stack's database)\n", appURL)
		fmt.Fprintf(w, "  read them        redis-cli -u '%s' XGROUP CREATE '%s' %s 0 MKSTREAM\n", appURL, c.PaymentStream, a.id)
		fmt.Fprintf(w, "                   redis-cli -u '%s' XREADGROUP GROUP %s c1 COUNT 10 STREAMS '%s' '>'\n", appURL, a.id, c.PaymentStream)
	} else {
		fmt.Fprintf(w, "  Redis user       none: this Redis does not take ACL users (%v); read the streams without a user\n", c.ACLUnsupported)
	}
	if a.hookURL != "" {
		fmt.Fprintf(w, "  webhooks         %s → %s\n  signing secret   %s   (new on every start)\n", a.hookID, a.hookURL, a.hookSecr)
	}
}

// loadOrCreateHexKey keeps a random 32-byte key in path (hex), for WEBHOOK_SECRET_KEY locally.
func loadOrCreateHexKey(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	key := hex.EncodeToString(b)
	return key, os.WriteFile(path, []byte(key+"\n"), 0o600)
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/service"
)

// withDeps opens the dependencies (DATABASE_URL is required, as for every operator command),
// applies migrations, and runs fn.
func withDeps(ctx context.Context, log *slog.Logger, fn func(*config.Deps) error) error {
	deps, cleanup, err := openDeps(ctx, log, false)
	if err != nil {
		return err
	}
	defer cleanup()
	if _, err := deps.Store.Migrate(ctx); err != nil {
		return err
	}
	return fn(deps)
}

// appsCommands are the app commands: an app and its Redis user, which reads the app's own
// result streams.
func appsCommands() []command {
	appCmd := func(name, summary string, fn func(ctx context.Context, e env, app string) error, flags ...func(fs *flag.FlagSet)) command {
		return command{name: name, args: "APP", summary: summary, setup: func(fs *flag.FlagSet, e env) action {
			for _, f := range flags {
				f(fs)
			}
			return func(ctx context.Context, args []string) error {
				if err := wantArgs(args, 1, "an APP"); err != nil {
					return err
				}
				return fn(ctx, e, args[0])
			}
		}}
	}
	var keepOld bool
	return []command{
		appCmd("apps create", "register an app and its Redis user (its password printed once)", func(ctx context.Context, e env, app string) error {
			return withDeps(ctx, e.log, func(d *config.Deps) error {
				c, err := d.Ops().CreateApp(ctx, cliActor(), app) // audited
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "created app %s; its Redis password is shown once, store it now\n", app)
				printCredentials(e.stdout, e.stderr, c)
				return nil
			})
		}),
		appsList(),
		appCmd("apps rotate-redis-password", "a new password for the app's Redis user (--keep-old: the old one keeps working)", func(ctx context.Context, e env, app string) error {
			return withDeps(ctx, e.log, func(d *config.Deps) error {
				c, err := d.Ops().RotateAppRedisPassword(ctx, cliActor(), app, keepOld) // audited
				if err != nil {
					return err
				}
				if keepOld {
					fmt.Fprintf(e.stderr, "new Redis password for %s; the old one works until the next rotation\n", app)
				} else {
					fmt.Fprintf(e.stderr, "new Redis password for %s; the old one no longer works (open connections stay)\n", app)
				}
				printCredentials(e.stdout, e.stderr, c)
				return nil
			})
		}, func(fs *flag.FlagSet) {
			fs.BoolVar(&keepOld, "keep-old", false, "the old password keeps working until the next rotation")
		}),
		appCmd("apps disable", "refuse the app's API keys, switch its Redis user off, stop its webhooks", func(ctx context.Context, e env, app string) error {
			return withDeps(ctx, e.log, func(d *config.Deps) error {
				applied, err := d.Ops().DisableApp(ctx, cliActor(), app, "") // audited
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "disabled app %s: its API keys stop working within API_KEY_CACHE_TTL, no more webhooks\n", app)
				user, _ := d.Service.AppRedisUser(ctx, app)
				if applied {
					fmt.Fprintf(e.stderr, "its Redis user %s is off and its connections closed\n", user)
				} else {
					fmt.Fprintf(e.stderr, "this Redis does not take ACL commands: switch the user %s off yourself (ElastiCache: aws elasticache modify-user --user-id … --access-string 'off …')\n", user)
				}
				return nil
			})
		}),
		appCmd("apps enable", "take a disable back: keys, Redis user and webhooks work again", func(ctx context.Context, e env, app string) error {
			return withDeps(ctx, e.log, func(d *config.Deps) error {
				applied, err := d.Ops().EnableApp(ctx, cliActor(), app, "") // audited
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "enabled app %s: its API keys work again within API_KEY_CACHE_TTL; webhooks for results from now on\n", app)
				user, _ := d.Service.AppRedisUser(ctx, app)
				if applied {
					fmt.Fprintf(e.stderr, "its Redis user %s is on again, with the passwords it had\n", user)
				} else {
					fmt.Fprintf(e.stderr, "this Redis does not take ACL commands: switch the user %s on yourself (ElastiCache: aws elasticache modify-user --user-id … --access-string 'on …')\n", user)
				}
				return nil
			})
		}),
	}
}

// printCredentials prints an app's stream credentials on stdout (KEY=value lines, for scripts),
// and, when Redis would not take the user, what the operator must create by hand.
func printCredentials(stdout, stderr io.Writer, c service.AppCredentials) {
	fmt.Fprintf(stdout, "REDIS_USER=%s\nREDIS_PASSWORD=%s\nPAYMENT_RESULTS_STREAM=%s\nREFUND_RESULTS_STREAM=%s\n",
		c.RedisUser, c.RedisPassword, c.PaymentStream, c.RefundStream)
	if c.ACLApplied {
		return
	}
	fmt.Fprintf(stderr, `
WARNING: the Redis user was NOT created: %v
Create it yourself with this password and access string. On ElastiCache (RBAC):
  aws elasticache create-user --engine redis --user-id %s --user-name %s \
    --passwords '<REDIS_PASSWORD above>' --access-string '%s'
  aws elasticache modify-user-group --user-group-id <your group> --user-ids-to-add %s
(on a rotation: aws elasticache modify-user --user-id %s --passwords '<new>' [--passwords '<old>' to keep it])
`, c.ACLUnsupported, elastiCacheUserID(c.RedisUser), c.RedisUser, c.AccessString, elastiCacheUserID(c.RedisUser), elastiCacheUserID(c.RedisUser))
}

// elastiCacheUserID: ElastiCache user ids take letters, digits and hyphens only.
func elastiCacheUserID(user string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, user)
}

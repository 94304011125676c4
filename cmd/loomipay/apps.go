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

const appsUsage = `usage:
  loomipay apps create APP                              register an app and its Redis user (password printed once)
  loomipay apps list                                    apps and their keys (the operations layer)
  loomipay apps rotate-redis-password APP [--keep-old]  new Redis password (--keep-old: the old one keeps working)
  loomipay apps disable APP                             refuse its API keys, switch its Redis user off, stop its webhooks
  loomipay apps enable APP                              take a disable back: keys, Redis user and webhooks work again
`

func apps(ctx context.Context, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, appsUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("apps "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	keepOld := fs.Bool("keep-old", false, "rotate-redis-password: the old password keeps working until the next rotation")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return errUsage
	}
	oneApp := func() (string, error) { return onlyArg(pos, stderr, appsUsage) }
	switch args[0] {
	case "create":
		app, err := oneApp()
		if err != nil {
			return err
		}
		return withDeps(ctx, log, func(d *config.Deps) error {
			c, err := d.Ops().CreateApp(ctx, cliActor(), app) // audited
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "created app %s; its Redis password is shown once, store it now\n", app)
			printCredentials(stdout, stderr, c)
			return nil
		})
	case "rotate-redis-password":
		app, err := oneApp()
		if err != nil {
			return err
		}
		return withDeps(ctx, log, func(d *config.Deps) error {
			c, err := d.Ops().RotateAppRedisPassword(ctx, cliActor(), app, *keepOld) // audited
			if err != nil {
				return err
			}
			if *keepOld {
				fmt.Fprintf(stderr, "new Redis password for %s; the old one works until the next rotation\n", app)
			} else {
				fmt.Fprintf(stderr, "new Redis password for %s; the old one no longer works (open connections stay)\n", app)
			}
			printCredentials(stdout, stderr, c)
			return nil
		})
	case "disable":
		app, err := oneApp()
		if err != nil {
			return err
		}
		return withDeps(ctx, log, func(d *config.Deps) error {
			applied, err := d.Ops().DisableApp(ctx, cliActor(), app, "") // audited
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "disabled app %s: its API keys stop working within API_KEY_CACHE_TTL, no more webhooks\n", app)
			user, _ := d.Service.AppRedisUser(ctx, app)
			if applied {
				fmt.Fprintf(stderr, "its Redis user %s is off and its connections closed\n", user)
			} else {
				fmt.Fprintf(stderr, "this Redis does not take ACL commands: switch the user %s off yourself (ElastiCache: aws elasticache modify-user --user-id … --access-string 'off …')\n", user)
			}
			return nil
		})
	case "enable":
		app, err := oneApp()
		if err != nil {
			return err
		}
		return withDeps(ctx, log, func(d *config.Deps) error {
			applied, err := d.Ops().EnableApp(ctx, cliActor(), app, "") // audited
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "enabled app %s: its API keys work again within API_KEY_CACHE_TTL; webhooks for results from now on\n", app)
			user, _ := d.Service.AppRedisUser(ctx, app)
			if applied {
				fmt.Fprintf(stderr, "its Redis user %s is on again, with the passwords it had\n", user)
			} else {
				fmt.Fprintf(stderr, "this Redis does not take ACL commands: switch the user %s on yourself (ElastiCache: aws elasticache modify-user --user-id … --access-string 'on …')\n", user)
			}
			return nil
		})
	default:
		fmt.Fprintf(stderr, "unknown apps command %q\n%s", args[0], appsUsage)
		return errUsage
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

// onlyArg is the one positional argument a subcommand takes, or the usage and errUsage.
func onlyArg(pos []string, stderr io.Writer, usage string) (string, error) {
	if len(pos) != 1 {
		fmt.Fprint(stderr, usage)
		return "", errUsage
	}
	return pos[0], nil
}

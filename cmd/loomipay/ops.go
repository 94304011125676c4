package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/loomipay/loomipay/internal/devstack"
	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/worker"
)

// errNoDatabase is what an operator command says when it does not know which database to act on.
var errNoDatabase = errors.New("DATABASE_URL (or DATABASE_URL_SECRET_ARN) is not set: operator commands act on the database it names; set it, or pass --local to use (or start) the local development PostgreSQL")

// openDeps loads the configuration and connects to the database DATABASE_URL names. Only with
// local (--local) does it find or start local servers the way `loomipay dev` does: a shell
// that lost its DATABASE_URL must not write keys into the wrong database.
func openDeps(ctx context.Context, log *slog.Logger, local bool) (*config.Deps, func(), error) {
	cfg, err := config.Load(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.Validate(false); err != nil {
		return nil, nil, err
	}
	noDB := os.Getenv("DATABASE_URL") == "" && os.Getenv("DATABASE_URL_SECRET_ARN") == ""
	if noDB && !local {
		return nil, nil, errNoDatabase
	}
	stops := []func(){}
	cleanup := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	opts := devstack.Options{Logger: log}
	if noDB {
		url, stop, err := devstack.Postgres(ctx, opts)
		if err != nil {
			return nil, nil, err
		}
		cfg.DatabaseURL, stops = url, append(stops, stop)
	}
	if local && os.Getenv("REDIS_URL") == "" && os.Getenv("REDIS_URL_SECRET_ARN") == "" {
		url, stop, err := devstack.Redis(ctx, opts)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		cfg.RedisURL, stops = url, append(stops, stop)
	}
	deps, err := config.Open(ctx, cfg)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return deps, func() { deps.Close(); cleanup() }, nil
}

func migrateCommand() command {
	return command{name: "migrate", summary: "apply the database migrations",
		setup: func(fs *flag.FlagSet, e env) action {
			local := localFlag(fs)
			return func(ctx context.Context, _ []string) error {
				deps, cleanup, err := openDeps(ctx, e.log, *local)
				if err != nil {
					return err
				}
				defer cleanup()
				n, err := deps.Store.Migrate(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "applied %d migration(s)\n", n)
				return nil
			}
		}}
}

// withKeysDeps opens the database for a keys command (--local or DATABASE_URL) and migrates it.
func withKeysDeps(ctx context.Context, e env, local bool, fn func(*config.Deps) error) error {
	deps, cleanup, err := openDeps(ctx, e.log, local)
	if err != nil {
		return err
	}
	defer cleanup()
	if _, err := deps.Store.Migrate(ctx); err != nil {
		return err
	}
	return fn(deps)
}

func keysCommands() []command {
	return []command{
		{name: "keys create", summary: "issue an API key for an app; the key alone is printed on stdout, once",
			setup: func(fs *flag.FlagSet, e env) action {
				appID := fs.String("app-id", "", "the `app` the key belongs to (required)")
				label := fs.String("label", "", "a note to recognise the key by")
				local := localFlag(fs)
				return func(ctx context.Context, _ []string) error {
					if *appID == "" {
						return &argsError{"--app-id is required"}
					}
					return withKeysDeps(ctx, e, *local, func(deps *config.Deps) error {
						key, rec, err := deps.Ops().CreateKey(ctx, cliActor(), *appID, *label) // audited
						if err != nil {
							return err
						}
						fmt.Fprintf(e.stderr, "created key %s for app %s; it is shown once, store it now\n", rec.ID, rec.AppID)
						fmt.Fprintln(e.stdout, key)
						return nil
					})
				}
			}},
		{name: "keys list", summary: "list API keys: ids, apps, state, labels (never the keys)",
			setup: func(fs *flag.FlagSet, e env) action {
				appID := fs.String("app-id", "", "only this `app`'s keys")
				local := localFlag(fs)
				return func(ctx context.Context, _ []string) error {
					return withKeysDeps(ctx, e, *local, func(deps *config.Deps) error {
						list, err := deps.Store.APIKeys(ctx, *appID)
						if err != nil {
							return err
						}
						tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
						fmt.Fprintln(tw, "KEY_ID\tAPP_ID\tSTATE\tCREATED\tLABEL")
						for _, k := range list {
							state := "active"
							if k.RevokedAt != nil {
								state = "revoked " + k.RevokedAt.UTC().Format(time.RFC3339)
							}
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.AppID, state, k.CreatedAt.UTC().Format(time.RFC3339), k.Label)
						}
						return tw.Flush()
					})
				}
			}},
		{name: "keys revoke", args: "KEY_ID", summary: "revoke an API key (within API_KEY_CACHE_TTL)",
			setup: func(fs *flag.FlagSet, e env) action {
				local := localFlag(fs)
				return func(ctx context.Context, args []string) error {
					if err := wantArgs(args, 1, "KEY_ID"); err != nil {
						return err
					}
					return withKeysDeps(ctx, e, *local, func(deps *config.Deps) error {
						if _, err := deps.Ops().RevokeKey(ctx, cliActor(), args[0], ""); err != nil { // audited
							return err
						}
						fmt.Fprintf(e.stderr, "revoked key %s (takes effect within API_KEY_CACHE_TTL)\n", args[0])
						return nil
					})
				}
			}},
	}
}

func processCommand() command {
	return command{name: "process", summary: "run the processor once: drain tasks, sweep, reconcile, relay, make apps' Redis users again",
		setup: func(fs *flag.FlagSet, e env) action {
			local := localFlag(fs)
			return func(ctx context.Context, _ []string) error {
				deps, cleanup, err := openDeps(ctx, e.log, *local)
				if err != nil {
					return err
				}
				defer cleanup()
				proc, err := worker.New(deps)
				if err != nil {
					return err
				}
				st, err := proc.RunOnce(ctx)
				fmt.Fprintf(e.stderr, "%+v\n", st)
				return err
			}
		}}
}

// localFlag declares --local, the explicit choice of the local development database.
func localFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("local", false, "without DATABASE_URL, use (or start) the local development PostgreSQL and Redis")
}

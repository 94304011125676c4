package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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

func migrate(ctx context.Context, args []string, stderr io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	local := localFlag(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	deps, cleanup, err := openDeps(ctx, log, *local)
	if err != nil {
		return err
	}
	defer cleanup()
	n, err := deps.Store.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "applied %d migration(s)\n", n)
	return nil
}

func keys(ctx context.Context, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: loomipay keys create --app-id APP [--label TEXT] | list [--app-id APP] | revoke KEY_ID\n")
		return errUsage
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	appID := fs.String("app-id", "", "the app the key belongs to")
	label := fs.String("label", "", "a note to recognise the key by (create)")
	local := localFlag(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	deps, cleanup, err := openDeps(ctx, log, *local)
	if err != nil {
		return err
	}
	defer cleanup()
	if _, err := deps.Store.Migrate(ctx); err != nil {
		return err
	}
	switch args[0] {
	case "create":
		if *appID == "" {
			fmt.Fprintln(stderr, "keys create: --app-id is required")
			return errUsage
		}
		key, rec, err := deps.Ops().CreateKey(ctx, cliActor(), *appID, *label) // audited
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created key %s for app %s; it is shown once, store it now\n", rec.ID, rec.AppID)
		fmt.Fprintln(stdout, key)
		return nil
	case "list":
		list, err := deps.Store.APIKeys(ctx, *appID)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY_ID\tAPP_ID\tSTATE\tCREATED\tLABEL")
		for _, k := range list {
			state := "active"
			if k.RevokedAt != nil {
				state = "revoked " + k.RevokedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.AppID, state, k.CreatedAt.UTC().Format(time.RFC3339), k.Label)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "usage: loomipay keys revoke KEY_ID")
			return errUsage
		}
		_, err := deps.Ops().RevokeKey(ctx, cliActor(), fs.Arg(0), "") // audited
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked key %s (takes effect within API_KEY_CACHE_TTL)\n", fs.Arg(0))
		return nil
	default:
		fmt.Fprintf(stderr, "unknown keys command %q\n", args[0])
		return errUsage
	}
}

func process(ctx context.Context, args []string, stderr io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("process", flag.ContinueOnError)
	fs.SetOutput(stderr)
	local := localFlag(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	deps, cleanup, err := openDeps(ctx, log, *local)
	if err != nil {
		return err
	}
	defer cleanup()
	proc, err := worker.New(deps)
	if err != nil {
		return err
	}
	st, err := proc.RunOnce(ctx)
	fmt.Fprintf(stderr, "%+v\n", st)
	return err
}

// localFlag declares --local, the explicit choice of the local development database.
func localFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("local", false, "without DATABASE_URL, use (or start) the local development PostgreSQL and Redis")
}

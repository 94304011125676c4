// Command loomipay is Loomi Pay's operator and local-run tool:
//
//	loomipay migrate                         apply database migrations
//	loomipay keys create --app-id APP        issue an API key (printed alone on stdout)
//	loomipay keys list [--app-id APP]        list keys (never the keys themselves)
//	loomipay keys revoke KEY_ID              revoke a key
//	loomipay process                         run the processor once (drain, sweep, reconcile, relay)
//	loomipay sandbox --merchant-cert FILE    run the Lakala sandbox alone
//	loomipay dev                             the whole stack locally: API, webhook, processor, sandbox
//	loomipay serve                           the API and webhook over HTTP (hosting outside Lambda)
//	loomipay worker                          the processor in a loop (hosting outside Lambda)
//	loomipay apps create|rotate-redis-password|disable   apps and their Redis users
//	loomipay webhooks add|list|disable|rotate-secret|deliveries|redeliver   webhooks to main apps
//	loomipay orders|refunds|reviews|dlq|results|operators|apps|audit …   operator commands
//
// It reads the same environment variables as the Lambda functions (see the README). Operator
// commands need DATABASE_URL, or --local to find or start the local development servers.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: loomipay <command> [flags]

commands:
  migrate                        apply database migrations
  keys create --app-id APP       issue an API key; the key alone is printed on stdout
  keys list [--app-id APP]       list API keys (ids, apps, state; never the keys)
  keys revoke KEY_ID             revoke an API key
  process                        run the processor once: drain tasks, sweep, reconcile, relay
  sandbox --merchant-cert FILE   run the Lakala sandbox alone (see --help)
  dev                            run the whole stack locally (see --help)
  serve                          serve the API and webhook over HTTP, configured like the functions
  worker                         run the processor, configured like the function, until SIGINT/SIGTERM
                                 (it lets the tasks in flight finish within WORKER_STOP_GRACE; twice: at once)
  apps create|rotate-redis-password|disable   apps and the Redis users reading their own result streams
  webhooks add|list|disable|rotate-secret|deliveries|redeliver   signed HTTP webhooks to main apps

Operator commands (migrate, keys, process) act on DATABASE_URL; --local uses the local
development PostgreSQL and Redis instead (found or started).

` + opsUsage

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "loomipay:", err)
		}
		os.Exit(2)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	switch args[0] {
	case "migrate":
		return migrate(ctx, args[1:], stderr, log)
	case "keys":
		return keys(ctx, args[1:], stdout, stderr, log)
	case "process":
		return process(ctx, args[1:], stderr, log)
	case "sandbox":
		return sandboxCmd(ctx, args[1:], stdout, stderr, log)
	case "dev":
		return dev(ctx, args[1:], stdout, stderr)
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "worker":
		return workerCmd(ctx, args[1:], stderr, log)
	case "apps":
		// apps list is the operations layer's; creating, rotating and disabling also manage the
		// app's Redis user.
		if len(args) > 1 && args[1] == "list" {
			return opsCommand(ctx, args[0], args[1:], stdout, stderr, log)
		}
		return apps(ctx, args[1:], stdout, stderr, log)
	case "webhooks":
		return webhooksCmd(ctx, args[1:], stdout, stderr, log)
	case "orders", "refunds", "reviews", "dlq", "results", "operators", "audit":
		return opsCommand(ctx, args[0], args[1:], stdout, stderr, log)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
		return errUsage
	}
}

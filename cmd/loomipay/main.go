// Command loomipay is Loomi Pay's operator and local-run tool: the local stack (dev, sandbox),
// hosting outside Lambda (serve, worker), and the operator commands (migrate, keys, apps,
// merchants, webhooks, orders, refunds, reviews, dlq, results, operators, audit). `loomipay --help` lists
// them; `loomipay <command> --help` shows a command's flags.
//
// It reads the same environment variables as the Lambda functions. Operator commands need
// DATABASE_URL, or --local (migrate, keys, process) to find or start the local development
// servers.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

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

// errUsage means the command line was wrong; what was wrong and the usage are printed already.
var errUsage = errors.New("usage")

// commands lists every command, in the order `loomipay --help` shows them.
func commands() []command {
	var cmds []command
	cmds = append(cmds, devCommand(), sandboxCommand(), serveCommand(), workerCommand(), processCommand(), migrateCommand())
	cmds = append(cmds, keysCommands()...)
	cmds = append(cmds, appsCommands()...)
	cmds = append(cmds, merchantsCommands()...)
	cmds = append(cmds, webhooksCommands()...)
	cmds = append(cmds, opsCommands()...)
	return cmds
}

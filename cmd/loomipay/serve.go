package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with --pprof
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/worker"
)

// openConfigured loads, validates and connects exactly as the Lambda functions do: no local
// fallbacks, since serve and worker run where the service is hosted.
func openConfigured(ctx context.Context, forProcessor bool) (*config.Deps, error) {
	cfg, err := config.Load(ctx)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(forProcessor); err != nil {
		return nil, err
	}
	if cfg.DatabaseURL == "" {
		return nil, errNoDatabase
	}
	return config.Open(ctx, cfg)
}

// serveCommand runs the API, the webhook and the console over HTTP, configured like the Lambda
// functions, until SIGINT or SIGTERM; requests under way get up to --shutdown-grace to finish.
func serveCommand() command {
	return command{name: "serve", summary: "serve the API, the webhook and the console over HTTP, configured like the functions",
		about: `Every route of the Lambda functions, with the same checks (hosting outside Lambda: a container,
a VM). Reads the functions' environment variables; needs DATABASE_URL. Stops on SIGTERM.`,
		setup: func(fs *flag.FlagSet, e env) action {
			addr := fs.String("addr", "127.0.0.1:3000", "listen `address` (in a container: :3000)")
			grace := fs.Duration("shutdown-grace", 10*time.Second, "how long requests under way may finish after SIGTERM")
			pprofAddr := fs.String("pprof", "", "if set (e.g. 127.0.0.1:6060), serve Go's profiler at /debug/pprof/ on this `address`")
			clientIPHeader := fs.String("client-ip-header", "", "behind a load balancer: the `header` it sets to the client's address (X-Forwarded-For; its last address is used), for the throttle of failed logins and API keys")
			return func(ctx context.Context, _ []string) error {
				return serve(ctx, e.stdout, *addr, *grace, *pprofAddr, *clientIPHeader)
			}
		}}
}

func serve(ctx context.Context, stdout io.Writer, addr string, grace time.Duration, pprofAddr, clientIPHeader string) error {
	servePprof(pprofAddr)
	deps, err := openConfigured(ctx, false)
	if err != nil {
		return err
	}
	defer deps.Close()
	deps.ClientIPHeader = clientIPHeader
	ln, err := listen(addr, "--addr", "the API and webhook")
	if err != nil {
		return err
	}
	srv := newServer(serviceHandler(deps, false))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	deps.Log.Info("serving the API, the webhook and the console", "addr", ln.Addr().String())
	fmt.Fprintf(stdout, "Loomi Pay API, webhook and console on http://%s\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// servePprof serves Go's profiler at addr, when set, for diagnosing a running process; it is
// never on the service's own port. net/http/pprof registers on the default mux, which serves
// nothing else here.
func servePprof(addr string) {
	if addr == "" {
		return
	}
	go func() { _ = http.ListenAndServe(addr, nil) }() //nolint:gosec // a diagnostic port the operator chose
}

// workerCommand runs the processor in a loop, configured like the processor function, until
// SIGINT or SIGTERM. Several workers may run at once: each is its own consumer of the task stream.
//
// The first signal (ctx ends) stops it gracefully: it claims no new task and lets the tasks in
// flight finish, for up to WORKER_STOP_GRACE; then it cancels what still runs. A second signal
// cancels at once. A stop that had to cancel work is an error (a non-zero exit status).
func workerCommand() command {
	return command{name: "worker", summary: "run the processor, configured like the function, until SIGINT/SIGTERM",
		about: `The first SIGINT or SIGTERM lets the tasks in flight finish within WORKER_STOP_GRACE; a second
stops at once. Reads the processor function's environment variables; needs DATABASE_URL.`,
		setup: func(_ *flag.FlagSet, e env) action {
			return func(ctx context.Context, _ []string) error { return workerRun(ctx, e.log) }
		}}
}

func workerRun(ctx context.Context, log *slog.Logger) error {
	deps, err := openConfigured(ctx, true)
	if err != nil {
		return err
	}
	defer deps.Close()
	proc, err := worker.New(deps)
	if err != nil {
		return err
	}
	// The run outlives ctx, which the first signal ends: only the grace running out, or a second
	// signal, cancels the work in flight.
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopAtOnce := cancelOnSecondSignal(cancel, log)
	defer stopAtOnce()
	grace := deps.Config.WorkerStopGrace
	log.Info("processor running; SIGINT or SIGTERM stops it, letting the tasks in flight finish (a second signal stops at once)",
		"stop_grace", grace.String())
	st, err := proc.RunUntil(work, ctx.Done(), grace)
	log.Info("processor stopped", "handled", st.Handled, "retried", st.Retried, "dead", st.Dead)
	return err
}

// cancelOnSecondSignal calls cancel at the second SIGINT or SIGTERM this process receives from
// now on (the first one begins the graceful stop, through main's context). The returned function
// stops listening.
func cancelOnSecondSignal(cancel context.CancelFunc, log *slog.Logger) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for n := 0; ; {
			select {
			case sig := <-sigs:
				if n++; n == 2 {
					log.Warn("second signal: stopping at once, cancelling the work in flight", "signal", sig.String())
					cancel()
					return
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/loomipay/loomipay/internal/devstack"
	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/sandbox"
	"github.com/loomipay/loomipay/shared/worker"
)

const demoApp = "demo_app"

// devVposID is the vpos_id the local stack's merchant uses with its sandbox (the sample in Lakala's
// special_create documentation).
const devVposID = "587305941625155584"

// devOptions are loomipay dev's flags.
type devOptions struct {
	addr, sandboxAddr, lakalaMode, stateDir, pprofAddr, apps string
	forwards                                                 forwardFlags
}

// devCommand runs the whole stack in one process: the API, webhook and console (the very
// handlers the Lambda functions serve), the processor loop, and the Lakala sandbox, on local
// Postgres and Redis. With --lakala env it uses the Lakala the environment configures (e.g.
// Lakala's test environment) instead of starting the sandbox.
func devCommand() command {
	return command{name: "dev", summary: "run the whole stack locally: API, webhook, console, processor, Lakala sandbox",
		about: `PostgreSQL: DATABASE_URL, else a private server in --state-dir (or the local one); Redis: REDIS_URL,
else 127.0.0.1:6379, else a private redis-server. Prints each app's API key (first start), its
Redis user and password (every start), its own Redis URL and a console operator token.`,
		setup: func(fs *flag.FlagSet, e env) action {
			var o devOptions
			fs.StringVar(&o.addr, "addr", "127.0.0.1:3000", "`address` of the API, the webhook and the console")
			fs.StringVar(&o.sandboxAddr, "sandbox-addr", "127.0.0.1:3100", "`address` of the Lakala sandbox")
			fs.StringVar(&o.lakalaMode, "lakala", "sandbox", "sandbox: start the local Lakala sandbox; env: use the Lakala the LAKALA_* variables configure")
			fs.StringVar(&o.stateDir, "state-dir", ".localdev", "`directory` of the local keys and the private PostgreSQL (git-ignored)")
			fs.StringVar(&o.pprofAddr, "pprof", "", "if set (e.g. 127.0.0.1:6060), serve Go's profiler at /debug/pprof/ on this `address`")
			fs.StringVar(&o.apps, "apps", demoApp, "comma-separated `apps` to set up: each gets an API key (first start), a Redis user for its own result streams, and its credentials printed")
			fs.Var(&o.forwards, "forward-webhooks", "`APP=URL`: deliver APP's results as signed webhooks to URL (e.g. a local server of the app); repeatable")
			return func(ctx context.Context, _ []string) error { return dev(ctx, o, e.stdout, e.stderr) }
		}}
}

func dev(ctx context.Context, o devOptions, stdout, stderr io.Writer) error {
	if o.lakalaMode != "sandbox" && o.lakalaMode != "env" {
		return &argsError{fmt.Sprintf("--lakala must be sandbox or env, not %q", o.lakalaMode)}
	}
	useSandbox := o.lakalaMode == "sandbox"
	cfg, err := config.Load(ctx)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	// Listen first, so a busy port is reported before anything is started.
	apiLn, err := listen(o.addr, "--addr", "the API and webhook")
	if err != nil {
		return err
	}
	defer apiLn.Close()
	var sandboxLn net.Listener
	if useSandbox {
		if sandboxLn, err = listen(o.sandboxAddr, "--sandbox-addr", "the Lakala sandbox"); err != nil {
			return err
		}
		defer sandboxLn.Close()
	}
	apiURL := "http://" + apiLn.Addr().String()

	opts := devstack.Options{StateDir: o.stateDir, Logger: log}
	if os.Getenv("DATABASE_URL") == "" {
		url, stop, err := devstack.Postgres(ctx, opts)
		if err != nil {
			return err
		}
		defer stop()
		cfg.DatabaseURL = url
	} else if err := devstack.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	if os.Getenv("REDIS_URL") == "" {
		url, stop, err := devstack.Redis(ctx, opts)
		if err != nil {
			return err
		}
		defer stop()
		cfg.RedisURL = url
	}

	var sb *sandbox.Sandbox
	lakalaLine := ""
	if useSandbox {
		// The merchant key is kept in the state dir, and the sandbox keeps its state (cashier
		// orders, trades, refunds, its numbers, notifications on their way, its platform key)
		// beside the stack's database, so a restart goes on with what was under way: an order
		// paid before it can be refunded after it, and its cashier page still opens.
		merchantKey, err := loadOrCreateKey(filepath.Join(o.stateDir, "merchant-key.pem"))
		if err != nil {
			return err
		}
		sandboxURL := "http://" + sandboxLn.Addr().String()
		if cfg.LakalaVposID == "" {
			// The sandbox requires vpos_id as Lakala does; this one is the sample of Lakala's docs.
			cfg.LakalaVposID = devVposID
		}
		sbStore, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{MaxConns: 4, Logger: log})
		if err != nil {
			return err
		}
		defer sbStore.Close()
		sb, err = sandbox.New(ctx, sandbox.Config{
			DB: sbStore.Pool(), Schema: sandbox.SchemaFor(cfg.DatabaseURL),
			Merchants: []sandbox.Merchant{{AppID: cfg.LakalaAppID, SerialNo: cfg.LakalaSerialNo, PublicKey: &merchantKey.PublicKey,
				MerchantNo: cfg.LakalaMerchantNo, TermNo: cfg.LakalaTermNo, VposID: cfg.LakalaVposID}},
			PublicURL: sandboxURL, Logger: log,
		})
		if err != nil {
			return err
		}
		defer sb.Close()
		// The pessimistic reading of what nobody could confirm about Lakala, as the tests play it.
		sb.SetFaults(sandbox.Pessimistic())
		cfg.LakalaBaseURL = sandboxURL
		cfg.LakalaPrivateKeyPEM = string(lakala.MarshalPrivateKeyPEM(merchantKey))
		cfg.LakalaPlatformCertPEM = string(sb.PlatformCertPEM())
		cfg.LakalaNotifyURL = apiURL + "/webhooks/lakala"
		lakalaLine = fmt.Sprintf("  Lakala sandbox    %s   (cashier pages at /counter/…, fault knobs at /sandbox/faults; its state in PostgreSQL, schema %s)\n",
			sandboxURL, sandbox.SchemaFor(cfg.DatabaseURL))
	} else {
		if cfg.LakalaNotifyURL == "" {
			// Lakala cannot reach a laptop's loopback address: without a public URL (a tunnel)
			// no notification arrives, and the reconciler settles orders by query instead.
			cfg.LakalaNotifyURL = apiURL + "/webhooks/lakala"
			log.Warn("LAKALA_NOTIFY_URL is not set: Lakala's notifications cannot reach this machine; orders settle by query after RECONCILE_AFTER",
				"notify_url", cfg.LakalaNotifyURL, "reconcile_after", cfg.ReconcileAfter.String())
		}
		lakalaLine = fmt.Sprintf("  Lakala            %s   (from LAKALA_BASE_URL; appid %s)\n", cfg.LakalaBaseURL, cfg.LakalaAppID)
	}
	// Locally an app's webhook receiver runs on this machine.
	cfg.WebhookAllowLoopback = true
	if cfg.WebhookSecretKey == "" {
		var err error
		if cfg.WebhookSecretKey, err = loadOrCreateHexKey(filepath.Join(o.stateDir, "webhook-secret-key")); err != nil {
			return err
		}
	}
	deps, err := config.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer deps.Close()
	if _, err := deps.Store.Migrate(ctx); err != nil {
		return err
	}
	proc, err := worker.New(deps)
	if err != nil {
		return err
	}

	appsSetup, err := setUpApps(ctx, deps, strings.Split(o.apps, ","), o.forwards)
	if err != nil {
		return err
	}
	opToken, err := devOperator(ctx, deps)
	if err != nil {
		return err
	}

	servePprof(o.pprofAddr)
	type served struct {
		srv *http.Server
		ln  net.Listener
	}
	list := []served{{newServer(serviceHandler(deps, true)), apiLn}}
	if sb != nil {
		list = append(list, served{newServer(sb.Handler()), sandboxLn})
	}
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	for _, s := range list {
		wg.Go(func() {
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		})
	}
	procCtx, stopProc := context.WithCancel(ctx)
	wg.Go(func() {
		if _, err := proc.Run(procCtx); err != nil {
			errc <- err
		}
	})

	fmt.Fprintf(stdout, `
Loomi Pay is running locally.
  API and webhook   %s   (POST /api/v1/payment-orders, GET /api/v1/payment-orders/{id}?app_id=…, /api/v1/refund-orders, POST /webhooks/lakala)
%s  PostgreSQL        %s
  Redis             %s
  processor         running (drains payment_tasks, reconciles, relays results)
`, apiURL, lakalaLine, redactPassword(cfg.DatabaseURL), redactPassword(cfg.RedisURL))
	for _, a := range appsSetup {
		a.print(stdout, cfg.RedisURL)
	}
	if opToken != "" {
		fmt.Fprintf(stdout, "\nConsole %s/console — operator token for admin 'dev' (shown once; more with 'loomipay operators create'):\n  %s\n", apiURL, opToken)
	} else {
		fmt.Fprintf(stdout, "\nConsole %s/console (log in with an operator token; 'loomipay operators create' makes one).\n", apiURL)
	}
	// The example's order id is fresh on every start, so pasting it never collides with an
	// order of an earlier run or the docs' ORDER_1 (409 order_conflict).
	fmt.Fprintf(stdout, "\nTry:\n  curl -s -X POST %s/api/v1/payment-orders -H 'Authorization: Bearer <key>' -H 'Content-Type: application/json' \\\n    -d '{\"app_id\":\"%s\",\"merchant_order_id\":\"DEMO_%d\",\"amount\":10000,\"order_type\":\"payment\",\"subject\":\"VIP\"}'\n\nCtrl-C stops everything.\n", apiURL, appsSetup[0].id, time.Now().Unix())

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stopProc()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range list {
		_ = s.srv.Shutdown(shutdown)
	}
	wg.Wait()
	return err
}

// listen opens addr, naming the flag that moves it when the port is taken.
func listen(addr, flagName, what string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%s cannot listen on %s: the port is already in use (another loomipay dev?); choose another with %s, e.g. %s 127.0.0.1:0 for any free port", what, addr, flagName, flagName)
	}
	if err != nil {
		return nil, fmt.Errorf("%s cannot listen on %s (%s): %w", what, addr, flagName, err)
	}
	return ln, nil
}

// newServer is an HTTP server with every timeout set: a client that sends its headers or body
// slowly, or never reads the answer, holds a goroutine and a descriptor only this long.
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

func loadOrCreateKey(path string) (*rsa.PrivateKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		return lakala.ParsePrivateKey(b)
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return k, os.WriteFile(path, lakala.MarshalPrivateKeyPEM(k), 0o600)
}

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
	_ "net/http/pprof" // served only with --pprof
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/loomipay/loomipay/internal/devstack"
	"github.com/loomipay/loomipay/internal/sandbox"
	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/httpapi"
	"github.com/loomipay/loomipay/shared/lakala"
)

const demoApp = "demo_app"

// dev runs the whole stack in one process: the API and webhook (the very handlers the Lambda
// functions serve), the processor loop, and the Lakala sandbox, on local Postgres and Redis.
func dev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:3000", "address of the API and webhook")
	sandboxAddr := fs.String("sandbox-addr", "127.0.0.1:3100", "address of the Lakala sandbox")
	stateDir := fs.String("state-dir", ".localdev", "where local keys and a private PostgreSQL live (git-ignored)")
	pprofAddr := fs.String("pprof", "", "if set (e.g. 127.0.0.1:6060), serve Go's profiler at /debug/pprof/ there")
	appList := fs.String("apps", demoApp, "comma-separated apps to set up: each gets an API key (first start), a Redis user for its own result streams, and its credentials printed")
	var forwards forwardFlags
	fs.Var(&forwards, "forward-webhooks", "APP=URL: deliver APP's results as signed webhooks to URL (e.g. a local server of the app); repeatable")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg, err := config.Load(ctx)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	opts := devstack.Options{StateDir: *stateDir, Logger: log}
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

	// The merchant and sandbox platform keys are kept in the state dir so that restarts keep
	// working with cashier orders and notifications already under way.
	merchantKey, err := loadOrCreateKey(filepath.Join(*stateDir, "merchant-key.pem"))
	if err != nil {
		return err
	}
	platformKey, err := loadOrCreateKey(filepath.Join(*stateDir, "sandbox-platform-key.pem"))
	if err != nil {
		return err
	}
	sandboxLn, err := net.Listen("tcp", *sandboxAddr)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	apiLn, err := net.Listen("tcp", *addr)
	if err != nil {
		sandboxLn.Close()
		return fmt.Errorf("api: %w", err)
	}
	sandboxURL := "http://" + sandboxLn.Addr().String()
	apiURL := "http://" + apiLn.Addr().String()

	sb, err := sandbox.New(sandbox.Config{
		MerchantPublicKey: &merchantKey.PublicKey, PlatformKey: platformKey,
		AppID: cfg.LakalaAppID, SerialNo: cfg.LakalaSerialNo, PublicURL: sandboxURL, Logger: log,
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
	// Locally an app's webhook receiver runs on this machine.
	cfg.WebhookAllowLoopback = true
	if cfg.WebhookSecretKey == "" {
		if cfg.WebhookSecretKey, err = loadOrCreateHexKey(filepath.Join(*stateDir, "webhook-secret-key")); err != nil {
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
	proc, err := deps.Processor()
	if err != nil {
		return err
	}

	appsSetup, err := setUpApps(ctx, deps, strings.Split(*appList, ","), forwards)
	if err != nil {
		return err
	}
	opToken, err := devOperator(ctx, deps)
	if err != nil {
		return err
	}

	if *pprofAddr != "" {
		// net/http/pprof registers on the default mux, which serves nothing else here.
		go func() { _ = http.ListenAndServe(*pprofAddr, nil) }() //nolint:gosec // local profiling only
	}
	servers := []*http.Server{
		{Handler: sb.Handler(), ReadHeaderTimeout: 10 * time.Second},
		{Handler: withConsole(deps, httpapi.New(deps.Service).WithPayments(proc.Payments()).Handler()), ReadHeaderTimeout: 10 * time.Second},
	}
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	for i, ln := range []net.Listener{sandboxLn, apiLn} {
		wg.Go(func() {
			if err := servers[i].Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
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
  Lakala sandbox    %s   (cashier pages at /counter/…, fault knobs at /sandbox/faults)
  PostgreSQL        %s
  Redis             %s
  processor         running (drains payment_tasks, reconciles, relays results)
`, apiURL, sandboxURL, redactPassword(cfg.DatabaseURL), redactPassword(cfg.RedisURL))
	for _, a := range appsSetup {
		a.print(stdout)
	}
	if opToken != "" {
		fmt.Fprintf(stdout, "\nConsole %s/console — operator token for admin 'dev' (shown once; more with 'loomipay operators create'):\n  %s\n", apiURL, opToken)
	} else {
		fmt.Fprintf(stdout, "\nConsole %s/console (log in with an operator token; 'loomipay operators create' makes one).\n", apiURL)
	}
	fmt.Fprintf(stdout, "\nTry:\n  curl -s -X POST %s/api/v1/payment-orders -H 'Authorization: Bearer <key>' -H 'Content-Type: application/json' \\\n    -d '{\"app_id\":\"%s\",\"merchant_order_id\":\"ORDER_1\",\"amount\":10000,\"order_type\":\"payment\",\"subject\":\"VIP\"}'\n\nCtrl-C stops everything.\n", apiURL, appsSetup[0].id)

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stopProc()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(shutdown)
	}
	wg.Wait()
	return err
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

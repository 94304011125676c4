package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/loomipay/loomipay/internal/devstack"
	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/sandbox"
)

// sandboxCommand runs the Lakala sandbox alone, for a service deployed elsewhere or a test that
// runs the functions as separate processes.
func sandboxCommand() command {
	return command{name: "sandbox", summary: "run the Lakala sandbox alone (cashier pages, notifications, fault knobs)",
		about: `The service under test points LAKALA_BASE_URL at it and LAKALA_PLATFORM_CERT at --platform-cert-out.
It plays the merchant the LAKALA_* variables name (LAKALA_APP_ID, LAKALA_SERIAL_NO, LAKALA_MERCHANT_NO,
LAKALA_TERM_NO, LAKALA_VPOS_ID), with --merchant-cert's key; more with POST /sandbox/merchants. Its state
is kept in PostgreSQL (DATABASE_URL, else the local development one), in --schema: a restart goes on with
the cashier orders, refunds and notifications of before.`,
		setup: func(fs *flag.FlagSet, e env) action {
			addr := fs.String("addr", "127.0.0.1:3100", "listen `address`")
			merchantCert := fs.String("merchant-cert", "", "PEM certificate or public key of the merchant (verifies the service's requests); required")
			certOut := fs.String("platform-cert-out", "", "write the sandbox's platform certificate (LAKALA_PLATFORM_CERT) to this `file`")
			vposID := fs.String("require-vpos-id", "", "refuse a cashier order that does not carry this `vpos_id` (default LAKALA_VPOS_ID), as Lakala does")
			schema := fs.String("schema", "", "PostgreSQL `schema` of the sandbox's state (default lakala_sandbox, or <search_path>_lakala when DATABASE_URL sets one)")
			return func(ctx context.Context, _ []string) error {
				return sandboxRun(ctx, e, *addr, *merchantCert, *certOut, *vposID, *schema)
			}
		}}
}

func sandboxRun(ctx context.Context, e env, addr, merchantCert, certOut, vposID, schema string) error {
	stdout, log := e.stdout, e.log
	if merchantCert == "" {
		return &argsError{"--merchant-cert is required"}
	}
	pemBytes, err := os.ReadFile(merchantCert)
	if err != nil {
		return err
	}
	merchantPub, err := lakala.ParsePublicKey(pemBytes)
	if err != nil {
		return fmt.Errorf("--merchant-cert: %w", err)
	}
	cfg, err := config.Load(ctx)
	if err != nil {
		return err
	}
	if vposID == "" {
		vposID = cfg.LakalaVposID
	}
	if cfg.DatabaseURL == "" {
		url, stop, err := devstack.Postgres(ctx, devstack.Options{Logger: log})
		if err != nil {
			return err
		}
		defer stop()
		cfg.DatabaseURL = url
	}
	if schema == "" {
		schema = sandbox.SchemaFor(cfg.DatabaseURL)
	}
	store, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{MaxConns: 4, Logger: log})
	if err != nil {
		return err
	}
	defer store.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	sb, err := sandbox.New(ctx, sandbox.Config{
		DB: store.Pool(), Schema: schema, PublicURL: "http://" + ln.Addr().String(), Logger: log,
		Merchants: []sandbox.Merchant{{AppID: cfg.LakalaAppID, SerialNo: cfg.LakalaSerialNo, PublicKey: merchantPub,
			MerchantNo: cfg.LakalaMerchantNo, TermNo: cfg.LakalaTermNo, VposID: vposID}},
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer sb.Close()
	sb.SetFaults(sandbox.Pessimistic()) // as the tests play it; PUT /sandbox/faults {} for the optimistic reading
	if certOut != "" {
		if err := os.WriteFile(certOut, sb.PlatformCertPEM(), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "Lakala sandbox listening on http://%s (state in PostgreSQL, schema %s)\n", ln.Addr(), schema)
	srv := &http.Server{Handler: sb.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// redactPassword hides a password in a URL shown to a person.
func redactPassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

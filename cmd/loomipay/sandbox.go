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

	"github.com/loomipay/loomipay/internal/sandbox"
	"github.com/loomipay/loomipay/shared/lakala"
)

// sandboxCommand runs the Lakala sandbox alone, for a service deployed elsewhere or a test that
// runs the functions as separate processes.
func sandboxCommand() command {
	return command{name: "sandbox", summary: "run the Lakala sandbox alone (cashier pages, notifications, fault knobs)",
		about: `The service under test points LAKALA_BASE_URL at it and LAKALA_PLATFORM_CERT at --platform-cert-out.`,
		setup: func(fs *flag.FlagSet, e env) action {
			addr := fs.String("addr", "127.0.0.1:3100", "listen `address`")
			merchantCert := fs.String("merchant-cert", "", "PEM certificate or public key of the merchant (verifies the service's requests); required")
			platformKeyFile := fs.String("platform-key", "", "PEM private key the sandbox signs with; generated and written here if the `file` does not exist")
			certOut := fs.String("platform-cert-out", "", "write the sandbox's platform certificate (LAKALA_PLATFORM_CERT) to this `file`")
			vposID := fs.String("require-vpos-id", "", "refuse a cashier order that does not carry this `vpos_id` (LAKALA_VPOS_ID), as Lakala does")
			return func(ctx context.Context, _ []string) error {
				return sandboxRun(ctx, e, *addr, *merchantCert, *platformKeyFile, *certOut, *vposID)
			}
		}}
}

func sandboxRun(ctx context.Context, e env, addr, merchantCert, platformKeyFile, certOut, vposID string) error {
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
	cfg := sandbox.Config{MerchantPublicKey: merchantPub, Logger: log, RequireVposID: vposID}
	if platformKeyFile != "" {
		if cfg.PlatformKey, err = loadOrCreateKey(platformKeyFile); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	cfg.PublicURL = "http://" + ln.Addr().String()
	sb, err := sandbox.New(cfg)
	if err != nil {
		return err
	}
	defer sb.Close()
	sb.SetFaults(sandbox.Pessimistic()) // as the tests play it; PUT /sandbox/faults {} for the optimistic reading
	if certOut != "" {
		if err := os.WriteFile(certOut, sb.PlatformCertPEM(), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "Lakala sandbox listening on %s\n", cfg.PublicURL)
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

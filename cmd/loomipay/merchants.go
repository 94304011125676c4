package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/secrets"
)

// merchantsCommands are the merchant commands: Lakala's identities for money, the app each is
// bound to, key rotations. Keys and certificates are given by reference (a Secrets Manager ARN, or
// file:PATH for the local stack), never as values.
func merchantsCommands() []command {
	return []command{merchantsAdd(), merchantsList(), merchantsShow(), merchantsRotateKey(), merchantsBind(), merchantsSandboxRegister()}
}

const refHelp = "a Secrets Manager secret's ARN (named under loomipay/<stage>/merchants/), or file:PATH with STAGE=dev"

func merchantsAdd() command {
	return opsCmd("merchants add", "ID", "add a merchant: its Lakala identity and references to its key and Lakala's certificates", func(fs *flag.FlagSet) opsRun {
		var in ops.NewMerchant
		fs.StringVar(&in.LakalaAppID, "appid", "", "Lakala `appid` issued to the merchant (required)")
		fs.StringVar(&in.SerialNo, "serial-no", "", "`serial` number of the merchant's certificate, as issued (required)")
		fs.StringVar(&in.MerchantNo, "merchant-no", "", "Lakala `merchant_no` (required)")
		fs.StringVar(&in.TermNo, "term-no", "", "Lakala `term_no` (required)")
		fs.StringVar(&in.VposID, "vpos-id", "", "`vpos_id` sent with every cashier order (required outside STAGE=dev)")
		fs.StringVar(&in.PrivateKeyRef, "private-key", "", "`reference` to the merchant's private key (PEM): "+refHelp+" (required)")
		fs.StringVar(&in.PlatformCertRef, "platform-cert", "", "`reference` to Lakala's platform certificate (PEM) (required)")
		fs.StringVar(&in.NotifyCertRef, "notify-cert", "", "`reference` to Lakala's notification certificate, if it gave a separate one")
		return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error {
			if err := wantArgs(args, 1, "the merchant's ID (yours to choose, e.g. shop-cn)"); err != nil {
				return err
			}
			in.ID = args[0]
			m, err := o.AddMerchant(ctx, a, in) // audited
			if err != nil {
				return err
			}
			fmt.Fprintf(out.err, "added merchant %s; bind apps to it with: loomipay merchants bind %s --app APP\n", m.ID, m.ID)
			return printMerchant(out, m)
		}
	})
}

func merchantsList() command {
	return opsCmd("merchants list", "", "the merchants, the apps bound to each and their orders", func(fs *flag.FlagSet) opsRun {
		return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, _ []string) error {
			ms, err := o.Merchants(ctx, a)
			if err != nil {
				return err
			}
			return out.print(ms, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "MERCHANT\tMERCHANT_NO\tTERM_NO\tAPPID\tSERIAL_NO\tKEY_VERSION\tORDERS\tAPPS")
				for _, m := range ms {
					id := m.ID
					if m.Configured {
						id += " (LAKALA_*)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", id, m.MerchantNo, m.TermNo, m.LakalaAppID, m.SerialNo, m.KeyVersion, m.Orders,
						orDash(strings.Join(m.Apps, " ")))
				}
			})
		}
	})
}

func merchantsShow() command {
	return opsCmd("merchants show", "ID", "one merchant: its identity, its references (never a key), its apps", func(fs *flag.FlagSet) opsRun {
		return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error {
			if err := wantArgs(args, 1, "a merchant ID"); err != nil {
				return err
			}
			m, err := o.Merchant(ctx, a, args[0])
			if err != nil {
				return err
			}
			return printMerchant(out, m)
		}
	})
}

func merchantsRotateKey() command {
	return opsCmd("merchants rotate-key", "ID", "put a merchant's new key in force (Lakala must accept its certificate first)", func(fs *flag.FlagSet) opsRun {
		var k ops.KeyRotation
		fs.StringVar(&k.SerialNo, "serial-no", "", "`serial` number of the new key's certificate (required)")
		fs.StringVar(&k.PrivateKeyRef, "private-key", "", "`reference` to the new private key: "+refHelp+" (required)")
		fs.StringVar(&k.PlatformCertRef, "platform-cert", "", "`reference` to Lakala's platform certificate, if it changes too")
		notify := fs.String("notify-cert", "", "`reference` to Lakala's notification certificate, if it changes too (\"none\": use the platform certificate)")
		note := fs.String("note", "", "why (kept in the audit log)")
		return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error {
			if err := wantArgs(args, 1, "a merchant ID"); err != nil {
				return err
			}
			switch *notify {
			case "":
			case "none":
				k.NotifyCertRef = new(string)
			default:
				k.NotifyCertRef = notify
			}
			m, err := o.RotateMerchantKey(ctx, a, args[0], k, *note) // audited
			if err != nil {
				return err
			}
			fmt.Fprintf(out.err, "merchant %s signs with key version %d (serial %s) within seconds, for every call (orders the old key created too);\n"+
				"keep the old certificate valid at Lakala until the calls under way have ended (a minute or two)\n", m.ID, m.KeyVersion, m.SerialNo)
			return printMerchant(out, m)
		}
	})
}

func merchantsBind() command {
	return opsCmd("merchants bind", "ID", "bind an app to the merchant: its new orders are the merchant's (earlier ones keep theirs)", func(fs *flag.FlagSet) opsRun {
		app := fs.String("app", "", "the `app` to bind (required)")
		note := fs.String("note", "", "why (kept in the audit log)")
		return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error {
			if err := wantArgs(args, 1, "a merchant ID"); err != nil {
				return err
			}
			if *app == "" {
				return &argsError{"--app is required"}
			}
			if err := o.BindApp(ctx, a, *app, args[0], *note); err != nil { // audited
				return err
			}
			fmt.Fprintf(out.err, "app %s is bound to merchant %s: its new orders are signed as it; its earlier orders and their refunds keep their merchant\n", *app, args[0])
			return nil
		}
	})
}

func printMerchant(out cliOut, m ops.Merchant) error {
	return out.print(m, func(tw *tabwriter.Writer) {
		rows := [][2]string{
			{"merchant", m.ID}, {"appid", m.LakalaAppID}, {"serial_no", m.SerialNo}, {"merchant_no", m.MerchantNo}, {"term_no", m.TermNo},
			{"vpos_id", orDash(m.VposID)}, {"private_key", orDash(m.PrivateKeyRef)}, {"platform_cert", orDash(m.PlatformCertRef)},
			{"notify_cert", orDash(m.NotifyCertRef)}, {"key_version", fmt.Sprint(m.KeyVersion)}, {"orders", fmt.Sprint(m.Orders)},
			{"apps", orDash(strings.Join(m.Apps, " "))},
		}
		if m.Configured {
			rows[6][1], rows[7][1] = "LAKALA_PRIVATE_KEY (configured)", "LAKALA_PLATFORM_CERT (configured)"
			rows[8][1] = "LAKALA_NOTIFY_CERT, else the platform certificate (configured)"
		}
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
		}
	})
}

// merchantsSandboxRegister onboards a merchant at a Lakala sandbox (the local stack's, or a sandbox
// stage's): its identity and the public half of the key its reference holds, as Lakala learns a
// merchant's certificate when it onboards it. After a rotation it registers the new certificate
// (the old one stays valid until POST /sandbox/certificates/revoke).
func merchantsSandboxRegister() command {
	return command{name: "merchants sandbox-register", args: "ID", summary: "onboard a merchant at a Lakala sandbox (its identity and the public half of its key)",
		setup: func(fs *flag.FlagSet, e env) action {
			sandboxURL := fs.String("sandbox", "http://127.0.0.1:3100/sandbox", "the sandbox's `URL` (a sandbox stage's SandboxUrl output)")
			return func(ctx context.Context, args []string) error {
				if err := wantArgs(args, 1, "a merchant ID"); err != nil {
					return err
				}
				deps, closeDeps, err := openDeps(ctx, e.log, false)
				if err != nil {
					return err
				}
				defer closeDeps()
				m, err := deps.Store.Merchant(ctx, args[0])
				if errors.Is(err, pay.ErrNotFound) {
					return fmt.Errorf("no merchant %q (loomipay merchants list)", args[0])
				}
				if err != nil {
					return err
				}
				var keyPEM string
				req := map[string]string{"appid": m.LakalaAppID, "serial_no": m.SerialNo, "merchant_no": m.MerchantNo, "term_no": m.TermNo, "vpos_id": m.VposID}
				if m.Configured {
					c := deps.Config
					req = map[string]string{"appid": c.LakalaAppID, "serial_no": c.LakalaSerialNo, "merchant_no": c.LakalaMerchantNo, "term_no": c.LakalaTermNo, "vpos_id": c.LakalaVposID}
					keyPEM = c.LakalaPrivateKeyPEM
				} else {
					refs, err := secrets.NewResolver(ctx)
					if err != nil {
						return err
					}
					if keyPEM, err = refs.Reference(ctx, m.PrivateKeyRef, true); err != nil {
						return err
					}
				}
				key, err := lakala.ParsePrivateKey([]byte(keyPEM))
				if err != nil {
					return fmt.Errorf("merchant %s's private key: %w", m.ID, err)
				}
				der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
				if err != nil {
					return err
				}
				req["certificate"] = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
				body, _ := json.Marshal(req)
				httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*sandboxURL, "/")+"/merchants", bytes.NewReader(body))
				if err != nil {
					return err
				}
				httpReq.Header.Set("Content-Type", "application/json")
				resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(httpReq)
				if err != nil {
					return fmt.Errorf("the sandbox at %s: %w", *sandboxURL, err)
				}
				defer resp.Body.Close()
				answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("the sandbox at %s answered %d: %s", *sandboxURL, resp.StatusCode, strings.TrimSpace(string(answer)))
				}
				fmt.Fprintf(e.stderr, "the sandbox at %s plays merchant %s (merchant_no %s) under appid %s, certificate %s\n",
					*sandboxURL, m.ID, req["merchant_no"], req["appid"], req["serial_no"])
				return nil
			}
		}}
}

package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loomipay/loomipay/shared/config"
)

// webhooksCommands manage the signed HTTP webhooks the processor sends to main apps.
func webhooksCommands() []command {
	return []command{
		{name: "webhooks add", summary: "a new endpoint for an app (--app-id, --url); its signing secret alone on stdout, once",
			setup: func(fs *flag.FlagSet, e env) action {
				appID := fs.String("app-id", "", "the `app` (required)")
				url := fs.String("url", "", "the endpoint's `URL` (required)")
				events := fs.String("events", "", "comma-separated event `types` (default: all)")
				return func(ctx context.Context, _ []string) error {
					if *appID == "" || *url == "" {
						return &argsError{"--app-id and --url are required"}
					}
					var evs []string
					if *events != "" {
						evs = strings.Split(*events, ",")
					}
					return withDeps(ctx, e.log, func(d *config.Deps) error {
						ep, secret, err := d.Ops().AddWebhook(ctx, cliActor(), *appID, *url, evs) // audited
						if err != nil {
							return err
						}
						fmt.Fprintf(e.stderr, "created endpoint %s for app %s: %s (%s); its signing secret is shown once, store it now\n",
							ep.ID, ep.AppID, ep.URL, strings.Join(ep.Events, ", "))
						fmt.Fprintln(e.stdout, secret)
						return nil
					})
				}
			}},
		{name: "webhooks list", summary: "endpoints and their state (never their secrets)",
			setup: func(fs *flag.FlagSet, e env) action {
				appID := fs.String("app-id", "", "only this `app`'s endpoints")
				return func(ctx context.Context, _ []string) error {
					return withDeps(ctx, e.log, func(d *config.Deps) error {
						list, err := d.Ops().AppEndpoints(ctx, cliActor(), *appID) // the operations layer, as the other commands
						if err != nil {
							return err
						}
						tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
						fmt.Fprintln(tw, "ENDPOINT_ID\tAPP_ID\tURL\tEVENTS\tSTATE")
						for _, ep := range list {
							state := "active"
							if ep.FailingSince != nil {
								state = "failing since " + ep.FailingSince.UTC().Format(time.RFC3339)
							}
							if ep.DisabledAt != nil {
								state = "disabled " + ep.DisabledAt.UTC().Format(time.RFC3339) + ": " + ep.DisabledReason
							}
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ep.ID, ep.AppID, ep.URL, strings.Join(ep.Events, ","), state)
						}
						return tw.Flush()
					})
				}
			}},
		{name: "webhooks disable", args: "ENDPOINT_ID", summary: "stop delivering to an endpoint",
			setup: func(fs *flag.FlagSet, e env) action {
				return func(ctx context.Context, args []string) error {
					if err := wantArgs(args, 1, "an ENDPOINT_ID"); err != nil {
						return err
					}
					return withDeps(ctx, e.log, func(d *config.Deps) error {
						if _, err := d.Ops().DisableWebhook(ctx, cliActor(), args[0], ""); err != nil { // audited
							return err
						}
						fmt.Fprintf(e.stderr, "disabled endpoint %s; its pending deliveries are marked failed\n", args[0])
						return nil
					})
				}
			}},
		{name: "webhooks rotate-secret", args: "ENDPOINT_ID", summary: "a new signing secret on stdout; the old one signs too for 24 h",
			setup: func(fs *flag.FlagSet, e env) action {
				return func(ctx context.Context, args []string) error {
					if err := wantArgs(args, 1, "an ENDPOINT_ID"); err != nil {
						return err
					}
					return withDeps(ctx, e.log, func(d *config.Deps) error {
						secret, until, err := d.Ops().RotateWebhookSecret(ctx, cliActor(), args[0]) // audited
						if err != nil {
							return err
						}
						fmt.Fprintf(e.stderr, "new signing secret for %s, shown once; the old one also signs (a second v1) until %s\n",
							args[0], until.UTC().Format(time.RFC3339))
						fmt.Fprintln(e.stdout, secret)
						return nil
					})
				}
			}},
		{name: "webhooks deliveries", summary: "an endpoint's recent deliveries and every attempt (--endpoint)",
			setup: func(fs *flag.FlagSet, e env) action {
				endpoint := fs.String("endpoint", "", "the endpoint `id` (required)")
				limit := fs.Int("limit", 20, "how many deliveries")
				return func(ctx context.Context, _ []string) error {
					if *endpoint == "" {
						return &argsError{"--endpoint is required"}
					}
					return withDeps(ctx, e.log, func(d *config.Deps) error {
						list, err := d.Webhooks.Deliveries(ctx, *endpoint, *limit)
						if err != nil {
							return err
						}
						tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
						fmt.Fprintln(tw, "EVENT_ID\tTYPE\tSUBJECT\tSEQ\tSTATE\tATTEMPTS\tNEXT/DELIVERED\tLAST_ERROR")
						for _, dl := range list {
							when := dl.NextAttemptAt.UTC().Format(time.RFC3339)
							if dl.DeliveredAt != nil {
								when = dl.DeliveredAt.UTC().Format(time.RFC3339)
							}
							fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", dl.EventID, dl.EventType, dl.SubjectID, dl.Seq, dl.State,
								dl.AttemptCount, when, dl.LastError)
							for _, a := range dl.Attempts {
								status := "-"
								if a.StatusCode != 0 {
									status = fmt.Sprint(a.StatusCode)
								}
								fmt.Fprintf(tw, "  attempt\t%s\tstatus %s\t%d ms\t%s\t\t\t\n", a.At.UTC().Format(time.RFC3339), status, a.Latency.Milliseconds(), a.Error)
							}
						}
						return tw.Flush()
					})
				}
			}},
		{name: "webhooks redeliver", args: "EVENT_ID", summary: "send an event again (to every endpoint of its app, or --endpoint's)",
			setup: func(fs *flag.FlagSet, e env) action {
				endpoint := fs.String("endpoint", "", "only this endpoint `id`")
				return func(ctx context.Context, args []string) error {
					if err := wantArgs(args, 1, "an EVENT_ID"); err != nil {
						return err
					}
					return withDeps(ctx, e.log, func(d *config.Deps) error {
						n, err := d.Ops().RedeliverWebhook(ctx, cliActor(), args[0], *endpoint, "") // audited
						if err != nil {
							return err
						}
						fmt.Fprintf(e.stderr, "queued event %s again for %d endpoint(s); the processor sends it\n", args[0], n)
						return nil
					})
				}
			}},
	}
}

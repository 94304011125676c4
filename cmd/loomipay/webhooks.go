package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loomipay/loomipay/shared/config"
)

const webhooksUsage = `usage:
  loomipay webhooks add --app-id APP --url URL [--events T1,T2]   new endpoint; its signing secret alone on stdout, once
  loomipay webhooks list [--app-id APP]                            endpoints (never their secrets)
  loomipay webhooks disable ENDPOINT_ID                            stop delivering to it
  loomipay webhooks rotate-secret ENDPOINT_ID                      new secret on stdout; the old one signs too for 24 h
  loomipay webhooks deliveries --endpoint ENDPOINT_ID [--limit N]  recent deliveries and every attempt
  loomipay webhooks redeliver EVENT_ID [--endpoint ENDPOINT_ID]    send an event again
`

func webhooksCmd(ctx context.Context, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, webhooksUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("webhooks "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	appID := fs.String("app-id", "", "the app (add, list)")
	url := fs.String("url", "", "the endpoint's URL (add)")
	events := fs.String("events", "", "comma-separated event types (add; default all)")
	endpoint := fs.String("endpoint", "", "endpoint id (deliveries, redeliver)")
	limit := fs.Int("limit", 20, "how many deliveries (deliveries)")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return errUsage
	}
	one := func() (string, error) { return onlyArg(pos, stderr, webhooksUsage) }
	switch args[0] {
	case "add":
		if *appID == "" || *url == "" || len(pos) != 0 {
			fmt.Fprint(stderr, webhooksUsage)
			return errUsage
		}
		var evs []string
		if *events != "" {
			evs = strings.Split(*events, ",")
		}
		return withDeps(ctx, log, func(d *config.Deps) error {
			ep, secret, err := d.Ops().AddWebhook(ctx, cliActor(), *appID, *url, evs) // audited
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "created endpoint %s for app %s: %s (%s); its signing secret is shown once, store it now\n",
				ep.ID, ep.AppID, ep.URL, strings.Join(ep.Events, ", "))
			fmt.Fprintln(stdout, secret)
			return nil
		})
	case "list":
		return withDeps(ctx, log, func(d *config.Deps) error {
			list, err := d.Ops().AppEndpoints(ctx, cliActor(), *appID) // the operations layer, as the other commands
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ENDPOINT_ID\tAPP_ID\tURL\tEVENTS\tSTATE")
			for _, e := range list {
				state := "active"
				if e.FailingSince != nil {
					state = "failing since " + e.FailingSince.UTC().Format(time.RFC3339)
				}
				if e.DisabledAt != nil {
					state = "disabled " + e.DisabledAt.UTC().Format(time.RFC3339) + ": " + e.DisabledReason
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.ID, e.AppID, e.URL, strings.Join(e.Events, ","), state)
			}
			return tw.Flush()
		})
	case "disable":
		id, err := one()
		if err != nil {
			return err
		}
		return withDeps(ctx, log, func(d *config.Deps) error {
			if _, err := d.Ops().DisableWebhook(ctx, cliActor(), id, ""); err != nil { // audited
				return err
			}
			fmt.Fprintf(stderr, "disabled endpoint %s; its pending deliveries are marked failed\n", id)
			return nil
		})
	case "rotate-secret":
		id, err := one()
		if err != nil {
			return err
		}
		return withDeps(ctx, log, func(d *config.Deps) error {
			secret, until, err := d.Ops().RotateWebhookSecret(ctx, cliActor(), id) // audited
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "new signing secret for %s, shown once; the old one also signs (a second v1) until %s\n",
				id, until.UTC().Format(time.RFC3339))
			fmt.Fprintln(stdout, secret)
			return nil
		})
	case "deliveries":
		if *endpoint == "" || len(pos) != 0 {
			fmt.Fprint(stderr, webhooksUsage)
			return errUsage
		}
		return withDeps(ctx, log, func(d *config.Deps) error {
			list, err := d.Webhooks.Deliveries(ctx, *endpoint, *limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
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
	case "redeliver":
		id, err := one()
		if err != nil {
			return err
		}
		return withDeps(ctx, log, func(d *config.Deps) error {
			n, err := d.Ops().RedeliverWebhook(ctx, cliActor(), id, *endpoint, "") // audited
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "queued event %s again for %d endpoint(s); the processor sends it\n", id, n)
			return nil
		})
	default:
		fmt.Fprintf(stderr, "unknown webhooks command %q\n%s", args[0], webhooksUsage)
		return errUsage
	}
}

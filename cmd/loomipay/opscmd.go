package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/pay"
)

// Operator commands: orders, reviews, dlq, results, operators, apps. They act on production
// state, so they never fall back to a local database: DATABASE_URL (or its _SECRET_ARN) must be
// set. They act as "cli:<os user>" with the admin role — whoever holds DATABASE_URL can do
// anything anyway — and every change is audited under that name.

const opsUsage = `operator commands (need DATABASE_URL; add --json for machine-readable output):
  orders search [QUERY] [--app A] [--status S] [--from T] [--to T] [--limit N]
  orders show ID|MERCHANT_ORDER_ID|OUT_ORDER_NO|TRADE_NO      the order's timeline
  refunds search [QUERY] [--app A] [--status S] [--from T] [--to T]
  reviews list [--all] [--kind K] [--app A]
  reviews resolve CASE_ID --outcome O --note TEXT [--gateway-refund-id ID]
  dlq list [--kind payment|refund]
  dlq show TASK_ID
  dlq redrive TASK_ID --note TEXT | dlq redrive --all --kind K --note TEXT
  dlq discard TASK_ID --note TEXT | dlq discard --entry STREAM_ID --note TEXT
  results republish --app A --from T --to T --note TEXT
  operators create --name N --role viewer|operator|admin     prints the token once
  operators list | operators disable NAME --note TEXT
  apps list                                                   apps and their keys
  audit [--subject S] [--actor A] [--action X] [--limit N]
times (T): RFC 3339 (2026-11-30T08:00:00+08:00), a date (2026-11-30, UTC), or an age (24h = 24 hours ago)
`

func cliActor() ops.Actor {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	return ops.Actor{Name: "cli:" + name, Role: ops.RoleAdmin, Via: "cli"}
}

// parseArgs parses flags anywhere among the arguments (flag stops at the first positional one).
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parseTime reads an RFC 3339 time, a date (UTC midnight) or an age ("24h": that long ago).
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339, a date like 2026-11-30, or an age like 24h", s)
}

type cliOut struct {
	w    io.Writer
	json bool
}

func (o cliOut) print(v any, text func(*tabwriter.Writer)) error {
	if o.json {
		enc := json.NewEncoder(o.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(o.w, 0, 4, 2, ' ', 0)
	text(tw)
	return tw.Flush()
}

func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

// opsCommand runs one operator command.
func opsCommand(ctx context.Context, group string, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	if len(args) == 0 && group != "audit" {
		fmt.Fprint(stderr, opsUsage)
		return errUsage
	}
	sub := ""
	if group != "audit" {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(group+" "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	app := fs.String("app", "", "app id")
	status := fs.String("status", "", "status")
	from := fs.String("from", "", "start of the time range")
	to := fs.String("to", "", "end of the time range")
	limit := fs.Int("limit", 0, "at most this many rows")
	kind := fs.String("kind", "", "kind")
	all := fs.Bool("all", false, "all")
	outcome := fs.String("outcome", "", "resolution outcome")
	note := fs.String("note", "", "why (required for changes)")
	gwRefund := fs.String("gateway-refund-id", "", "Lakala's refund trade number (reviews resolve)")
	entry := fs.String("entry", "", "a dead-letter stream entry id (dlq discard)")
	name := fs.String("name", "", "operator name")
	role := fs.String("role", "", "viewer, operator or admin")
	subject := fs.String("subject", "", "audit subject")
	actorF := fs.String("actor", "", "audit actor")
	action := fs.String("action", "", "audit action")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return errUsage
	}
	now := time.Now().UTC()
	fromT, err := parseTime(*from, now)
	if err != nil {
		return err
	}
	toT, err := parseTime(*to, now)
	if err != nil {
		return err
	}
	arg := func(what string) (string, error) {
		if len(pos) != 1 {
			fmt.Fprintf(stderr, "%s %s needs %s\n\n%s", group, sub, what, opsUsage)
			return "", errUsage
		}
		return pos[0], nil
	}
	intArg := func(what string) (int64, error) {
		s, err := arg(what)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%s must be a positive number, not %q", what, s)
		}
		return n, nil
	}

	// Never --local: these commands act on production state.
	deps, closeDeps, err := openDeps(ctx, log, false)
	if err != nil {
		return err
	}
	defer closeDeps()
	o := deps.Ops()
	a := cliActor()
	out := cliOut{w: stdout, json: *asJSON}
	filter := ops.SearchFilter{AppID: *app, Status: *status, From: fromT, To: toT, Limit: *limit}
	if len(pos) > 0 {
		filter.Query = pos[0]
	}

	switch group + " " + sub {
	case "orders search":
		rows, err := o.SearchOrders(ctx, a, filter)
		if err != nil {
			return err
		}
		return out.print(rows, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "CREATED\tID\tAPP\tMERCHANT_ORDER_ID\tSTATUS\tAMOUNT\tREFUNDED\tREVIEW")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ts(r.CreatedAt), r.ID, r.AppID, r.MerchantOrderID, r.Status, yuan(r.Amount), yuan(r.RefundedAmount), r.ReviewReason)
			}
		})
	case "orders show":
		ref, err := arg("an order id, merchant_order_id, out_order_no or trade number")
		if err != nil {
			return err
		}
		tl, err := o.OrderTimeline(ctx, a, ref)
		if err != nil {
			return err
		}
		return out.print(tl, func(tw *tabwriter.Writer) {
			ord := tl.Order
			fmt.Fprintf(tw, "order\t%s\napp\t%s\nmerchant_order_id\t%s\nstatus\t%s\namount\t%s CNY\nrefunded\t%s CNY\n",
				ord.ID, ord.AppID, ord.MerchantOrderID, ord.Status, yuan(ord.Amount), yuan(ord.RefundedAmount))
			if ord.FailureReason != "" {
				fmt.Fprintf(tw, "failure_reason\t%s\n", ord.FailureReason)
			}
			if ord.ReviewReason != "" {
				fmt.Fprintf(tw, "review_reason\t%s\n", ord.ReviewReason)
			}
			fmt.Fprintf(tw, "result_seq\t%d\n\nTIME\tKIND\tWHAT\tDETAIL\n", tl.ResultSeq)
			for _, e := range tl.Events {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ts(e.At), e.Kind, e.Summary, e.Detail)
			}
			for _, n := range tl.Notes {
				fmt.Fprintf(tw, "\nnote: %s\n", n)
			}
		})
	case "refunds search":
		rows, err := o.SearchRefunds(ctx, a, filter)
		if err != nil {
			return err
		}
		return out.print(rows, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "CREATED\tID\tAPP\tMERCHANT_ORDER_ID\tSTATUS\tAMOUNT\tREVIEW")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ts(r.CreatedAt), r.ID, r.AppID, r.MerchantOrderID, r.Status, yuan(r.Amount), r.ReviewReason)
			}
		})
	case "reviews list":
		rows, err := o.ReviewCases(ctx, a, ops.ReviewFilter{AppID: *app, Kind: *kind, All: *all, Limit: *limit})
		if err != nil {
			return err
		}
		return out.print(rows, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "CASE\tOPENED\tKIND\tAPP\tMERCHANT_ORDER_ID\tSUBJECT_STATUS\tRESOLUTION\tOUTCOMES\tSUMMARY")
			for _, c := range rows {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, ts(c.OpenedAt), c.Kind, c.AppID, c.MerchantOrderID, c.SubjectStatus,
					c.Resolution, strings.Join(c.Outcomes, ","), c.Summary)
			}
		})
	case "reviews resolve":
		id, err := intArg("a review case id")
		if err != nil {
			return err
		}
		res, err := o.ResolveReview(ctx, a, ops.Resolution{CaseID: id, Outcome: *outcome, Note: *note, GatewayRefundID: *gwRefund})
		if err != nil {
			return err
		}
		return out.print(res, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "review case %d resolved as %s\n", res.Case.ID, res.Case.Resolution)
			if res.StatusChange != "" {
				fmt.Fprintf(tw, "%s; result message(s) %s\n", res.StatusChange, strings.Join(res.EventIDs, ", "))
			}
		})
	case "dlq list":
		list, err := o.ListDeadLetters(ctx, a, *kind, *limit)
		if err != nil {
			return err
		}
		return out.print(list, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "TASK\tDEAD_SINCE\tKIND\tSUBJECT\tSUBJECT_STATUS\tATTEMPTS\tLAST_ERROR")
			for _, d := range list.Tasks {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", d.TaskID, ts(d.DeadSince), d.Kind, d.SubjectID, orDash(d.SubjectStatus), d.Attempts, d.LastError)
			}
			for _, e := range list.Orphans {
				fmt.Fprintf(tw, "entry %s\t%s\t%s\t%s\ttask %s\t%d\t%s (no dead task; discard with --entry)\n", e.ID, e.Timestamp, e.Kind, e.SubjectID, orDash(e.TaskState), e.Attempts, e.Reason)
			}
		})
	case "dlq show":
		id, err := intArg("a task id")
		if err != nil {
			return err
		}
		d, err := o.DeadLetter(ctx, a, id)
		if err != nil {
			return err
		}
		return out.print(d, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "task\t%d\nkind\t%s\nsubject\t%s (%s)\napp\t%s\nmerchant_order_id\t%s\nattempts\t%d\nlast_error\t%s\ndead since\t%s\nredrivable\t%v\n",
				d.TaskID, d.Kind, d.SubjectID, orDash(d.SubjectStatus), d.AppID, d.MerchantOrderID, d.Attempts, d.LastError, ts(d.DeadSince), d.Redrivable())
			for _, e := range d.Entries {
				fmt.Fprintf(tw, "stream entry\t%s %s attempts %d: %s\n", e.ID, e.Timestamp, e.Attempts, e.Reason)
			}
		})
	case "dlq redrive":
		if *all {
			res, err := o.RedriveKind(ctx, a, *kind, *note)
			if err != nil {
				return err
			}
			return out.print(res, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "redriven %d task(s)\n", len(res.Redriven))
				for id, why := range res.Skipped {
					fmt.Fprintf(tw, "skipped task %d: %s\n", id, why)
				}
			})
		}
		id, err := intArg("a task id (or --all --kind K)")
		if err != nil {
			return err
		}
		res, err := o.Redrive(ctx, a, id, *note)
		if err != nil {
			return err
		}
		return out.print(res, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "task %d queued again\n", res.TaskID)
			if res.Warning != "" {
				fmt.Fprintln(tw, "warning:", res.Warning)
			}
		})
	case "dlq discard":
		if *entry != "" {
			if err := o.DiscardEntry(ctx, a, *entry, *note); err != nil {
				return err
			}
			return out.print(map[string]string{"discarded_entry": *entry}, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "entry %s discarded\n", *entry) })
		}
		id, err := intArg("a task id (or --entry STREAM_ID)")
		if err != nil {
			return err
		}
		if err := o.Discard(ctx, a, id, *note); err != nil {
			return err
		}
		return out.print(map[string]int64{"discarded_task": id}, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "task %d discarded\n", id) })
	case "results republish":
		if *app == "" {
			return pay.Invalid("app", "--app is required")
		}
		res, err := o.RepublishResults(ctx, a, *app, fromT, toT, *note)
		if err != nil {
			return err
		}
		return out.print(res, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "republished %d result message(s) of %s written %s – %s\n", res.Published, res.AppID, ts(res.From), ts(res.To))
			if res.Warning != "" {
				fmt.Fprintln(tw, "warning:", res.Warning)
			}
		})
	case "operators create":
		r, err := ops.ParseRole(*role)
		if err != nil {
			return err
		}
		token, op, err := o.CreateOperator(ctx, a, *name, r)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created operator %s (%s); the token is shown once, give it to them now\n", op.Name, op.Role)
		if *asJSON {
			return out.print(map[string]any{"operator": op, "token": token}, nil)
		}
		fmt.Fprintln(stdout, token)
		return nil
	case "operators list":
		list, err := o.Operators(ctx, a)
		if err != nil {
			return err
		}
		return out.print(list, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tBY\tSTATE")
			for _, op := range list {
				state := "active"
				if op.DisabledAt != nil {
					state = "disabled " + ts(*op.DisabledAt)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", op.Name, op.Role, ts(op.CreatedAt), op.CreatedBy, state)
			}
		})
	case "operators disable":
		n, err := arg("an operator name")
		if err != nil {
			return err
		}
		if err := o.DisableOperator(ctx, a, n, *note); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "operator %s disabled; their sessions ended\n", n)
		return nil
	case "apps list":
		apps, err := o.Apps(ctx, a)
		if err != nil {
			return err
		}
		return out.print(apps, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "APP\tORDERS\tACTIVE_KEYS\tKEYS")
			for _, ap := range apps {
				var ks []string
				for _, k := range ap.Keys {
					s := k.ID
					if k.RevokedAt != nil {
						s += "(revoked)"
					}
					ks = append(ks, s)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", ap.AppID, ap.Orders, ap.ActiveKeys, strings.Join(ks, " "))
			}
		})
	case "audit ":
		rows, err := o.AuditLog(ctx, a, ops.AuditFilter{Subject: *subject, Actor: *actorF, Action: *action, Limit: *limit})
		if err != nil {
			return err
		}
		return out.print(rows, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "AT\tACTOR\tVIA\tACTION\tSUBJECT\tOUTCOME\tNOTE")
			for _, e := range rows {
				fmt.Fprintf(tw, "%s\t%s (%s)\t%s\t%s\t%s\t%s\t%s\n", ts(e.At), e.Actor, e.Role, e.Via, e.Action, e.Subject, e.Outcome, e.Note)
			}
		})
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", strings.TrimSpace(group+" "+sub), opsUsage)
	return errUsage
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

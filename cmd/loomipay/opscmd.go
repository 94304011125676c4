package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loomipay/loomipay/shared/ops"
)

// Operator commands: orders, reviews, dlq, results, operators, apps. They act on production
// state, so they never fall back to a local database: DATABASE_URL (or its _SECRET_ARN) must be
// set. They act as "cli:<os user>" with the admin role — whoever holds DATABASE_URL can do
// anything anyway — and every change is audited under that name.

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
	w, err io.Writer // results; messages for people
	json   bool
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

// opsRun is what an operator command does with the operations layer, as the CLI's actor, its
// output in text or JSON (--json).
type opsRun func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error

// opsCmd makes an operator command: it declares --json and the command's own flags (flags), and
// runs on the database DATABASE_URL names — never a local fallback: these act on production.
func opsCmd(name, args, summary string, flags func(fs *flag.FlagSet) opsRun) command {
	return command{name: name, args: args, summary: summary,
		setup: func(fs *flag.FlagSet, e env) action {
			asJSON := fs.Bool("json", false, "print JSON")
			fn := flags(fs)
			return func(ctx context.Context, args []string) error {
				deps, closeDeps, err := openDeps(ctx, e.log, false)
				if err != nil {
					return err
				}
				defer closeDeps()
				return fn(ctx, deps.Ops(), cliActor(), cliOut{w: e.stdout, err: e.stderr, json: *asJSON}, args)
			}
		}}
}

// timeRange declares --from and --to and reads them.
func timeRange(fs *flag.FlagSet) func() (from, to time.Time, err error) {
	from := fs.String("from", "", "start of the time range (T)")
	to := fs.String("to", "", "end of the time range (T)")
	return func() (time.Time, time.Time, error) {
		now := time.Now().UTC()
		f, err := parseTime(*from, now)
		if err != nil {
			return f, f, err
		}
		t, err := parseTime(*to, now)
		return f, t, err
	}
}

// positiveID reads the one positional argument as a positive number.
func positiveID(args []string, what string) (int64, error) {
	if err := wantArgs(args, 1, what); err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s must be a positive number, not %q", what, args[0])
	}
	return n, nil
}

// searchCmd is orders search and refunds search: their filters, then search.
func searchCmd(name, summary string, search func(ctx context.Context, o *ops.Ops, a ops.Actor, f ops.SearchFilter, out cliOut) error) command {
	return opsCmd(name, "[QUERY]", summary, func(fs *flag.FlagSet) opsRun {
		app := fs.String("app", "", "only this `app`")
		status := fs.String("status", "", "only this `status` (pending, processing, succeeded, failed)")
		times := timeRange(fs)
		limit := fs.Int("limit", 0, "at most `N` rows")
		return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error {
			if len(args) > 1 {
				return &argsError{"takes at most one QUERY"}
			}
			from, to, err := times()
			if err != nil {
				return err
			}
			f := ops.SearchFilter{AppID: *app, Status: *status, From: from, To: to, Limit: *limit}
			if len(args) == 1 {
				f.Query = args[0]
			}
			return search(ctx, o, a, f, out)
		}
	})
}

// opsCommands are the operator commands: orders, refunds, reviews, dlq, results, operators,
// apps list and audit. They act as "cli:<os user>" with the admin role — whoever holds
// DATABASE_URL can do anything anyway — and every change is audited under that name.
func opsCommands() []command {
	return []command{
		searchCmd("orders search", "find payment orders (QUERY: any id of the order, its cashier orders, trades or refunds)",
			func(ctx context.Context, o *ops.Ops, a ops.Actor, f ops.SearchFilter, out cliOut) error {
				rows, err := o.SearchOrders(ctx, a, f)
				if err != nil {
					return err
				}
				return out.print(rows, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "CREATED\tID\tAPP\tMERCHANT_ORDER_ID\tSTATUS\tAMOUNT\tREFUNDED\tREVIEW")
					for _, r := range rows {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ts(r.CreatedAt), r.ID, r.AppID, r.MerchantOrderID, r.Status, yuan(r.Amount), yuan(r.RefundedAmount), r.ReviewReason)
					}
				})
			}),
		opsCmd("orders show", "ID|MERCHANT_ORDER_ID|OUT_ORDER_NO|TRADE_NO", "an order's timeline: attempts, Lakala calls, notifications, results, reviews",
			func(fs *flag.FlagSet) opsRun {
				return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error {
					if err := wantArgs(args, 1, "an order id, merchant_order_id, out_order_no or trade number"); err != nil {
						return err
					}
					tl, err := o.OrderTimeline(ctx, a, args[0])
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
				}
			}),
		ordersRefundCommand(),
		ordersCloseCommand(),
		statementCommand(),
		searchCmd("refunds search", "find refunds (QUERY: any id of the refund, or its payment order's id or merchant_order_id)",
			func(ctx context.Context, o *ops.Ops, a ops.Actor, f ops.SearchFilter, out cliOut) error {
				rows, err := o.SearchRefunds(ctx, a, f)
				if err != nil {
					return err
				}
				return out.print(rows, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "CREATED\tID\tAPP\tMERCHANT_ORDER_ID\tSTATUS\tAMOUNT\tREVIEW")
					for _, r := range rows {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ts(r.CreatedAt), r.ID, r.AppID, r.MerchantOrderID, r.Status, yuan(r.Amount), r.ReviewReason)
					}
				})
			}),
		opsCmd("reviews list", "", "review cases: open ones, or --all", func(fs *flag.FlagSet) opsRun {
			all := fs.Bool("all", false, "resolved cases too")
			kind := fs.String("kind", "", "only this `kind` of case")
			app := fs.String("app", "", "only this `app`")
			limit := fs.Int("limit", 0, "at most `N` rows")
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, _ []string) error {
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
			}
		}),
		opsCmd("reviews resolve", "CASE_ID", "settle a review case (--outcome, --note)", func(fs *flag.FlagSet) opsRun {
			outcome := fs.String("outcome", "", "the resolution `outcome` (reviews list shows a case's outcomes)")
			note := fs.String("note", "", "what you checked and why (required)")
			gwRefund := fs.String("gateway-refund-id", "", "Lakala's refund trade `number`, for outcomes that name one")
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error {
				id, err := positiveID(args, "CASE_ID")
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
			}
		}),
		opsCmd("dlq list", "", "dead-lettered tasks (and stream entries without a dead task)", func(fs *flag.FlagSet) opsRun {
			kind := fs.String("kind", "", "payment or refund")
			limit := fs.Int("limit", 0, "at most `N` rows")
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, _ []string) error {
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
			}
		}),
		opsCmd("dlq show", "TASK_ID", "a dead-lettered task and its stream entries", func(fs *flag.FlagSet) opsRun {
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error {
				id, err := positiveID(args, "TASK_ID")
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
			}
		}),
		opsCmd("dlq redrive", "TASK_ID", "queue a dead task again (or every one of a kind: --all --kind K, without TASK_ID)", func(fs *flag.FlagSet) opsRun {
			all := fs.Bool("all", false, "every dead task of --kind")
			kind := fs.String("kind", "", "payment or refund (with --all)")
			note := fs.String("note", "", "why (required)")
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error {
				if *all {
					if len(args) != 0 {
						return &argsError{"--all takes no TASK_ID"}
					}
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
				id, err := positiveID(args, "TASK_ID (or --all --kind K)")
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
			}
		}),
		opsCmd("dlq discard", "TASK_ID", "give a dead task up for good (or a stream entry: --entry STREAM_ID, without TASK_ID)", func(fs *flag.FlagSet) opsRun {
			entry := fs.String("entry", "", "a dead-letter stream entry `id` without a dead task")
			note := fs.String("note", "", "why (required)")
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error {
				if *entry != "" {
					if len(args) != 0 {
						return &argsError{"--entry takes no TASK_ID"}
					}
					if err := o.DiscardEntry(ctx, a, *entry, *note); err != nil {
						return err
					}
					return out.print(map[string]string{"discarded_entry": *entry}, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "entry %s discarded\n", *entry) })
				}
				id, err := positiveID(args, "TASK_ID (or --entry STREAM_ID)")
				if err != nil {
					return err
				}
				if err := o.Discard(ctx, a, id, *note); err != nil {
					return err
				}
				return out.print(map[string]int64{"discarded_task": id}, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "task %d discarded\n", id) })
			}
		}),
		opsCmd("results republish", "", "publish an app's result messages of a time range again (--app, --from, --to, --note)", func(fs *flag.FlagSet) opsRun {
			app := fs.String("app", "", "the `app` (required)")
			times := timeRange(fs)
			note := fs.String("note", "", "why (required)")
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, _ []string) error {
				if *app == "" {
					return &argsError{"--app is required"}
				}
				from, to, err := times()
				if err != nil {
					return err
				}
				res, err := o.RepublishResults(ctx, a, *app, from, to, *note)
				if err != nil {
					return err
				}
				return out.print(res, func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "republished %d result message(s) of %s written %s – %s\n", res.Published, res.AppID, ts(res.From), ts(res.To))
					if res.Warning != "" {
						fmt.Fprintln(tw, "warning:", res.Warning)
					}
				})
			}
		}),
		opsCmd("operators create", "", "a console operator (--name, --role); the token alone on stdout, once", func(fs *flag.FlagSet) opsRun {
			name := fs.String("name", "", "the operator's `name` (required)")
			role := fs.String("role", "", "viewer, operator or admin (required)")
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, _ []string) error {
				r, err := ops.ParseRole(*role)
				if err != nil {
					return err
				}
				token, op, err := o.CreateOperator(ctx, a, *name, r)
				if err != nil {
					return err
				}
				fmt.Fprintf(out.err, "created operator %s (%s); the token is shown once, give it to them now\n", op.Name, op.Role)
				if out.json {
					return out.print(map[string]any{"operator": op, "token": token}, nil)
				}
				fmt.Fprintln(out.w, token)
				return nil
			}
		}),
		opsCmd("operators list", "", "console operators and their state", func(fs *flag.FlagSet) opsRun {
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, _ []string) error {
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
			}
		}),
		opsCmd("operators disable", "NAME", "end an operator's token and sessions (--note)", func(fs *flag.FlagSet) opsRun {
			note := fs.String("note", "", "why (required)")
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error {
				if err := wantArgs(args, 1, "an operator NAME"); err != nil {
					return err
				}
				if err := o.DisableOperator(ctx, a, args[0], *note); err != nil {
					return err
				}
				fmt.Fprintf(out.err, "operator %s disabled; their sessions ended\n", args[0])
				return nil
			}
		}),
		opsCmd("audit", "", "the audit log, newest first", func(fs *flag.FlagSet) opsRun {
			subject := fs.String("subject", "", "only this `subject` (an order id, a task id, app:APP, …)")
			actor := fs.String("actor", "", "only this `actor`")
			actionF := fs.String("action", "", "only this `action` (e.g. session.login)")
			limit := fs.Int("limit", 0, "at most `N` rows")
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, _ []string) error {
				rows, err := o.AuditLog(ctx, a, ops.AuditFilter{Subject: *subject, Actor: *actor, Action: *actionF, Limit: *limit})
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
		}),
	}
}

// appsList is apps list, an operator command beside the app commands of apps.go.
func appsList() command {
	return opsCmd("apps list", "", "apps, their Redis users and their keys", func(fs *flag.FlagSet) opsRun {
		return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, _ []string) error {
			apps, err := o.Apps(ctx, a)
			if err != nil {
				return err
			}
			return out.print(apps, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "APP\tMERCHANT\tORDERS\tACTIVE_KEYS\tREDIS_USER\tKEYS")
				for _, ap := range apps {
					var ks []string
					for _, k := range ap.Keys {
						s := k.ID
						if k.RevokedAt != nil {
							s += "(revoked)"
						}
						ks = append(ks, s)
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", ap.AppID, ap.MerchantID, ap.Orders, ap.ActiveKeys, orDash(ap.RedisUser), strings.Join(ks, " "))
				}
			})
		}
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

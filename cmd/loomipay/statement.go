package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/loomipay/loomipay/shared/ops"
)

// statementCommand prints the daily statement (ops.Statement) as a table, CSV or JSON.
func statementCommand() command {
	c := opsCmd("statement", "", "the daily statement: every payment and refund that moved money on a Beijing day, with Lakala's numbers and totals",
		func(fs *flag.FlagSet) opsRun {
			date := fs.String("date", "", "the Beijing `day`, YYYY-MM-DD (default: today)")
			app := fs.String("app", "", "one `app`'s statement (default: every app)")
			merchant := fs.String("merchant", "", "one `merchant`'s money only: what its own statement from Lakala shows (default: every merchant)")
			format := fs.String("format", "text", "`text`, csv or json (--json is json)")
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, _ []string) error {
				if out.json {
					*format = "json"
				}
				if *format != "text" && *format != "csv" && *format != "json" {
					return &argsError{fmt.Sprintf("--format must be text, csv or json, not %q", *format)}
				}
				day := ops.DayOf(time.Now())
				if *date != "" {
					d, err := ops.ParseDay(*date)
					if err != nil {
						return err
					}
					day = d
				}
				st, err := o.StatementOf(ctx, a, day, *app, *merchant)
				if err != nil {
					return err
				}
				switch *format {
				case "csv":
					return ops.WriteStatementCSV(out.w, st)
				case "json":
					enc := json.NewEncoder(out.w)
					enc.SetIndent("", "  ")
					return enc.Encode(st)
				}
				return printStatement(out, st)
			}
		})
	c.about = `Every payment and refund that moved money on a Beijing day (Lakala's statements count days
in Beijing time), by Lakala's trade time, with its trade_no, log_no and our ids, then the totals per
app, per merchant and overall: paid, refunded, net, and the money in review (payments Lakala took for
orders that had failed or were paid twice). Lakala sends each merchant a statement of its own: hold
--merchant ID's against it. csv is the console's download (amounts in yuan); json has amounts
in fen.`
	return c
}

func printStatement(out cliOut, st ops.Statement) error {
	tw := tabwriter.NewWriter(out.w, 0, 4, 2, ' ', 0)
	scope := "every app"
	if st.AppID != "" {
		scope = "app " + st.AppID
	}
	if st.MerchantID != "" {
		scope += ", merchant " + st.MerchantID
	}
	fmt.Fprintf(tw, "statement of %s (Beijing day, by Lakala's trade time), %s\n\n", st.Date, scope)
	fmt.Fprintln(tw, "APP\tPAYMENTS\tPAID\tREFUNDS\tREFUNDED\tNET\tIN REVIEW")
	for _, a := range append(st.Apps, ops.AppTotals{AppID: "total", StatementTotals: st.Totals}) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s (%d)\n", a.AppID, a.Payments, yuan(a.Paid), a.Refunds, yuan(a.Refunded), yuan(a.Net),
			yuan(a.ReviewAmount), a.ReviewPayments)
	}
	if len(st.Merchants) > 1 {
		fmt.Fprintln(tw, "\nMERCHANT\tPAYMENTS\tPAID\tREFUNDS\tREFUNDED\tNET\tIN REVIEW")
		for _, m := range st.Merchants {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s (%d)\n", m.MerchantID, m.Payments, yuan(m.Paid), m.Refunds, yuan(m.Refunded), yuan(m.Net),
				yuan(m.ReviewAmount), m.ReviewPayments)
		}
	}
	fmt.Fprintln(tw, "\nTRADE TIME (CST)\tKIND\tAPP\tMERCHANT\tAMOUNT\tLAKALA TRADE_NO\tLAKALA LOG_NO\tMERCHANT_ORDER_ID\tMERCHANT_REFUND_ID\tNOTE")
	for _, l := range st.Lines {
		amount := yuan(l.Amount)
		if l.Kind == ops.LineRefund {
			amount = "-" + amount
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.TradeTime.In(ops.Beijing).Format("2006-01-02 15:04:05"), l.Kind, l.AppID, l.MerchantID, amount,
			l.TradeNo, l.LogNo, l.MerchantOrderID, orDash(l.MerchantRefundID), l.Note)
	}
	return tw.Flush()
}

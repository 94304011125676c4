package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/loomipay/loomipay/shared/ops"
)

// orders refund and orders close are the console's order actions (ops.RefundOrder,
// ops.CloseOrder): the API's own operations, idempotent on --token, audited as cli:<user>.

// tokenFlag declares --token and returns it, made and printed (on stderr) when not given, so the
// command can be run again safely.
func tokenFlag(fs *flag.FlagSet) func(out cliOut) string {
	token := fs.String("token", "", "idempotency `token`: the same one makes one refund or close (default: a new one, printed)")
	return func(out cliOut) string {
		if *token == "" {
			*token = ops.NewToken()
			fmt.Fprintf(out.err, "token %s: to retry this command safely, run it again with --token %s\n", *token, *token)
		}
		return *token
	}
}

func ordersRefundCommand() command {
	return opsCmd("orders refund", "ORDER", "refund (part of) a paid order as the API does (--amount YUAN or --all, --reason)",
		func(fs *flag.FlagSet) opsRun {
			amount := fs.String("amount", "", "the `amount` in yuan, like 12.34")
			all := fs.Bool("all", false, "refund everything still refundable")
			reason := fs.String("reason", "", "the refund's `reason`: sent to Lakala, kept in the audit log (required)")
			token := tokenFlag(fs)
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error {
				if err := wantArgs(args, 1, "an order id or merchant_order_id"); err != nil {
					return err
				}
				req := ops.RefundRequest{Order: args[0], All: *all, Reason: *reason}
				if !*all {
					var err error
					if req.Amount, err = ops.ParseYuan(*amount); err != nil {
						return err
					}
				}
				req.Token = token(out)
				res, err := o.RefundOrder(ctx, a, req)
				if err != nil {
					return err
				}
				return out.print(res, func(tw *tabwriter.Writer) {
					r := res.Refund
					if !res.Created {
						fmt.Fprintf(tw, "this token made refund %s already (%s, %s); nothing more was done\n", r.MerchantRefundID, yuan(r.Amount), r.Status)
						return
					}
					fmt.Fprintf(tw, "refund %s of %s CNY for order %s asked for (merchant_refund_id %s); the processor sends it to Lakala\n",
						r.ID, yuan(r.Amount), r.MerchantOrderID, r.MerchantRefundID)
				})
			}
		})
}

func ordersCloseCommand() command {
	return opsCmd("orders close", "ORDER", "close a live order at Lakala as the API does (--note; needs LAKALA_PRIVATE_KEY)",
		func(fs *flag.FlagSet) opsRun {
			note := fs.String("note", "", "why (required)")
			token := tokenFlag(fs)
			return func(ctx context.Context, o *ops.Ops, a ops.Actor, out cliOut, args []string) error {
				if err := wantArgs(args, 1, "an order id or merchant_order_id"); err != nil {
					return err
				}
				res, err := o.CloseOrder(ctx, a, args[0], *note, token(out))
				if err != nil {
					return err
				}
				return out.print(res, func(tw *tabwriter.Writer) {
					if res.Repeated {
						fmt.Fprintf(tw, "order %s was closed by this token already; nothing more was done\n", res.Order.MerchantOrderID)
						return
					}
					fmt.Fprintf(tw, "order %s: %s\n", res.Order.MerchantOrderID, ops.OrderWords(res.Order))
				})
			}
		})
}

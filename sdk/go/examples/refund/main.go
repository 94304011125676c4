// Command refund refunds part of a paid order, naming it by its merchant_order_id, with a
// merchant_refund_id so that the call is idempotent and retried safely, then reads it back.
//
//	LOOMI_PAY_BASE_URL=… LOOMI_PAY_API_KEY=… APP_ID=demo_app go run ./examples/refund ORDER_1 3000
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	loomipay "github.com/loomipay/loomipay/sdk/go"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: refund <merchant_order_id> <amount in fen>")
	}
	amount, err := strconv.ParseInt(os.Args[2], 10, 64)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := loomipay.New(os.Getenv("LOOMI_PAY_BASE_URL"), os.Getenv("LOOMI_PAY_API_KEY"), os.Getenv("APP_ID"), nil)

	refundID := os.Args[1] + "-refund-" + os.Args[2]
	r, _, err := c.CreateRefund(ctx, loomipay.CreateRefundParams{
		MerchantOrderID: os.Args[1], MerchantRefundID: refundID, Amount: amount, Reason: "customer request",
	})
	var apiErr *loomipay.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == loomipay.CodeRefundExceeds:
		log.Fatalf("too much: %s", apiErr.Detail)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Printf("refund %s %s\n", r.ID, r.Status)
	again, err := c.GetRefundByMerchantID(ctx, refundID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("read back by merchant_refund_id: %s %s\n", again.ID, again.Status)
}

// Command quickstart creates a payment order with the Go SDK, waits for its cashier URL, and
// lists the app's recent orders.
//
//	LOOMI_PAY_BASE_URL=http://127.0.0.1:3000 LOOMI_PAY_API_KEY=lp_… APP_ID=demo_app \
//	  go run ./examples/quickstart            (from sdk/go)
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	loomipay "github.com/loomipay/loomipay/sdk/go"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := loomipay.New(os.Getenv("LOOMI_PAY_BASE_URL"), os.Getenv("LOOMI_PAY_API_KEY"), os.Getenv("APP_ID"), nil)

	id := "QUICKSTART_" + time.Now().Format("20060102150405.000")
	order, created, err := c.CreateOrder(ctx, loomipay.CreateOrderParams{
		MerchantOrderID: id, Amount: 10000, OrderType: "payment", Subject: "VIP membership",
		ExtraData: map[string]any{"user_id": "u1"}, ExpiresIn: 15 * time.Minute,
	})
	if err != nil {
		log.Fatalf("create: %v", err) // an *loomipay.Error carries Code and Detail
	}
	fmt.Printf("order %s (%s), created %v\n", order.MerchantOrderID, order.Status, created)

	// The processor obtains the cashier URL within moments; a real app would rather read the
	// pending → processing message (see examples/results).
	for order.PaymentURL() == "" {
		time.Sleep(200 * time.Millisecond)
		if order, err = c.GetOrder(ctx, id); err != nil {
			log.Fatalf("get: %v", err)
		}
	}
	fmt.Printf("send the payer to %s (expires %s)\n", order.PaymentURL(), order.ExpiresAt.Format(time.RFC3339))

	n := 0
	for o, err := range c.Orders(ctx, loomipay.ListOrdersParams{Status: loomipay.StatusProcessing, Limit: 20}) {
		if err != nil {
			log.Fatalf("list: %v", err)
		}
		if n++; n > 5 {
			break // the iterator fetches pages only as needed
		}
		fmt.Printf("  processing: %s %d fen\n", o.MerchantOrderID, o.Amount)
	}
}

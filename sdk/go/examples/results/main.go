// Command results consumes the app's payment and refund results with the Go SDK's consumer: from
// the app's own streams, logged in as the app's own Redis user (REDIS_URL as loomipay dev's
// banner or `loomipay apps create` gives it: the user, its password and the service's database),
// in a consumer group of the app's own, acknowledging each message only after it was applied,
// dropping repeats (event_id) and stale messages (seq).
//
//	REDIS_URL='redis://<app user>:<password>@127.0.0.1:6379/0' APP_ID=demo_app go run ./examples/results [-for 30s]
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"

	"github.com/redis/go-redis/v9"

	loomipay "github.com/loomipay/loomipay/sdk/go"
)

func main() {
	runFor := flag.Duration("for", 0, "stop after this long (0: until interrupted)")
	flag.Parse()
	// The app's own user: it may read the app's two streams and nothing else. A database other
	// than 0 in the URL is selected on connect, which the user may do.
	opt, err := redis.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *runFor)
		defer cancel()
	}
	appID := os.Getenv("APP_ID")
	consumer, err := loomipay.NewConsumer(loomipay.ConsumerConfig{
		Redis:    redis.NewClient(opt),
		Streams:  loomipay.AppStreams(appID), // payment_results:{APP}, refund_results:{APP}
		Group:    appID + "_results",         // the app's own group
		Consumer: "worker-1",                 // stable across restarts: it re-reads its own pending messages
		Prefix:   os.Getenv("STREAM_PREFIX"), // the service's STREAM_PREFIX (empty in production)
		// Store: a Store on the app's database keeps dedup and seq state across restarts.
	}, func(ctx context.Context, r loomipay.Result) error {
		// Apply the change in the app (e.g. grant the membership) and return nil; an error
		// leaves the message to be delivered again.
		log.Printf("%s %s %s → %s %s", r.EventType(), r.MerchantOrderID(), r.OldStatus(), r.NewStatus(), r.FailureReason())
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := consumer.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// Command webhook is a tiny receiver of the app's webhooks with the Go SDK: it verifies each
// request's Loomi-Signature against the endpoint's signing secret, refuses old timestamps, and
// acknowledges (204) only after the result was applied.
//
//	LOOMI_WEBHOOK_SECRET=whsec_… go run ./examples/webhook [-addr 127.0.0.1:8000]
//
// Locally: loomipay dev --apps demo_app --forward-webhooks demo_app=http://127.0.0.1:8000/webhook
// prints the secret to use.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"sync"
	"time"

	loomipay "github.com/loomipay/loomipay/sdk/go"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "listen address")
	flag.Parse()
	secret := os.Getenv("LOOMI_WEBHOOK_SECRET")
	if secret == "" {
		log.Fatal("set LOOMI_WEBHOOK_SECRET to the endpoint's signing secret")
	}
	var (
		mu      sync.Mutex
		applied = map[string]bool{} // event ids; an app keeps them in its database
	)
	mux := http.NewServeMux()
	mux.Handle("POST /webhook", &loomipay.WebhookHandler{
		Secret: secret,
		Handle: func(ctx context.Context, r loomipay.Result) error {
			mu.Lock()
			defer mu.Unlock()
			if applied[r.EventID()] { // delivery is at least once
				return nil
			}
			// Apply the change in the app (e.g. grant the membership) and return nil; an error
			// answers 500 and the service retries later.
			seq, _ := r.Seq()
			log.Printf("%s %s #%d %s → %s %s", r.EventType(), r.MerchantOrderID(), seq, r.OldStatus(), r.NewStatus(), r.FailureReason())
			applied[r.EventID()] = true
			return nil
		},
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("receiving webhooks on http://%s/webhook", *addr)
	log.Fatal(srv.ListenAndServe())
}

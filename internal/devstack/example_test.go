package devstack_test

import (
	"context"
	"log"
	"log/slog"

	"github.com/loomipay/loomipay/internal/devstack"
)

// A local run command gets both services with no configuration and stops
// whatever it started on the way out.
func Example() {
	ctx := context.Background()
	opts := devstack.Options{StateDir: ".localdev", Logger: slog.Default()}

	databaseURL, stopPostgres, err := devstack.Postgres(ctx, opts)
	if err != nil {
		log.Fatal(err) // e.g. ErrPostgresNotInstalled: says what to apt-get install
	}
	defer stopPostgres()

	redisURL, stopRedis, err := devstack.Redis(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer stopRedis()

	_, _ = databaseURL, redisURL // hand these to the services being run
}

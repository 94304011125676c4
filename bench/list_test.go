package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/pay"
)

// listRow is the report row of the list routes.
const listRow = 10

// listBench drives GET /api/v1/payment-orders through the getorder function's adapter, on a
// stack seeded like row 4's, with cursors taken from random seeded orders.
type listBench struct {
	*createBench
	cursors []string
}

func newListBench(t *testing.T, orders int) (*listBench, time.Duration) {
	c := newCreateBench(t)
	took := c.seed(t, orders)
	l := &listBench{createBench: c}
	rows, err := c.stack.Store.Pool().Query(context.Background(),
		"SELECT created_at, id::text FROM payment_orders WHERE app_id = $1 ORDER BY random() LIMIT 500", c.stack.AppID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var cur pay.Cursor
		if err := rows.Scan(&cur.CreatedAt, &cur.ID); err != nil {
			t.Fatal(err)
		}
		l.cursors = append(l.cursors, cur.Encode())
	}
	if err := rows.Err(); err != nil || len(l.cursors) == 0 {
		t.Fatalf("cursors: %v (%d)", err, len(l.cursors))
	}
	return l, took
}

// page reads one page of 20: the first page, a page of one status, or a page at a random depth
// (starting_after or ending_before a random order), in turn.
func (l *listBench) page(ctx context.Context) error {
	q := url.Values{"app_id": {l.stack.AppID}, "limit": {"20"}}
	switch n := l.seq.Add(1); n % 4 {
	case 1:
		q.Set("status", "succeeded")
	case 2:
		q.Set("starting_after", l.cursors[rand.IntN(len(l.cursors))])
	case 3:
		q.Set("ending_before", l.cursors[rand.IntN(len(l.cursors))])
	}
	ev := l.getEv
	ev.RawPath, ev.RequestContext.HTTP.Path = "/api/v1/payment-orders", "/api/v1/payment-orders"
	ev.RawQueryString = q.Encode()
	ev.QueryStringParameters = map[string]string{}
	for k := range q {
		ev.QueryStringParameters[k] = q.Get(k)
	}
	ev.PathParameters = nil
	resp, err := l.get.ProxyWithContext(ctx, ev)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("list %s = %d %s", ev.RawQueryString, resp.StatusCode, resp.Body)
	}
	return nil
}

// testList is the list row: page latency with a million orders against a thousand.
func testList(t *testing.T) {
	sz := size()
	small, _ := newListBench(t, 1000)
	large, took := newListBench(t, sz.ExistingOrders)
	ctx := context.Background()
	ops := sz.CreateOps / 2
	for _, l := range []*listBench{small, large} { // connections, key cache, plans
		mustLoad(t)(runClosed(ctx, 1, 40, l.page))
	}
	var smallP50, largeP50, smallP99, largeP99 []float64
	for range sz.Runs {
		s := mustLoad(t)(runClosed(ctx, 1, ops, small.page))
		l := mustLoad(t)(runClosed(ctx, 1, ops, large.page))
		smallP50, smallP99 = append(smallP50, float64(Percentile(s.Lat, 50))), append(smallP99, float64(Percentile(s.Lat, 99)))
		largeP50, largeP99 = append(largeP50, float64(Percentile(l.Lat, 50))), append(largeP99, float64(Percentile(l.Lat, 99)))
	}
	sm, lg := Summarize(smallP50), Summarize(largeP50)
	ratio := lg.Median / sm.Median
	record(&Row{N: listRow, What: fmt.Sprintf("list page latency: %d orders against 1,000", sz.ExistingOrders),
		Figures: []string{
			fmt.Sprintf("seeding %d orders as row 4 does: %s", sz.ExistingOrders, took.Round(time.Millisecond)),
			fig("page of 20, 1,000 orders, p50", sm, msf),
			fig(fmt.Sprintf("page of 20, %d orders, p50", sz.ExistingOrders), lg, msf),
			fig("page of 20, 1,000 orders, p99", Summarize(smallP99), msf),
			fig(fmt.Sprintf("page of 20, %d orders, p99", sz.ExistingOrders), Summarize(largeP99), msf),
		},
		Ratio:   fmt.Sprintf("p50 %.2f × the 1,000-order figure", ratio),
		Target:  "≤ 1.5 ×",
		Met:     met(ratio <= 1.5),
		Command: command("list"),
		Notes: []string{fmt.Sprintf("One caller, %d pages per run and side, the sides alternating; pages cycle through the first "+
			"page, status=succeeded, and starting_after / ending_before a random existing order (500 cursors drawn "+
			"from the table), each through the getorder function's adapter (auth, validation, the query, JSON).", ops),
			"Each shape is one index range scan of limit+1 entries (`TestListPagesAreIndexRangeScans` in shared/postgres " +
				"checks the plans), so a page's cost does not grow with the table; what can is the share of its pages found " +
				"in shared_buffers (see row 4)."},
	})
}

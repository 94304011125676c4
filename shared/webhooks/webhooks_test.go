package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/webhooks"
)

const testKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

func newWebhooks(t *testing.T, store *postgres.Store, cfg webhooks.Config) *webhooks.Webhooks {
	t.Helper()
	cfg.SecretKey = testKey
	if cfg.Schedule == nil {
		cfg.Schedule = []time.Duration{time.Millisecond}
	}
	w, err := webhooks.New(store.Pool(), cfg, testenv.Logger())
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func app(t *testing.T, store *postgres.Store, id string) {
	t.Helper()
	if err := store.EnsureApp(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// addEvent writes a result event to the outbox the way a status change does, with its subject
// (the order named subject) and seq.
func addEvent(t *testing.T, store *postgres.Store, appID, subject string, seq int) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	orderID := uuid.NewSHA1(uuid.NameSpaceOID, []byte(subject)).String()
	fields := map[string]string{"event_type": pay.EventPaymentStatusChanged, "event_id": id, "app_id": appID,
		"payment_order_id": orderID, "merchant_order_id": "M-" + subject, "new_status": "processing",
		"seq": strconv.Itoa(seq), "amount": "100"}
	if _, err := store.Pool().Exec(context.Background(), `INSERT INTO outbox (event_id, stream, fields, subject_id, app_id, seq)
		VALUES ($1, $2, $3, $4, $5, $6)`, id, pay.StreamPaymentResults, fields, orderID, appID, seq); err != nil {
		t.Fatal(err)
	}
	return id
}

type received struct {
	body     map[string]string
	raw      []byte
	header   http.Header
	verified bool
}

// receiver is a real HTTP server that checks each request's signature and answers what
// respond says (default 200).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	secret  string
	reqs    []received
	respond func(n int, r received) int
}

func newReceiver(t *testing.T, respond func(n int, r received) int) *receiver {
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]string
		_ = json.Unmarshal(raw, &body)
		rc.mu.Lock()
		got := received{body: body, raw: raw, header: r.Header.Clone(),
			verified: webhooks.Verify(r.Header.Get(webhooks.SignatureHeader), raw, rc.secret, 5*time.Minute, time.Now()) == nil}
		rc.reqs = append(rc.reqs, got)
		n := len(rc.reqs)
		rc.mu.Unlock()
		status := http.StatusOK
		if rc.respond != nil {
			status = rc.respond(n, got)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

func addEndpoint(t *testing.T, w *webhooks.Webhooks, appID string, rc *receiver) webhooks.Endpoint {
	t.Helper()
	ep, secret, err := w.AddEndpoint(context.Background(), appID, rc.URL+"/hooks", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q", secret)
	}
	rc.mu.Lock()
	rc.secret = secret
	rc.mu.Unlock()
	return ep
}

// runUntil makes passes until cond holds.
func runUntil(t *testing.T, w *webhooks.Webhooks, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, what, func() bool {
		if _, err := w.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		return cond()
	})
}

func delivery(t *testing.T, w *webhooks.Webhooks, endpointID, eventID string) webhooks.Delivery {
	t.Helper()
	list, err := w.Deliveries(context.Background(), endpointID, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		if d.EventID == eventID {
			return d
		}
	}
	t.Fatalf("no delivery of %s to %s", eventID, endpointID)
	return webhooks.Delivery{}
}

func TestFailingThreeTimesThenDeliveredOnce(t *testing.T) {
	store := testenv.Postgres(t)
	app(t, store, "shop_b")
	w := newWebhooks(t, store, webhooks.Config{AllowLoopback: true})
	rc := newReceiver(t, func(n int, _ received) int {
		if n <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	ep := addEndpoint(t, w, "shop_b", rc)
	eventID := addEvent(t, store, "shop_b", "order-1", 1)

	runUntil(t, w, "the delivery", func() bool { return delivery(t, w, ep.ID, eventID).State == "delivered" })
	reqs := rc.requests()
	if len(reqs) != 4 {
		t.Fatalf("receiver got %d requests; want 4", len(reqs))
	}
	for i, r := range reqs {
		if !r.verified || r.body["event_id"] != eventID || r.body["seq"] != "1" || r.body["event_type"] != pay.EventPaymentStatusChanged ||
			r.body["merchant_order_id"] != "M-order-1" || r.header.Get("Loomi-Event-Id") != eventID || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("request %d = %s %v (verified %v)", i, r.raw, r.header, r.verified)
		}
	}
	d := delivery(t, w, ep.ID, eventID)
	if d.AttemptCount != 4 || len(d.Attempts) != 4 || d.DeliveredAt == nil {
		t.Fatalf("delivery = %+v; want 4 attempts recorded, delivered", d)
	}
	for i, a := range d.Attempts {
		want := 500
		if i == 3 {
			want = 204
		}
		if a.StatusCode != want || (want == 500) != (a.Error != "") || a.At.IsZero() || a.Latency < 0 {
			t.Errorf("attempt %d = %+v; want status %d", i, a, want)
		}
	}
	// Later passes send nothing more.
	if _, err := w.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(rc.requests()); n != 4 {
		t.Errorf("a delivered event was sent again: %d requests", n)
	}
}

func TestHangingEndpointDoesNotSlowAnother(t *testing.T) {
	store := testenv.Postgres(t)
	app(t, store, "shop_b")
	w := newWebhooks(t, store, webhooks.Config{AllowLoopback: true, Timeout: 5 * time.Second, Concurrency: 8, EndpointConcurrency: 2})
	release := make(chan struct{})
	hanging := newReceiver(t, func(int, received) int { <-release; return 200 })
	fast := newReceiver(t, nil)
	addEndpoint(t, w, "shop_b", hanging)
	addEndpoint(t, w, "shop_b", fast)
	for i := range 20 {
		addEvent(t, store, "shop_b", "order-"+strconv.Itoa(i), 1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, nil); close(done) }()
	defer func() { close(release); cancel(); <-done }()

	testenv.Eventually(t, 20*time.Second, "the fast endpoint to get all 20 events", func() bool { return len(fast.requests()) == 20 })
	// Every request to the hanging endpoint is still open: the fast one got everything while
	// the slow one held its two slots.
	if n := len(hanging.requests()); n > 2 {
		t.Errorf("hanging endpoint got %d requests at once; want at most its 2 slots", n)
	}
	var attempts int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
		JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE e.url LIKE $1`, hanging.URL+"%").Scan(&attempts); err != nil {
		t.Fatal(err)
	}
	if attempts != 0 {
		t.Errorf("%d attempts to the hanging endpoint finished before the fast endpoint was done; want 0", attempts)
	}
}

func TestPerOrderOrderUnderRetries(t *testing.T) {
	store := testenv.Postgres(t)
	app(t, store, "shop_b")
	w := newWebhooks(t, store, webhooks.Config{AllowLoopback: true})
	var mu sync.Mutex
	last := map[string]int{} // order → last seq acknowledged
	var violations []string
	rc := newReceiver(t, func(n int, r received) int {
		mu.Lock()
		defer mu.Unlock()
		order, seq := strings.TrimPrefix(r.body["merchant_order_id"], "M-"), r.body["seq"]
		s, _ := strconv.Atoi(seq)
		if s != last[order]+1 {
			violations = append(violations, fmt.Sprintf("%s seq %d after %d", order, s, last[order]))
		}
		if n%3 != 0 { // two of three requests fail
			return http.StatusServiceUnavailable
		}
		last[order] = s
		return http.StatusOK
	})
	ep := addEndpoint(t, w, "shop_b", rc)
	const orders, seqs = 5, 4
	for s := 1; s <= seqs; s++ { // interleaved, as concurrent orders commit
		for o := range orders {
			addEvent(t, store, "shop_b", "order-"+strconv.Itoa(o), s)
		}
	}
	runUntil(t, w, "every event delivered", func() bool {
		list, _ := w.Deliveries(context.Background(), ep.ID, 100)
		for _, d := range list {
			if d.State != "delivered" {
				return false
			}
		}
		return len(list) == orders*seqs
	})
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Errorf("out of order: %v", violations)
	}
	for o := range orders {
		if got := last["order-"+strconv.Itoa(o)]; got != seqs {
			t.Errorf("order-%d: last delivered seq %d; want %d", o, got, seqs)
		}
	}
}

func TestRedeliver(t *testing.T) {
	store := testenv.Postgres(t)
	app(t, store, "shop_b")
	w := newWebhooks(t, store, webhooks.Config{AllowLoopback: true})
	rc := newReceiver(t, nil)
	ep := addEndpoint(t, w, "shop_b", rc)
	eventID := addEvent(t, store, "shop_b", "order-1", 1)
	runUntil(t, w, "the delivery", func() bool { return len(rc.requests()) == 1 })

	n, err := w.Redeliver(context.Background(), eventID, "")
	if err != nil || n != 1 {
		t.Fatalf("Redeliver = %d, %v", n, err)
	}
	runUntil(t, w, "the redelivery", func() bool { return len(rc.requests()) == 2 })
	reqs := rc.requests()
	if reqs[1].body["event_id"] != eventID || string(reqs[1].raw) != string(reqs[0].raw) || !reqs[1].verified {
		t.Errorf("redelivered %s; want the same body %s, signed", reqs[1].raw, reqs[0].raw)
	}
	if d := delivery(t, w, ep.ID, eventID); d.State != "delivered" || len(d.Attempts) != 2 {
		t.Errorf("delivery after redeliver = %+v", d)
	}
	if _, err := w.Redeliver(context.Background(), uuid.NewString(), ""); err == nil {
		t.Error("redelivering an unknown event succeeded")
	}

	// Finished deliveries are pruned after the retention, attempts with them; pending ones stay.
	pending := addEvent(t, store, "shop_b", "order-2", 1)
	if _, err := w.FanOut(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Prune(context.Background(), time.Now().Add(time.Hour), 100); err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want the one delivered", n, err)
	}
	list, _ := w.Deliveries(context.Background(), ep.ID, 10)
	if len(list) != 1 || list[0].EventID != pending {
		t.Errorf("after prune: %+v; want only the pending delivery", list)
	}
	var attempts int
	_ = store.Pool().QueryRow(context.Background(), "SELECT count(*) FROM webhook_attempts").Scan(&attempts)
	if attempts != 0 {
		t.Errorf("%d attempts left after pruning their delivery", attempts)
	}
}

func TestPrivateURLsAreRefused(t *testing.T) {
	store := testenv.Postgres(t)
	app(t, store, "shop_b")
	strict := newWebhooks(t, store, webhooks.Config{})
	rc := newReceiver(t, nil)
	port := rc.URL[strings.LastIndex(rc.URL, ":")+1:]
	for _, u := range []string{
		rc.URL, "http://localhost:" + port + "/", "http://[::1]:" + port + "/", "http://10.0.0.8/hook",
		"http://192.168.1.10/", "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
		"ftp://example.com/", "http://user:pw@93.184.216.34/", "/relative", "http://0.0.0.0:" + port + "/",
	} {
		_, _, err := strict.AddEndpoint(context.Background(), "shop_b", u, nil)
		if pe := pay.AsError(err); err == nil || pe.Kind != pay.KindInvalid || pe.Field != "url" {
			t.Errorf("AddEndpoint(%s) err = %v; want a url validation error", u, err)
		}
	}
	if _, _, err := strict.AddEndpoint(context.Background(), "no_such_app", "http://93.184.216.34/", nil); pay.AsError(err).Kind != pay.KindNotFound {
		t.Errorf("AddEndpoint for an unknown app: %v", err)
	}
	if _, _, err := strict.AddEndpoint(context.Background(), "shop_b", "http://93.184.216.34/", []string{"order_created"}); pay.AsError(err).Kind != pay.KindInvalid {
		t.Errorf("AddEndpoint with an unknown event type: %v", err)
	}

	// Connect time: an endpoint registered while loopback was allowed, whose name resolves to
	// 127.0.0.1, is refused by an engine that does not allow it — nothing reaches the receiver.
	lax := newWebhooks(t, store, webhooks.Config{AllowLoopback: true})
	ep, _, err := lax.AddEndpoint(context.Background(), "shop_b", "http://localhost:"+port+"/hooks", nil)
	if err != nil {
		t.Fatal(err)
	}
	eventID := addEvent(t, store, "shop_b", "order-1", 1)
	if _, err := strict.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	d := delivery(t, strict, ep.ID, eventID)
	if len(d.Attempts) != 1 || !strings.Contains(d.Attempts[0].Error, "loopback") || d.Attempts[0].StatusCode != 0 || d.State != "pending" {
		t.Errorf("delivery = %+v; want one attempt refused as loopback, to be retried", d)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("the receiver got %d requests; want none", n)
	}
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestEndpointFailingForThreeDaysIsDisabled(t *testing.T) {
	store := testenv.Postgres(t)
	app(t, store, "shop_b")
	clk := &clock{now: time.Now()}
	w := newWebhooks(t, store, webhooks.Config{AllowLoopback: true, Now: clk.Now, Schedule: webhooks.DefaultSchedule})
	dead := newReceiver(t, func(int, received) int { return http.StatusBadGateway })
	alive := newReceiver(t, nil)
	deadEP := addEndpoint(t, w, "shop_b", dead)
	aliveEP := addEndpoint(t, w, "shop_b", alive)
	first := addEvent(t, store, "shop_b", "order-1", 1)

	// Walk the clock through the schedule: every pass makes the attempt that is due.
	for i := 0; i < 40; i++ {
		if _, err := w.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		ep, _ := w.Endpoint(context.Background(), deadEP.ID)
		if ep.DisabledAt != nil {
			break
		}
		if i == 5 { // a later event of another order, while the endpoint keeps failing
			addEvent(t, store, "shop_b", "order-2", 1)
		}
		d := delivery(t, w, deadEP.ID, first)
		clk.Add(max(d.NextAttemptAt.Sub(clk.Now()), time.Hour))
	}
	ep, err := w.Endpoint(context.Background(), deadEP.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ep.DisabledAt == nil || !strings.Contains(ep.DisabledReason, "failing since") || ep.DisabledAt.Sub(*ep.FailingSince) < 72*time.Hour {
		t.Fatalf("endpoint = %+v; want disabled after 72 h of failures, with the reason", ep)
	}
	d := delivery(t, w, deadEP.ID, first)
	if d.State != "failed" || d.AttemptCount < 10 || len(d.Attempts) != d.AttemptCount {
		t.Errorf("first delivery = state %s, %d attempts (%d recorded); want failed after the whole schedule", d.State, d.AttemptCount, len(d.Attempts))
	}
	list, _ := w.Deliveries(context.Background(), deadEP.ID, 10)
	for _, x := range list {
		if x.State == "pending" {
			t.Errorf("delivery %s still pending on a disabled endpoint", x.EventID)
		}
	}
	if d := delivery(t, w, aliveEP.ID, first); d.State != "delivered" || d.AttemptCount != 1 {
		t.Errorf("the healthy endpoint's delivery = %+v; want delivered at once", d)
	}
	// Nothing more goes to a disabled endpoint.
	before := len(dead.requests())
	addEvent(t, store, "shop_b", "order-3", 1)
	clk.Add(time.Hour)
	if _, err := w.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(dead.requests()); n != before {
		t.Errorf("a disabled endpoint got %d more requests", n-before)
	}
}

func TestGivenUpAfterTheHorizon(t *testing.T) {
	store := testenv.Postgres(t)
	app(t, store, "shop_b")
	clk := &clock{now: time.Now()}
	w := newWebhooks(t, store, webhooks.Config{AllowLoopback: true, Now: clk.Now, Schedule: webhooks.DefaultSchedule})
	var fail sync.Map
	rc := newReceiver(t, func(_ int, r received) int {
		if _, ok := fail.Load(r.body["merchant_order_id"]); ok {
			return 500
		}
		return 200
	})
	ep := addEndpoint(t, w, "shop_b", rc)
	fail.Store("M-order-1", true)
	ev := addEvent(t, store, "shop_b", "order-1", 1)
	for range 30 {
		if _, err := w.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		d := delivery(t, w, ep.ID, ev)
		if d.State != "pending" {
			break
		}
		// Keep the endpoint alive with a success now and then, so only the horizon applies.
		addEvent(t, store, "shop_b", uuid.NewString(), 1)
		clk.Add(d.NextAttemptAt.Sub(clk.Now()))
	}
	d := delivery(t, w, ep.ID, ev)
	if d.State != "failed" {
		t.Fatalf("delivery state %s after %d attempts; want failed", d.State, d.AttemptCount)
	}
	last := d.Attempts[len(d.Attempts)-1].At
	if span := last.Sub(d.CreatedAt); span > 72*time.Hour || span < 60*time.Hour {
		t.Errorf("last attempt %s after the event; want within 72 h, and close to it", span)
	}
	if d.AttemptCount != 14 {
		t.Errorf("%d attempts; the documented schedule makes 14", d.AttemptCount)
	}
	// The waits are the documented schedule: 10 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 12 h, 12 h, …
	for i := 1; i < len(d.Attempts); i++ {
		want := webhooks.DefaultSchedule[min(i, len(webhooks.DefaultSchedule))-1]
		if gap := d.Attempts[i].At.Sub(d.Attempts[i-1].At); gap != want {
			t.Errorf("wait before attempt %d = %s; want %s", i+1, gap, want)
		}
	}
	if e, _ := w.Endpoint(context.Background(), ep.ID); e.DisabledAt != nil {
		t.Errorf("an endpoint with successes was disabled: %+v", e)
	}
}

func TestRotatedSecretSignsBesideTheNewOne(t *testing.T) {
	store := testenv.Postgres(t)
	app(t, store, "shop_b")
	clk := &clock{now: time.Now()}
	w := newWebhooks(t, store, webhooks.Config{AllowLoopback: true, Now: clk.Now})
	rc := newReceiver(t, nil)
	ep := addEndpoint(t, w, "shop_b", rc)
	old := rc.secret
	secret, until, err := w.RotateSecret(context.Background(), ep.ID)
	if err != nil || secret == old || until.Sub(clk.Now()) != 24*time.Hour {
		t.Fatalf("RotateSecret = %q, %v, %v", secret, until, err)
	}
	addEvent(t, store, "shop_b", "order-1", 1)
	runUntil(t, w, "the delivery", func() bool { return len(rc.requests()) == 1 })
	r := rc.requests()[0]
	header := r.header.Get(webhooks.SignatureHeader)
	if strings.Count(header, "v1=") != 2 {
		t.Errorf("header during the overlap = %q; want two v1", header)
	}
	for _, s := range []string{old, secret} {
		if err := webhooks.Verify(header, r.raw, s, 0, time.Time{}); err != nil {
			t.Errorf("verify with one of the secrets: %v", err)
		}
	}
	// After the overlap only the new secret signs.
	clk.Add(25 * time.Hour)
	addEvent(t, store, "shop_b", "order-2", 1)
	runUntil(t, w, "the second delivery", func() bool { return len(rc.requests()) == 2 })
	r = rc.requests()[1]
	header = r.header.Get(webhooks.SignatureHeader)
	if webhooks.Verify(header, r.raw, secret, 0, time.Time{}) != nil || webhooks.Verify(header, r.raw, old, 0, time.Time{}) == nil {
		t.Errorf("after the overlap, header %q must verify with the new secret only", header)
	}
}

func TestFanOutNeverPassesAnEarlierEventOfTheOrder(t *testing.T) {
	ctx := context.Background()
	store := testenv.Postgres(t)
	app(t, store, "shop_b")
	w := newWebhooks(t, store, webhooks.Config{AllowLoopback: true})
	rc := newReceiver(t, nil)
	ep := addEndpoint(t, w, "shop_b", rc)
	first := addEvent(t, store, "shop_b", "order-1", 1)
	second := addEvent(t, store, "shop_b", "order-1", 2)
	other := addEvent(t, store, "shop_b", "order-2", 1)

	// A publisher holds the first event's row (main's PublishOldest locks rows while it publishes).
	tx, err := store.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a failed test must not leave the lock behind
	if _, err := tx.Exec(ctx, "SELECT 1 FROM outbox WHERE event_id = $1 FOR UPDATE", first); err != nil {
		t.Fatal(err)
	}
	if _, err := w.FanOut(ctx, 10); err != nil {
		t.Fatal(err)
	}
	list, _ := w.Deliveries(ctx, ep.ID, 10)
	if len(list) != 1 || list[0].EventID != other {
		t.Fatalf("fanned out while order-1's first event was locked: %+v; want only order-2's event", list)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	runUntil(t, w, "every delivery", func() bool { return len(rc.requests()) == 3 })
	var got []string
	for _, r := range rc.requests() {
		if r.body["merchant_order_id"] == "M-order-1" {
			got = append(got, r.body["event_id"])
		}
	}
	if len(got) != 2 || got[0] != first || got[1] != second {
		t.Errorf("order-1 delivered as %v; want %s then %s", got, first, second)
	}
}

// TestGracefulStopFinishesAttemptsInFlight: after a stop the engine starts no attempt, and the
// attempt in flight is finished and recorded as delivered, not cut short.
func TestGracefulStopFinishesAttemptsInFlight(t *testing.T) {
	store := testenv.Postgres(t)
	app(t, store, "shop_b")
	w := newWebhooks(t, store, webhooks.Config{AllowLoopback: true, Timeout: 10 * time.Second, EndpointConcurrency: 1})
	release := make(chan struct{})
	rc := newReceiver(t, func(int, received) int { <-release; return http.StatusOK })
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	ep := addEndpoint(t, w, "shop_b", rc)
	first := addEvent(t, store, "shop_b", "order-1", 1)
	second := addEvent(t, store, "shop_b", "order-2", 1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { w.RunUntil(context.Background(), stop, nil); close(done) }()

	testenv.Eventually(t, 10*time.Second, "the first attempt to reach the endpoint", func() bool { return len(rc.requests()) == 1 })
	close(stop)
	select {
	case <-done:
		t.Fatal("RunUntil returned with an attempt still in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunUntil did not return once the attempt in flight ended")
	}
	sent := rc.requests()
	if len(sent) != 1 {
		t.Fatalf("%d requests; want only the one in flight at the stop", len(sent))
	}
	inFlight, other := first, second
	if sent[0].body["event_id"] != first {
		inFlight, other = second, first
	}
	if d := delivery(t, w, ep.ID, inFlight); d.State != "delivered" || d.AttemptCount != 1 {
		t.Errorf("delivery in flight at the stop: %+v; want delivered at its one attempt", d)
	}
	if d := delivery(t, w, ep.ID, other); d.State != "pending" || d.AttemptCount != 0 {
		t.Errorf("the other delivery: %+v; want pending, never attempted after the stop", d)
	}
}

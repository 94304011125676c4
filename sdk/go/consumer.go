package loomipay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Result streams and their event types.
const (
	StreamPaymentResults      = "payment_results"
	StreamRefundResults       = "refund_results"
	EventPaymentStatusChanged = "payment_status_changed"
	EventRefundStatusChanged  = "refund_status_changed"
)

// AppStreams are the names of an app's own result streams, as the service names them by default
// (APP_PAYMENT_RESULT_STREAM, APP_REFUND_RESULT_STREAM): only the app's results are there, and
// the app's own Redis user (which `loomipay apps create` or `loomipay dev` prints) may read
// nothing else. Give them as ConsumerConfig.Streams, with a Redis client logged in as that user.
func AppStreams(appID string) []string {
	return []string{StreamPaymentResults + ":{" + appID + "}", StreamRefundResults + ":{" + appID + "}"}
}

// Result is one message of a result stream: a status change of an order or a refund.
type Result struct {
	Stream    string            // payment_results or refund_results (without prefix)
	MessageID string            // the stream entry's id
	Fields    map[string]string // every field, as sent
}

func (r Result) get(name string) string { return r.Fields[name] }

// EventType is payment_status_changed or refund_status_changed.
func (r Result) EventType() string { return r.get("event_type") }

// EventID identifies the status change; repeats of a message carry the same one.
func (r Result) EventID() string { return r.get("event_id") }

// AppID, MerchantOrderID, PaymentOrderID, RefundOrderID, MerchantRefundID, OldStatus,
// NewStatus, FailureReason and PaymentURL are the message's fields of those names ("" if absent).
func (r Result) AppID() string            { return r.get("app_id") }
func (r Result) MerchantOrderID() string  { return r.get("merchant_order_id") }
func (r Result) PaymentOrderID() string   { return r.get("payment_order_id") }
func (r Result) RefundOrderID() string    { return r.get("refund_order_id") }
func (r Result) MerchantRefundID() string { return r.get("merchant_refund_id") }
func (r Result) OldStatus() string        { return r.get("old_status") }
func (r Result) NewStatus() string        { return r.get("new_status") }
func (r Result) FailureReason() string    { return r.get("failure_reason") }
func (r Result) PaymentURL() string       { return r.get("payment_url") }

// Amount is the amount in fen.
func (r Result) Amount() int64 { n, _ := strconv.ParseInt(r.get("amount"), 10, 64); return n }

// Seq is the message's per-order (per-refund) sequence number; ok is false when absent.
func (r Result) Seq() (seq int64, ok bool) {
	n, err := strconv.ParseInt(r.get("seq"), 10, 64)
	return n, err == nil
}

// Subject is what Seq counts: the refund for refund messages, else the payment order. A refund
// message is known by its event type, so that one on an app's own stream (refund_results:{APP})
// counts by its refund too.
func (r Result) Subject() string {
	if r.EventType() == EventRefundStatusChanged || r.Stream == StreamRefundResults {
		return "refund:" + r.RefundOrderID()
	}
	return "payment:" + r.PaymentOrderID()
}

// Handler applies one result. Returning an error leaves the message unacknowledged: it is
// delivered again (to this or another consumer of the group) after ConsumerConfig.ClaimIdle,
// for as long as the handler fails. Delivery is at least once (a crash between the handler's
// success and the Store's record repeats it), so the handler must tolerate a repeat.
type Handler func(ctx context.Context, r Result) error

// Store remembers what a consumer applied, so repeats (same event_id) and stale messages
// (seq not above the last applied for the order) are acknowledged without calling the handler.
// MemoryStore keeps it in the process; an app with several processes, or that must survive a
// restart, implements it on its own database, ideally in the handler's transaction.
type Store interface {
	// Seen reports whether the event was applied.
	Seen(ctx context.Context, eventID string) (bool, error)
	// LastSeq is the highest seq applied for subject (ok false: none yet).
	LastSeq(ctx context.Context, subject string) (seq int64, ok bool, err error)
	// Applied records that the handler succeeded for the event (seq < 0: the message had none).
	Applied(ctx context.Context, eventID, subject string, seq int64) error
}

// MemoryStore is a Store in memory. It remembers the last MaxEvents event ids (default
// 100 000) and the last seq of every subject it saw.
type MemoryStore struct {
	MaxEvents int

	mu    sync.Mutex
	seen  map[string]struct{}
	order []string // event ids, oldest first, for eviction
	seqs  map[string]int64
}

// Seen implements Store.
func (m *MemoryStore) Seen(_ context.Context, eventID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.seen[eventID]
	return ok, nil
}

// LastSeq implements Store.
func (m *MemoryStore) LastSeq(_ context.Context, subject string) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.seqs[subject]
	return s, ok, nil
}

// Applied implements Store.
func (m *MemoryStore) Applied(_ context.Context, eventID, subject string, seq int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen, m.seqs = map[string]struct{}{}, map[string]int64{}
	}
	if eventID != "" {
		if _, ok := m.seen[eventID]; !ok {
			m.seen[eventID] = struct{}{}
			m.order = append(m.order, eventID)
		}
		max := m.MaxEvents
		if max <= 0 {
			max = 100_000
		}
		for len(m.order) > max {
			delete(m.seen, m.order[0])
			m.order = m.order[1:]
		}
	}
	if last, ok := m.seqs[subject]; seq >= 0 && (!ok || seq > last) {
		m.seqs[subject] = seq
	}
	return nil
}

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Redis redis.UniversalClient
	// Group is the app's own consumer group (required); never share one with another app.
	Group string
	// Consumer names this consumer within the group (default "consumer-1"). Give each process
	// its own, and keep it across restarts so that a process re-reads its own pending messages.
	Consumer string
	// Streams to read: AppStreams(appID) for the app's own streams (read them as the app's own
	// Redis user); default the shared payment_results and refund_results, which every app's
	// results go to while the service writes them (SHARED_RESULT_STREAMS).
	Streams []string
	// Prefix is prepended to every stream name (the service's STREAM_PREFIX; empty in production).
	Prefix string
	// AppID, if set, skips (acknowledges without handling) messages of other apps.
	AppID string
	// Store remembers applied events; default a MemoryStore.
	Store Store
	// ClaimIdle: a message another consumer of the group (or this one before a crash or a
	// handler error) left unacknowledged this long is claimed and handled again. Default 30 s.
	ClaimIdle time.Duration
	// Block is how long one read waits for new messages (default 2 s); Count how many it takes (default 50).
	Block time.Duration
	Count int64
	// Logger receives handler failures; default slog.Default().
	Logger *slog.Logger
}

// Consumer reads result messages in a consumer group of the app's own and hands each to a
// Handler, acknowledging a message only after the handler succeeded, or when it is a repeat
// (event_id already applied), stale (seq not above the last applied for its order or refund)
// or another app's.
type Consumer struct {
	cfg     ConsumerConfig
	handler Handler
	// handling makes handle take one message at a time: on a cluster several loops read at once
	// (see Run), and the Store's repeat and order checks must see each other's results.
	handling sync.Mutex
}

// NewConsumer returns a consumer; Run starts it.
func NewConsumer(cfg ConsumerConfig, h Handler) (*Consumer, error) {
	if cfg.Redis == nil || cfg.Group == "" || h == nil {
		return nil, errors.New("loomipay: consumer needs Redis, Group and a handler")
	}
	if cfg.Consumer == "" {
		cfg.Consumer = "consumer-1"
	}
	if len(cfg.Streams) == 0 {
		cfg.Streams = []string{StreamPaymentResults, StreamRefundResults}
	}
	if cfg.Store == nil {
		cfg.Store = &MemoryStore{}
	}
	if cfg.ClaimIdle <= 0 {
		cfg.ClaimIdle = 30 * time.Second
	}
	if cfg.Block <= 0 {
		cfg.Block = 2 * time.Second
	}
	if cfg.Count <= 0 {
		cfg.Count = 50
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Consumer{cfg: cfg, handler: h}, nil
}

// Run consumes until ctx ends (then it returns nil) or Redis fails persistently.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.ensureGroups(ctx); err != nil {
		return err
	}
	// First what this consumer was given and never acknowledged (a crash or a failed handler
	// before a restart), then new messages, and every ClaimIdle the group's stale messages.
	if err := c.readPending(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	groups := c.readGroups()
	if len(groups) == 1 {
		return c.loop(ctx, groups[0], true)
	}
	// On a Redis Cluster, streams in different slots cannot be read in one XREADGROUP: each
	// slot's streams get a loop of their own, so that a blocking read of an idle stream never
	// holds up another's messages. The first loop also claims stale messages; handle takes them
	// one at a time. One loop failing for good stops the others.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(groups))
	for i, streams := range groups {
		wg.Go(func() {
			if errs[i] = c.loop(ctx, streams, i == 0); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// loop reads new messages of streams (which one XREADGROUP may name together) and, with claim,
// claims the group's stale messages every ClaimIdle/2, until ctx ends or Redis fails ten times
// in a row.
func (c *Consumer) loop(ctx context.Context, streams []string, claim bool) error {
	lastClaim := time.Time{}
	failures := 0
	for ctx.Err() == nil {
		var err error
		if claim && time.Since(lastClaim) >= c.cfg.ClaimIdle/2 {
			err = c.claimStale(ctx)
			lastClaim = time.Now()
		}
		if err == nil {
			err = c.readNew(ctx, streams)
		}
		if err != nil && ctx.Err() == nil {
			failures++
			if failures >= 10 {
				return fmt.Errorf("loomipay: consumer: %w", err)
			}
			c.cfg.Logger.WarnContext(ctx, "loomipay consumer: redis error; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(failures) * 200 * time.Millisecond):
			}
			continue
		}
		failures = 0
	}
	return nil
}

func (c *Consumer) stream(name string) string { return c.cfg.Prefix + name }

func (c *Consumer) ensureGroups(ctx context.Context) error {
	for _, s := range c.cfg.Streams {
		// From the stream's start, so results published before the app's first run are read.
		err := c.cfg.Redis.XGroupCreateMkStream(ctx, c.stream(s), c.cfg.Group, "0").Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("loomipay: create consumer group %s on %s: %w", c.cfg.Group, c.stream(s), err)
		}
	}
	return nil
}

// readPending handles the messages already delivered to this consumer and not acknowledged.
func (c *Consumer) readPending(ctx context.Context) error {
	for _, s := range c.cfg.Streams {
		start := "0"
		for {
			res, err := c.cfg.Redis.XReadGroup(ctx, &redis.XReadGroupArgs{Group: c.cfg.Group, Consumer: c.cfg.Consumer,
				Streams: []string{c.stream(s), start}, Count: c.cfg.Count, Block: -1}).Result()
			if err != nil {
				return err
			}
			if len(res) == 0 || len(res[0].Messages) == 0 {
				break
			}
			for _, m := range res[0].Messages {
				c.handle(ctx, s, m)
				start = m.ID
			}
		}
	}
	return nil
}

// readGroups splits the streams into the sets one XREADGROUP may name: all of them on a single
// Redis; on a Redis Cluster, those that share a hash tag, since a cluster refuses a command over
// keys of different slots (CROSSSLOT). The shared payment_results and refund_results are in
// different slots; an app's own two streams (payment_results:{APP}, refund_results:{APP}) share
// one.
func (c *Consumer) readGroups() [][]string {
	if _, cluster := c.cfg.Redis.(*redis.ClusterClient); !cluster {
		return [][]string{c.cfg.Streams}
	}
	var groups [][]string
	index := map[string]int{}
	for _, s := range c.cfg.Streams {
		tag := hashTag(c.stream(s))
		i, ok := index[tag]
		if !ok {
			i = len(groups)
			index[tag] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], s)
	}
	return groups
}

// hashTag is the part of a key Redis Cluster hashes: the text between the first "{" and the next
// "}" if not empty, else the whole key. Keys with equal tags are in one slot.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// readNew reads new messages of streams (which one XREADGROUP may name together) and handles
// them.
func (c *Consumer) readNew(ctx context.Context, streams []string) error {
	args := &redis.XReadGroupArgs{Group: c.cfg.Group, Consumer: c.cfg.Consumer, Count: c.cfg.Count, Block: c.cfg.Block}
	for _, s := range streams {
		args.Streams = append(args.Streams, c.stream(s))
	}
	for range streams {
		args.Streams = append(args.Streams, ">")
	}
	res, err := c.cfg.Redis.XReadGroup(ctx, args).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, st := range res {
		name := strings.TrimPrefix(st.Stream, c.cfg.Prefix)
		for _, m := range st.Messages {
			c.handle(ctx, name, m)
		}
	}
	return nil
}

// claimStale takes over the group's messages left unacknowledged for ClaimIdle (by a crashed
// consumer, or by a handler that failed) and handles them.
func (c *Consumer) claimStale(ctx context.Context) error {
	for _, s := range c.cfg.Streams {
		start := "0-0"
		for {
			msgs, next, err := c.cfg.Redis.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: c.stream(s), Group: c.cfg.Group,
				Consumer: c.cfg.Consumer, MinIdle: c.cfg.ClaimIdle, Start: start, Count: c.cfg.Count}).Result()
			if err != nil {
				return err
			}
			for _, m := range msgs {
				c.handle(ctx, s, m)
			}
			if next == "0-0" || len(msgs) == 0 {
				break
			}
			start = next
		}
	}
	return nil
}

// handle applies one message and acknowledges it unless the handler failed.
func (c *Consumer) handle(ctx context.Context, stream string, m redis.XMessage) {
	c.handling.Lock()
	defer c.handling.Unlock()
	r := Result{Stream: stream, MessageID: m.ID, Fields: make(map[string]string, len(m.Values))}
	for k, v := range m.Values {
		r.Fields[k] = fmt.Sprint(v)
	}
	apply, err := c.shouldApply(ctx, r)
	if err != nil {
		c.cfg.Logger.ErrorContext(ctx, "loomipay consumer: store failed; message left for a retry", "stream", stream, "id", m.ID, "err", err)
		return
	}
	if apply {
		if err := c.handler(ctx, r); err != nil {
			c.cfg.Logger.WarnContext(ctx, "loomipay consumer: handler failed; message left for a retry",
				"stream", stream, "id", m.ID, "event_id", r.EventID(), "err", err)
			return
		}
		seq, ok := r.Seq()
		if !ok {
			seq = -1
		}
		if err := c.cfg.Store.Applied(ctx, r.EventID(), r.Subject(), seq); err != nil {
			c.cfg.Logger.ErrorContext(ctx, "loomipay consumer: could not record an applied event", "event_id", r.EventID(), "err", err)
			return
		}
	}
	if err := c.cfg.Redis.XAck(ctx, c.stream(stream), c.cfg.Group, m.ID).Err(); err != nil {
		c.cfg.Logger.WarnContext(ctx, "loomipay consumer: ack failed; the message will come again and be dropped as a repeat", "id", m.ID, "err", err)
	}
}

// shouldApply is false for another app's message, a repeat, or a stale one.
func (c *Consumer) shouldApply(ctx context.Context, r Result) (bool, error) {
	if c.cfg.AppID != "" && r.AppID() != c.cfg.AppID {
		return false, nil
	}
	if id := r.EventID(); id != "" {
		seen, err := c.cfg.Store.Seen(ctx, id)
		if err != nil || seen {
			return false, err
		}
	}
	if seq, ok := r.Seq(); ok {
		last, known, err := c.cfg.Store.LastSeq(ctx, r.Subject())
		if err != nil || (known && seq <= last) {
			return false, err
		}
	}
	return true, nil
}

// Package streams carries Loomi Pay's work and results over Redis Streams: the payment_tasks
// stream the processor drains with a consumer group (ack, reclaim, dead letter), and the
// payment_results / refund_results streams main apps read.
package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loomipay/loomipay/shared/pay"
)

// Stream names, before the configured prefix.
const (
	TaskStream       = "payment_tasks"
	DeadLetterStream = "payment_tasks_dead"
	DefaultGroup     = "loomipay_processor"
)

// Config names and bounds the streams.
type Config struct {
	// Prefix is put before every stream name; empty in production (main apps read the plain
	// names), a unique value per test.
	Prefix string
	// Group is the processor's consumer group on the task stream.
	Group string
	// ResultRetention keeps at least this much history on the result streams (trimmed
	// approximately by MINID on every add). Default 7 days.
	ResultRetention time.Duration
	// ResultMaxLen, if > 0, also caps each result stream's length (approximately); the processor
	// applies it with XTRIM, so memory stays bounded even under a burst inside the retention.
	ResultMaxLen int64
	// TaskMaxLen caps the task and dead-letter streams (approximately). Default 1,000,000.
	TaskMaxLen int64
	// AppPaymentStream and AppRefundStream name each app's own result streams; "$APP" stands for
	// the app id. Defaults "payment_results:{$APP}" and "refund_results:{$APP}": the braces are a
	// Redis Cluster hash tag, so an app's two streams live in one slot.
	AppPaymentStream, AppRefundStream string
	// NoSharedResults stops writing the shared payment_results / refund_results streams of the
	// integration guide (every app can read those); the per-app streams are always written.
	NoSharedResults bool
}

// Streams is the Redis side of the service.
type Streams struct {
	rdb redis.UniversalClient
	cfg Config
}

// New wraps a client (a single node's, or a cluster's: every command here names one key, so
// none crosses hash slots). See NewClient for the options a client needs.
func New(rdb redis.UniversalClient, cfg Config) *Streams {
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if cfg.ResultRetention == 0 {
		cfg.ResultRetention = 7 * 24 * time.Hour
	}
	if cfg.TaskMaxLen == 0 {
		cfg.TaskMaxLen = 1_000_000
	}
	if cfg.AppPaymentStream == "" {
		cfg.AppPaymentStream = DefaultAppPaymentStream
	}
	if cfg.AppRefundStream == "" {
		cfg.AppRefundStream = DefaultAppRefundStream
	}
	return &Streams{rdb: rdb, cfg: cfg}
}

// NewClient makes a go-redis client from a redis:// URL with the options Lambda needs: context
// deadlines honoured (otherwise the function's deadline is ignored) and short dial timeouts so
// that a Redis outage costs a request little.
func NewClient(url string) (*redis.Client, error) {
	opts, err := clientOptions(url)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opts), nil
}

func clientOptions(url string) (*redis.Options, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, errors.New("parse redis url: not a valid redis:// URL")
	}
	opts.ContextTimeoutEnabled = true
	opts.DialTimeout = time.Second
	opts.ReadTimeout = 2 * time.Second
	opts.WriteTimeout = 2 * time.Second
	opts.MaxRetries = 1
	return opts, nil
}

// NewUniversalClient is NewClient for a single node, or, with cluster, a cluster client for a
// cluster-mode Redis (ElastiCache's configuration endpoint in url; more nodes may be given as
// ?addr=host:port parameters). Both come through redis.NewUniversalClient.
func NewUniversalClient(url string, cluster bool) (redis.UniversalClient, error) {
	return newUniversalClient(url, cluster, nil)
}

// newUniversalClient is NewUniversalClient with, when credentials is set, the user and password
// asked of it for each new connection instead of taken from url.
func newUniversalClient(url string, cluster bool, credentials func(context.Context) (string, string, error)) (redis.UniversalClient, error) {
	if !cluster {
		opts, err := clientOptions(url)
		if err != nil {
			return nil, err
		}
		opts.CredentialsProviderContext = credentials
		return redis.NewClient(opts), nil
	}
	opts, err := redis.ParseClusterURL(url)
	if err != nil {
		return nil, errors.New("parse redis url: not a valid redis:// cluster URL")
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: opts.Addrs, IsClusterMode: true, Username: opts.Username, Password: opts.Password, TLSConfig: opts.TLSConfig,
		CredentialsProviderContext: credentials,
		ContextTimeoutEnabled:      true, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxRetries: 1,
	}), nil
}

// Name returns the full name of a stream.
func (s *Streams) Name(stream string) string { return s.cfg.Prefix + stream }

// Client exposes the Redis client (tests, benchmarks).
func (s *Streams) Client() redis.UniversalClient { return s.rdb }

// Group is the processor's consumer group.
func (s *Streams) Group() string { return s.cfg.Group }

// TaskMessage wakes the processor for one task; the task's state lives in Postgres.
type TaskMessage struct {
	TaskID    int64
	Kind      string
	SubjectID string
}

// Delivery is a task message read from the stream.
type Delivery struct {
	ID        string // stream entry id, for ack
	Task      TaskMessage
	Malformed string // set when the entry could not be decoded
}

// EnsureGroup creates the processor's consumer group at the start of the stream (so nothing
// published before it existed is skipped), creating the stream if needed.
func (s *Streams) EnsureGroup(ctx context.Context) error {
	err := s.rdb.XGroupCreateMkStream(ctx, s.Name(TaskStream), s.cfg.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create consumer group: %w", err)
	}
	return nil
}

// PublishTasks adds task messages to the task stream in one round trip.
func (s *Streams) PublishTasks(ctx context.Context, tasks ...TaskMessage) error {
	if len(tasks) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, t := range tasks {
		pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: s.Name(TaskStream), MaxLen: s.cfg.TaskMaxLen, Approx: true,
			Values: taskValues(t),
		})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("publish tasks: %w", err)
	}
	return nil
}

// ReadTasks reads up to count new task messages for consumer, waiting up to block for the first
// (block <= 0: do not wait).
func (s *Streams) ReadTasks(ctx context.Context, consumer string, count int, block time.Duration) ([]Delivery, error) {
	if block <= 0 {
		block = -1 // go-redis: negative leaves BLOCK out; 0 would block forever
	}
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: s.cfg.Group, Consumer: consumer, Streams: []string{s.Name(TaskStream), ">"},
		Count: int64(count), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tasks: %w", err)
	}
	var out []Delivery
	for _, st := range res {
		for _, m := range st.Messages {
			out = append(out, decodeTask(m))
		}
	}
	return out, nil
}

// ReclaimTasks takes over up to count messages that another consumer read but did not ack for
// at least minIdle (a crashed or timed-out processor run).
func (s *Streams) ReclaimTasks(ctx context.Context, consumer string, minIdle time.Duration, count int) ([]Delivery, error) {
	msgs, _, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: s.Name(TaskStream), Group: s.cfg.Group, Consumer: consumer,
		MinIdle: minIdle, Start: "0-0", Count: int64(count),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("reclaim tasks: %w", err)
	}
	out := make([]Delivery, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, decodeTask(m))
	}
	return out, nil
}

// Ack acknowledges handled task messages.
func (s *Streams) Ack(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.rdb.XAck(ctx, s.Name(TaskStream), s.cfg.Group, ids...).Err(); err != nil {
		return fmt.Errorf("ack tasks: %w", err)
	}
	return nil
}

// Release gives back task messages a consumer read but will not work (it is stopping): each goes
// on the stream again as a new entry, which the next reader gets at once, and the original is
// acknowledged, in one transaction. Left pending instead, they would wait out the lease before
// another consumer reclaimed them, and hold the consumer's name in the group until then.
func (s *Streams) Release(ctx context.Context, ds ...Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	stream := s.Name(TaskStream)
	ids := make([]string, len(ds))
	_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, d := range ds {
			ids[i] = d.ID
			pipe.XAdd(ctx, &redis.XAddArgs{
				Stream: stream, MaxLen: s.cfg.TaskMaxLen, Approx: true,
				Values: taskValues(d.Task),
			})
		}
		pipe.XAck(ctx, stream, s.cfg.Group, ids...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("release tasks: %w", err)
	}
	return nil
}

// DeadLetter records a task given up on in the dead-letter stream.
func (s *Streams) DeadLetter(ctx context.Context, d Delivery, attempts int, reason string) error {
	err := s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: s.Name(DeadLetterStream), MaxLen: s.cfg.TaskMaxLen, Approx: true,
		Values: []string{"task_id", strconv.FormatInt(d.Task.TaskID, 10), "kind", d.Task.Kind,
			"subject_id", d.Task.SubjectID, "stream_id", d.ID, "attempts", strconv.Itoa(attempts),
			"reason", reason, "timestamp", pay.FormatTime(time.Now())},
	}).Err()
	if err != nil {
		return fmt.Errorf("dead-letter task %d: %w", d.Task.TaskID, err)
	}
	return nil
}

func taskValues(t TaskMessage) []string {
	return []string{"task_id", strconv.FormatInt(t.TaskID, 10), "kind", t.Kind, "subject_id", t.SubjectID}
}

func decodeTask(m redis.XMessage) Delivery {
	d := Delivery{ID: m.ID}
	id, _ := m.Values["task_id"].(string)
	d.Task.Kind, _ = m.Values["kind"].(string)
	d.Task.SubjectID, _ = m.Values["subject_id"].(string)
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		d.Malformed = fmt.Sprintf("task_id %q is not a positive integer", id)
	}
	d.Task.TaskID = n
	return d
}

// PublishResults adds result messages to their streams in one round trip, trimming each stream
// approximately to the retention window. Each message goes to the shared stream (unless
// NoSharedResults) and to its app's own stream, with the same fields (event_id, seq).
func (s *Streams) PublishResults(ctx context.Context, msgs []pay.ResultMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	minID := strconv.FormatInt(time.Now().Add(-s.cfg.ResultRetention).UnixMilli(), 10)
	pipe := s.rdb.Pipeline()
	touched := map[string]bool{}
	for _, m := range msgs {
		values := make([]string, 0, 2*len(m.Fields))
		for k, v := range m.Fields {
			values = append(values, k, v)
		}
		var names []string
		if !s.cfg.NoSharedResults {
			names = append(names, s.Name(m.Stream))
		}
		if app := m.Fields["app_id"]; app != "" {
			names = append(names, s.AppStream(m.Stream, app))
		}
		for _, name := range names {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: name, MinID: minID, Approx: true, Values: values})
			touched[name] = true
		}
	}
	// Wake whoever waits for new results (the webhook engine), without a poll interval.
	pipe.Publish(ctx, s.Name(ResultsChannel), "")
	// XADD takes one trim strategy; the length cap goes in the same round trip, so that a burst
	// inside the retention window cannot outgrow it between the processor's trims. Redis's
	// default LIMIT keeps each such trim's work small.
	if s.cfg.ResultMaxLen > 0 {
		for name := range touched {
			pipe.XTrimMaxLenApprox(ctx, name, s.cfg.ResultMaxLen, 0)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("publish results: %w", err)
	}
	return nil
}

// TrimResults applies ResultMaxLen to the shared result streams and to the own streams of the
// apps given, if set. (Every add trims the streams it touches as well.)
func (s *Streams) TrimResults(ctx context.Context, apps ...string) error {
	if s.cfg.ResultMaxLen <= 0 {
		return nil
	}
	names := []string{s.Name(pay.StreamPaymentResults), s.Name(pay.StreamRefundResults)}
	for _, app := range apps {
		names = append(names, s.AppStream(pay.StreamPaymentResults, app), s.AppStream(pay.StreamRefundResults, app))
	}
	for _, st := range names {
		// LIMIT 0: an approximate trim otherwise removes at most 10,000 entries per call (Redis's
		// default, 100 × stream-node-max-entries), so a stream far over the cap would take many
		// passes to come back. go-redis leaves LIMIT out when given 0, hence Do.
		if err := s.rdb.Do(ctx, "XTRIM", st, "MAXLEN", "~", s.cfg.ResultMaxLen, "LIMIT", 0).Err(); err != nil {
			return fmt.Errorf("trim %s: %w", st, err)
		}
	}
	return nil
}

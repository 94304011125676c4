// Package processor is the scheduled worker: it drains the task stream (creating cashier
// orders, submitting refunds), republishes tasks the stream lost, reclaims tasks a crashed run
// left, reconciles orders whose notification never came, expires unpaid orders, and relays the
// result outbox.
package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/loomipay/loomipay/shared/metrics"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

// Gateway is what the processor asks of Lakala (lakala.Client implements it).
type Gateway = service.Gateway

// Gateways gives each merchant's Gateway (shared/merchants.Registry).
type Gateways = service.Gateways

// Config tunes the processor. Zero values take the defaults noted.
type Config struct {
	// Consumer is the name in the consumer group. Deployed runs use a name of their own
	// (worker.ConsumerName), so k runs at once are k consumers; a run removes its name when it
	// ends and maintenance sweeps idle names without pending messages, so they do not pile up.
	// Default "processor" (tests). Reclaim goes by idle time, not by owner.
	Consumer    string
	Concurrency int           // tasks handled at once; default 64 (Lakala calls are I/O bound)
	MaxAttempts int           // attempts per task before it is given up; default 8
	BackoffBase time.Duration // first retry delay, doubled per attempt; default 2 s
	BackoffMax  time.Duration // default 5 min
	// Lease is how long a claimed task is reserved for its worker, and how long a read but
	// unacknowledged message must sit before another run reclaims it. Default 60 s. A task's
	// handling is cut off LeaseMargin before its lease ends; Validate checks that this leaves room
	// for the longest handling (see MaxCallsPerTask).
	Lease time.Duration
	// LeaseMargin is kept between a task's handling deadline and the end of its lease, for the
	// writes that finish the task. Default 5 s, or a tenth of Lease if that is shorter.
	LeaseMargin time.Duration
	// SweepGrace: a task never attempted is (re)published after this long; long enough that a
	// normal backlog is drained first (each republish is a duplicate the claim then skips).
	// Default 30 s.
	SweepGrace time.Duration
	// SweepStale: a published task still queued after this long is republished, in case its
	// stream entry was lost. Default 5 min.
	SweepStale time.Duration
	// ReconcileAfter: an order processing this long without a notification is queried, and is
	// queried again no sooner than this after a check. Default 5 min.
	ReconcileAfter time.Duration
	// ReviewAfterFailedChecks: this many consecutive failed checks of an order open a review
	// case. Default 10.
	ReviewAfterFailedChecks int
	// ReconcileBatch is how many orders one reconciliation pass looks at. Default 200.
	ReconcileBatch int
	// LatePaymentWatch: a final order with a closed cashier order is looked at for this long
	// after its last change, ever less often, for a payment that landed after the close. Default
	// 24 h.
	LatePaymentWatch time.Duration
	// NotifyURL is the webhook's public URL, given to Lakala with every cashier order.
	NotifyURL string
	// RefundRequestIP is location_info.request_ip of refunds. Default 127.0.0.1.
	RefundRequestIP string
	// RefundAPI is the Lakala refund API new refunds go through (service.PaymentsConfig).
	RefundAPI string
	// VisibilityLag: how long Lakala may take before a query sees what it applied (see
	// service.PaymentsConfig). Default 2 min.
	VisibilityLag time.Duration
	// ReadBlock is how long one read waits for new tasks when the stream is empty. Default 1 s.
	ReadBlock time.Duration
	// MaintenanceEvery spaces the sweeps, reconciliation and relay inside Run. Default 10 s.
	MaintenanceEvery time.Duration
	// DeadlineMargin is left before the invocation's deadline to finish and ack. Default 5 s.
	DeadlineMargin time.Duration
	// OutboxRetention: published result messages are pruned from Postgres after it. Default 7 days.
	OutboxRetention time.Duration
	// IdleExit, if > 0, ends Run once no task has arrived for this long. Zero keeps the run
	// going until its deadline: new tasks are picked up within milliseconds, at the price of a
	// function that is always running. A short IdleExit trades that latency (up to the schedule's
	// period) for cost.
	IdleExit time.Duration
	// Webhooks, if set, is run beside the drain by Run and once by RunOnce (see webhooks.go).
	Webhooks WebhookEngine
	// EvidenceRetention: gateway calls and notifications are pruned after it. Default 30 days.
	EvidenceRetention time.Duration
	// Metrics, if set, receives the operations gauges after each maintenance pass.
	Metrics *metrics.Emitter
}

func (c *Config) defaults() {
	setDefault(&c.Consumer, "processor")
	setDefault(&c.Concurrency, 64)
	setDefault(&c.MaxAttempts, 8)
	setDefault(&c.BackoffBase, 2*time.Second)
	setDefault(&c.BackoffMax, 5*time.Minute)
	setDefault(&c.Lease, time.Minute)
	setDefault(&c.LeaseMargin, min(5*time.Second, c.Lease/10))
	setDefault(&c.ReviewAfterFailedChecks, 10)
	setDefault(&c.ReconcileBatch, 200)
	setDefault(&c.LatePaymentWatch, 24*time.Hour)
	setDefault(&c.SweepGrace, 30*time.Second)
	setDefault(&c.SweepStale, 5*time.Minute)
	setDefault(&c.ReconcileAfter, 5*time.Minute)
	setDefault(&c.ReadBlock, time.Second)
	setDefault(&c.MaintenanceEvery, 10*time.Second)
	setDefault(&c.DeadlineMargin, 5*time.Second)
	setDefault(&c.OutboxRetention, 7*24*time.Hour)
	setDefault(&c.EvidenceRetention, 30*24*time.Hour)
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// MaxCallsPerTask is the most Lakala calls one handling of a task makes in the worst case that
// Validate plans for: a refund confirmation (query, then a resubmission) or a checkout after an
// ambiguous create (query the old cashier order and close it, then create the next). A wind-down
// makes two calls per cashier order; the handling deadline cuts it off, and its next attempt goes
// on where it stopped.
const MaxCallsPerTask = 3

// Validate checks the configuration against the Lakala call timeout: the lease must cover the
// longest handling of a task (MaxCallsPerTask calls, each up to lakalaTimeout) plus the margin,
// or a second worker could reclaim a task its first worker is still handling.
func (c Config) Validate(lakalaTimeout time.Duration) error {
	c.defaults()
	if need := time.Duration(MaxCallsPerTask)*lakalaTimeout + c.LeaseMargin; c.Lease < need {
		return fmt.Errorf("PROCESSOR_LEASE %s is shorter than the longest task handling: %d Lakala calls of up to %s (LAKALA_TIMEOUT) plus a %s margin = %s",
			c.Lease, MaxCallsPerTask, lakalaTimeout, c.LeaseMargin, need)
	}
	return nil
}

// Processor does the background work of the service.
type Processor struct {
	svc     *service.Service
	pay     *service.Payments
	store   *postgres.Store
	streams *streams.Streams
	cfg     Config
	log     *slog.Logger
}

// New builds a processor that calls Lakala through each order's merchant's gateway.
func New(svc *service.Service, gws Gateways, cfg Config) *Processor {
	cfg.defaults()
	payments := service.NewPayments(svc, gws, service.PaymentsConfig{
		NotifyURL: cfg.NotifyURL, RefundRequestIP: cfg.RefundRequestIP,
		VisibilityLag: cfg.VisibilityLag, RefundAPI: cfg.RefundAPI,
	})
	return &Processor{svc: svc, pay: payments, store: svc.Store(), streams: svc.Streams(), cfg: cfg,
		log: svc.Logger().With("component", "processor")}
}

// Payments is the processor's gateway driver (tests, the local stack).
func (p *Processor) Payments() *service.Payments { return p.pay }

// Stats counts what a run did.
type Stats struct {
	Handled     int // task messages handled (acked)
	Retried     int // tasks put back for a later attempt
	Dead        int // tasks given up and dead-lettered
	Review      int // tasks stopped for a person (a review case)
	Republished int // tasks the sweep put (back) on the stream
	Reclaimed   int // messages taken over from a crashed run
	Reconciled  int // live orders settled or expired by querying Lakala
	Relayed     int // outbox messages published by the relay sweep
	Webhooks    int // webhook attempts made by RunOnce (Run's engine runs on its own)
	AppUsers    int // apps' Redis users made again (or given new rules) from PostgreSQL
}

func (s *Stats) add(o Stats) {
	s.Handled += o.Handled
	s.Retried += o.Retried
	s.Dead += o.Dead
	s.Review += o.Review
	s.Republished += o.Republished
	s.Reclaimed += o.Reclaimed
	s.Reconciled += o.Reconciled
	s.Relayed += o.Relayed
	s.Webhooks += o.Webhooks
	s.AppUsers += o.AppUsers
}

// Run works until shortly before ctx's deadline (a Lambda invocation), or until ctx is
// cancelled when it has none (the local stack): maintenance every MaintenanceEvery, and in
// between it drains the task stream as tasks arrive. The end of ctx cancels the work in flight;
// RunUntil also stops gracefully.
func (p *Processor) Run(ctx context.Context) (Stats, error) {
	return p.RunUntil(ctx, nil, 0)
}

// RunUntil is Run with a graceful stop (see stop.go): once stop is closed, the run claims nothing
// new and waits up to grace for the work in flight, then cancels what is still running. The end
// of ctx cancels at any time, as in Run. It returns an error wrapping ErrStopCut when a stop had
// to cancel work.
func (p *Processor) RunUntil(ctx context.Context, stop <-chan struct{}, grace time.Duration) (Stats, error) {
	var total Stats
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-p.cfg.DeadlineMargin))
		defer cancel()
	}
	r, watch := p.startRun(ctx, stop, grace)
	defer r.close()
	stopWebhooks := p.startWebhooks(r)
	var lastMaintenance time.Time
	lastWork := time.Now()
	for r.intake.Err() == nil {
		if time.Since(lastMaintenance) >= p.cfg.MaintenanceEvery {
			st, err := p.maintain(r)
			total.add(st)
			if err != nil && r.work.Err() == nil {
				p.log.ErrorContext(ctx, "maintenance failed", "err", err)
			}
			lastMaintenance = time.Now()
		}
		st, err := p.drain(r, p.cfg.ReadBlock)
		total.add(st)
		if err != nil && r.work.Err() == nil {
			p.log.ErrorContext(ctx, "drain failed", "err", err)
			sleep(r.intake, time.Second) // Redis or Postgres is down: do not spin
		}
		if st.Handled > 0 {
			lastWork = time.Now()
		} else if p.cfg.IdleExit > 0 && time.Since(lastWork) >= p.cfg.IdleExit {
			break
		}
	}
	stopWebhooks()
	stopErr := watch() // everything this run started has ended
	// Runs read under names of their own (worker.ConsumerName): leave no name behind. A name
	// still holding messages stays until a later run reclaims them and the sweep below removes it.
	done, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if _, err := p.streams.RemoveConsumer(done, p.cfg.Consumer); err != nil {
		p.log.WarnContext(done, "could not remove this run's consumer", "consumer", p.cfg.Consumer, "err", err)
	}
	p.log.InfoContext(done, "processor run finished", "stats", total)
	return total, stopErr
}

// RunOnce does one full pass — maintenance, then drain until the stream is empty — and returns.
// Tests and the local stack's "process now" use it.
func (p *Processor) RunOnce(ctx context.Context) (Stats, error) {
	st, err := p.Maintain(ctx)
	if err != nil {
		return st, err
	}
	d, err := p.Drain(ctx, 0)
	st.add(d)
	if err != nil {
		return st, err
	}
	// Relay what the drain's own publishes could not deliver.
	n, err := p.svc.RelayOutbox(ctx, 500)
	st.Relayed += n
	if err != nil {
		return st, err
	}
	st.Webhooks, err = p.webhooksOnce(ctx)
	return st, err
}

// Maintain runs the periodic duties: republish lost tasks, reclaim a crashed run's messages,
// reconcile and expire orders, relay the outbox, trim, make apps' Redis users again, and prune.
func (p *Processor) Maintain(ctx context.Context) (Stats, error) {
	return p.maintain(plainRun(ctx))
}

// maintain is Maintain within a run: once the run stops taking work, no further duty starts
// (those under way finish).
func (p *Processor) maintain(r *run) (Stats, error) {
	ctx := r.work
	var st Stats
	if err := p.streams.EnsureGroup(ctx); err != nil {
		return st, err
	}
	var errs []error
	duty := func(fn func() error) {
		if r.intake.Err() == nil {
			errs = append(errs, fn())
		}
	}
	duty(func() (err error) { st.Republished, err = p.sweepTasks(ctx); return err })
	duty(func() error { reclaimed, err := p.reclaim(r); st.add(reclaimed); return err })
	duty(func() (err error) { st.Reconciled, err = p.reconcile(r); return err })
	duty(func() (err error) { st.Relayed, err = p.svc.RelayOutbox(ctx, 500); return err })
	duty(func() error { return p.trimResults(ctx) })
	// Every pass, the first at the run's start: after Redis lost its users (no persistence, a
	// failover to an empty replica), apps log in again with their passwords within a pass.
	duty(func() (err error) { st.AppUsers, err = p.svc.EnsureAppUsers(ctx); return err })
	duty(func() error { _, err := p.streams.RemoveIdleConsumers(ctx, 2*p.cfg.Lease); return err })
	duty(func() error {
		_, err := p.store.PruneEvents(ctx, time.Now().Add(-p.cfg.OutboxRetention), 10_000)
		return err
	})
	// heartbeat, evidence pruning, metrics
	duty(func() error { return p.operations(ctx, st, errors.Join(errs...)) })
	return st, errors.Join(errs...)
}

// sweepTasks republishes queued tasks that the stream does not (or may no longer) hold.
func (p *Processor) sweepTasks(ctx context.Context) (int, error) {
	total := 0
	for {
		now := time.Now()
		tasks, err := p.store.DueTasks(ctx, now, p.cfg.SweepGrace, p.cfg.SweepStale, 500)
		if err != nil || len(tasks) == 0 {
			return total, err
		}
		msgs := make([]streams.TaskMessage, len(tasks))
		ids := make([]int64, len(tasks))
		for i, t := range tasks {
			msgs[i] = streams.TaskMessage{TaskID: t.ID, Kind: string(t.Kind), SubjectID: t.SubjectID}
			ids[i] = t.ID
		}
		if err := p.streams.PublishTasks(ctx, msgs...); err != nil {
			return total, err
		}
		if err := p.store.MarkTasksPublished(ctx, ids, now); err != nil {
			return total, err
		}
		total += len(tasks)
		if len(tasks) < 500 {
			return total, nil
		}
	}
}

// reclaim takes over messages a crashed or timed-out run read but never acknowledged.
func (p *Processor) reclaim(r *run) (Stats, error) {
	var st Stats
	for r.intake.Err() == nil {
		ds, err := p.streams.ReclaimTasks(r.work, p.cfg.Consumer, p.cfg.Lease, p.cfg.Concurrency)
		if err != nil || len(ds) == 0 {
			return st, err
		}
		st.Reclaimed += len(ds)
		st.add(p.handleAll(r, ds))
		if len(ds) < p.cfg.Concurrency {
			return st, nil
		}
	}
	return st, nil
}

// Drain handles new task messages until the stream has none left (a read waits up to block for
// more) or ctx ends. Up to Concurrency tasks are in flight; the reader reads as soon as any of
// them finishes, for as many as are free, so the cores never idle waiting for a batch's slowest
// task.
func (p *Processor) Drain(ctx context.Context, block time.Duration) (Stats, error) {
	return p.drain(plainRun(ctx), block)
}

// drain is Drain within a run: once the run stops taking work it reads no more, and waits for
// the tasks it is handling.
func (p *Processor) drain(r *run, block time.Duration) (Stats, error) {
	var (
		mu sync.Mutex
		st Stats
		wg sync.WaitGroup
	)
	slots := make(chan struct{}, p.cfg.Concurrency)
	for r.intake.Err() == nil {
		// Wait for one free worker (or the stop), then take every other free one.
		select {
		case slots <- struct{}{}:
		case <-r.intake.Done():
			continue
		}
		free := 1
	take:
		for free < p.cfg.Concurrency {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break take
			}
		}
		// The read is not cut short by a stop (it waits at most block): a read abandoned half-way
		// may leave messages delivered to this consumer that it never sees. What it returns after
		// a stop is released (handle).
		ds, err := p.streams.ReadTasks(r.work, p.cfg.Consumer, free, block)
		for range free - len(ds) {
			<-slots
		}
		if err != nil || len(ds) == 0 {
			wg.Wait() // every worker is done: st is final
			return st, err
		}
		for _, d := range ds {
			wg.Go(func() {
				defer func() { <-slots }()
				res := p.handle(r, d)
				mu.Lock()
				st.add(res)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	return st, nil
}

// handleAll handles a batch concurrently and waits for it.
func (p *Processor) handleAll(r *run, ds []streams.Delivery) Stats {
	var (
		mu sync.Mutex
		st Stats
	)
	forEach(ds, p.cfg.Concurrency, func(d streams.Delivery) {
		res := p.handle(r, d)
		mu.Lock()
		st.add(res)
		mu.Unlock()
	})
	return st
}

// forEach calls fn for every item, at most limit at a time, and waits for all of them.
func forEach[T any](items []T, limit int, fn func(T)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, limit)
	for _, item := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(item)
		})
	}
	wg.Wait()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

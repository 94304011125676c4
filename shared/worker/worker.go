// Package worker builds the processor from the configuration. It is apart from shared/config so
// that the HTTP functions, which link config, do not link the processor.
package worker

import (
	"context"
	"errors"
	"strings"

	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/processor"
)

// New validates the configuration for the processor — outside dev the refund request IP
// (config.Validate), in every stage the lease against Lakala's timeout (processor.Config.Validate)
// — and builds the processor with its Lakala client. Every problem is named in one error.
func New(d *config.Deps) (*processor.Processor, error) {
	c := d.Config
	pc := processor.Config{
		Consumer:    ConsumerName(),
		Concurrency: c.ProcessorConcurrency, MaxAttempts: c.ProcessorMaxAttempts, Lease: c.ProcessorLease,
		ReconcileAfter: c.ReconcileAfter, NotifyURL: c.LakalaNotifyURL,
		RefundRequestIP: c.RefundRequestIP, RefundAPI: c.LakalaRefundAPI, IdleExit: c.ProcessorIdleExit, VisibilityLag: c.LakalaVisibilityLag,
		EvidenceRetention: c.EvidenceRetention, Metrics: d.Metrics(), Webhooks: d.Webhooks,
	}
	if err := validate(c, pc); err != nil {
		return nil, err
	}
	if c.LakalaNotifyURL == "" {
		return nil, errors.New("LAKALA_NOTIFY_URL is not set: Lakala must know where to send notifications")
	}
	// The default merchant's client is built now, so a key that cannot be read stops the start.
	if _, err := d.LakalaClient(); err != nil {
		return nil, err
	}
	return processor.New(d.Service, d.Merchants, pc), nil
}

// validate joins the configuration's problems and the processor's lease rule into one message.
func validate(c config.Config, pc processor.Config) error {
	var problems []string
	if err := c.Validate(true); err != nil {
		problems = append(problems, err.Error())
	}
	if err := pc.Validate(c.LakalaTimeout); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "; "))
}

// NewScaler builds the scale-out check from the configuration; start begins extra runs.
func NewScaler(d *config.Deps, start func(ctx context.Context, n int) error) *Scaler {
	return &Scaler{Store: d.Store, Streams: d.Streams, MaxRuns: d.Config.ProcessorMaxRuns, After: d.Config.ProcessorScaleAfter,
		Start: start, Log: d.Log.With("component", "scaler")}
}

// MustOpen is the whole init of the processor function: configuration, connections, processor;
// it exits with one message naming every problem otherwise.
func MustOpen(ctx context.Context) (*config.Deps, *processor.Processor) {
	c, err := config.Load(ctx)
	if err == nil {
		err = validate(c, processor.Config{Lease: c.ProcessorLease})
	}
	if err != nil {
		config.Fatal(err)
	}
	deps, err := config.Open(ctx, c)
	if err != nil {
		config.Fatal(err)
	}
	proc, err := New(deps)
	if err != nil {
		config.Fatal(err)
	}
	return deps, proc
}

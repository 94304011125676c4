package processor

import (
	"context"
	"sync"
)

// WebhookEngine delivers results to main apps' webhook endpoints (webhooks.Webhooks). The
// processor only drives it: it runs beside the task drain, on its own goroutines, so a slow
// endpoint never holds up tasks or the result streams.
type WebhookEngine interface {
	// RunUntil delivers until ctx ends (cutting attempts short) or stop is closed (starting
	// nothing new, and returning once the attempts in flight have ended).
	RunUntil(ctx context.Context, stop, wake <-chan struct{})
	RunOnce(ctx context.Context) (int, error)
}

// startWebhooks runs the engine within the run: it starts no attempt once the run stops taking
// work, or once the returned stop is called (the run ends early, e.g. on IdleExit); its attempts
// run under the run's work. stop waits for the attempts in flight.
func (p *Processor) startWebhooks(r *run) (stop func()) {
	if p.cfg.Webhooks == nil {
		return func() {}
	}
	intake, closeIntake := context.WithCancel(r.intake)
	var wg sync.WaitGroup
	wg.Go(func() { p.cfg.Webhooks.RunUntil(r.work, intake.Done(), p.streams.ResultWakeups(intake)) })
	return func() {
		closeIntake()
		wg.Wait()
	}
}

// webhooksOnce is RunOnce's webhook pass.
func (p *Processor) webhooksOnce(ctx context.Context) (int, error) {
	if p.cfg.Webhooks == nil {
		return 0, nil
	}
	return p.cfg.Webhooks.RunOnce(ctx)
}

// trimResults caps the shared result streams and every app's own ones.
func (p *Processor) trimResults(ctx context.Context) error {
	apps, err := p.store.Apps(ctx)
	if err != nil {
		return err
	}
	ids := make([]string, len(apps))
	for i, a := range apps {
		ids[i] = a.ID
	}
	return p.streams.TrimResults(ctx, ids...)
}

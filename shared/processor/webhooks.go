package processor

import (
	"context"
	"sync"
)

// WebhookEngine delivers results to main apps' webhook endpoints (webhooks.Webhooks). The
// processor only drives it: it runs beside the task drain, on its own goroutines, so a slow
// endpoint never holds up tasks or the result streams.
type WebhookEngine interface {
	Run(ctx context.Context, wake <-chan struct{})
	RunOnce(ctx context.Context) (int, error)
}

// startWebhooks runs the engine until ctx ends or the returned stop is called (the run ends
// early, e.g. on IdleExit); stop waits for the attempts in flight.
func (p *Processor) startWebhooks(ctx context.Context) (stop func()) {
	if p.cfg.Webhooks == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { p.cfg.Webhooks.Run(ctx, p.streams.ResultWakeups(ctx)) })
	return func() {
		cancel()
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

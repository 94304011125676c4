package processor

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/metrics"
	"github.com/loomipay/loomipay/shared/ops"
)

// operations is the processor's part in operating the service, run at the end of each
// maintenance pass: prune the evidence logs past their retention, record the run's heartbeat (the
// console's "last processor run") and the minute's task lag (the overview's chart), and emit the gauges the alarms watch — the same numbers as the
// console's overview.
func (p *Processor) operations(ctx context.Context, st Stats, maintErr error) error {
	var errs []error
	if p.cfg.EvidenceRetention > 0 {
		if _, err := p.store.PruneEvidence(ctx, time.Now().Add(-p.cfg.EvidenceRetention), 10_000); err != nil {
			errs = append(errs, err)
		}
	}
	detail := map[string]any{"stats": st}
	if maintErr != nil {
		detail["error"] = maintErr.Error()
	}
	if err := ops.RecordHeartbeat(ctx, p.store, ops.HeartbeatProcessor, detail); err != nil {
		errs = append(errs, err)
	}
	if err := ops.RecordTaskLag(ctx, p.store, time.Now(), ops.TaskLagRetention); err != nil {
		errs = append(errs, err)
	}
	if p.cfg.Metrics != nil {
		errs = append(errs, p.emitMetrics(ctx, maintErr))
	}
	return errors.Join(errs...)
}

// emitMetrics emits the overview's gauges and the counters of the window since the last emission.
func (p *Processor) emitMetrics(ctx context.Context, maintErr error) error {
	now := time.Now()
	ov, err := ops.ReadOverview(ctx, p.store, p.streams, now, time.UTC)
	if err != nil {
		return err
	}
	since := now.Add(-p.cfg.MaintenanceEvery)
	if hb, err := ops.ReadHeartbeat(ctx, p.store, "metrics"); err == nil && hb.At.After(now.Add(-time.Hour)) {
		since = hb.At
	} else if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	var created, unpublished, verified, refused, applied int64
	err = p.store.Pool().QueryRow(ctx, `SELECT
			(SELECT count(*) FROM payment_orders WHERE id >= $3::uuid AND created_at >= $1 AND created_at < $2),
			(SELECT count(*) FROM outbox WHERE published_at IS NULL),
			(SELECT count(*) FROM notifications WHERE received_at >= $1 AND received_at < $2 AND verified),
			(SELECT count(*) FROM notifications WHERE received_at >= $1 AND received_at < $2 AND NOT verified),
			(SELECT count(*) FROM notifications WHERE received_at >= $1 AND received_at < $2 AND result = 'applied')`,
		since, now, ops.IDFloor(since)).Scan(&created, &unpublished, &verified, &refused, &applied)
	if err != nil {
		return err
	}
	if err := ops.RecordHeartbeat(ctx, p.store, "metrics", map[string]any{"since": since}); err != nil {
		return err
	}
	processorErrors := 0.0
	if maintErr != nil {
		processorErrors = 1
	}
	p.cfg.Metrics.Emit(nil, nil,
		metrics.Metric{Name: "DeadLetters", Unit: metrics.Count, Value: float64(ov.DeadLetters)},
		metrics.Metric{Name: "OpenReviewCases", Unit: metrics.Count, Value: float64(ov.OpenReviewCases)},
		metrics.Metric{Name: "OldestUnpublishedResultAge", Unit: metrics.Seconds, Value: float64(ov.OldestUnpublishedAge)},
		metrics.Metric{Name: "UnpublishedResults", Unit: metrics.Count, Value: float64(unpublished)},
		metrics.Metric{Name: "TaskLag", Unit: metrics.Seconds, Value: float64(ov.TaskLag)},
		metrics.Metric{Name: "OrdersCreated", Unit: metrics.Count, Value: float64(created)},
		metrics.Metric{Name: "NotificationsVerified", Unit: metrics.Count, Value: float64(verified)},
		metrics.Metric{Name: "NotificationsRefused", Unit: metrics.Count, Value: float64(refused)},
		metrics.Metric{Name: "NotificationsApplied", Unit: metrics.Count, Value: float64(applied)},
		metrics.Metric{Name: "ProcessorErrors", Unit: metrics.Count, Value: processorErrors},
		metrics.Metric{Name: "ProcessorRuns", Unit: metrics.Count, Value: 1},
	)
	return nil
}

package ops

import (
	"context"
	"log/slog"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/metrics"
	"github.com/loomipay/loomipay/shared/postgres"
)

// GatewayCallLogger is a lakala.Config.OnCall: it appends every Lakala call to gateway_calls (the
// evidence an order's timeline shows) and emits its metrics (LakalaCalls, LakalaErrors and
// LakalaLatency by operation and outcome). A failed insert is logged and never fails the call.
func GatewayCallLogger(store *postgres.Store, m *metrics.Emitter, log *slog.Logger) func(context.Context, lakala.CallRecord) {
	return func(ctx context.Context, r lakala.CallRecord) {
		unknown := 0.0
		if r.Outcome == lakala.CallUnknown {
			unknown = 1
		}
		m.Emit(map[string]string{"Operation": r.Operation, "Outcome": r.Outcome}, [][]string{{"Operation", "Outcome"}, {}},
			metrics.Metric{Name: "LakalaCalls", Unit: metrics.Count, Value: 1},
			metrics.Metric{Name: "LakalaErrors", Unit: metrics.Count, Value: unknown},
			metrics.Metric{Name: "LakalaLatency", Unit: metrics.Milliseconds, Value: float64(r.Duration.Milliseconds())})
		if r.OutNo == "" {
			return // nothing to attach it to
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		err := store.RecordGatewayCall(ctx, postgres.GatewayCall{Operation: r.Operation, OutNo: r.OutNo, Outcome: r.Outcome,
			Code: r.Code, Message: r.Msg, HTTPStatus: r.HTTPStatus, TraceID: r.TraceID, DurationMS: int(r.Duration.Milliseconds()), CalledAt: r.At, MerchantID: r.MerchantID})
		if err != nil && log != nil {
			log.WarnContext(ctx, "gateway call not logged", "operation", r.Operation, "out_no", r.OutNo, "err", err)
		}
	}
}

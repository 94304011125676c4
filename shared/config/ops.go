package config

import (
	"github.com/loomipay/loomipay/shared/metrics"
	"github.com/loomipay/loomipay/shared/ops"
)

// Ops builds the operations layer (the CLI's operator commands and the console). With a Lakala
// key configured it can act at Lakala too (a review resolution closes the order's cashier orders
// first; an operator closes an order); without one, those actions answer 503 and say why.
func (d *Deps) Ops() *ops.Ops {
	o := ops.New(d.Service).WithWebhooks(d.Webhooks).WithMerchants(d.Merchants)
	if p, err := d.Payments(); err == nil {
		o.WithPayments(p)
	}
	return o
}

// Metrics is the EMF emitter: stdout inside AWS Lambda, nothing elsewhere.
func (d *Deps) Metrics() *metrics.Emitter { return metrics.FromEnv(d.Config.MetricsNamespace) }

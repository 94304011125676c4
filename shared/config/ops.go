package config

import (
	"github.com/loomipay/loomipay/shared/metrics"
	"github.com/loomipay/loomipay/shared/ops"
)

// Ops builds the operations layer (the CLI's operator commands and the console).
func (d *Deps) Ops() *ops.Ops { return ops.New(d.Service).WithWebhooks(d.Webhooks) }

// Metrics is the EMF emitter: stdout inside AWS Lambda, nothing elsewhere.
func (d *Deps) Metrics() *metrics.Emitter { return metrics.FromEnv(d.Config.MetricsNamespace) }

// Package metrics writes CloudWatch Embedded Metric Format (EMF) lines: one JSON object per line
// on stdout, which CloudWatch Logs turns into metrics without any API call from the function.
// The alarms in template.yaml are declared on these metrics.
package metrics

import (
	"encoding/json"
	"io"
	"os"
	"sync"
	"time"
)

// DefaultNamespace is used when METRICS_NAMESPACE is unset.
const DefaultNamespace = "LoomiPay"

// Units used here (CloudWatch's names).
const (
	Count        = "Count"
	Milliseconds = "Milliseconds"
	Seconds      = "Seconds"
)

// Metric is one value.
type Metric struct {
	Name  string
	Unit  string
	Value float64
}

// Emitter writes EMF lines. A nil *Emitter, or one without a writer, writes nothing.
type Emitter struct {
	mu        sync.Mutex
	w         io.Writer
	namespace string
	now       func() time.Time
}

// New writes to w under namespace.
func New(w io.Writer, namespace string) *Emitter {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return &Emitter{w: w, namespace: namespace, now: time.Now}
}

// FromEnv writes to stdout inside AWS Lambda (where CloudWatch Logs reads stdout) and nowhere
// elsewhere, so local runs and tests keep their logs readable.
func FromEnv(namespace string) *Emitter {
	if os.Getenv("AWS_LAMBDA_FUNCTION_NAME") == "" {
		return nil
	}
	return New(os.Stdout, namespace)
}

// Emit writes one line: the metrics, with dims as their dimension values; dimSets lists which
// combinations of dims CloudWatch aggregates by ([]string{} is the total without dimensions).
func (e *Emitter) Emit(dims map[string]string, dimSets [][]string, ms ...Metric) {
	if e == nil || e.w == nil || len(ms) == 0 {
		return
	}
	if dimSets == nil {
		dimSets = [][]string{{}}
	}
	defs := make([]map[string]string, len(ms))
	line := make(map[string]any, len(ms)+len(dims)+1)
	for i, m := range ms {
		defs[i] = map[string]string{"Name": m.Name, "Unit": m.Unit}
		line[m.Name] = m.Value
	}
	for k, v := range dims {
		line[k] = v
	}
	line["_aws"] = map[string]any{
		"Timestamp": e.now().UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace": e.namespace, "Dimensions": dimSets, "Metrics": defs,
		}},
	}
	b, err := json.Marshal(line)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.w.Write(append(b, '\n'))
}

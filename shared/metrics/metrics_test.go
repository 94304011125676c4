package metrics

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestEmitWritesEmbeddedMetricFormat(t *testing.T) {
	var buf bytes.Buffer
	e := New(&buf, "LoomiPay/test")
	e.now = func() time.Time { return time.UnixMilli(1700000000123) }
	e.Emit(map[string]string{"Operation": "create", "Outcome": "ok"}, [][]string{{"Operation", "Outcome"}, {}},
		Metric{"LakalaCalls", Count, 1}, Metric{"LakalaLatency", Milliseconds, 42})
	e.Emit(nil, nil, Metric{"DeadLetters", Count, 3})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines; want 2", len(lines))
	}
	var got struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		Operation, Outcome         string
		LakalaCalls, LakalaLatency float64
	}
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatal(err)
	}
	m := got.AWS.CloudWatchMetrics
	if got.AWS.Timestamp != 1700000000123 || len(m) != 1 || m[0].Namespace != "LoomiPay/test" || len(m[0].Dimensions) != 2 ||
		len(m[0].Dimensions[1]) != 0 || len(m[0].Metrics) != 2 || m[0].Metrics[1].Unit != "Milliseconds" ||
		got.Operation != "create" || got.Outcome != "ok" || got.LakalaCalls != 1 || got.LakalaLatency != 42 {
		t.Fatalf("line %s", lines[0])
	}
	if !strings.Contains(lines[1], `"Dimensions":[[]]`) || !strings.Contains(lines[1], `"DeadLetters":3`) {
		t.Fatalf("line %s", lines[1])
	}
	var nilEmitter *Emitter
	nilEmitter.Emit(nil, nil, Metric{"X", Count, 1}) // must not panic
}

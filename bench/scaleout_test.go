//go:build unix

package bench

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/sandbox"
)

const (
	// rowScaleOut is the scale-out row's number in the report.
	rowScaleOut = 11
	// scaleLatency and scaleConcurrency make one processor latency-bound (8 / 0.2 s = 40 tasks/s
	// at most), far below what the machine's CPU allows, so adding processes must add throughput.
	scaleLatency     = 200 * time.Millisecond
	scaleConcurrency = 8
)

// drainWithWorkers starts k `loomipay worker` processes (PROCESSOR_CONCURRENCY=8) on a fresh
// stack whose sandbox answers after +200 ms, queues n tasks once they are reading, and returns
// the rate at which the k of them took every order to processing.
func drainWithWorkers(t *testing.T, bin string, k, n int) float64 {
	t.Helper()
	ctx := context.Background()
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.Sandbox.SetFaults(sandbox.Faults{Latency: scaleLatency})
	env := append(benchEnv(t, testenv.SchemaURL(s.Schema)),
		"STREAM_PREFIX="+s.Streams.Name(""),
		"LAKALA_BASE_URL="+s.SandboxURL,
		"LAKALA_APP_ID="+testenv.LakalaAppID, "LAKALA_SERIAL_NO="+testenv.LakalaSerialNo,
		"LAKALA_MERCHANT_NO="+testenv.LakalaMerchantNo, "LAKALA_TERM_NO="+testenv.LakalaTermNo, "LAKALA_VPOS_ID="+testenv.LakalaVposID,
		"LAKALA_PRIVATE_KEY="+string(lakala.MarshalPrivateKeyPEM(s.MerchantKey)),
		"LAKALA_PLATFORM_CERT="+string(s.Sandbox.PlatformCertPEM()),
		"LAKALA_NOTIFY_URL="+s.API.URL+"/webhooks/lakala",
		"PROCESSOR_CONCURRENCY="+strconv.Itoa(scaleConcurrency))
	running := regexp.MustCompile(`processor running`)
	for range k {
		cmd := exec.Command(bin, "worker")
		cmd.Env = env
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout := startProcess(t, cmd)
		// The worker logs to stdout: an unread pipe would fill and stop it.
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		awaitLine(t, stderr, running, "loomipay worker started")
	}
	time.Sleep(time.Second) // each is past its first maintenance pass and blocked reading
	queueTasks(t, s, n)
	start := time.Now()
	deadline := start.Add(5 * time.Minute)
	for {
		var processing int
		if err := s.Store.Pool().QueryRow(ctx, "SELECT count(*) FROM payment_orders WHERE status = 'processing'").Scan(&processing); err != nil {
			t.Fatal(err)
		}
		if processing == n {
			return float64(n) / time.Since(start).Seconds()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers took %d of %d orders to processing in 5 minutes", k, processing, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testScaleOut is the scale-out row: k processors at once share the task stream.
func testScaleOut(t *testing.T) {
	sz := size()
	bin := buildLoomipay(t)
	rates := map[int]float64{}
	for _, k := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("k=%d", k), func(t *testing.T) { rates[k] = drainWithWorkers(t, bin, k, sz.ScaleTasks*k) })
	}
	if len(rates) != 3 {
		t.Fatal("a drain failed")
	}
	one := rates[1]
	worst := 1e9
	for _, k := range []int{2, 4} {
		worst = min(worst, rates[k]/(float64(k)*one))
	}
	record(&Row{N: rowScaleOut, What: fmt.Sprintf("processor scale-out: k `loomipay worker` processes, PROCESSOR_CONCURRENCY=%d, Lakala +%s per call", scaleConcurrency, scaleLatency),
		Figures: []string{
			fmt.Sprintf("k=1: %.1f tasks/s (%d tasks); ceiling %d / %.1f s = %.0f tasks/s", rates[1], sz.ScaleTasks, scaleConcurrency, scaleLatency.Seconds(), float64(scaleConcurrency)/scaleLatency.Seconds()),
			fmt.Sprintf("k=2: %.1f tasks/s (%d tasks) = %.2f × 2 × k=1", rates[2], 2*sz.ScaleTasks, rates[2]/(2*one)),
			fmt.Sprintf("k=4: %.1f tasks/s (%d tasks) = %.2f × 4 × k=1", rates[4], 4*sz.ScaleTasks, rates[4]/(4*one)),
		},
		Ratio:   fmt.Sprintf("min over k=2,4 of rate_k / (k × rate_1) = %.2f", worst),
		Target:  "≥ 0.9",
		Met:     met(worst >= 0.9),
		Command: command("scaleout"),
		Notes: []string{"Each worker is a separate process of the built `loomipay worker`, configured only by " +
			"environment variables, reading the task stream under a consumer name of its own in the one consumer " +
			"group; the tasks (k × the one-process count, so each run lasts about as long) are queued once every " +
			"worker is blocked reading, and the rate is from the queueing to the last order reaching processing. " +
			"With 8 tasks in flight per process and 200 ms per Lakala call, one process is bound by latency, not CPU."},
	})
}

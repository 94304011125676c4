package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// load is the outcome of driving an operation n times.
type load struct {
	Ops     int
	Elapsed time.Duration
	Lat     []time.Duration
}

func (l load) PerSec() float64 { return float64(l.Ops) / l.Elapsed.Seconds() }

// runClosed drives op n times from workers concurrent callers, each starting its next call as
// soon as the last one returns (the maximum throughput at that concurrency).
func runClosed(ctx context.Context, workers, n int, op func(context.Context) error) (load, error) {
	return run(ctx, workers, n, 0, op)
}

// runPaced starts op at a fixed rate (per second) from up to workers callers; a call's latency
// counts from when it was due, so time spent waiting for a free caller is not hidden.
func runPaced(ctx context.Context, workers, n int, rate float64, op func(context.Context) error) (load, error) {
	return run(ctx, workers, n, rate, op)
}

func run(ctx context.Context, workers, n int, rate float64, op func(context.Context) error) (load, error) {
	var (
		next     atomic.Int64
		lat      = make([]time.Duration, n)
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				due := time.Now()
				if rate > 0 {
					due = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				}
				if err := op(ctx); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("operation %d: %w", i, err); cancel() })
					return
				}
				lat[i] = time.Since(due)
			}
		})
	}
	wg.Wait()
	return load{Ops: n, Elapsed: time.Since(start), Lat: lat}, firstErr
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func msf(x float64) string { return fmt.Sprintf("%.2f ms", x/float64(time.Millisecond)) }

// fig formats a summary with a unit formatter.
func fig(name string, s Summary, format func(float64) string) string {
	return fmt.Sprintf("%s: median %s, p99 %s (%d runs)", name, format(s.Median), format(s.P99), s.Runs)
}

func perSec(x float64) string { return fmt.Sprintf("%.0f/s", x) }

// Package bench is Loomi Pay's performance suite. The measurements live in the package's tests
// (they need the test harness, shared/testenv); this file holds the arithmetic they share.
//
//	make bench        every row at full size, repeated; rewrites docs/BENCHMARKS.md
//	make bench-smoke  every row at tiny size, in seconds (part of make test)
//
// Targets are ratios measured in the same run, or sizes: absolute times on a shared machine
// drift, ratios much less. Nothing here asserts a timing; the report says met or not.
package bench

import (
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0..100) of ds by the nearest-rank method, or 0 for
// none. ds is not modified.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[rank(len(s), p)]
}

// PercentileOf is Percentile for plain numbers.
func PercentileOf(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[rank(len(s), p)]
}

func rank(n int, p float64) int {
	r := int(p/100*float64(n)+0.999999) - 1
	return min(max(r, 0), n-1)
}

// Summary is a figure over repeated runs: the median run and the 99th-percentile run (with
// five runs, the worst).
type Summary struct {
	Median, P99 float64
	Runs        int
}

// Summarize summarises the per-run values of one figure.
func Summarize(xs []float64) Summary {
	return Summary{Median: PercentileOf(xs, 50), P99: PercentileOf(xs, 99), Runs: len(xs)}
}

// SummarizeLow is Summarize for figures where lower is worse (throughput): its P99 is the
// 1st percentile, the bad tail.
func SummarizeLow(xs []float64) Summary {
	return Summary{Median: PercentileOf(xs, 50), P99: PercentileOf(xs, 1), Runs: len(xs)}
}

package main

import (
	"math"
	"slices"
	"time"

	"github.com/caddyregister/caddyregister/internal/loadreport"
)

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value such that at least p percent of
// the values are less than or equal to it. It is always one of the
// observed values; 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// p*n before /100 keeps integral p exact (0.9*10 is not 9 in floats).
	rank := int(math.Ceil(p * float64(n) / 100))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// Latency is the latency summary in milliseconds.
type Latency = loadreport.Latency

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// summarize sorts ds in place and summarizes it.
func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Latency{
		Min:  ms(ds[0]),
		Mean: ms(sum / time.Duration(len(ds))),
		P50:  ms(percentile(ds, 50)),
		P90:  ms(percentile(ds, 90)),
		P99:  ms(percentile(ds, 99)),
		Max:  ms(ds[len(ds)-1]),
	}
}

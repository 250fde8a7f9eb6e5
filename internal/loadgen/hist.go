// Package loadgen drives HTTP load for benchmarks: an open-loop generator
// that sends at a fixed arrival rate and measures latency from each
// request's scheduled time (so queueing is not hidden), a closed-loop one
// for saturation throughput, and a log-bucketed latency histogram.
package loadgen

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// Histogram records durations in log-linear buckets: 64 sub-buckets per
// power of two, so a quantile is within 1.6% of the true value. It is safe
// for concurrent use.
type Histogram struct {
	mu     sync.Mutex
	counts [64 * 64]uint64
	n      uint64
	max    time.Duration
}

const subBits = 6

func bucketOf(ns uint64) int {
	if ns < 64 {
		return int(ns)
	}
	exp := bits.Len64(ns) - 1 - subBits
	sub := ns >> uint(exp) & 63
	return (exp+1)*64 + int(sub)
}

func lowerBound(b int) uint64 {
	if b < 64 {
		return uint64(b)
	}
	exp := b/64 - 1
	sub := uint64(b % 64)
	return (64 | sub) << uint(exp)
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	b := bucketOf(uint64(d))
	if b >= len(h.counts) {
		b = len(h.counts) - 1
	}
	h.mu.Lock()
	h.counts[b]++
	h.n++
	if d > h.max {
		h.max = d
	}
	h.mu.Unlock()
}

// Count is the number of recorded durations.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Max is the largest recorded duration.
func (h *Histogram) Max() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.max
}

// Quantile returns the q-quantile (0 < q ≤ 1), as the midpoint of its
// bucket.
func (h *Histogram) Quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank && c > 0 {
			lo, hi := lowerBound(b), lowerBound(b+1)
			d := time.Duration((lo + hi) / 2)
			if d > h.max {
				d = h.max
			}
			return d
		}
	}
	return h.max
}

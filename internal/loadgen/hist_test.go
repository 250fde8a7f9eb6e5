package loadgen

import (
	"context"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	var all []time.Duration
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		d := time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		all = append(all, d)
		h.Record(d)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.Quantile(q)
		if rel := float64(got-exact) / float64(exact); rel > 0.02 || rel < -0.02 {
			t.Fatalf("q%.3f = %s, exact %s (%.1f%% off)", q, got, exact, rel*100)
		}
	}
	if h.Count() != 100000 || h.Max() != all[len(all)-1] {
		t.Fatalf("count %d max %s", h.Count(), h.Max())
	}
}

func TestLoops(t *testing.T) {
	target := func(context.Context, int) (int, error) { return 202, nil }
	open := OpenLoop(context.Background(), 10000, 500, 16, target)
	closed := ClosedLoop(context.Background(), 4, 500, target)
	for _, r := range []Result{open, closed} {
		if r.Sent != 500 || r.Statuses[202] != 500 || r.Latency.Count() != 500 {
			t.Fatalf("result %+v", r)
		}
	}
}

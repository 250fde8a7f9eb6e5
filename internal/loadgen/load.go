package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Target sends request i and returns its HTTP status.
type Target func(ctx context.Context, i int) (status int, err error)

// Result summarises a run.
type Result struct {
	Sent     int
	Statuses map[int]int
	Errors   int
	// Late counts requests that could not start on schedule because
	// MaxInFlight requests were outstanding (their latency still counts
	// from the schedule).
	Late    int
	Elapsed time.Duration
	Latency *Histogram
}

// Throughput is completed requests per second.
func (r Result) Throughput() float64 { return float64(r.Sent) / r.Elapsed.Seconds() }

// OpenLoop sends n requests at a fixed rate, each on its own goroutine (at
// most maxInFlight at once), and measures each latency from the request's
// scheduled send time, so a slow server shows up as latency rather than as
// a lower send rate.
func OpenLoop(ctx context.Context, rate float64, n, maxInFlight int, target Target) Result {
	res := Result{Statuses: map[int]int{}, Latency: &Histogram{}}
	var mu sync.Mutex
	var late atomic.Int64
	sem := make(chan struct{}, maxInFlight)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < n && ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		select {
		case sem <- struct{}{}:
		default:
			late.Add(1)
			sem <- struct{}{}
		}
		wg.Add(1)
		go func(i int, at time.Time) {
			defer wg.Done()
			defer func() { <-sem }()
			status, err := target(ctx, i)
			res.Latency.Record(time.Since(at))
			mu.Lock()
			res.Sent++
			if err != nil {
				res.Errors++
			} else {
				res.Statuses[status]++
			}
			mu.Unlock()
		}(i, at)
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Late = int(late.Load())
	return res
}

// ClosedLoop runs workers that each send the next request as soon as the
// previous one answered, until n requests are done: saturation throughput.
func ClosedLoop(ctx context.Context, workers, n int, target Target) Result {
	res := Result{Statuses: map[int]int{}, Latency: &Histogram{}}
	var mu sync.Mutex
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				status, err := target(ctx, i)
				res.Latency.Record(time.Since(t0))
				mu.Lock()
				res.Sent++
				if err != nil {
					res.Errors++
				} else {
					res.Statuses[status]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}

package importer

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"
)

// guard is the one door to Firebase: a rate limiter and a circuit breaker
// that trips on transient failures only. Per-user rejections and other
// permanent errors count as successes for the breaker, since Firebase
// answered. It is safe for concurrent use.
type guard struct {
	cb      *gobreaker.CircuitBreaker[struct{}]
	limiter *rate.Limiter
	metrics *Metrics
	timeout time.Duration
	probeTO time.Duration
}

func newGuard(cfg Config, log *slog.Logger, m *Metrics) *guard {
	limit := rate.Inf
	if cfg.FirebaseRPS > 0 {
		limit = rate.Limit(cfg.FirebaseRPS)
	}
	burst := max(1, int(cfg.FirebaseRPS))
	g := &guard{limiter: rate.NewLimiter(limit, burst), metrics: m, timeout: cfg.FirebaseTimeout, probeTO: min(cfg.FirebaseTimeout, cfg.BreakerOpenFor)}
	g.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "firebase",
		MaxRequests: 1,
		Timeout:     cfg.BreakerOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.BreakerFailures },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			log.Warn("firebase breaker state changed", "from", from.String(), "to", to.String())
			m.breakerChanged(from, to)
		},
		IsSuccessful: func(err error) bool { return err == nil || !IsTransient(err) },
		// Our own shutdown is not Firebase's fault.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
	})
	m.breakerChanged(gobreaker.StateClosed, gobreaker.StateClosed)
	return g
}

// do runs one Firebase call through the limiter and the breaker. fn must
// return errors already classified by classifyFirebase.
func (g *guard) do(ctx context.Context, op string, fn func(context.Context) error) error {
	if err := g.limiter.Wait(ctx); err != nil {
		return transient(err, 0)
	}
	timeout := g.timeout
	if op == "probe" {
		timeout = g.probeTO
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	_, err := g.cb.Execute(func() (struct{}, error) { return struct{}{}, fn(ctx) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return classifyFirebase(op, err)
	}
	g.metrics.firebaseCall(op, err, time.Since(start))
	return err
}

// state is the breaker's current state (calling it moves open to half-open
// once the timeout passed).
func (g *guard) state() gobreaker.State { return g.cb.State() }

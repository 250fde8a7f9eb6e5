package reconciler

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/time/rate"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
)

// retrier holds how [retry] paces and bounds its tries.
type retrier struct {
	max     int
	sleep   func(context.Context, time.Duration) error
	log     *slog.Logger
	onRetry func()
}

// retry runs fn until it succeeds, fails with an error transient does not
// accept, ctx ends, or it has failed max times ([ErrGaveUp]). Between tries
// it waits what the failure asked for ([auth0api.RetryAfter]: Retry-After,
// or X-RateLimit-Reset on a 429) or else the next step of
// [events.DefaultBackOff].
func retry(ctx context.Context, rt retrier, op string, transient func(error) bool, fn func(context.Context) error) error {
	backoff := events.DefaultBackOff()
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, ctx.Err())
		}
		if !transient(err) {
			return err
		}
		if attempt >= rt.max {
			return fmt.Errorf("%s: %w after %d attempts: %w", op, ErrGaveUp, attempt, err)
		}
		d := auth0api.RetryAfter(err)
		if d <= 0 {
			d = backoff[min(attempt-1, len(backoff)-1)]
		}
		rt.log.WarnContext(ctx, "transient failure, retrying", "op", op, "attempt", attempt, "in", d.String(), "err", err)
		if rt.onRetry != nil {
			rt.onRetry()
		}
		if err := rt.sleep(ctx, d); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// newLimiter allows rps requests per second, one at a time; 0 means no
// limit.
func newLimiter(rps float64) *rate.Limiter {
	if rps <= 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(rate.Limit(rps), 1)
}

package tenant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/auth0/go-auth0/management"
	"github.com/signupsync/signupsync/internal/auth0api"
	"golang.org/x/oauth2"
)

// Retry policy of Management API calls. go-auth0's own retries are off
// (management.WithNoRetries): they retry any method after a network error,
// which could create an action or a stream twice, and they wait on the
// wall clock, which tests cannot move. Instead:
//
//   - 429 is retried for every method, since Auth0 did not process the
//     request, after the delay Auth0 names: Retry-After, else
//     X-RateLimit-Reset (Unix seconds, the header of its rate-limit policy,
//     https://auth0.com/docs/troubleshoot/customer-support/operational-policies/rate-limit-policy),
//     at least minRetryWait and at most maxRetryWait;
//   - 5xx, timeouts and network failures are retried, with exponential
//     backoff, only for requests that are safe to repeat: reads, and the
//     PATCH and DELETE requests, which carry whole desired states;
//   - after maxAttempts attempts, or for any other failure, the error is
//     returned wrapped with the operation's name.
const (
	maxAttempts  = 6
	minRetryWait = 250 * time.Millisecond
	maxRetryWait = time.Minute
	baseBackoff  = 500 * time.Millisecond
	maxBackoff   = 10 * time.Second
)

// ErrNotFound matches a Management API 404.
var ErrNotFound = errors.New("not found in the auth0 tenant")

// api is the Management API client with the retry policy above. It is safe
// for concurrent use.
type api struct {
	m       *management.Management
	timeout time.Duration
	sleep   func(context.Context, time.Duration) error
	now     func() time.Time
}

func newAPI(ctx context.Context, cfg Config, deps Deps) (*api, error) {
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	mc := cfg.management()
	mc.HTTPClient, mc.Timeout = deps.HTTPClient, timeout
	m, err := auth0api.NewManagement(ctx, mc)
	if err != nil {
		return nil, err
	}
	a := &api{m: m, timeout: timeout, sleep: deps.Sleep, now: deps.Now}
	if a.sleep == nil {
		a.sleep = sleepTimer
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

func sleepTimer(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// call runs fn, one Management API request, under the per-call timeout and
// the retry policy; repeatable says whether a 5xx or network failure may be
// retried. Errors are wrapped with op; a 404 also matches [ErrNotFound].
func (a *api) call(ctx context.Context, op string, repeatable bool, fn func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		ex := &auth0api.Response{}
		cctx, cancel := context.WithTimeout(auth0api.RecordResponse(ctx, ex), a.timeout)
		err := fn(cctx)
		cancel()
		if err == nil {
			return nil
		}
		status, header := statusOf(err, ex)
		if status == http.StatusNotFound {
			return fmt.Errorf("%s: %w: %w", op, ErrNotFound, err)
		}
		wait, retry := a.retryAfter(ctx, err, status, header, repeatable, attempt)
		if !retry || attempt >= maxAttempts {
			return fmt.Errorf("%s: %w", op, err)
		}
		if err := a.sleep(ctx, wait); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
}

// retryAfter decides whether a failure is retried and after how long.
func (a *api) retryAfter(ctx context.Context, err error, status int, h http.Header, repeatable bool, attempt int) (time.Duration, bool) {
	backoff := min(maxBackoff, baseBackoff<<(attempt-1))
	switch {
	case ctx.Err() != nil:
		return 0, false
	case status == http.StatusTooManyRequests:
		if d, ok := rateLimitDelay(h, a.now()); ok {
			return min(maxRetryWait, max(minRetryWait, d)), true
		}
		return backoff, true
	case !repeatable:
		return 0, false
	case status >= 500, status == http.StatusRequestTimeout:
		return backoff, true
	case status == 0 && !errors.Is(err, context.Canceled):
		// No answer: a network failure or the call's own timeout.
		return backoff, true
	}
	return 0, false
}

// rateLimitDelay reads Retry-After (seconds or a date) or Auth0's
// X-RateLimit-Reset (Unix seconds).
func rateLimitDelay(h http.Header, now time.Time) (time.Duration, bool) {
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(v); err == nil {
			return time.Duration(s) * time.Second, true
		}
		if t, err := http.ParseTime(v); err == nil {
			return t.Sub(now), true
		}
	}
	if v := h.Get("X-RateLimit-Reset"); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Unix(s, 0).Sub(now), true
		}
	}
	return 0, false
}

// statusOf returns the HTTP status and headers of a failed call, 0 when no
// response came.
func statusOf(err error, ex *auth0api.Response) (int, http.Header) {
	var rErr *oauth2.RetrieveError
	if errors.As(err, &rErr) && rErr.Response != nil {
		return rErr.Response.StatusCode, rErr.Response.Header
	}
	var mErr management.Error
	if errors.As(err, &mErr) {
		if ex.Status == mErr.Status() {
			return mErr.Status(), ex.Header
		}
		return mErr.Status(), nil
	}
	return 0, nil
}

package importer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"firebase.google.com/go/v4/errorutils"
	"github.com/sony/gobreaker/v2"
)

// ErrTransient is wrapped by every error the importer retries later
// (NakWithDelay) instead of dead-lettering.
var ErrTransient = errors.New("transient failure")

// ErrBreakerOpen is returned, wrapped in ErrTransient, while the Firebase
// circuit breaker refuses calls.
var ErrBreakerOpen = errors.New("firebase circuit breaker open")

// transientError is a retryable failure with an optional earliest retry.
type transientError struct {
	err        error
	retryAfter time.Duration
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() []error {
	return []error{ErrTransient, e.err}
}

// transient marks err as retryable after at least retryAfter.
func transient(err error, retryAfter time.Duration) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err, retryAfter: retryAfter}
}

// IsTransient reports whether err is worth retrying.
func IsTransient(err error) bool { return errors.Is(err, ErrTransient) }

// retryAfter returns the earliest retry a transient error asks for.
func retryAfter(err error) time.Duration {
	var te *transientError
	if errors.As(err, &te) {
		return te.retryAfter
	}
	return 0
}

// classifyFirebase wraps a Firebase SDK error as transient when a retry can
// succeed: unavailable, internal, quota (429), deadline, aborted, and any
// transport failure (connection refused, reset, timeouts). Everything else
// (invalid argument, not found, permission) is permanent and returned as is.
func classifyFirebase(op string, err error) error {
	if err == nil {
		return nil
	}
	// The SDK's errorutils checks use a plain type assertion, not
	// errors.As: they must see the SDK's error before it is wrapped.
	orig := err
	err = fmt.Errorf("firebase %s: %w", op, err)
	var ue *url.Error
	var ne net.Error
	switch {
	case errors.Is(err, ErrTransient):
		return err
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return transient(fmt.Errorf("%w: %w", ErrBreakerOpen, err), 0)
	case errorutils.IsUnavailable(orig), errorutils.IsInternal(orig), errorutils.IsResourceExhausted(orig),
		errorutils.IsDeadlineExceeded(orig), errorutils.IsAborted(orig), errorutils.IsUnknown(orig):
		return transient(err, retryAfterHeader(orig))
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ue), errors.As(err, &ne):
		return transient(err, 0)
	}
	return err
}

// ambiguous reports whether a failed call may still have been applied: no
// answer came back (a deadline, a connection broken after sending) or the
// server failed while handling it (5xx other than 503). A refusal is not
// ambiguous: 503 or a connection that was never established (the SDK calls
// both unavailable), 429, or the breaker never sending the call.
func ambiguous(err error) bool {
	if errors.Is(err, ErrBreakerOpen) || inChain(err, errorutils.IsUnavailable) || inChain(err, errorutils.IsResourceExhausted) {
		return false
	}
	var status int
	inChain(err, func(e error) bool {
		if res := errorutils.HTTPResponse(e); res != nil {
			status = res.StatusCode
			return true
		}
		return false
	})
	return status == 0 || status >= 500
}

// inChain reports whether pred holds for err or any error it wraps. The
// SDK's errorutils checks see only an unwrapped SDK error.
func inChain(err error, pred func(error) bool) bool {
	if err == nil {
		return false
	}
	if pred(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return inChain(u.Unwrap(), pred)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if inChain(e, pred) {
				return true
			}
		}
	}
	return false
}

// retryAfterHeader is the Retry-After (seconds) of the HTTP response behind a
// Firebase SDK error, or 0.
func retryAfterHeader(err error) time.Duration {
	res := errorutils.HTTPResponse(err)
	if res == nil {
		return 0
	}
	secs, perr := strconv.Atoi(res.Header.Get("Retry-After"))
	if perr != nil || secs <= 0 {
		return 0
	}
	return min(time.Duration(secs)*time.Second, 10*time.Minute)
}

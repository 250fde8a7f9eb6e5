package operator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
)

// The sweep for deletions no webhook reported: see the package
// documentation for why it asks per user.

// Auth0Users is the part of the Management API client the check uses.
// *auth0api.Client satisfies it.
type Auth0Users interface {
	GetUser(ctx context.Context, auth0UserID string) (events.SignupData, error)
}

// ErrDeletedInAuth0 is returned by [FindDeletedInAuth0] with its rows when
// Firebase still holds accounts signupsync imported for users Auth0 no
// longer has.
var ErrDeletedInAuth0 = errors.New("firebase holds accounts of users deleted in auth0")

// Auth0CheckConfig paces [FindDeletedInAuth0].
type Auth0CheckConfig struct {
	// RPS caps Management API requests per second; 0 means no cap.
	RPS float64
	// Concurrency is how many requests are in flight at once (≥ 1).
	Concurrency int
	// MaxAttempts bounds the tries of one user after transient failures.
	MaxAttempts int
}

// DefaultAuth0CheckConfig leaves room in Auth0's smallest budget.
func DefaultAuth0CheckConfig() Auth0CheckConfig {
	return Auth0CheckConfig{RPS: 2, Concurrency: 4, MaxAttempts: 5}
}

// FindDeletedInAuth0 reads every ledger entry with outcome imported (the
// accounts signupsync created, the ones its lifecycle consumer deletes)
// and asks users for each. The users Auth0 answers "not found" for are
// returned sorted, with an error wrapping [ErrDeletedInAuth0]; a failure
// that outlasts MaxAttempts (or any permanent one) stops the check with
// the rows found so far. Transient failures wait the server's hint. It
// reads only and is safe for concurrent use if users is.
func FindDeletedInAuth0(ctx context.Context, cfg Auth0CheckConfig, ledger jetstream.KeyValue, users Auth0Users) ([]Row, int, error) {
	if users == nil {
		return nil, 0, errors.New("check auth0: the Management API is required")
	}
	var todo []events.LedgerEntry
	if err := eachLedgerEntry(ctx, ledger, func(le events.LedgerEntry) {
		if le.Outcome == events.OutcomeImported {
			todo = append(todo, le)
		}
	}); err != nil {
		return nil, 0, err
	}
	lim := limiter(cfg.RPS)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		rows  = []Row{}
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, max(1, cfg.Concurrency))
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
			cancel()
		}
		mu.Unlock()
	}
	for _, le := range todo {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			gone, err := userGone(ctx, cfg, lim.Wait, users, le.Auth0UserID)
			switch {
			case err != nil:
				fail(err)
			case gone:
				mu.Lock()
				rows = append(rows, Row{Auth0UserID: le.Auth0UserID, Outcome: string(le.Outcome), Reason: le.Reason,
					FirebaseUID: le.FirebaseUID, Problem: ProblemDeletedInAuth0})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sortRows(rows)
	if first != nil {
		return rows, len(todo), first
	}
	if len(rows) > 0 {
		return rows, len(todo), fmt.Errorf("%w: %d of %d imported users", ErrDeletedInAuth0, len(rows), len(todo))
	}
	return rows, len(todo), nil
}

// ProblemDeletedInAuth0: the user the ledger holds as imported no longer
// exists in Auth0 ([FindDeletedInAuth0]).
const ProblemDeletedInAuth0 = "deleted_in_auth0"

// userGone asks for one user, retrying transient failures.
func userGone(ctx context.Context, cfg Auth0CheckConfig, wait func(context.Context) error, users Auth0Users, id string) (bool, error) {
	for attempt := 1; ; attempt++ {
		if err := wait(ctx); err != nil {
			return false, err
		}
		_, err := users.GetUser(ctx, id)
		switch {
		case err == nil:
			return false, nil
		case errors.Is(err, auth0api.ErrNotFound):
			return true, nil
		case !auth0api.IsTransient(err) || attempt >= max(1, cfg.MaxAttempts):
			return false, fmt.Errorf("check auth0 user %s: %w", id, err)
		}
		d := auth0api.RetryAfter(err)
		if d <= 0 {
			d = time.Duration(attempt) * 500 * time.Millisecond
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		}
	}
}

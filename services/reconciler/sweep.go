package reconciler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
)

// Sweep does one pass over the users created in [checkpoint − Lookback
// (or Since), Until) and writes the checkpoint when the whole window is
// done. It returns what it did so far and an error when a request failed
// permanently, still failed after Config.MaxAttempts tries ([ErrGaveUp]),
// or ctx ended; the checkpoint is then left where it was.
func (r *Reconciler) Sweep(ctx context.Context) (Result, error) {
	if r.users == nil {
		return Result{}, errors.New("reconcile sweep: the reconciler was built without Users")
	}
	return r.round(ctx, roundSpec{name: "reconcile sweep", key: CheckpointKey, align: ceilMilli, body: r.sweep})
}

// sweep lists [res.From, res.Until) by a created_at cursor: each request
// is page 0 of created_at:[cursor TO until} sorted by created_at, and the
// cursor then moves to the last created_at of the page. The users at that
// millisecond already handled are remembered and skipped when the next
// page lists them again. Unlike page numbers, a cursor is not shifted by a
// user deleted meanwhile, and no request reaches past Auth0's search cap.
func (r *Reconciler) sweep(ctx context.Context, res *Result) error {
	cursor, until := res.From, res.Until
	seen := map[string]bool{} // users created at the cursor's millisecond, handled
	for cursor.Before(until) {
		users, _, err := r.list(ctx, res, cursor, until, 0)
		if err != nil {
			return err
		}
		last := cursor
		for _, u := range users {
			if at := r.createdAt(ctx, u, cursor); at.After(last) {
				last = at
			}
		}
		if err := r.handle(ctx, res, users, seen); err != nil {
			return err
		}
		if len(users) < r.cfg.PageSize {
			return nil // the window is done
		}
		if last.Equal(cursor) {
			// A whole page created in one millisecond: the cursor cannot
			// move past it, so page through that millisecond by number.
			if err := r.millisecond(ctx, res, cursor, seen); err != nil {
				return err
			}
			cursor, seen = cursor.Add(time.Millisecond), map[string]bool{}
			continue
		}
		cursor, seen = last, map[string]bool{}
		for _, u := range users {
			if r.createdAt(ctx, u, time.Time{}).Equal(last) {
				seen[u.UserID] = true
			}
		}
	}
	return nil
}

// millisecond lists the users created in [ms, ms+1ms) by page number, up to
// Auth0's search cap, skipping those in seen.
func (r *Reconciler) millisecond(ctx context.Context, res *Result, ms time.Time, seen map[string]bool) error {
	per := r.cfg.PageSize
	for page := 0; ; page++ {
		users, total, err := r.list(ctx, res, ms, ms.Add(time.Millisecond), page)
		if err != nil {
			return err
		}
		if err := r.handle(ctx, res, users, seen); err != nil {
			return err
		}
		if len(users) < per {
			return nil
		}
		if total >= auth0api.SearchLimit && (page+2)*per > auth0api.SearchLimit {
			// Auth0 reports at most 1,000: there may be more, beyond reach.
			res.Dense++
			r.log.WarnContext(ctx, "one millisecond holds 1000 users or more: the rest are not listed; run an export and a backfill", "at", ms)
			return nil
		}
		if (page+1)*per >= total {
			return nil
		}
	}
}

// handle publishes the users not in seen as swept signups, and adds them to
// seen.
func (r *Reconciler) handle(ctx context.Context, res *Result, users []events.SignupData, seen map[string]bool) error {
	fresh := make([]events.SignupData, 0, len(users))
	for _, d := range users {
		if seen[d.UserID] {
			continue
		}
		seen[d.UserID] = true
		d.Tenant, d.Trigger, d.Partial = r.cfg.Tenant, Trigger, false
		if d.ConnectionStrategy == "" && len(d.Identities) == 1 {
			d.ConnectionStrategy = d.Identities[0].Provider
		}
		fresh = append(fresh, d)
	}
	return r.page(ctx, res, events.SourceReconcile, fresh)
}

// createdAt reads a listed user's created_at, or returns otherwise when it
// does not parse (the user is then handled where the cursor is).
func (r *Reconciler) createdAt(ctx context.Context, d events.SignupData, otherwise time.Time) time.Time {
	t, err := time.Parse(time.RFC3339Nano, d.CreatedAt)
	if err != nil {
		if !otherwise.IsZero() {
			r.log.WarnContext(ctx, "listed user without a readable created_at", "user_id", d.UserID)
		}
		return otherwise
	}
	return t.UTC()
}

// list reads one page, waiting for the rate limiter and retrying
// transient failures.
func (r *Reconciler) list(ctx context.Context, res *Result, from, to time.Time, page int) ([]events.SignupData, int, error) {
	var users []events.SignupData
	var total int
	err := r.retry(ctx, &res.Counts, "list users", auth0api.IsTransient, func(ctx context.Context) error {
		if err := r.limiter.Wait(ctx); err != nil {
			return fmt.Errorf("rate limiter: %w", err)
		}
		res.Requests++
		var err error
		users, total, err = r.users.ListUsersCreated(ctx, from, to, page, r.cfg.PageSize)
		return err
	})
	return users, total, err
}

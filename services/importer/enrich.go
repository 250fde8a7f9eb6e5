package importer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// auth0Enricher adapts the Management API client to [Enricher], mapping its
// error classes onto the importer's: 404 → ErrUserGone, 429/5xx/network →
// transient with the server's retry hint.
type auth0Enricher struct{ c *auth0api.Client }

// Auth0Enricher returns an [Enricher] backed by the Auth0 Management API.
func Auth0Enricher(c *auth0api.Client) Enricher { return auth0Enricher{c: c} }

func (a auth0Enricher) GetUser(ctx context.Context, id string) (events.SignupData, error) {
	d, err := a.c.GetUser(ctx, id)
	switch {
	case err == nil:
		return d, nil
	case errors.Is(err, auth0api.ErrNotFound):
		return events.SignupData{}, fmt.Errorf("%w: %w", ErrUserGone, err)
	case auth0api.IsTransient(err):
		return events.SignupData{}, transient(err, auth0api.RetryAfter(err))
	default:
		return events.SignupData{}, err
	}
}

// Why a signup is re-read from the Management API before import, the
// values of the span attribute signupsync.reread.
const (
	rereadPartial  = "partial"
	rereadAll      = "enrich_all"
	rereadBackfill = "backfill"
	rereadChanged  = "changed_in_auth0"
	rereadReplay   = "replay"
	rereadAge      = "age"
)

// rereadReason says why it (or a copy of the same user in its batch) must
// be read from Auth0 before it is mapped, or "" when its data is used as it
// is. Besides partial signups (Log Streams) and EnrichAll, the data of an
// old event may describe a user Auth0 has deleted or changed since, and a
// deletion the lifecycle consumer has not seen (or that happened before
// signupsync ran) would be undone by importing it:
//   - a backfill signup comes from an export file taken at some point in
//     the past, however recently it was published;
//   - a replayed dead letter (header Signupsync-Replayed-From) keeps the
//     data of the original event, days or weeks old;
//   - any other signup whose event time is more than FreshAfter before now
//     (an importer outage, a consumer far behind);
//   - a signup of a user whose ledger entry records an Auth0 change but
//     no settled signup: the update reached the lifecycle consumer first.
//
// The age is measured from the event's time, when signupsync learnt the
// profile, not from the user's created_at: reconcile publishes a user
// created long ago with a profile it listed moments before.
// A user Auth0 no longer has is then skipped with reason deleted_in_auth0.
func (im *Importer) rereadReason(it *item, now time.Time) string {
	switch {
	case it.data.Partial:
		return rereadPartial
	case im.cfg.EnrichAll:
		return rereadAll
	case it.read != nil && it.read.found && it.read.entry.Outcome == "" && it.read.entry.Lifecycle != nil:
		// Auth0 reported a change of the user before any signup of it
		// was settled (lifecycle.go): the signup's data may be older.
		return rereadChanged
	}
	for _, c := range append([]*item{it}, it.dups...) {
		switch {
		case c.ev.EventSource() == events.SourceBackfill:
			return rereadBackfill
		case c.msg != nil && c.msg.Headers().Get(events.HeaderReplayedFrom) != "":
			return rereadReplay
		case im.cfg.FreshAfter > 0 && !c.ev.Time.IsZero() && now.Sub(c.ev.Time) > im.cfg.FreshAfter:
			return rereadAge
		}
	}
	return ""
}

// enrich reads from Auth0 the signups whose data cannot be trusted as it
// is: partial ones, old ones (backfill, replay, older than FreshAfter: see
// [Importer.rereadReason]), or all with EnrichAll.
func (im *Importer) enrich(items []*item) {
	if im.enricher == nil {
		return
	}
	var todo []*item
	now := im.now()
	for _, it := range items {
		if it.decision != undecided {
			continue
		}
		if why := im.rereadReason(it, now); why != "" {
			it.span.SetAttributes(attribute.String("signupsync.reread", why))
			todo = append(todo, it)
		}
	}
	im.parallel(todo, func(it *item) {
		if d, ok := im.readProfile(it.ctx, it); ok {
			it.data, it.enriched = d, true
		}
	})
}

// readProfile reads it's user from the Management API. When it returns
// false it has decided it: skipped (deleted in Auth0), retry (transient) or
// dead letter.
func (im *Importer) readProfile(ctx context.Context, it *item) (events.SignupData, bool) {
	ctx, span := im.tracer.Start(ctx, "auth0 get user", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	d, err := im.enricher.GetUser(ctx, it.ev.Subject)
	switch {
	case errors.Is(err, ErrUserGone):
		it.settle(events.OutcomeSkipped, events.ReasonDeletedInAuth0, "", "")
		return events.SignupData{}, false
	case err != nil && IsTransient(err):
		recordError(span, err)
		it.retry(err, retryAfter(err))
		return events.SignupData{}, false
	case err != nil:
		recordError(span, err)
		it.deadLetter(events.ReasonPermanentError, fmt.Errorf("enrich %s: %w", it.ev.Subject, err))
		return events.SignupData{}, false
	}
	d.Tenant = it.data.Tenant
	d.Trigger = it.data.Trigger
	d.Partial = false
	return d, true
}

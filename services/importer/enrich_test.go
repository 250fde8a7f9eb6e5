package importer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/auth0fake"
)

// partial is what a Log Streams "ss" entry yields.
func partial(provider, raw, email string) events.SignupData {
	return events.SignupData{
		Tenant: "acme", Partial: true, Trigger: "log:ss", Connection: provider, ConnectionStrategy: provider,
		UserID: provider + "|" + raw, Email: email, CreatedAt: "2026-11-01T10:00:00.000Z",
		Identities: []events.Identity{{Provider: provider, Connection: provider, UserID: raw, IsSocial: true}},
	}
}

func fakeUser(provider, raw, email string) auth0fake.User {
	return auth0fake.User{
		UserID: provider + "|" + raw, Email: email, EmailVerified: true, Name: "Enriched " + raw,
		Picture: "https://example.com/e" + raw + ".png", CreatedAt: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC),
		Identities: []auth0fake.Identity{{Provider: provider, Connection: provider, UserID: raw, IsSocial: true}},
	}
}

func withEnricher(t *testing.T, e *env, fake *auth0fake.Server) {
	t.Helper()
	c, err := auth0api.New(context.Background(), auth0api.Config{Domain: fake.Domain(), Token: fake.Token(), HTTPClient: fake.Client(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.deps.Enricher = Auth0Enricher(c)
}

func TestEnrichment(t *testing.T) {
	fake := auth0fake.New(t)
	e := newEnv(t)
	withEnricher(t, e, fake)
	fake.AddUsers(fakeUser("github", "11", "enriched@example.com"))
	e.start()
	e.publish(events.SourceLogStream, partial("github", "11", "enriched@example.com"), 0)
	e.publish(events.SourceLogStream, partial("github", "12", "deleted@example.com"), 0) // not in Auth0
	e.idle()

	if le := e.entry("github|11"); le.Outcome != events.OutcomeImported {
		t.Fatalf("enriched user: %+v", le)
	}
	u, err := e.fb.GetUser(context.Background(), "github|11")
	if err != nil {
		t.Fatal(err)
	}
	if u.DisplayName != "Enriched 11" || !u.EmailVerified {
		t.Fatalf("profile not enriched: %+v verified=%v", u.UserInfo, u.EmailVerified)
	}
	if le := e.entry("github|12"); le.Outcome != events.OutcomeSkipped || le.Reason != events.ReasonDeletedInAuth0 {
		t.Fatalf("deleted user: %+v", le)
	}
	if got := len(e.accounts()); got != 1 {
		t.Fatalf("%d accounts, want 1", got)
	}
}

func TestEnrichmentRateLimitedIsRetried(t *testing.T) {
	// One request per second: most enrichments get 429 with X-RateLimit-Reset
	// and must come back after it, not be dead-lettered.
	fake := auth0fake.New(t, auth0fake.WithRateLimit(1, time.Second))
	e := newEnv(t)
	e.cfg.Delivery.MaxDeliver = 10
	withEnricher(t, e, fake)
	const n = 4
	for i := range n {
		fake.AddUsers(fakeUser("facebook", fmt.Sprint(20+i), fmt.Sprintf("rl%d@example.com", i)))
		e.publish(events.SourceLogStream, partial("facebook", fmt.Sprint(20+i), fmt.Sprintf("rl%d@example.com", i)), 0)
	}
	e.start()
	e.idle()
	for i := range n {
		if le := e.entry(fmt.Sprintf("facebook|%d", 20+i)); le.Outcome != events.OutcomeImported {
			t.Fatalf("user %d: %+v", i, le)
		}
	}
	if got := fake.Requests()[auth0fake.RouteGetUser]; got <= n {
		t.Fatalf("%d Management API requests for %d users: the 429 path was not exercised", got, n)
	}
	if naks := testutil.ToFloat64(e.deps.Metrics.naks.WithLabelValues("transient")); naks < 1 {
		t.Fatalf("no redelivery after 429")
	}
	if len(e.dlq()) != 0 {
		t.Fatal("a rate-limited signup was dead-lettered")
	}
}

func TestPartialSignupWithoutEnrichment(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.publish(events.SourceLogStream, partial("twitter", "31", "partial@example.com"), 0)
	db := partial("auth0", "32", "db@example.com")
	db.Identities[0].IsSocial = false
	e.publish(events.SourceLogStream, db, 0)
	e.idle()
	if le := e.entry("twitter|31"); le.Outcome != events.OutcomeImported {
		t.Fatalf("partial social: %+v", le)
	}
	if le := e.entry("auth0|32"); le.Outcome != events.OutcomeSkipped || le.Reason != events.ReasonDatabaseConnection {
		t.Fatalf("partial database: %+v", le)
	}
}

func TestPoisonAfterMaxDeliver(t *testing.T) {
	// Auth0 answers 503 to every enrichment: after MaxDeliver deliveries the
	// signup is dead-lettered with reason max_deliveries.
	fake := auth0fake.New(t)
	e := newEnv(t)
	e.cfg.Delivery.MaxDeliver = 3
	withEnricher(t, e, fake)
	fake.AddUsers(fakeUser("github", "41", "p@example.com"))
	fake.Fail(503, 1000)
	e.start()
	e.publish(events.SourceLogStream, partial("github", "41", "p@example.com"), 0)
	e.idle()
	dl := e.dlq()
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	h := dl[0].Header
	if h.Get(events.HeaderDLQReason) != events.ReasonMaxDeliveries || h.Get(events.HeaderDLQDeliveries) != "3" || h.Get(events.HeaderUserID) != "github|41" || h.Get(events.HeaderDLQError) == "" {
		t.Fatalf("dead letter headers %v", h)
	}
	if le := e.entry("github|41"); le.Outcome != events.OutcomeDeadLettered || le.Reason != events.ReasonMaxDeliveries {
		t.Fatalf("ledger %+v", le)
	}
	if got := fake.Requests()[auth0fake.RouteGetUser]; got != 3 {
		t.Fatalf("%d enrichment attempts, want 3", got)
	}
}

// publishAt stores a signup whose event time is at, as a message that sat
// in the stream (or in an export, or a dead letter) since then would be;
// header, when not empty, is set on the message (name, value).
func (e *env) publishAt(src events.Source, d events.SignupData, at time.Time, header ...string) {
	e.t.Helper()
	msg, _, err := events.NewMsg(src, d, at)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		msg.Header.Set(header[i], header[i+1])
	}
	if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
		e.t.Fatal(err)
	}
}

// TestOldDataIsReadAgainFromAuth0: a backfill line, a replayed dead letter
// and a signup older than FreshAfter carry a profile from the past. Each is
// read again from the Management API before import: a user Auth0 has
// deleted since is skipped (deleted_in_auth0) and never created, a changed
// profile is imported as Auth0 has it now. A recent complete signup is
// imported from its message, without a request.
func TestOldDataIsReadAgainFromAuth0(t *testing.T) {
	fake := auth0fake.New(t)
	e := newEnv(t)
	e.cfg.FreshAfter = time.Hour
	withEnricher(t, e, fake)
	// Auth0 now: 61 and 63 renamed since their data was taken; 60, 62 and
	// 64 deleted.
	fake.AddUsers(fakeUser("github", "61", "renamed61@example.com"), fakeUser("github", "63", "renamed63@example.com"))
	e.start()

	now := time.Now()
	e.publishAt(events.SourceBackfill, social("github", "60", "gone60@example.com"), now)                      // export line, deleted since
	e.publishAt(events.SourceBackfill, social("github", "61", "old61@example.com"), now)                       // export line, changed since
	e.publishAt(events.SourceEventStream, social("github", "62", "gone62@example.com"), now.Add(-2*time.Hour)) // old, deleted since
	e.publishAt(events.SourceEventStream, social("github", "63", "old63@example.com"), now.Add(-2*time.Hour))  // old, changed since
	e.publishAt(events.SourceAction, social("github", "64", "gone64@example.com"), now,                        // replayed dead letter
		events.HeaderReplayedFrom, events.StreamDeadLetter+":7")
	e.idle()
	reads := fake.Requests()[auth0fake.RouteGetUser]
	if reads != 5 {
		t.Fatalf("%d Management API reads for 5 old signups, want 5", reads)
	}
	for _, id := range []string{"github|60", "github|62", "github|64"} {
		if le := e.entry(id); le.Outcome != events.OutcomeSkipped || le.Reason != events.ReasonDeletedInAuth0 {
			t.Errorf("%s, deleted in Auth0 since: ledger %s/%s, want skipped/%s", id, le.Outcome, le.Reason, events.ReasonDeletedInAuth0)
		}
		if _, err := e.fb.GetUser(context.Background(), id); err == nil {
			t.Errorf("%s, deleted in Auth0 since, has a Firebase account", id)
		}
	}
	for _, id := range []string{"61", "63"} {
		if le := e.entry("github|" + id); le.Outcome != events.OutcomeImported {
			t.Fatalf("github|%s: %+v", id, le)
		}
		u, err := e.fb.GetUser(context.Background(), "github|"+id)
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != "renamed"+id+"@example.com" || u.DisplayName != "Enriched "+id {
			t.Errorf("github|%s imported from the old data: email %q, name %q", id, u.Email, u.DisplayName)
		}
	}

	// A recent complete signup: imported as it is, no request.
	e.publishAt(events.SourceEventStream, social("github", "65", "fresh65@example.com"), now.Add(-time.Minute))
	e.idle()
	if le := e.entry("github|65"); le.Outcome != events.OutcomeImported {
		t.Fatalf("recent signup: %+v", le)
	}
	if got := fake.Requests()[auth0fake.RouteGetUser]; got != reads {
		t.Fatalf("a recent complete signup was read from Auth0 (%d requests, want %d)", got, reads)
	}
	if u, _ := e.fb.GetUser(context.Background(), "github|65"); u == nil || u.DisplayName != "Person 65" {
		t.Fatalf("recent signup not imported from its message: %+v", u)
	}
}

// TestFreshAfterZeroKeepsBackfillAndReplayRule: with the age rule off, an
// old live signup is imported from its message, a backfill line still is
// read again.
func TestFreshAfterZeroKeepsBackfillAndReplayRule(t *testing.T) {
	fake := auth0fake.New(t)
	e := newEnv(t)
	e.cfg.FreshAfter = 0
	withEnricher(t, e, fake)
	e.start()
	e.publishAt(events.SourceEventStream, social("github", "70", "old70@example.com"), time.Now().Add(-48*time.Hour))
	e.publishAt(events.SourceBackfill, social("github", "71", "gone71@example.com"), time.Now())
	e.idle()
	if le := e.entry("github|70"); le.Outcome != events.OutcomeImported {
		t.Fatalf("old signup with the age rule off: %+v", le)
	}
	if le := e.entry("github|71"); le.Outcome != events.OutcomeSkipped || le.Reason != events.ReasonDeletedInAuth0 {
		t.Fatalf("backfill of a deleted user: %+v", le)
	}
	if got := fake.Requests()[auth0fake.RouteGetUser]; got != 1 {
		t.Fatalf("%d Management API reads, want 1 (the backfill line)", got)
	}
}

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

package importer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0fake"
)

// hasProvider reports whether the account uid carries providerID/raw.
func (e *env) hasProvider(uid, providerID, raw string) bool {
	e.t.Helper()
	u, err := e.fb.GetUser(context.Background(), uid)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range u.ProviderUserInfo {
		if p.ProviderID == providerID && p.UID == raw {
			return true
		}
	}
	return false
}

// TestLinkPolicyLinksOnlyOnProof: with the link policy a signup is attached
// to the existing account holding its email only when the profile read
// from the Management API (enrichment is off: the read is forced for the
// decision) has the email verified by a provider that hosts that mailbox,
// and the account's email is verified. Every other case, the forged
// Event Streams body among them, is a conflict with reason email_unproven
// and leaves the account as it was.
func TestLinkPolicyLinksOnlyOnProof(t *testing.T) {
	const existing = "existing-account-1"
	tests := []struct {
		name         string
		accountEmail string
		accountVerif bool
		body         events.SignupData
		auth0        *auth0fake.User // nil: not in Auth0
		outcome      events.Outcome
		reason       string
		linked       bool
	}{
		{
			name: "google, gmail verified, account verified", accountEmail: "shared@gmail.com", accountVerif: true,
			body: social("google-oauth2", "201", "Shared@Gmail.com"), auth0: ptr(fakeUser("google-oauth2", "201", "shared@gmail.com")),
			outcome: events.OutcomeImported, reason: events.ReasonLinked, linked: true,
		},
		{
			name: "apple private relay verified", accountEmail: "x7k2@privaterelay.appleid.com", accountVerif: true,
			body: social("apple", "202", "x7k2@privaterelay.appleid.com"), auth0: ptr(fakeUser("apple", "202", "x7k2@privaterelay.appleid.com")),
			outcome: events.OutcomeImported, reason: events.ReasonLinked, linked: true,
		},
		{
			// The attack: a forged user.created names the attacker's GitHub
			// identity with the victim's email, "verified". Auth0 holds the
			// attacker's real profile.
			name: "forged body, auth0 has another email", accountEmail: "victim@gmail.com", accountVerif: true,
			body: social("github", "666", "victim@gmail.com"), auth0: ptr(fakeUser("github", "666", "attacker@example.com")),
			outcome: events.OutcomeConflict, reason: events.ReasonEmailUnproven,
		},
		{
			name: "body says verified, auth0 says unverified", accountEmail: "victim@gmail.com", accountVerif: true,
			body: social("google-oauth2", "203", "victim@gmail.com"), auth0: ptr(unverified(fakeUser("google-oauth2", "203", "victim@gmail.com"))),
			outcome: events.OutcomeConflict, reason: events.ReasonEmailUnproven,
		},
		{
			name: "provider not authoritative, verified everywhere", accountEmail: "victim@gmail.com", accountVerif: true,
			body: social("github", "204", "victim@gmail.com"), auth0: ptr(fakeUser("github", "204", "victim@gmail.com")),
			outcome: events.OutcomeConflict, reason: events.ReasonEmailUnproven,
		},
		{
			name: "google for a domain it does not host", accountEmail: "someone@example.com", accountVerif: true,
			body: social("google-oauth2", "205", "someone@example.com"), auth0: ptr(fakeUser("google-oauth2", "205", "someone@example.com")),
			outcome: events.OutcomeConflict, reason: events.ReasonEmailUnproven,
		},
		{
			name: "account email unverified", accountEmail: "shared@gmail.com", accountVerif: false,
			body: social("google-oauth2", "206", "shared@gmail.com"), auth0: ptr(fakeUser("google-oauth2", "206", "shared@gmail.com")),
			outcome: events.OutcomeConflict, reason: events.ReasonEmailUnproven,
		},
		{
			name: "not in auth0", accountEmail: "shared@gmail.com", accountVerif: true,
			body:    social("google-oauth2", "207", "shared@gmail.com"),
			outcome: events.OutcomeSkipped, reason: events.ReasonDeletedInAuth0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := auth0fake.New(t)
			e := newEnv(t)
			e.cfg.EmailPolicy = EmailLink
			withEnricher(t, e, fake)
			if tt.auth0 != nil {
				fake.AddUsers(*tt.auth0)
			}
			ctx := context.Background()
			if _, err := e.fb.ImportUsers(ctx, []*auth.UserToImport{
				(&auth.UserToImport{}).UID(existing).Email(tt.accountEmail).EmailVerified(tt.accountVerif).
					ProviderData([]*auth.UserProvider{{ProviderID: "facebook.com", UID: "victim-fb-1"}}),
			}); err != nil {
				t.Fatal(err)
			}
			e.start()
			e.publish(events.SourceEventStream, tt.body, 0)
			e.idle()
			le := e.entry(tt.body.UserID)
			if le.Outcome != tt.outcome || le.Reason != tt.reason {
				t.Fatalf("ledger %+v, want %s/%s", le, tt.outcome, tt.reason)
			}
			if tt.outcome == events.OutcomeConflict && le.FirebaseUID != existing {
				t.Fatalf("ledger %+v does not name the account in conflict", le)
			}
			if strings.Contains(le.Detail, "@") {
				t.Fatalf("ledger detail %q carries an email", le.Detail)
			}
			fp := events.SocialProviders()[tt.body.Identities[0].Provider]
			if got := e.hasProvider(existing, fp, tt.body.Identities[0].UserID); got != tt.linked {
				t.Fatalf("%s/%s linked = %v, want %v", fp, tt.body.Identities[0].UserID, got, tt.linked)
			}
			u, err := e.fb.GetUser(ctx, existing)
			if err != nil {
				t.Fatal(err)
			}
			want := 1 // the account's own facebook.com identity
			if tt.linked {
				want = 2
			}
			if len(u.ProviderUserInfo) != want {
				t.Fatalf("account has %d providers, want %d", len(u.ProviderUserInfo), want)
			}
			if u.Email != tt.accountEmail || u.EmailVerified != tt.accountVerif {
				t.Fatalf("account changed: %s verified=%v", u.Email, u.EmailVerified)
			}
			if got := len(e.accounts()); got != 1 {
				t.Fatalf("%d accounts, want the 1 that existed", got)
			}
			if n := fake.Requests()[auth0fake.RouteGetUser]; n != 1 {
				t.Fatalf("%d Management API reads, want 1 (the decision reads the profile without --enrich-all)", n)
			}
		})
	}
}

// TestLinkPolicyNeedsTheManagementAPI: without an enricher the link policy
// could only trust the message, so the importer refuses to start.
func TestLinkPolicyNeedsTheManagementAPI(t *testing.T) {
	e := newEnv(t)
	e.cfg.EmailPolicy = EmailLink
	_, err := New(context.Background(), e.cfg, e.deps)
	if err == nil || !strings.Contains(err.Error(), "EmailPolicy link") {
		t.Fatalf("New = %v, want a refusal naming EmailPolicy link", err)
	}
}

// TestMismatchedIdentityIsDeadLettered: a message whose user_id is not its
// primary identity's (one person's user_id, another person's Google
// identity) never reached Firebase look-ups: publishers refuse it, and one
// in the stream anyway is dead-lettered as invalid_identity, so the ledger
// of the user_id never names the account holding the identity.
func TestMismatchedIdentityIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.fb.ImportUsers(ctx, []*auth.UserToImport{
		(&auth.UserToImport{}).UID("victim-1").Email("victim@gmail.com").EmailVerified(true).
			ProviderData([]*auth.UserProvider{{ProviderID: "google.com", UID: "4242"}}),
	}); err != nil {
		t.Fatal(err)
	}
	forged := social("google-oauth2", "4242", "attacker@example.com")
	forged.UserID = "github|4242"
	if _, _, err := events.NewMsg(events.SourceEventStream, forged, time.Now()); !errors.Is(err, events.ErrInvalidUser) {
		t.Fatalf("NewMsg err = %v, want ErrInvalidUser", err)
	}
	b, err := events.Encode(events.NewSignup(events.SourceEventStream, forged, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	e.publishRaw(events.Subject(events.SourceEventStream), b)
	e.start()
	e.idle()
	le := e.entry(forged.UserID)
	if le.Outcome != events.OutcomeDeadLettered || le.Reason != events.ReasonInvalidIdentity || le.FirebaseUID != "" {
		t.Fatalf("ledger %+v, want dead_lettered/%s naming no account", le, events.ReasonInvalidIdentity)
	}
	dl := e.dlq()
	if len(dl) != 1 || dl[0].Header.Get(events.HeaderDLQReason) != events.ReasonInvalidIdentity ||
		!strings.Contains(dl[0].Header.Get(events.HeaderDLQError), "user_id") {
		t.Fatalf("dead letters %d %v", len(dl), func() any {
			if len(dl) > 0 {
				return dl[0].Header
			}
			return nil
		}())
	}
	if got := len(e.accounts()); got != 1 {
		t.Fatalf("%d accounts, want the victim's only", got)
	}
}

func ptr[T any](v T) *T { return &v }

func unverified(u auth0fake.User) auth0fake.User {
	u.EmailVerified = false
	return u
}

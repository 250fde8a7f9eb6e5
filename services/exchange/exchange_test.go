package exchange_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/internal/exchangetest"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/services/exchange"
)

// TestExchangeSignsIn: for an account found in the ledger, in Firebase by
// uid or in Firebase by provider identity, the answer is a custom token
// the Firebase Auth emulator accepts at signInWithCustomToken, giving an ID
// token for the expected uid that records the exchange.
func TestExchangeSignsIn(t *testing.T) {
	e := newEnv(t, nil)
	// Found through the ledger: the importer linked the person to an
	// existing account (email policy link), so the uid is not the policy's.
	e.firebaseAccount("merged-account-7", "google.com", "2001")
	e.setLedger(events.LedgerEntry{Auth0UserID: "google-oauth2|2001", Outcome: events.OutcomeImported,
		Reason: events.ReasonLinked, FirebaseUID: "merged-account-7", Sources: []events.Source{events.SourceAction}})
	// Found by uid: imported by the bulk export, never seen by the importer.
	e.firebaseAccount("github|2002", "github.com", "2002")
	// Found by provider identity: an account under another uid.
	e.socialUser("facebook|2003")
	e.firebaseAccount("legacy-2003", "facebook.com", "2003")

	tests := []struct{ sub, uid, via string }{
		{"google-oauth2|2001", "merged-account-7", exchange.ViaLedger},
		{"github|2002", "github|2002", exchange.ViaFirebaseUID},
		{"facebook|2003", "legacy-2003", exchange.ViaFirebaseProvider},
	}
	for _, tt := range tests {
		t.Run(tt.via, func(t *testing.T) {
			a := e.post(e.iss.Token(tt.sub))
			if a.status != http.StatusOK || a.ok.UID != tt.uid || a.ok.FirebaseToken == "" {
				t.Fatalf("exchange: %d %s", a.status, a.raw)
			}
			if cc := a.header.Get("Cache-Control"); cc != "no-store" {
				t.Fatalf("Cache-Control %q", cc)
			}
			id := exchangetest.SignInWithCustomToken(t, testenv.SharedEmulator(t).Host, a.ok.FirebaseToken)
			if id["user_id"] != tt.uid || id["sub"] != tt.uid {
				t.Fatalf("ID token for user_id=%v sub=%v, want %s", id["user_id"], id["sub"], tt.uid)
			}
			if id[exchange.ClaimExchange] != true || id[exchange.ClaimAuth0Sub] != tt.sub {
				t.Fatalf("ID token claims %v lack the exchange record", id)
			}
			if n := e.counter("signupsync_exchange_accounts_resolved_total", prometheus.Labels{"via": tt.via}); n != 1 {
				t.Fatalf("accounts_resolved_total{via=%s} = %v", tt.via, n)
			}
		})
	}
	if n := e.auth0.Requests()[auth0fake.RouteGetUser]; n != 1 {
		t.Fatalf("%d Management API reads, want 1 (only the provider look-up needs the profile)", n)
	}
	if n := e.counter("signupsync_exchange_requests_total", prometheus.Labels{"result": "ok"}); n != 3 {
		t.Fatalf("requests_total{result=ok} = %v", n)
	}
	if msgs := e.streamMessages(); len(msgs) != 0 {
		t.Fatalf("%d signups published for people already in Firebase", len(msgs))
	}
}

// TestExchangeRejectsTokens: every token problem is a 401 whose body names
// a reason code and nothing else, with no Firebase or Auth0 call made.
func TestExchangeRejectsTokens(t *testing.T) {
	e := newEnv(t, nil)
	const sub = "google-oauth2|3001"
	e.firebaseAccount(sub, "google.com", "3001")
	key := e.iss.Current()
	now := time.Now()
	good := e.iss.Claims(sub, now)
	stranger := e.iss.NewKey()
	tests := []struct {
		name, token, reason string
	}{
		{"expired", exchangetest.Sign(t, key, with(good, map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-5 * time.Minute).Unix()})), exchange.ReasonExpired},
		{"not yet valid", exchangetest.Sign(t, key, with(good, map[string]any{"nbf": now.Add(10 * time.Minute).Unix()})), exchange.ReasonNotYetValid},
		{"wrong issuer", exchangetest.Sign(t, key, with(good, map[string]any{"iss": "https://evil.example.com/"})), exchange.ReasonInvalidToken},
		{"wrong audience", exchangetest.Sign(t, key, with(good, map[string]any{"aud": "https://elsewhere/"})), exchange.ReasonInvalidToken},
		{"alg none", exchangetest.Unsigned(t, key.ID, good), exchange.ReasonInvalidToken},
		{"HS256 with the public key", exchangetest.SignWith(t, jwa.HS256, exchangetest.PublicKeyPEM(t, key), key.ID, good), exchange.ReasonInvalidToken},
		{"tampered payload", exchangetest.WithPayload(t, exchangetest.Sign(t, key, good), with(good, map[string]any{"sub": "google-oauth2|9"})), exchange.ReasonInvalidToken},
		{"too old", exchangetest.Sign(t, key, with(good, map[string]any{"iat": now.Add(-time.Hour).Unix()})), exchange.ReasonTooOld},
		{"garbage", "a.b.c", exchange.ReasonInvalidToken},
		{"missing", "", exchange.ReasonMissingToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.post(tt.token)
			if a.status != http.StatusUnauthorized || a.fail.Error != tt.reason {
				t.Fatalf("%d %s, want 401 %s", a.status, a.raw, tt.reason)
			}
			if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Fatalf("WWW-Authenticate %q", a.header.Get("WWW-Authenticate"))
			}
			for _, leak := range []string{"kid", "issuer", "audience", "signature", "alg", key.ID} {
				if strings.Contains(strings.ToLower(a.fail.Message), leak) {
					t.Fatalf("message %q tells an attacker which check failed", a.fail.Message)
				}
			}
		})
	}
	// An unknown kid, past the refresh interval: one JWKS fetch, then 401;
	// again at once: no fetch.
	e.clk.Advance(31 * time.Second)
	before := e.iss.Fetches()
	for range 3 {
		if a := e.post(exchangetest.Sign(t, stranger, good)); a.status != http.StatusUnauthorized || a.fail.Error != exchange.ReasonInvalidToken {
			t.Fatalf("unknown kid: %d %s", a.status, a.raw)
		}
	}
	if n := e.iss.Fetches() - before; n != 1 {
		t.Fatalf("%d JWKS fetches for three unknown-kid tokens, want 1", n)
	}
	if n := len(e.auth0.Requests()); n != 0 {
		t.Fatalf("the Management API was called for rejected tokens: %v", e.auth0.Requests())
	}
	if n := e.counter("signupsync_exchange_requests_total", prometheus.Labels{"result": exchange.ReasonInvalidToken}); n != 9 {
		t.Fatalf("requests_total{result=invalid_token} = %v, want 9", n)
	}
}

// TestExchangeNotMigrated: people this pipeline does not import get 404
// not_migrated so the app keeps the Auth0 sign-in; nothing is published.
func TestExchangeNotMigrated(t *testing.T) {
	e := newEnv(t, nil)
	e.auth0.AddUsers(auth0fake.User{UserID: "auth0|db1", Email: "db1@example.com",
		Identities: []auth0fake.Identity{{Provider: "auth0", Connection: "Username-Password-Authentication", UserID: "db1"}}})
	e.auth0.AddUsers(auth0fake.User{UserID: "google-oauth2|l1", Email: "l1@example.com", Identities: []auth0fake.Identity{
		{Provider: "google-oauth2", Connection: "google-oauth2", UserID: "l1", IsSocial: true},
		{Provider: "github", Connection: "github", UserID: "77", IsSocial: true, Numeric: true},
	}})
	// The ledger already says why: no Management API call is needed.
	e.setLedger(events.LedgerEntry{Auth0UserID: "auth0|db2", Outcome: events.OutcomeSkipped, Reason: events.ReasonDatabaseConnection})
	// A database user the password export already moved: found by uid.
	e.firebaseAccount("auth0|db3", "", "")
	e.setLedger(events.LedgerEntry{Auth0UserID: "auth0|db3", Outcome: events.OutcomeSkipped, Reason: events.ReasonDatabaseConnection})

	for _, sub := range []string{"auth0|db1", "google-oauth2|l1", "auth0|db2"} {
		a := e.post(e.iss.Token(sub))
		if a.status != http.StatusNotFound || a.fail.Error != exchange.ResultNotMigrated {
			t.Fatalf("%s: %d %s, want 404 not_migrated", sub, a.status, a.raw)
		}
	}
	if n := e.auth0.Requests()[auth0fake.RouteGetUser]; n != 2 {
		t.Fatalf("%d Management API reads, want 2 (not for the user the ledger explains)", n)
	}
	if a := e.post(e.iss.Token("auth0|db3")); a.status != http.StatusOK || a.ok.UID != "auth0|db3" {
		t.Fatalf("migrated database user: %d %s", a.status, a.raw)
	}
	if msgs := e.streamMessages(); len(msgs) != 0 {
		t.Fatalf("%d signups published for ineligible people", len(msgs))
	}
}

// TestExchangeImportPending: an eligible person not in Firebase is
// published as a signup for the importer (same Nats-Msg-Id as every other
// source, marked as requested by the exchange); with no importer running
// the wait ends in 503 with Retry-After.
func TestExchangeImportPending(t *testing.T) {
	e := newEnv(t, func(c *exchange.Config) { c.ImportWait = 300 * time.Millisecond })
	const sub = "github|4004"
	e.socialUser(sub)
	a := e.post(e.iss.Token(sub))
	if a.status != http.StatusServiceUnavailable || a.fail.Error != exchange.ResultImportPending || a.header.Get("Retry-After") != "5" {
		t.Fatalf("%d %v %s, want 503 import_pending with Retry-After 5", a.status, a.header, a.raw)
	}
	msgs := e.streamMessages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages in SIGNUPS, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject != events.Subject(events.SourceReconcile) || m.Header.Get(events.HeaderMsgID) != events.EventID(sub) ||
		m.Header.Get(exchange.HeaderRequestedBy) != "exchange" || m.Header.Get("traceparent") == "" {
		t.Fatalf("published %s %v", m.Subject, m.Header)
	}
	ev, err := events.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Data.Partial || ev.Data.Trigger != exchange.TriggerExchange || ev.Data.Email != "4004@example.com" ||
		len(ev.Data.Identities) != 1 || !events.Classify(ev.Data, nil).OK {
		t.Fatalf("published data %+v", ev.Data)
	}
	// A retry while the first signup is still in the window publishes a
	// duplicate JetStream drops.
	if a := e.post(e.iss.Token(sub)); a.status != http.StatusServiceUnavailable {
		t.Fatalf("retry: %d %s", a.status, a.raw)
	}
	if msgs := e.streamMessages(); len(msgs) != 1 {
		t.Fatalf("%d messages after a retry, want 1 (deduplicated)", len(msgs))
	}
	// The importer (played here by creating the account and writing its
	// ledger entry) settles it: the next exchange finds it in the ledger.
	e.firebaseAccount(sub, "github.com", "4004")
	e.setLedger(events.LedgerEntry{Auth0UserID: sub, Outcome: events.OutcomeImported, FirebaseUID: sub})
	if a := e.post(e.iss.Token(sub)); a.status != http.StatusOK || a.ok.UID != sub {
		t.Fatalf("after import: %d %s", a.status, a.raw)
	}
}

// TestExchangeSeesEarlierOutcome: a person whose earlier signup ended in a
// conflict gets 404 not_migrated (after the importer had its say again),
// not a custom token for someone else's account.
func TestExchangeSeesEarlierOutcome(t *testing.T) {
	e := newEnv(t, func(c *exchange.Config) { c.ImportWait = 300 * time.Millisecond })
	const sub = "apple|5005"
	e.socialUser(sub)
	e.setLedger(events.LedgerEntry{Auth0UserID: sub, Outcome: events.OutcomeConflict, Reason: events.ReasonEmailInUse, FirebaseUID: "someone-else"})
	a := e.post(e.iss.Token(sub))
	if a.status != http.StatusNotFound || a.fail.Error != exchange.ResultNotMigrated {
		t.Fatalf("%d %s, want 404 not_migrated", a.status, a.raw)
	}

	// The importer found an account under the person's uid without their
	// identity and flagged it for review: the exchange does not sign in to
	// it on the strength of the uid alone.
	const taken = "apple|5006"
	e.socialUser(taken)
	e.firebaseAccount(taken, "", "")
	e.setLedger(events.LedgerEntry{Auth0UserID: taken, Outcome: events.OutcomeConflict, Reason: events.ReasonUIDTaken, FirebaseUID: taken})
	if a := e.post(e.iss.Token(taken)); a.status != http.StatusNotFound || a.fail.Error != exchange.ResultNotMigrated {
		t.Fatalf("uid taken: %d %s, want 404 not_migrated", a.status, a.raw)
	}
}

// TestExchangeRateLimits: per subject after verification, per address
// before it; both answer 429 with Retry-After.
func TestExchangeRateLimits(t *testing.T) {
	t.Run("subject", func(t *testing.T) {
		e := newEnv(t, func(c *exchange.Config) { c.SubjectRate, c.SubjectBurst = 1, 2 })
		e.firebaseAccount("github|6001", "github.com", "6001")
		e.firebaseAccount("github|6002", "github.com", "6002")
		tok := e.iss.Token("github|6001")
		for i := range 2 {
			if a := e.post(tok); a.status != http.StatusOK {
				t.Fatalf("request %d: %d %s", i+1, a.status, a.raw)
			}
		}
		a := e.post(tok)
		if a.status != http.StatusTooManyRequests || a.fail.Error != exchange.ResultRateLimited || a.header.Get("Retry-After") != "60" {
			t.Fatalf("third: %d %v %s, want 429 with Retry-After 60", a.status, a.header, a.raw)
		}
		if a := e.post(e.iss.Token("github|6002")); a.status != http.StatusOK {
			t.Fatalf("another person: %d %s", a.status, a.raw)
		}
	})
	t.Run("address", func(t *testing.T) {
		e := newEnv(t, func(c *exchange.Config) { c.IPRate, c.IPBurst = 30, 3 })
		for i := range 3 {
			if a := e.post("garbage.token.here"); a.status != http.StatusUnauthorized {
				t.Fatalf("request %d: %d", i+1, a.status)
			}
		}
		fetches := e.iss.Fetches()
		a := e.post(e.iss.Token("github|6003"))
		if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "2" {
			t.Fatalf("fourth: %d %v %s, want 429 with Retry-After 2", a.status, a.header, a.raw)
		}
		if e.iss.Fetches() != fetches {
			t.Fatal("a rate-limited request reached the verifier")
		}
		if n := e.counter("signupsync_exchange_requests_total", prometheus.Labels{"result": exchange.ResultRateLimited}); n != 1 {
			t.Fatalf("requests_total{result=rate_limited} = %v", n)
		}
	})
}

// TestExchangeProtocol: method, missing credentials, issuer outage.
func TestExchangeProtocol(t *testing.T) {
	e := newEnv(t, nil)
	if a := e.do(http.MethodGet, "", nil); a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != http.MethodPost {
		t.Fatalf("GET: %d %v", a.status, a.header)
	}
	if a := e.do(http.MethodPost, "", http.Header{"Authorization": {"Basic dTpw"}}); a.status != http.StatusUnauthorized || a.fail.Error != exchange.ReasonMissingToken {
		t.Fatalf("basic auth: %d %s", a.status, a.raw)
	}
	e.iss.FailWith(http.StatusServiceUnavailable)
	a := e.post(e.iss.Token("github|7001"))
	if a.status != http.StatusServiceUnavailable || a.fail.Error != exchange.ResultUnavailable || a.header.Get("Retry-After") == "" {
		t.Fatalf("issuer down before any key was fetched: %d %s, want 503", a.status, a.raw)
	}
	res, err := http.Get(e.admin.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz without keys: %d", res.StatusCode)
	}
	// /readyz is no amplifier: 200 probes while no keys are loaded cause no
	// fetch beyond the refresh interval's one.
	before := e.iss.Fetches()
	for range 200 {
		res, err := http.Get(e.admin.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("/readyz without keys: %d", res.StatusCode)
		}
	}
	if got := e.iss.Fetches() - before; got > 1 {
		t.Fatalf("200 /readyz probes caused %d JWKS fetches, want at most 1 per refresh interval", got)
	}
}

// TestExchangeAuditTrail: one audit line per exchange with the Auth0
// subject and the Firebase uid; neither the Auth0 token nor the custom
// token appears in logs or spans, and spans carry the event id, not the
// subject.
func TestExchangeAuditTrail(t *testing.T) {
	e := newEnv(t, nil)
	const sub = "google-oauth2|8001"
	e.firebaseAccount(sub, "google.com", "8001")
	tok := e.iss.Token(sub)
	a := e.post(tok)
	if a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	expired := exchangetest.Sign(t, e.iss.Current(), with(e.iss.Claims(sub, time.Now()), map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}))
	if a := e.post(expired); a.status != http.StatusUnauthorized {
		t.Fatalf("expired: %d", a.status)
	}
	logs := e.logs.String()
	var audit []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"msg":"session exchange"`) {
			audit = append(audit, line)
		}
	}
	if len(audit) != 2 {
		t.Fatalf("%d audit lines, want 2:\n%s", len(audit), logs)
	}
	for _, want := range []string{`"result":"ok"`, `"auth0_sub":"google-oauth2|8001"`, `"firebase_uid":"google-oauth2|8001"`, `"via":"firebase_uid"`, `"trace_id":`} {
		if !strings.Contains(audit[0], want) {
			t.Errorf("audit line lacks %s: %s", want, audit[0])
		}
	}
	if !strings.Contains(audit[1], `"result":"expired"`) || strings.Contains(audit[1], "auth0_sub") {
		t.Errorf("a rejected token's line must not name an unverified subject: %s", audit[1])
	}
	secrets := []string{tok, strings.Split(tok, ".")[2], expired, strings.Split(expired, ".")[2], a.ok.FirebaseToken}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Fatal("a token appears in the logs")
		}
	}
	_ = e.tp.ForceFlush(context.Background())
	var found bool
	for _, sp := range e.spans.GetSpans() {
		if sp.Name == "session exchange" {
			found = true
		}
		for _, kv := range sp.Attributes {
			v := kv.Value.String()
			for _, s := range append(secrets, sub) {
				if strings.Contains(v, s) {
					t.Fatalf("span %q attribute %s carries a token or the subject", sp.Name, kv.Key)
				}
			}
		}
	}
	if !found {
		t.Fatal("no session exchange span")
	}
}

func TestConfigValidate(t *testing.T) {
	iss := exchangetest.NewIssuer(t, audience)
	good := testConfig(iss, auth0fake.New(t))
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*exchange.Config)
		want   string
	}{
		{"no issuer", func(c *exchange.Config) { c.Issuer = "" }, "Issuer"},
		{"http issuer", func(c *exchange.Config) { c.Issuer = "http://tenant.auth0.com/" }, "https"},
		{"issuer without slash", func(c *exchange.Config) { c.Issuer = "https://tenant.auth0.com" }, "end with a slash"},
		{"no audience", func(c *exchange.Config) { c.Audience = "" }, "Audience is required"},
		{"huge skew", func(c *exchange.Config) { c.ClockSkew = time.Hour }, "ClockSkew"},
		{"tiny max age", func(c *exchange.Config) { c.MaxTokenAge = time.Second }, "MaxTokenAge"},
		{"no management api", func(c *exchange.Config) { c.Management.Domain, c.Management.Token = "", "" }, "Management is required"},
		{"bad uid policy", func(c *exchange.Config) { c.UIDPolicy = "email" }, "UIDPolicy"},
		{"no subject limit", func(c *exchange.Config) { c.SubjectRate = 0 }, "SubjectRate"},
		{"import wait beyond the write timeout", func(c *exchange.Config) { c.ImportWait = time.Minute }, "ImportWait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

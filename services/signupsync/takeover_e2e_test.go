package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/internal/exchangetest"
	"github.com/signupsync/signupsync/internal/telemetry"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/schemas"
	"github.com/signupsync/signupsync/services/exchange"
	"github.com/signupsync/signupsync/services/importer"
	"github.com/signupsync/signupsync/services/ingest"
)

// TestForgedSignupCannotTakeOverAnAccount is issue 13's attack end to end.
// Someone who holds the Event Streams bearer token (a static secret) posts
// a user.created naming their own GitHub identity with the victim's email,
// "verified". The victim has a verified Firebase account for that email;
// the importer runs with --email-policy link and without --enrich-all.
// The importer must read the profile from Auth0 (which holds the
// attacker's own email) and record a conflict, leaving the victim's account
// as it was; the attacker's exchange must not yield the victim's uid. A
// body pairing the attacker's user_id with the victim's Google identity is
// refused by ingest and never stored.
func TestForgedSignupCannotTakeOverAnAccount(t *testing.T) {
	ctx := context.Background()
	_, js := testenv.StartNATS(t).Connect()
	testenv.Ensure(t, js)
	project := testenv.ProjectID(t)
	fb := testenv.FirebaseAuth(t, project)
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))

	const victimUID, victimEmail = "victim-account-1", "victim@gmail.com"
	if res, err := fb.ImportUsers(ctx, []*auth.UserToImport{(&auth.UserToImport{}).UID(victimUID).Email(victimEmail).EmailVerified(true).
		ProviderData([]*auth.UserProvider{{ProviderID: "google.com", UID: "4242"}})}); err != nil || res.FailureCount != 0 {
		t.Fatalf("import victim: %v %+v", err, res)
	}
	fake := auth0fake.New(t)
	const attacker = "github|666"
	fake.AddUsers(auth0fake.User{UserID: attacker, Email: "attacker@example.com", EmailVerified: true, Name: "Attacker",
		Identities: []auth0fake.Identity{{Provider: "github", Connection: "github", UserID: "666", Numeric: true, IsSocial: true}}})
	mgmt := auth0api.Config{Domain: fake.Domain(), Token: fake.Token(), HTTPClient: fake.Client()}

	set, err := schemas.Compile()
	if err != nil {
		t.Fatal(err)
	}
	icfg := ingest.DefaultConfig()
	icfg.EventStreamTokens = []string{"es-static-token"}
	ing, err := ingest.New(icfg, ingest.Deps{Publisher: js, Schemas: set, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ing.Handler())
	t.Cleanup(srv.Close)

	users, err := auth0api.New(ctx, mgmt)
	if err != nil {
		t.Fatal(err)
	}
	mcfg := importer.DefaultConfig()
	mcfg.FirebaseRPS, mcfg.BatchWindow, mcfg.EmailPolicy = 0, 20*time.Millisecond, importer.EmailLink
	imp, err := importer.New(ctx, mcfg, importer.Deps{JetStream: js, Accounts: fb, Enricher: importer.Auth0Enricher(users), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	impCtx, stopImp := context.WithCancel(ctx)
	impDone := make(chan struct{})
	go func() { defer close(impDone); _ = imp.Run(impCtx) }()
	t.Cleanup(func() { stopImp(); <-impDone })

	iss := exchangetest.NewIssuer(t, exchangeAudience)
	xcfg := exchange.DefaultConfig()
	xcfg.Addr = testenv.FreeAddr(t)
	xcfg.Issuer, xcfg.Audience, xcfg.Management = iss.URL(), exchangeAudience, mgmt
	xcfg.ImportWait = 2 * time.Second
	logs := &testenv.Buffer{}
	srvCtx, stopSrv := context.WithCancel(ctx)
	srvDone := make(chan error, 1)
	go func() {
		srvDone <- serveExchange(srvCtx, xcfg, js, fb, telemetry.NewLogger(logs, slog.LevelInfo))
	}()
	t.Cleanup(func() { stopSrv(); <-srvDone })
	waitHealthy(t, xcfg.Addr)

	type problem struct{ Error, Field, Message string }
	post := func(userID, provider, raw string) (int, problem) {
		t.Helper()
		body := fmt.Sprintf(`{"specversion":"1.0","id":"evt_forged_%[5]d","type":"user.created","source":"urn:auth0:acme","data":{"object":{"user_id":%[1]q,"email":%[4]q,"email_verified":true,"identities":[{"provider":%[2]q,"connection":%[2]q,"user_id":%[3]s,"isSocial":true}]}}}`,
			userID, provider, raw, victimEmail, time.Now().UnixNano())
		req, _ := http.NewRequest(http.MethodPost, srv.URL+ingest.PathEventStream, bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer es-static-token")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var p problem
		_ = json.NewDecoder(res.Body).Decode(&p)
		return res.StatusCode, p
	}

	// The forged user.created, accepted as any well-formed body is.
	if st, _ := post(attacker, "github", "666"); st != http.StatusAccepted {
		t.Fatalf("forged user.created: %d, want 202", st)
	}
	testenv.WaitDrained(t, js)
	kv, err := js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		t.Fatal(err)
	}
	le := ledgerOf(t, kv, attacker)
	if le.Outcome != events.OutcomeConflict || le.Reason != events.ReasonEmailUnproven {
		t.Fatalf("ledger %+v, want conflict/%s", le, events.ReasonEmailUnproven)
	}
	victim, err := fb.GetUser(ctx, victimUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(victim.ProviderUserInfo) != 1 || victim.ProviderUserInfo[0].ProviderID != "google.com" || victim.Email != victimEmail {
		t.Fatalf("victim's account changed: %s %+v", victim.Email, victim.ProviderUserInfo)
	}

	// The attacker's own, genuine Auth0 token.
	st, resp, body := exchangeCall(t, xcfg.Addr, iss.Token(attacker))
	if st == http.StatusOK || resp.UID == victimUID || resp.FirebaseToken != "" || strings.Contains(body, victimUID) {
		t.Fatalf("attacker's exchange: %d %s, want no token and not the victim's uid", st, body)
	}

	// The other pairing: the attacker's user_id with the victim's Google
	// identity (which the importer would find on the victim's account).
	// Refused before it is stored.
	stream, err := js.Stream(ctx, events.StreamSignups)
	if err != nil {
		t.Fatal(err)
	}
	before := streamMsgs(t, stream)
	// The body is well-formed: only the identity check refuses it, with a
	// 400 naming user_id (a retry cannot help).
	st, p := post("github|4242", "google-oauth2", `"4242"`)
	if st != http.StatusBadRequest || p.Error != "invalid_body" || !strings.Contains(p.Field+" "+p.Message, "user_id") {
		t.Fatalf("mismatched identity: %d %+v, want 400 invalid_body naming user_id", st, p)
	}
	if after := streamMsgs(t, stream); after != before {
		t.Fatalf("SIGNUPS went from %d to %d messages: the mismatched body was stored", before, after)
	}
	if strings.Contains(logs.String(), victimEmail) {
		t.Fatal("the exchange logged an email")
	}
}

func ledgerOf(t *testing.T, kv jetstream.KeyValue, userID string) events.LedgerEntry {
	t.Helper()
	kve, err := kv.Get(context.Background(), events.LedgerKey(userID))
	if err != nil {
		t.Fatalf("ledger %s: %v", userID, err)
	}
	le, err := events.UnmarshalLedger(kve.Value())
	if err != nil {
		t.Fatal(err)
	}
	return le
}

func streamMsgs(t *testing.T, st jetstream.Stream) uint64 {
	t.Helper()
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestImporterLinkPolicyNeedsManagementAPI: `--email-policy link` without
// the Management API would have to trust the webhook body, so the command
// refuses to start.
func TestImporterLinkPolicyNeedsManagementAPI(t *testing.T) {
	err := run(context.Background(), []string{"importer", "--firebase-project", "p", "--email-policy", "link"}, envFrom(nil), &testenv.Buffer{}, &testenv.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--email-policy (SIGNUPSYNC_EMAIL_POLICY) link needs --auth0-domain") {
		t.Fatalf("err = %v, want a refusal naming --email-policy link and --auth0-domain", err)
	}
	var ue usageError
	if !errors.As(err, &ue) || exitCode(err) != 2 {
		t.Fatalf("exit code %d, want 2", exitCode(err))
	}
}

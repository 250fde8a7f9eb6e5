package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/services/importer"
	"github.com/signupsync/signupsync/services/operator"
)

// TestDeadLetterReplayRoundTrip: Auth0 fails every enrichment, so the signup
// is dead-lettered after MaxDeliver; once Auth0 is back, `dlq replay`
// (a dry run first) republishes it, the importer imports it, and the dead
// letter is gone only after that republish.
func TestDeadLetterReplayRoundTrip(t *testing.T) {
	nats := testenv.StartNATS(t)
	_, js := nats.Connect()
	testenv.Ensure(t, js)
	ctx := context.Background()
	project := testenv.ProjectID(t)
	fb := testenv.FirebaseAuth(t, project)
	fake := auth0fake.New(t)
	user := "github|4242"
	fake.AddUsers(auth0fake.User{UserID: user, Email: "replay@example.com", EmailVerified: true, Name: "Replay Me",
		CreatedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Identities: []auth0fake.Identity{{Provider: "github", Connection: "github", UserID: "4242", IsSocial: true}}})
	fake.Fail(503, 3)

	client, err := auth0api.New(ctx, auth0api.Config{Domain: fake.Domain(), Token: fake.Token(), HTTPClient: fake.Client(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := importer.DefaultConfig()
	cfg.FirebaseRPS = 0
	cfg.Delivery.MaxDeliver = 3
	cfg.Delivery.BackOff = []time.Duration{20 * time.Millisecond}
	cfg.BatchWindow = 20 * time.Millisecond
	imp, err := importer.New(ctx, cfg, importer.Deps{JetStream: js, Accounts: fb, Enricher: importer.Auth0Enricher(client), Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = imp.Run(runCtx) }()
	defer func() { stop(); <-done }()

	msg, _, err := events.NewMsg(events.SourceLogStream, events.SignupData{Tenant: "acme", Partial: true, UserID: user,
		Identities: []events.Identity{{Provider: "github", Connection: "github", UserID: "4242", IsSocial: true}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	msg.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the signup to be dead-lettered", func() bool {
		dls, err := operator.Select(ctx, js, operator.Selection{Users: []string{user}})
		return err == nil && len(dls) == 1
	})
	vars := map[string]string{"SIGNUPSYNC_NATS_URL": nats.URL}
	out := &testenv.Buffer{}
	if err := run(ctx, []string{"dlq", "list"}, envFrom(vars), out, out); err != nil || !strings.Contains(out.String(), events.ReasonMaxDeliveries) {
		t.Fatalf("dlq list: %v\n%s", err, out)
	}
	// Refused without a selection; a dry run without --yes.
	if err := run(ctx, []string{"dlq", "replay"}, envFrom(vars), out, out); exitCode(err) != 2 {
		t.Fatalf("replay without a selection: %v", err)
	}
	if err := run(ctx, []string{"dlq", "replay", "--all", "--user", user}, envFrom(vars), out, out); exitCode(err) != 2 {
		t.Fatalf("contradictory selection: %v", err)
	}
	out = &testenv.Buffer{}
	if err := run(ctx, []string{"dlq", "replay", "--user", user}, envFrom(vars), out, out); err != nil || !strings.Contains(out.String(), "dry run") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if dls, _ := operator.Select(ctx, js, operator.Selection{All: true}); len(dls) != 1 {
		t.Fatalf("the dry run changed the dead letters: %d", len(dls))
	}

	// Auth0 is healthy again (the three forced failures are spent): replay.
	out = &testenv.Buffer{}
	if err := run(ctx, []string{"dlq", "replay", "--user", user, "--yes"}, envFrom(vars), out, out); err != nil || !strings.Contains(out.String(), "replayed 1 of 1") || !strings.Contains(out.String(), replayFreshNote) {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	kv, err := js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		t.Fatal(err)
	}
	var le events.LedgerEntry
	testenv.Eventually(t, "the replayed signup to be imported", func() bool {
		v, err := kv.Get(ctx, events.LedgerKey(user))
		if err != nil {
			return false
		}
		le, _ = events.UnmarshalLedger(v.Value())
		return le.Outcome == events.OutcomeImported
	})
	if le.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("the replay lost the trace context: ledger trace id %q", le.TraceID)
	}
	if dls, _ := operator.Select(ctx, js, operator.Selection{All: true}); len(dls) != 0 {
		t.Fatalf("%d dead letters left after a successful replay", len(dls))
	}
	if u, err := fb.GetUser(ctx, user); err != nil || u.DisplayName != "Replay Me" {
		t.Fatalf("firebase account %+v %v", u, err)
	}
}

// TestKeptLogEntryIsReplayedWithTheCurrentRules: ingest keeps a Log Streams
// signup entry it could not accept in SIGNUPS_DLQ as Auth0 sent it. `dlq
// replay` decodes such an entry again with the current receiver's rules: one
// the current rules accept (here a first-login "s", which an older release
// ignored or refused) becomes the signup the receiver would publish now; one
// they still refuse makes the whole selection refused, nothing published and
// nothing deleted.
func TestKeptLogEntryIsReplayedWithTheCurrentRules(t *testing.T) {
	nats := testenv.StartNATS(t)
	_, js := nats.Connect()
	testenv.Ensure(t, js)
	ctx := context.Background()
	keep := func(raw string) {
		t.Helper()
		dl := &natsgo.Msg{Subject: events.DLQSubject(events.Subject(events.SourceLogStream)), Data: []byte(raw), Header: natsgo.Header{}}
		dl.Header.Set(events.HeaderSource, string(events.SourceLogStream))
		dl.Header.Set(events.HeaderDLQReason, events.ReasonInvalidEntry)
		dl.Header.Set(events.HeaderDLQError, "/data/type does not match auth0-log-event.json")
		if _, err := js.PublishMsg(ctx, dl); err != nil {
			t.Fatal(err)
		}
	}
	keep(`{"log_id":"9001","data":{"type":"s","date":"2026-11-01T10:00:03Z","connection":"github","strategy":"github","strategy_type":"social","user_id":"github|5150","tenant_name":"acme","details":{"stats":{"loginsCount":1}}}}`)
	keep(`{"log_id":"9002","data":{"type":"ss","date":"2026-11-01T10:00:04Z","connection":"github","strategy":"github","user_id":"nope"}}`)
	vars := map[string]string{"SIGNUPSYNC_NATS_URL": nats.URL}
	signups := func() uint64 {
		st, _ := js.Stream(ctx, events.StreamSignups)
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}

	out := &testenv.Buffer{}
	err := run(ctx, []string{"dlq", "replay", "--reason", events.ReasonInvalidEntry, "--yes"}, envFrom(vars), out, out)
	if err == nil || !strings.Contains(err.Error(), "dead letter(s) 2 (") {
		t.Fatalf("replay of a selection holding a still-invalid entry: %v\n%s", err, out)
	}
	if n := signups(); n != 0 {
		t.Fatalf("%d signups published by a refused replay", n)
	}
	out = &testenv.Buffer{}
	if err := run(ctx, []string{"dlq", "replay", "--seq", "1", "--yes"}, envFrom(vars), out, out); err != nil || !strings.Contains(out.String(), "replayed 1 of 1") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	st, _ := js.Stream(ctx, events.StreamSignups)
	m, err := st.GetLastMsgForSubject(ctx, events.Subject(events.SourceLogStream))
	if err != nil {
		t.Fatal(err)
	}
	s, err := events.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if s.Data.UserID != "github|5150" || !s.Data.Partial || s.Data.Tenant != "acme" || m.Header.Get(events.HeaderMsgID) != events.EventID("github|5150") ||
		m.Header.Get(events.HeaderReplayedFrom) != events.StreamDeadLetter+":1" {
		t.Fatalf("replayed as %+v, headers %v", s.Data, m.Header)
	}
	if dls, _ := operator.Select(ctx, js, operator.Selection{All: true}); len(dls) != 1 || dls[0].Seq != 2 {
		t.Fatalf("dead letters left: %+v, want only 2", dls)
	}
}

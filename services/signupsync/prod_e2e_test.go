package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/firebaseprod"
	"github.com/signupsync/signupsync/internal/testenv"
)

// prodEnv runs importer processes against Firebase with production
// semantics (internal/firebaseprod): an existing uid is replaced, a
// duplicate email or provider identity becomes a second account. Only there
// can a test see the duplicates production would create; the emulator
// refuses them.
type prodEnv struct {
	t         *testing.T
	nats      *testenv.NATS
	js        jetstream.JetStream
	fb        *firebaseprod.Server
	project   string
	window    time.Duration
	importers []*proc
}

func newProdEnv(t *testing.T, window time.Duration) *prodEnv {
	t.Helper()
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	topo := events.DefaultTopology()
	topo.DuplicateWindow = window
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := events.Ensure(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	return &prodEnv{t: t, nats: n, js: js, fb: firebaseprod.New(t), project: testenv.ProjectID(t), window: window}
}

// importerEnv is the environment of an importer process of this env.
func (p *prodEnv) importerEnv(extra ...string) []string {
	return append([]string{"SIGNUPSYNC_TEST_MAIN=1", "SIGNUPSYNC_NATS_URL=" + p.nats.URL, "SIGNUPSYNC_DUPLICATE_WINDOW=" + p.window.String(),
		"FIREBASE_AUTH_EMULATOR_HOST=" + p.fb.Host(), "SIGNUPSYNC_FIREBASE_PROJECT=" + p.project, "SIGNUPSYNC_LOG_LEVEL=info",
		"SIGNUPSYNC_BATCH_SIZE=25", "SIGNUPSYNC_BATCH_WINDOW=20ms", "SIGNUPSYNC_ACK_WAIT=5s", "SIGNUPSYNC_METRICS_ADDR=" + testenv.FreeAddr(p.t)}, extra...)
}

// startImporters starts n importer processes sharing the durable consumer.
func (p *prodEnv) startImporters(n int, extra ...string) {
	for i := range n {
		im := newProc(p.t, fmt.Sprintf("importer-%d", len(p.importers)+i+1), p.importerEnv(extra...), "importer")
		im.start()
		p.importers = append(p.importers, im)
	}
}

// publish stores a signup as ingest would and reports whether JetStream
// took it as a duplicate (inside the window).
func (p *prodEnv) publish(src events.Source, d events.SignupData) bool {
	p.t.Helper()
	msg, _, err := events.NewMsg(src, d, time.Now())
	if err != nil {
		p.t.Fatal(err)
	}
	ack, err := p.js.PublishMsg(context.Background(), msg)
	if err != nil {
		p.t.Fatal(err)
	}
	return ack.Duplicate
}

func (p *prodEnv) ledger(userID string) (events.LedgerEntry, bool) {
	p.t.Helper()
	kv, err := p.js.KeyValue(context.Background(), events.BucketLedger)
	if err != nil {
		p.t.Fatal(err)
	}
	v, err := kv.Get(context.Background(), events.LedgerKey(userID))
	if err != nil {
		return events.LedgerEntry{}, false
	}
	le, err := events.UnmarshalLedger(v.Value())
	if err != nil {
		p.t.Fatal(err)
	}
	return le, true
}

// busyImporters counts importer processes that settled at least one batch.
func (p *prodEnv) busyImporters() int {
	n := 0
	for _, im := range p.importers {
		b, _ := os.ReadFile(im.log)
		if strings.Contains(string(b), `"msg":"batch settled"`) {
			n++
		}
	}
	return n
}

// checkNoPII fails when an importer's log holds an email address.
func (p *prodEnv) checkNoPII() {
	for _, im := range p.importers {
		b, _ := os.ReadFile(im.log)
		if strings.Contains(string(b), "@example.com") {
			p.t.Errorf("%s logs an email address", im.name)
		}
	}
}

func prodSignup(provider, raw, email string) events.SignupData {
	return events.SignupData{
		Tenant: "acme", UserID: provider + "|" + raw, Email: email, EmailVerified: true, Name: "Person " + raw,
		Picture: "https://example.com/" + raw + ".png", CreatedAt: "2026-11-01T10:00:00.000Z",
		Identities: []events.Identity{{Provider: provider, Connection: provider, UserID: raw, IsSocial: true}},
	}
}

// TestThreeReplicasOneAccountPerEmail: 500 pairs of different Auth0 users
// sharing an email (someone tried Google, then Facebook), shuffled into one
// stream and imported by three importer processes at once. Production
// Firebase would store both of a pair if two importers found the email free;
// the claims let exactly one import it and send the other to the email
// policy (conflict by default).
func TestThreeReplicasOneAccountPerEmail(t *testing.T) {
	p := newProdEnv(t, time.Minute)
	const pairs = 500
	var all []events.SignupData
	for i := range pairs {
		email := fmt.Sprintf("pair%d@example.com", i)
		all = append(all, prodSignup("google-oauth2", fmt.Sprint(100000+i), email), prodSignup("facebook", fmt.Sprint(200000+i), email))
	}
	r := rand.New(rand.NewPCG(11, 12))
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for _, d := range all {
		p.publish(events.SourceAction, d)
	}
	p.startImporters(3)
	testenv.WaitDrained(t, p.js)

	st := p.fb.Stats(p.project)
	if st.Accounts != pairs || len(st.DuplicateEmails) != 0 || len(st.DuplicateIdentities) != 0 || st.Replacements != 0 {
		t.Fatalf("accounts=%d duplicate emails=%d duplicate identities=%d replacements=%d; want %d, 0, 0, 0",
			st.Accounts, len(st.DuplicateEmails), len(st.DuplicateIdentities), st.Replacements, pairs)
	}
	outcomes := map[events.Outcome]int{}
	for i := range pairs {
		g, okG := p.ledger(fmt.Sprintf("google-oauth2|%d", 100000+i))
		f, okF := p.ledger(fmt.Sprintf("facebook|%d", 200000+i))
		if !okG || !okF {
			t.Fatalf("pair %d: ledger entries missing (%v, %v)", i, okG, okF)
		}
		outcomes[g.Outcome]++
		outcomes[f.Outcome]++
		imported, conflict := g, f
		if f.Outcome == events.OutcomeImported {
			imported, conflict = f, g
		}
		if imported.Outcome != events.OutcomeImported || conflict.Outcome != events.OutcomeConflict || conflict.Reason != events.ReasonEmailInUse || conflict.FirebaseUID != imported.FirebaseUID {
			t.Fatalf("pair %d: %s/%s and %s/%s (uids %q, %q); want one imported, the other conflict on its account",
				i, g.Outcome, g.Reason, f.Outcome, f.Reason, g.FirebaseUID, f.FirebaseUID)
		}
	}
	busy := p.busyImporters()
	t.Logf("pairs=%d accounts=%d duplicate_emails=%d replacements=%d outcomes=%v importers_with_batches=%d lookups=%d imports=%d",
		pairs, st.Accounts, len(st.DuplicateEmails), st.Replacements, outcomes, busy, st.Calls[firebaseprod.EndpointLookup], st.Calls[firebaseprod.EndpointBatchCreate])
	if busy < 2 {
		t.Fatalf("only %d importer process settled batches: the run did not exercise replicas", busy)
	}
	p.checkNoPII()
}

// TestLateCopiesAndReplaysReplaceNothing: 300 users, each published again
// from another source once the duplicate window has passed, plus
// dead-lettered copies replayed with `dlq replay` (a new Nats-Msg-Id, old
// data), imported by three importer processes that take the three copies
// of each user at the same moment.
// Production Firebase would replace an account imported twice; every copy
// must end as already_present instead, and the ledger keep imported.
func TestLateCopiesAndReplaysReplaceNothing(t *testing.T) {
	const window = 500 * time.Millisecond
	p := newProdEnv(t, window)
	const n = 300
	users := make([]events.SignupData, n)
	for i := range users {
		users[i] = prodSignup([]string{"google-oauth2", "github", "apple"}[i%3], fmt.Sprint(300000+i), fmt.Sprintf("late%d@example.com", i))
		p.publish(events.SourceAction, users[i])
	}
	// Dead-lettered copies, as an earlier outage would have left them.
	for i, d := range users {
		msg, _, err := events.NewMsg(events.SourceEventStream, d, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		dl := &nats.Msg{Subject: events.DLQSubject(msg.Subject), Data: msg.Data, Header: nats.Header{}}
		for k, v := range msg.Header {
			dl.Header[k] = v
		}
		dl.Header.Del(events.HeaderMsgID)
		dl.Header.Set(events.HeaderDLQMsgID, msg.Header.Get(events.HeaderMsgID))
		dl.Header.Set(events.HeaderDLQReason, events.ReasonMaxDeliveries)
		dl.Header.Set(events.HeaderDLQSubject, msg.Subject)
		dl.Header.Set(events.HeaderDLQStream, events.StreamSignups)
		dl.Header.Set(events.HeaderDLQSequence, fmt.Sprint(900000+i))
		dl.Header.Set(events.HeaderDLQDeliveries, "10")
		if _, err := p.js.PublishMsg(context.Background(), dl); err != nil {
			t.Fatal(err)
		}
	}
	// Late copies from Event Streams: JetStream drops them inside the
	// window, so send each until it is stored as a new message.
	for _, d := range users {
		testenv.Eventually(t, "the duplicate window to pass", func() bool { return !p.publish(events.SourceEventStream, d) })
	}
	out := &testenv.Buffer{}
	vars := map[string]string{"SIGNUPSYNC_NATS_URL": p.nats.URL, "SIGNUPSYNC_DUPLICATE_WINDOW": window.String()}
	if err := run(context.Background(), []string{"dlq", "replay", "--all", "--yes", "--rate", "0"}, envFrom(vars), out, out); err != nil {
		t.Fatalf("dlq replay: %v\n%s", err, out)
	}
	// All three copies of every user wait in the stream; batches of n
	// users put the originals, the late copies and the replays into
	// different processes at the same moment.
	p.startImporters(3, fmt.Sprintf("SIGNUPSYNC_BATCH_SIZE=%d", n))
	testenv.WaitDrained(t, p.js)

	st := p.fb.Stats(p.project)
	if st.Accounts != n || st.Replacements != 0 || len(st.DuplicateEmails) != 0 || len(st.DuplicateIdentities) != 0 {
		t.Fatalf("accounts=%d replacements=%d duplicate emails=%d duplicate identities=%d; want %d, 0, 0, 0",
			st.Accounts, st.Replacements, len(st.DuplicateEmails), len(st.DuplicateIdentities), n)
	}
	copies := 0
	for _, d := range users {
		le, ok := p.ledger(d.UserID)
		if !ok || le.Outcome != events.OutcomeImported || le.FirebaseUID != d.UserID {
			t.Fatalf("%s: %+v, want imported", d.UserID, le)
		}
		copies += le.Deliveries
	}
	if copies < 3*n {
		t.Fatalf("the ledger saw %d copies, want at least %d (original, late copy, replay)", copies, 3*n)
	}
	t.Logf("users=%d copies=%d accounts=%d replacements=%d importers_with_batches=%d", n, copies, st.Accounts, st.Replacements, p.busyImporters())
	p.checkNoPII()
}

// TestLastDeliveryKilledWithoutDeadLetterStream: Firebase hangs, so every
// delivery fails transiently and the signups reach the importer's
// MaxDeliver (2) while SIGNUPS_DLQ does not exist; the importer is then
// SIGKILLed during a delivery past its limit. The server must keep the
// signups (its MaxDeliver is unlimited): once the dead-letter stream is back
// and an importer runs again, each ends in exactly one outcome, and a replay
// after Firebase recovers imports each exactly once.
func TestLastDeliveryKilledWithoutDeadLetterStream(t *testing.T) {
	p := newProdEnv(t, time.Minute)
	ctx := context.Background()
	p.fb.Freeze()
	t.Cleanup(p.fb.Thaw)
	failing := []string{"SIGNUPSYNC_MAX_DELIVER=2", "SIGNUPSYNC_FIREBASE_TIMEOUT=2s", "SIGNUPSYNC_BREAKER_FAILURES=1000000"}
	p.startImporters(1, failing...)
	var cons jetstream.Consumer
	testenv.Eventually(t, "the importer's consumer", func() bool {
		c, err := p.js.Consumer(ctx, events.StreamSignups, events.ConsumerImporter)
		cons = c
		return err == nil
	})
	// The importer ensured the topology at start; now the dead-letter
	// stream goes away.
	if err := p.js.DeleteStream(ctx, events.StreamDeadLetter); err != nil {
		t.Fatal(err)
	}
	const n = 20
	users := make([]events.SignupData, n)
	for i := range users {
		users[i] = prodSignup("google-oauth2", fmt.Sprint(400000+i), fmt.Sprintf("last%d@example.com", i))
		p.publish(events.SourceAction, users[i])
	}
	first := p.importers[0]
	testenv.Eventually(t, "a dead letter that could not be written", func() bool {
		b, _ := os.ReadFile(first.log)
		return strings.Contains(string(b), "dead letter not written")
	})
	testenv.Eventually(t, "a delivery past the limit in flight", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending > 0
	})
	first.kill()

	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxDeliver != -1 || info.NumPending+uint64(info.NumAckPending) != n {
		t.Fatalf("after the kill: server MaxDeliver %d, %d pending + %d unacknowledged; want -1 and %d kept", info.Config.MaxDeliver, info.NumPending, info.NumAckPending, n)
	}
	for _, d := range users {
		if le, ok := p.ledger(d.UserID); ok {
			t.Fatalf("%s has an outcome without a dead letter: %+v", d.UserID, le)
		}
	}

	topo := events.DefaultTopology()
	topo.DuplicateWindow = p.window
	if err := events.Ensure(ctx, p.js, topo); err != nil {
		t.Fatal(err)
	}
	p.startImporters(1, failing...)
	testenv.WaitDrained(t, p.js)
	dlq, err := p.js.Stream(ctx, events.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	dinfo, err := dlq.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for seq := dinfo.State.FirstSeq; seq <= dinfo.State.LastSeq && dinfo.State.Msgs > 0; seq++ {
		m, err := dlq.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if r := m.Header.Get(events.HeaderDLQReason); r != events.ReasonMaxDeliveries {
			t.Fatalf("dead letter %d: reason %q", seq, r)
		}
		seen[m.Header.Get(events.HeaderUserID)]++
	}
	for _, d := range users {
		le, ok := p.ledger(d.UserID)
		if seen[d.UserID] != 1 || !ok || le.Outcome != events.OutcomeDeadLettered {
			t.Fatalf("%s: %d dead letters, ledger %+v; want exactly one dead letter and dead_lettered", d.UserID, seen[d.UserID], le)
		}
	}

	// Firebase is back: the operator replays them all.
	p.fb.Thaw()
	out := &testenv.Buffer{}
	vars := map[string]string{"SIGNUPSYNC_NATS_URL": p.nats.URL, "SIGNUPSYNC_DUPLICATE_WINDOW": p.window.String()}
	if err := run(ctx, []string{"dlq", "replay", "--all", "--yes", "--rate", "0"}, envFrom(vars), out, out); err != nil {
		t.Fatalf("dlq replay: %v\n%s", err, out)
	}
	testenv.WaitDrained(t, p.js)
	st := p.fb.Stats(p.project)
	if st.Accounts != n || st.Replacements != 0 || len(st.DuplicateEmails) != 0 {
		t.Fatalf("after replay: accounts=%d replacements=%d duplicate emails=%d; want %d, 0, 0", st.Accounts, st.Replacements, len(st.DuplicateEmails), n)
	}
	for _, d := range users {
		if le, _ := p.ledger(d.UserID); le.Outcome != events.OutcomeImported {
			t.Fatalf("%s after replay: %+v", d.UserID, le)
		}
	}
	t.Logf("signups=%d dead letters=%d (one each) after a SIGKILL past the limit; replayed: accounts=%d replacements=%d", n, len(seen), st.Accounts, st.Replacements)
}

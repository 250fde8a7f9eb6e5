package importer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/internal/testenv"
)

func TestLastDeliveryWithoutDeadLetterStreamIsNotDropped(t *testing.T) {
	// Auth0 fails every enrichment, so the signup reaches the importer's
	// MaxDeliver (3) while SIGNUPS_DLQ does not exist: the dead letter
	// cannot be written. The server must keep delivering it (its own
	// MaxDeliver is unlimited) until the stream is back, and the signup then
	// ends in exactly one outcome.
	fake := auth0fake.New(t)
	e := newEnv(t)
	e.cfg.Delivery.MaxDeliver = 3
	withEnricher(t, e, fake)
	fake.AddUsers(fakeUser("github", "51", "last@example.com"))
	fake.Fail(503, 1_000_000)
	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, events.StreamDeadLetter); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.publish(events.SourceLogStream, partial("github", "51", "last@example.com"), 0)

	failed := func() float64 { return testutil.ToFloat64(e.deps.Metrics.naks.WithLabelValues("dead_letter_failed")) }
	testenv.Eventually(t, "three failed dead-letter attempts past the limit", func() bool { return failed() >= 3 })
	kv, err := e.js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, events.LedgerKey("github|51")); err == nil {
		t.Fatal("a ledger outcome was recorded although the dead letter was never written")
	}
	cons, err := e.js.Consumer(ctx, events.StreamSignups, events.ConsumerImporter)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxDeliver != -1 {
		t.Fatalf("server-side MaxDeliver %d, want unlimited (-1)", info.Config.MaxDeliver)
	}
	if info.NumPending+uint64(info.NumAckPending) == 0 {
		t.Fatalf("the signup left the consumer without an outcome: %+v", info)
	}

	testenv.Ensure(t, e.js) // the dead-letter stream is back
	e.idle()
	dl := e.dlq()
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	if h := dl[0].Header; h.Get(events.HeaderDLQReason) != events.ReasonMaxDeliveries || h.Get(events.HeaderUserID) != "github|51" {
		t.Fatalf("dead letter headers %v", h)
	}
	if le := e.entry("github|51"); le.Outcome != events.OutcomeDeadLettered || le.Reason != events.ReasonMaxDeliveries {
		t.Fatalf("ledger %+v", le)
	}
}

func TestBackstopDeadLettersWhatTheServerStoppedDelivering(t *testing.T) {
	// Someone set the consumer's server-side MaxDeliver to 2 while the
	// importer's own limit is 10: the server gives up first and says so in a
	// MAX_DELIVERIES advisory. The backstop dead-letters the signup.
	fake := auth0fake.New(t)
	e := newEnv(t)
	e.cfg.Delivery.MaxDeliver = 10
	withEnricher(t, e, fake)
	fake.AddUsers(fakeUser("github", "52", "capped@example.com"))
	fake.Fail(503, 1_000_000)
	e.start()
	ctx := context.Background()
	cfg := e.cfg.Delivery.ConsumerConfig()
	cfg.MaxDeliver = 2
	if _, err := e.js.UpdateConsumer(ctx, events.StreamSignups, cfg); err != nil {
		t.Fatal(err)
	}
	e.publish(events.SourceLogStream, partial("github", "52", "capped@example.com"), 0)
	testenv.Eventually(t, "a dead letter from the backstop", func() bool { return len(e.dlq()) == 1 })
	h := e.dlq()[0].Header
	if h.Get(events.HeaderDLQReason) != events.ReasonMaxDeliveries || h.Get(events.HeaderDLQDeliveries) != "2" || h.Get(events.HeaderUserID) != "github|52" {
		t.Fatalf("dead letter headers %v", h)
	}
	testenv.Eventually(t, "the ledger outcome", func() bool {
		kv, _ := e.js.KeyValue(ctx, events.BucketLedger)
		_, err := kv.Get(ctx, events.LedgerKey("github|52"))
		return err == nil
	})
	if le := e.entry("github|52"); le.Outcome != events.OutcomeDeadLettered || le.Reason != events.ReasonMaxDeliveries {
		t.Fatalf("ledger %+v", le)
	}
	if got := fake.Requests()[auth0fake.RouteGetUser]; got != 2 {
		t.Fatalf("%d enrichment attempts, want 2 (the server's limit)", got)
	}
}

func TestLedgerNeverDowngradesADecidedOutcome(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	upd := func(o events.Outcome, reason, uid string) ledgerUpdate {
		return ledgerUpdate{userID: "google-oauth2|1", outcome: o, reason: reason, firebaseUID: uid, sources: []events.Source{events.SourceEventStream}, deliveries: 1, at: at}
	}
	entry := func(o events.Outcome, reason, uid string) events.LedgerEntry {
		return events.LedgerEntry{Auth0UserID: "google-oauth2|1", Outcome: o, Reason: reason, FirebaseUID: uid, Sources: []events.Source{events.SourceAction}, Deliveries: 1}
	}
	tests := []struct {
		name       string
		cur        events.LedgerEntry
		next       ledgerUpdate
		wantOut    events.Outcome
		wantReason string
		wantUID    string
	}{
		{"conflict after imported stays imported", entry(events.OutcomeImported, "", "u1"), upd(events.OutcomeConflict, events.ReasonEmailInUse, "other"), events.OutcomeImported, "", "u1"},
		{"dead letter after imported stays imported", entry(events.OutcomeImported, "", "u1"), upd(events.OutcomeDeadLettered, events.ReasonMaxDeliveries, ""), events.OutcomeImported, "", "u1"},
		{"already present after imported stays imported", entry(events.OutcomeImported, "", "u1"), upd(events.OutcomeAlreadyPresent, events.ReasonLedger, "u1"), events.OutcomeImported, "", "u1"},
		{"skipped after already present stays", entry(events.OutcomeAlreadyPresent, events.ReasonProviderElsewhere, "x"), upd(events.OutcomeSkipped, events.ReasonEmailInUse, ""), events.OutcomeAlreadyPresent, events.ReasonProviderElsewhere, "x"},
		{"dead letter after conflict stays conflict", entry(events.OutcomeConflict, events.ReasonEmailInUse, "other"), upd(events.OutcomeDeadLettered, events.ReasonPermanentError, ""), events.OutcomeConflict, events.ReasonEmailInUse, "other"},
		{"skipped after conflict stays conflict", entry(events.OutcomeConflict, events.ReasonEmailInUse, "other"), upd(events.OutcomeSkipped, events.ReasonEmailInUse, "other2"), events.OutcomeConflict, events.ReasonEmailInUse, "other"},
		{"imported after a resolved conflict", entry(events.OutcomeConflict, events.ReasonEmailInUse, "other"), upd(events.OutcomeImported, "", "u1"), events.OutcomeImported, "", "u1"},
		{"imported after a dead letter (replay)", entry(events.OutcomeDeadLettered, events.ReasonMaxDeliveries, ""), upd(events.OutcomeImported, "", "u1"), events.OutcomeImported, "", "u1"},
		{"conflict after a dead letter", entry(events.OutcomeDeadLettered, events.ReasonMaxDeliveries, ""), upd(events.OutcomeConflict, events.ReasonEmailInUse, "other"), events.OutcomeConflict, events.ReasonEmailInUse, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := merge(tt.cur, true, tt.next)
			if got.Outcome != tt.wantOut || got.Reason != tt.wantReason || got.FirebaseUID != tt.wantUID {
				t.Fatalf("got %s/%s uid %q, want %s/%s uid %q", got.Outcome, got.Reason, got.FirebaseUID, tt.wantOut, tt.wantReason, tt.wantUID)
			}
			// The later copy is recorded as seen either way.
			if got.Deliveries != 2 || len(got.Sources) != 2 || !got.LastSeen.Equal(at) {
				t.Fatalf("copy not recorded as seen: %+v", got)
			}
		})
	}
}

func TestConcurrentCopyEndingConflictKeepsImportedInTheLedger(t *testing.T) {
	// Two importers record one user at once through the bucket's
	// compare-and-set: whatever order they land in, imported stays.
	for _, order := range [][]events.Outcome{{events.OutcomeImported, events.OutcomeConflict}, {events.OutcomeConflict, events.OutcomeImported}} {
		n := testenv.StartNATS(t)
		_, js := n.Connect()
		testenv.Ensure(t, js)
		kv, err := js.KeyValue(context.Background(), events.BucketLedger)
		if err != nil {
			t.Fatal(err)
		}
		l := &ledger{kv: kv}
		done := make(chan error, len(order))
		for _, o := range order {
			go func() {
				uid := "google-oauth2|7"
				if o == events.OutcomeConflict {
					uid = "someone-else"
				}
				_, err := l.record(context.Background(), ledgerUpdate{userID: "google-oauth2|7", outcome: o, reason: string(o), firebaseUID: uid, deliveries: 1, at: time.Now()})
				done <- err
			}()
		}
		for range order {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		e, found, err := l.get(context.Background(), "google-oauth2|7")
		if err != nil || !found {
			t.Fatalf("entry: %v %v", found, err)
		}
		// conflict first, then imported, upgrades; imported first never
		// downgrades: imported either way.
		if e.Outcome != events.OutcomeImported || e.FirebaseUID != "google-oauth2|7" || e.Deliveries != 2 {
			t.Fatalf("order %v: %+v", order, e)
		}
	}
}

func TestClaimsAreRemovedOnceSettled(t *testing.T) {
	// The claims bucket holds only imports in flight: after 60 signups
	// settle (imported, a conflict on a shared email, skipped), no claim
	// and, once their markers expire, no message is left in it.
	e := newEnv(t)
	e.start()
	for i := range 30 {
		e.publish(events.SourceAction, social("github", fmt.Sprint(600+i), fmt.Sprintf("rel%d@example.com", i)), 0)
		e.publish(events.SourceAction, social("google-oauth2", fmt.Sprint(700+i), fmt.Sprintf("rel%d@example.com", i)), 0)
	}
	e.idle()
	ctx := context.Background()
	kv, err := e.js.KeyValue(ctx, events.BucketClaims)
	if err != nil {
		t.Fatal(err)
	}
	// Claims are released after the batch's acks: poll, the batch may be
	// finishing.
	testenv.Eventually(t, "no claim left after every signup settled", func() bool {
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			return false
		}
		n := 0
		for range keys.Keys() {
			n++
		}
		return n == 0
	})
	testenv.Eventually(t, "the claim markers to expire", func() bool {
		st, err := kv.Status(ctx)
		return err == nil && st.Values() == 0
	})
	if got := len(e.accounts()); got != 30 {
		t.Fatalf("%d accounts, want 30", got)
	}
}

// hangingImports is Firebase whose ImportUsers never answers: the client
// gives up at its deadline, and the request may still land later.
type hangingImports struct{ Accounts }

func (hangingImports) ImportUsers(ctx context.Context, _ []*auth.UserToImport, _ ...auth.UserImportOption) (*auth.UserImportResult, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestImportWithoutAnswerKeepsItsUidClaimUntilTheHorizon(t *testing.T) {
	// Every import times out, so the signup reaches MaxDeliver (2) and is
	// dead-lettered; its last import may still land, so the uid claim must
	// keep the ambiguity mark (no other copy may import before it passes).
	e := newEnv(t)
	e.cfg.Delivery.MaxDeliver = 2
	e.cfg.FirebaseTimeout = 200 * time.Millisecond
	e.cfg.AmbiguousWait = time.Second
	e.cfg.BreakerFailures = 1000
	e.deps.Accounts = hangingImports{e.fb}
	e.start()
	d := social("github", "801", "amb@example.com")
	e.publish(events.SourceAction, d, 0)
	// The batch log line comes after its claims were released.
	testenv.Eventually(t, "the dead-lettering batch to settle", func() bool {
		return len(e.dlq()) == 1 && strings.Contains(e.logs.String(), `"dead_lettered":1`)
	})
	ctx := context.Background()
	kv, err := e.js.KeyValue(ctx, events.BucketClaims)
	if err != nil {
		t.Fatal(err)
	}
	uidKey := events.ClaimKeys(d.UserID, "github.com", "801", d.Email)[0]
	v, err := kv.Get(ctx, uidKey.Key)
	if err != nil {
		t.Fatalf("uid claim of an ambiguous import released with its dead letter: %v", err)
	}
	c, err := events.UnmarshalClaim(v.Value())
	if err != nil || !c.AmbiguousUntil.After(time.Now()) || c.Auth0UserID != d.UserID {
		t.Fatalf("uid claim %+v (%v): want an ambiguity mark in the future", c, err)
	}
	if got := testutil.ToFloat64(e.deps.Metrics.naks.WithLabelValues("transient")); got < 1 {
		t.Fatal("the first ambiguous import was not retried")
	}
}

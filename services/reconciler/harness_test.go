package reconciler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/services/reconciler"
)

// base is the start of every test's history.
var base = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// env is one test's world: the Auth0 fake, an embedded JetStream with the
// topology, a clock the test moves, and a Sleep that moves it instead of
// waiting (and moves the fake's clock too, so rate-limit windows pass).
type env struct {
	t    *testing.T
	srv  *auth0fake.Server
	api  *auth0api.Client
	js   jetstream.JetStream
	logs *testenv.Buffer

	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newEnv(t *testing.T, opts ...auth0fake.Option) *env {
	t.Helper()
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	testenv.Ensure(t, js)
	srv := auth0fake.New(t, opts...)
	api, err := auth0api.New(t.Context(), auth0api.Config{Domain: srv.Domain(), Token: srv.Token(), HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, api: api, js: js, logs: &testenv.Buffer{}, now: base.Add(2 * time.Hour)}
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) setNow(t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = t
}

// sleep records d and lets it pass at once on both clocks.
func (e *env) sleep(ctx context.Context, d time.Duration) error {
	e.mu.Lock()
	e.sleeps = append(e.sleeps, d)
	e.now = e.now.Add(d)
	e.mu.Unlock()
	e.srv.Advance(d)
	return ctx.Err()
}

func (e *env) slept() []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Duration(nil), e.sleeps...)
}

func (e *env) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (e *env) config() reconciler.Config {
	cfg := reconciler.DefaultConfig()
	cfg.Since = base
	cfg.RPS = 0
	cfg.Tenant = "acme"
	return cfg
}

func (e *env) deps() reconciler.Deps {
	return reconciler.Deps{Users: e.api, JetStream: e.js, Logger: e.logger(), Now: e.clock, Sleep: e.sleep}
}

func (e *env) reconciler(cfg reconciler.Config, edit ...func(*reconciler.Deps)) *reconciler.Reconciler {
	e.t.Helper()
	d := e.deps()
	for _, f := range edit {
		f(&d)
	}
	r, err := reconciler.New(e.t.Context(), cfg, d)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	return r
}

// social is a Google user created at.
func social(id string, at time.Time) auth0fake.User {
	return auth0fake.User{
		UserID: "google-oauth2|" + id, Email: id + "@example.com", EmailVerified: true,
		Name: "User " + id, GivenName: "User", FamilyName: id, Picture: "https://example.com/" + id + ".png",
		CreatedAt:  at,
		Identities: []auth0fake.Identity{{Provider: "google-oauth2", Connection: "google-oauth2", UserID: id, IsSocial: true}},
	}
}

// spread makes n users created every step from start.
func spread(prefix string, n int, start time.Time, step time.Duration) []auth0fake.User {
	out := make([]auth0fake.User, n)
	for i := range out {
		out[i] = social(fmt.Sprintf("%s%05d", prefix, i), start.Add(time.Duration(i)*step))
	}
	return out
}

func ids(users []auth0fake.User) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.UserID
	}
	sort.Strings(out)
	return out
}

// putLedger records users as the importer would have.
func (e *env) putLedger(outcome events.Outcome, users ...auth0fake.User) {
	e.t.Helper()
	kv, err := e.js.KeyValue(e.t.Context(), events.BucketLedger)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, u := range users {
		b, err := events.MarshalLedger(events.LedgerEntry{
			Auth0UserID: u.UserID, Outcome: outcome, Sources: []events.Source{events.SourceAction},
			Deliveries: 1, FirstSeen: u.CreatedAt, LastSeen: u.CreatedAt,
		})
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := kv.Put(e.t.Context(), events.LedgerKey(u.UserID), b); err != nil {
			e.t.Fatal(err)
		}
	}
}

// prePublish publishes users as a webhook source would have.
func (e *env) prePublish(src events.Source, users ...auth0fake.User) {
	e.t.Helper()
	for _, u := range users {
		msg, _, err := events.NewMsg(src, events.SignupData{
			Tenant: "acme", UserID: u.UserID, Email: u.Email,
			Identities: []events.Identity{{Provider: u.Identities[0].Provider, UserID: u.Identities[0].UserID, IsSocial: true}},
		}, e.clock())
		if err != nil {
			e.t.Fatal(err)
		}
		ack, err := e.js.PublishMsg(e.t.Context(), msg, jetstream.WithExpectStream(events.StreamSignups))
		if err != nil || ack.Duplicate {
			e.t.Fatalf("pre-publish %s: %v (duplicate %v)", u.UserID, err, ack != nil && ack.Duplicate)
		}
	}
}

// streamed returns the messages of SIGNUPS by source: user ids, sorted.
func (e *env) streamed() map[events.Source][]string {
	e.t.Helper()
	msgs := e.messages()
	out := map[events.Source][]string{}
	for _, m := range msgs {
		src := events.Source(m.Header.Get(events.HeaderSource))
		out[src] = append(out[src], m.Header.Get(events.HeaderUserID))
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

func (e *env) messages() []*jetstream.RawStreamMsg {
	e.t.Helper()
	ctx := e.t.Context()
	s, err := e.js.Stream(ctx, events.StreamSignups)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// checkpoint reads the stored checkpoint and its raw JSON.
func (e *env) checkpoint() (reconciler.Checkpoint, map[string]any, error) {
	e.t.Helper()
	kv, err := e.js.KeyValue(e.t.Context(), events.BucketState)
	if err != nil {
		e.t.Fatal(err)
	}
	cp, _, err := reconciler.ReadCheckpoint(e.t.Context(), kv)
	if err != nil {
		return cp, nil, err
	}
	v, err := kv.Get(e.t.Context(), reconciler.CheckpointKey)
	if err != nil {
		e.t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(v.Value(), &raw); err != nil {
		e.t.Fatal(err)
	}
	return cp, raw, nil
}

// noPII fails when a log line carries an email.
func (e *env) noPII() {
	e.t.Helper()
	if s := e.logs.String(); strings.Contains(s, "@example.com") {
		e.t.Errorf("logs carry an email:\n%s", s)
	}
}

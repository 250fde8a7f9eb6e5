package importer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
)

// env is one test's pipeline half: an embedded JetStream with the topology,
// a Firebase project on the emulator, and importers started on demand.
type env struct {
	t       *testing.T
	nats    *testenv.NATS
	js      jetstream.JetStream
	fb      *auth.Client
	project string
	cfg     Config
	deps    Deps
	logs    *testenv.Buffer
	reg     *prometheus.Registry
}

func newEnv(t *testing.T) *env {
	t.Helper()
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	testenv.Ensure(t, js)
	project := testenv.ProjectID(t)
	cfg := DefaultConfig()
	cfg.FirebaseRPS = 0
	cfg.Delivery.AckWait = 5 * time.Second
	cfg.Delivery.BackOff = []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}
	cfg.BatchWindow = 20 * time.Millisecond
	cfg.DeferDelay = 20 * time.Millisecond
	cfg.BreakerOpenFor = 200 * time.Millisecond
	e := &env{t: t, nats: n, js: js, project: project, cfg: cfg, logs: &testenv.Buffer{}, reg: prometheus.NewRegistry()}
	e.fb = testenv.FirebaseAuth(t, project)
	e.deps = Deps{JetStream: js, Accounts: e.fb, Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	return e
}

// start runs an importer until the test ends and returns it.
func (e *env) start() *Importer {
	e.t.Helper()
	deps := e.deps
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(e.reg)
		e.deps.Metrics = deps.Metrics
	}
	ctx, cancel := context.WithCancel(context.Background())
	im, err := New(ctx, e.cfg, deps)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = im.Run(ctx)
	}()
	e.t.Cleanup(func() {
		cancel()
		<-done
	})
	return im
}

// publish stores a signup as ingest would; copy distinguishes deliveries
// that JetStream must not deduplicate (as if they came after the window).
func (e *env) publish(src events.Source, d events.SignupData, copy int) {
	e.t.Helper()
	msg, ev, err := events.NewMsg(src, d, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if copy > 0 {
		msg.Header.Set(events.HeaderMsgID, fmt.Sprintf("%s-copy%d", ev.ID, copy))
	}
	if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
		e.t.Fatal(err)
	}
}

// publishRaw stores arbitrary bytes on a signup subject.
func (e *env) publishRaw(subject string, data []byte) {
	e.t.Helper()
	if _, err := e.js.Publish(context.Background(), subject, data); err != nil {
		e.t.Fatal(err)
	}
}

// idle waits until the consumer has nothing pending or unacknowledged.
func (e *env) idle() {
	e.t.Helper()
	testenv.WaitDrained(e.t, e.js)
}

func (e *env) entry(userID string) events.LedgerEntry {
	e.t.Helper()
	kv, err := e.js.KeyValue(context.Background(), events.BucketLedger)
	if err != nil {
		e.t.Fatal(err)
	}
	v, err := kv.Get(context.Background(), events.LedgerKey(userID))
	if err != nil {
		e.t.Fatalf("ledger %s: %v\nlogs:\n%s", userID, err, e.logs.String())
	}
	le, err := events.UnmarshalLedger(v.Value())
	if err != nil {
		e.t.Fatal(err)
	}
	return le
}

// accounts lists every account of the test's project.
func (e *env) accounts() []*auth.ExportedUserRecord {
	e.t.Helper()
	var out []*auth.ExportedUserRecord
	it := e.fb.Users(context.Background(), "")
	for {
		u, err := it.Next()
		if err != nil {
			if strings.Contains(err.Error(), "no more items") {
				return out
			}
			e.t.Fatalf("list users: %v", err)
		}
		out = append(out, u)
	}
}

func (e *env) dlq() []jetstream.RawStreamMsg {
	e.t.Helper()
	ctx := context.Background()
	st, err := e.js.Stream(ctx, events.StreamDeadLetter)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		out = append(out, *m)
	}
	return out
}

// social builds an unlinked social signup.
func social(provider, raw, email string) events.SignupData {
	return events.SignupData{
		Tenant: "acme", UserID: provider + "|" + raw, Email: email, EmailVerified: true,
		Name: "Person " + raw, Picture: "https://example.com/" + raw + ".png", CreatedAt: "2026-11-01T10:00:00.000Z",
		Identities: []events.Identity{{Provider: provider, Connection: provider, UserID: raw, IsSocial: true}},
	}
}

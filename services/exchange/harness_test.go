package exchange_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/internal/exchangetest"
	"github.com/signupsync/signupsync/internal/httpserve"
	"github.com/signupsync/signupsync/internal/telemetry"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/services/exchange"
)

// env is one exchange service wired to an embedded JetStream, the Firebase
// Auth emulator (a project of its own), the Auth0 fake and a JWKS issuer.
type env struct {
	t       testing.TB
	clk     *clock
	iss     *exchangetest.Issuer
	js      jetstream.JetStream
	ledger  jetstream.KeyValue
	fb      *auth.Client
	project string
	auth0   *auth0fake.Server
	srv     *httptest.Server
	admin   *httptest.Server // the admin listener: /metrics, /healthz, /readyz
	logs    *testenv.Buffer
	reg     *prometheus.Registry
	spans   *tracetest.InMemoryExporter
	tp      *sdktrace.TracerProvider
	svc     *exchange.Service
}

func testConfig(iss *exchangetest.Issuer, fake *auth0fake.Server) exchange.Config {
	cfg := exchange.DefaultConfig()
	cfg.Issuer, cfg.Audience = iss.URL(), iss.Audience()
	cfg.Management = auth0api.Config{Domain: fake.Domain(), Token: fake.Token(), HTTPClient: fake.Client()}
	cfg.SubjectBurst, cfg.IPBurst = 1000, 1000
	return cfg
}

// newEnv builds the service; wrap, when given, changes its dependencies
// (a Firebase that fails, say).
func newEnv(t testing.TB, configure func(*exchange.Config), wrap ...func(*exchange.Deps)) *env {
	t.Helper()
	return newEnvIn(t, testenv.ProjectID(t), configure, wrap...)
}

// newEnvIn is newEnv on the given Firebase project (the emulator's own
// project for tests that need the client API's anonymous sign-up, which
// the emulator serves for that project only).
func newEnvIn(t testing.TB, project string, configure func(*exchange.Config), wrap ...func(*exchange.Deps)) *env {
	t.Helper()
	ctx := context.Background()
	iss := exchangetest.NewIssuer(t, audience)
	// The fake's password grant signs ID tokens with the issuer's key, so
	// the exchange verifies them against the JWKS it already trusts.
	key := iss.Current()
	fake := auth0fake.New(t, auth0fake.WithIDTokenSigner(iss.URL(), key.ID, key.Private))
	e := &env{t: t, clk: newClock(), iss: iss, auth0: fake, logs: &testenv.Buffer{}, reg: prometheus.NewRegistry()}
	_, e.js = testenv.StartNATS(t).Connect()
	testenv.Ensure(t, e.js)
	kv, err := e.js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		t.Fatal(err)
	}
	e.ledger = kv
	e.project = project
	e.fb = testenv.FirebaseAuth(t, e.project)
	cfg := testConfig(e.iss, e.auth0)
	cfg.Merge.Project = e.project
	if configure != nil {
		configure(&cfg)
	}
	users, err := auth0api.New(ctx, cfg.Management)
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := exchange.NewMetrics(e.reg)
	if err != nil {
		t.Fatal(err)
	}
	e.spans = tracetest.NewInMemoryExporter()
	e.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(e.spans))
	deps := exchange.Deps{
		JetStream: e.js, Firebase: e.fb, Users: users, Metrics: metrics,
		Logger:     telemetry.NewLogger(e.logs, slog.LevelDebug),
		JWKSClient: e.iss.Client(), Tracer: e.tp, Propagator: telemetry.Propagator(), Now: e.clk.Now,
	}
	for _, w := range wrap {
		w(&deps)
	}
	svc, err := exchange.New(ctx, cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	e.srv = httptest.NewServer(svc.Handler())
	t.Cleanup(e.srv.Close)
	e.admin = httptest.NewServer(httpserve.Admin(promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}), svc.Ready, deps.Logger))
	t.Cleanup(e.admin.Close)
	return e
}

// answer is a decoded response.
type answer struct {
	status int
	header http.Header
	ok     exchange.Response
	fail   exchange.Problem
	raw    string
}

// post calls the endpoint with Authorization: Bearer token ("" sends none).
func (e *env) post(token string) answer {
	e.t.Helper()
	return e.do(http.MethodPost, token, nil)
}

func (e *env) do(method, token string, header http.Header) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+exchange.PathExchange, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, raw: string(b)}
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &a.ok); err != nil {
			e.t.Fatalf("200 body %s: %v", b, err)
		}
	} else if len(b) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a.fail); err != nil {
			e.t.Fatalf("%d body %s: %v", res.StatusCode, b, err)
		}
	}
	return a
}

// socialUser adds an unlinked social Auth0 user.
func (e *env) socialUser(userID string) {
	e.t.Helper()
	provider, raw, _ := strings.Cut(userID, "|")
	e.auth0.AddUsers(auth0fake.User{
		UserID: userID, Email: strings.ReplaceAll(raw, "|", "") + "@example.com", EmailVerified: true, Name: "Someone",
		Identities: []auth0fake.Identity{{Provider: provider, Connection: provider, UserID: raw, IsSocial: true}},
	})
}

// firebaseAccount creates a Firebase account, optionally with a provider
// identity.
func (e *env) firebaseAccount(uid, providerID, providerUID string) {
	e.t.Helper()
	u := (&auth.UserToImport{}).UID(uid)
	if providerID != "" {
		u = u.ProviderData([]*auth.UserProvider{{ProviderID: providerID, UID: providerUID}})
	}
	res, err := e.fb.ImportUsers(context.Background(), []*auth.UserToImport{u})
	if err != nil || res.FailureCount > 0 {
		e.t.Fatalf("import %s: %v %+v", uid, err, res)
	}
}

func (e *env) setLedger(entry events.LedgerEntry) {
	e.t.Helper()
	b, err := events.MarshalLedger(entry)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.ledger.Put(context.Background(), events.LedgerKey(entry.Auth0UserID), b); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) counter(name string, labels prometheus.Labels) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// streamMessages returns the messages SIGNUPS holds.
func (e *env) streamMessages() []jetstream.RawStreamMsg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, events.StreamSignups)
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
			e.t.Fatal(err)
		}
		out = append(out, *m)
	}
	return out
}

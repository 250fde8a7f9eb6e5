package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/iterator"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/internal/exchangetest"
	"github.com/signupsync/signupsync/internal/rolerun"
	"github.com/signupsync/signupsync/internal/telemetry"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/services/exchange"
	"github.com/signupsync/signupsync/services/importer"
)

const exchangeAudience = "https://api.signupsync.test/"

// exchangeCall posts a bearer token to the exchange at addr.
func exchangeCall(t *testing.T, addr, token string) (int, exchange.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+exchange.PathExchange, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, exchange.Response{}, ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out exchange.Response
	if res.StatusCode == http.StatusOK {
		_ = json.Unmarshal(b, &out)
	}
	return res.StatusCode, out, string(b)
}

func waitHealthy(t *testing.T, addr string) {
	t.Helper()
	waitOK(t, "the exchange to listen", "http://"+addr+"/healthz")
}

// waitOK polls url until it answers 200; what names the wait.
func waitOK(t *testing.T, what, url string) {
	t.Helper()
	testenv.Eventually(t, what, func() bool {
		res, err := http.Get(url)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
}

// serveExchange runs the session exchange as the exchange command and dev
// do (exchangeUnit) until ctx ends.
func serveExchange(ctx context.Context, cfg exchange.Config, js jetstream.JetStream, fb *auth.Client, log *slog.Logger) error {
	u, _, err := exchangeUnit(ctx, cfg, js, fb, rolerun.Env{Registry: prometheus.NewRegistry(), Logger: log})
	if err != nil {
		return err
	}
	return u.Run(ctx)
}

// TestExchangeImportsOnTheSpotConcurrently: an eligible Auth0 user whom no
// webhook reported exchanges a token from ten goroutines at once, spread
// over two exchange replicas (served by serveExchange, as dev runs it). The
// signup is published and a real importer imports it through its own code
// path; every call gets a custom token for the same uid, SIGNUPS holds one
// message, Firebase holds exactly one account, and the emulator signs in
// with the token.
func TestExchangeImportsOnTheSpotConcurrently(t *testing.T) {
	ctx := context.Background()
	_, js := testenv.StartNATS(t).Connect()
	testenv.Ensure(t, js)
	project := testenv.ProjectID(t)
	fb := testenv.FirebaseAuth(t, project)
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()

	icfg := importer.DefaultConfig()
	icfg.FirebaseRPS = 0
	icfg.BatchWindow = 20 * time.Millisecond
	imp, err := importer.New(ctx, icfg, importer.Deps{JetStream: js, Accounts: fb, Logger: quiet, Metrics: importer.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	impCtx, stopImp := context.WithCancel(ctx)
	impDone := make(chan struct{})
	go func() { defer close(impDone); _ = imp.Run(impCtx) }()
	t.Cleanup(func() { stopImp(); <-impDone })

	fake := auth0fake.New(t)
	const sub = "google-oauth2|90001"
	fake.AddUsers(auth0fake.User{UserID: sub, Email: "late.signup@example.com", EmailVerified: true, Name: "Late Signup",
		Identities: []auth0fake.Identity{{Provider: "google-oauth2", Connection: "google-oauth2", UserID: "90001", IsSocial: true}}})
	iss := exchangetest.NewIssuer(t, exchangeAudience)

	// Two replicas, as in production: the in-process de-duplication of one
	// replica does not help across them; the Nats-Msg-Id and the importer's
	// idempotency must.
	logs := &testenv.Buffer{}
	var addrs []string
	for range 2 {
		cfg := exchange.DefaultConfig()
		cfg.Addr = testenv.FreeAddr(t)
		cfg.Issuer, cfg.Audience = iss.URL(), exchangeAudience
		cfg.Management = auth0api.Config{Domain: fake.Domain(), Token: fake.Token(), HTTPClient: fake.Client()}
		cfg.SubjectBurst = 20
		cfg.ImportWait = 30 * time.Second // a guard: the importer answers well before
		srvCtx, stopSrv := context.WithCancel(ctx)
		srvDone := make(chan error, 1)
		go func() {
			srvDone <- serveExchange(srvCtx, cfg, js, fb, telemetry.NewLogger(logs, slog.LevelInfo))
		}()
		t.Cleanup(func() { stopSrv(); <-srvDone })
		waitHealthy(t, cfg.Addr)
		addrs = append(addrs, cfg.Addr)
	}

	token := iss.Token(sub)
	type result struct {
		status int
		resp   exchange.Response
		body   string
	}
	results := make([]result, 10)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, resp, body := exchangeCall(t, addrs[i%2], token)
			results[i] = result{st, resp, body}
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.status != http.StatusOK || r.resp.UID != sub || r.resp.FirebaseToken == "" {
			t.Fatalf("call %d: %d %s", i, r.status, r.body)
		}
	}

	var accounts []*auth.ExportedUserRecord
	it := fb.Users(ctx, "")
	for {
		u, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accounts = append(accounts, u)
	}
	if len(accounts) != 1 || accounts[0].UID != sub || len(accounts[0].ProviderUserInfo) != 1 ||
		accounts[0].ProviderUserInfo[0].ProviderID != "google.com" || accounts[0].ProviderUserInfo[0].UID != "90001" {
		t.Fatalf("firebase accounts %d, want exactly one google.com account for %s", len(accounts), sub)
	}
	kv, err := js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		t.Fatal(err)
	}
	kve, err := kv.Get(ctx, events.LedgerKey(sub))
	if err != nil {
		t.Fatal(err)
	}
	le, err := events.UnmarshalLedger(kve.Value())
	if err != nil || le.Outcome != events.OutcomeImported || le.FirebaseUID != sub || len(le.Sources) != 1 || le.Sources[0] != events.SourceReconcile {
		t.Fatalf("ledger %+v %v: want imported by the importer from the exchange's signup", le, err)
	}
	st, err := js.Stream(ctx, events.StreamSignups)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("SIGNUPS holds %d messages (%v), want 1", info.State.Msgs, err)
	}

	id := exchangetest.SignInWithCustomToken(t, testenv.SharedEmulator(t).Host, results[0].resp.FirebaseToken)
	if id["user_id"] != sub || id["sub"] != sub || id[exchange.ClaimAuth0Sub] != sub {
		t.Fatalf("ID token claims %v", id)
	}
	if n := fake.Requests()[auth0fake.RouteGetUser]; n > 2 {
		t.Fatalf("%d Management API reads for ten concurrent exchanges on two replicas, want at most 2", n)
	}
	var audit int
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"session exchange"`) && strings.Contains(line, `"result":"ok"`) &&
			strings.Contains(line, `"auth0_sub":"google-oauth2|90001"`) && strings.Contains(line, `"firebase_uid":"google-oauth2|90001"`) {
			audit++
		}
	}
	if audit != 10 || !strings.Contains(logs.String(), `"via":"imported"`) {
		t.Fatalf("%d audit lines for the exchanges, want 10, at least one via imported:\n%s", audit, logs)
	}
	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), "late.signup@example.com") {
		t.Fatal("logs carry the token or the email")
	}
}

// TestExchangeCommand drives `signupsync exchange` through run, configured
// by environment variables only.
func TestExchangeCommand(t *testing.T) {
	nats := testenv.StartNATS(t)
	// The importer creates the topology; the exchange (whose NATS user may
	// not) waits for it.
	_, js := nats.Connect()
	testenv.Ensure(t, js)
	project := testenv.ProjectID(t)
	fb := testenv.FirebaseAuth(t, project)
	const sub = "github|90002"
	u := (&auth.UserToImport{}).UID(sub).ProviderData([]*auth.UserProvider{{ProviderID: "github.com", UID: "90002"}})
	if res, err := fb.ImportUsers(context.Background(), []*auth.UserToImport{u}); err != nil || res.FailureCount != 0 {
		t.Fatalf("import: %v %+v", err, res)
	}
	iss := exchangetest.NewIssuer(t, exchangeAudience)
	addr, metricsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	vars := map[string]string{
		"SIGNUPSYNC_NATS_URL":         nats.URL,
		"SIGNUPSYNC_EXCHANGE_ADDR":    addr,
		"SIGNUPSYNC_METRICS_ADDR":     metricsAddr,
		"SIGNUPSYNC_AUTH0_ISSUER":     iss.URL(),
		"SIGNUPSYNC_AUTH0_AUDIENCE":   exchangeAudience,
		"SIGNUPSYNC_FIREBASE_PROJECT": project,
		"FIREBASE_AUTH_EMULATOR_HOST": testenv.SharedEmulator(t).Host,
		"SIGNUPSYNC_AUTH0_DOMAIN":     "tenant.example.invalid", // not called: the account is in Firebase
		"SIGNUPSYNC_AUTH0_TOKEN":      "unused",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &testenv.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"exchange"}, envFrom(vars), &testenv.Buffer{}, stderr) }()
	waitHealthy(t, addr)

	token := iss.Token(sub)
	st, resp, body := exchangeCall(t, addr, token)
	if st != http.StatusOK || resp.UID != sub {
		t.Fatalf("exchange: %d %s", st, body)
	}
	res, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	_, _ = metrics.ReadFrom(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`signupsync_exchange_requests_total{result="ok"} 1`,
		`signupsync_exchange_accounts_resolved_total{via="firebase_uid"} 1`,
		`signupsync_exchange_jwks_fetches_total{result="ok"} 1`,
	} {
		if !strings.Contains(metrics.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exchange did not stop cleanly: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("exchange did not stop")
	}
	logs := stderr.String()
	for _, want := range []string{`"msg":"exchange listening"`, `"msg":"exchange stopped"`, `"auth0_sub":"github|90002"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if strings.Contains(logs, token) || strings.Contains(logs, resp.FirebaseToken) {
		t.Fatal("logs carry a token")
	}
}

func TestExchangeUsageErrors(t *testing.T) {
	base := map[string]string{
		"SIGNUPSYNC_AUTH0_ISSUER": "https://tenant.auth0.com/", "SIGNUPSYNC_AUTH0_AUDIENCE": exchangeAudience,
		"SIGNUPSYNC_FIREBASE_PROJECT": "p", "SIGNUPSYNC_AUTH0_DOMAIN": "tenant.auth0.com", "SIGNUPSYNC_AUTH0_TOKEN": "t",
	}
	env := func(changes map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range changes {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no issuer", nil, env(map[string]string{"SIGNUPSYNC_AUTH0_ISSUER": ""}), "--auth0-issuer (SIGNUPSYNC_AUTH0_ISSUER)"},
		{"plain http issuer", []string{"--auth0-issuer", "http://tenant.auth0.com/"}, base, "https"},
		{"no audience", nil, env(map[string]string{"SIGNUPSYNC_AUTH0_AUDIENCE": ""}), "--auth0-audience (SIGNUPSYNC_AUTH0_AUDIENCE)"},
		{"no management api", nil, env(map[string]string{"SIGNUPSYNC_AUTH0_DOMAIN": "", "SIGNUPSYNC_AUTH0_TOKEN": ""}), "--auth0-domain"},
		{"no project", nil, env(map[string]string{"SIGNUPSYNC_FIREBASE_PROJECT": ""}), "--firebase-project"},
		{"bad duration in env", nil, env(map[string]string{"SIGNUPSYNC_MAX_TOKEN_AGE": "soon"}), "SIGNUPSYNC_MAX_TOKEN_AGE (--max-token-age)"},
		{"skew too large", []string{"--clock-skew", "1h"}, base, "--clock-skew (SIGNUPSYNC_CLOCK_SKEW)"},
		{"zero subject rate", []string{"--exchange-subject-rate", "0"}, base, "--exchange-subject-rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), append([]string{"exchange"}, tt.args...), envFrom(tt.env), &testenv.Buffer{}, &testenv.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			var ue usageError
			if !errors.As(err, &ue) || exitCode(err) != 2 {
				t.Fatalf("exit code %d, want 2", exitCode(err))
			}
		})
	}
}

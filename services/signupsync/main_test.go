package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/internal/natsembed"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
)

// TestMain runs the tests with a Firebase Auth emulator, or, when
// SIGNUPSYNC_TEST_MAIN is set, acts as the signupsync binary itself so tests
// can run (and kill) it as a separate process.
func TestMain(m *testing.M) {
	if os.Getenv("SIGNUPSYNC_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	if port := os.Getenv("SIGNUPSYNC_TEST_NATS_PORT"); port != "" {
		os.Exit(runNATSServer(port, os.Getenv("SIGNUPSYNC_TEST_NATS_STORE")))
	}
	os.Exit(testenv.RunWithEmulator(m))
}

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

const devSecret = "whsec_c2lnbnVwc3luYy10ZXN0LXNlY3JldC0xMjM0"

// TestDevEndToEnd drives the binary through run: `dev` with the real
// emulator, `sample` posting a signed Action webhook, `status` reading the
// outcome, then a graceful stop.
func TestDevEndToEnd(t *testing.T) {
	httpAddr, natsAddr, adminAddr := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
	project := testenv.ProjectID(t)
	vars := map[string]string{
		"SIGNUPSYNC_HTTP_ADDR":        httpAddr,
		"SIGNUPSYNC_METRICS_ADDR":     adminAddr,
		"SIGNUPSYNC_DEV_NATS_ADDR":    natsAddr,
		"SIGNUPSYNC_DATA_DIR":         t.TempDir(),
		"SIGNUPSYNC_ACTION_SECRETS":   devSecret,
		"SIGNUPSYNC_FIREBASE_PROJECT": project,
		"FIREBASE_AUTH_EMULATOR_HOST": testenv.SharedEmulator(t).Host,
		"SIGNUPSYNC_BATCH_WINDOW":     "20ms",
		"SIGNUPSYNC_NATS_URL":         "nats://" + natsAddr,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &testenv.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"dev"}, envFrom(vars), &testenv.Buffer{}, stderr) }()
	waitOK(t, "dev to be ready", "http://"+adminAddr+"/readyz")

	out := &testenv.Buffer{}
	if err := run(ctx, []string{"sample", "--url", "http://" + httpAddr, "--user-id", "github|777"}, envFrom(vars), out, out); err != nil {
		t.Fatalf("sample: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), events.EventID("github|777")) {
		t.Fatalf("sample output %s", out)
	}
	var le events.LedgerEntry
	testenv.Eventually(t, "the signup to be imported", func() bool {
		o := &testenv.Buffer{}
		if err := run(ctx, []string{"status", "--format", "json", "github|777"}, envFrom(vars), o, &testenv.Buffer{}); err != nil {
			return false
		}
		return json.Unmarshal([]byte(o.String()), &le) == nil && le.Outcome == events.OutcomeImported
	})
	if le.FirebaseUID != "github|777" || len(le.Sources) != 1 || le.Sources[0] != events.SourceAction {
		t.Fatalf("ledger %+v", le)
	}
	u, err := testenv.FirebaseAuth(t, project).GetUser(context.Background(), "github|777")
	if err != nil || u.ProviderUserInfo[0].ProviderID != "github.com" {
		t.Fatalf("firebase account %+v, %v", u, err)
	}
	res, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	_, _ = metrics.ReadFrom(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`signupsync_ingest_requests_total{receiver="auth0_action",status="202"} 1`,
		`signupsync_importer_outcomes_total{outcome="imported",reason=""} 1`,
		`signupsync_importer_breaker_state 0`,
	} {
		if !strings.Contains(metrics.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev did not stop cleanly: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not stop")
	}
	logs := stderr.String()
	if strings.Contains(logs, "@example.com") || strings.Contains(logs, devSecret) {
		t.Fatal("logs contain an email address or the secret")
	}
	for _, want := range []string{`"msg":"ingest stopped"`, `"msg":"importer stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
}

func TestStatusUnknownUser(t *testing.T) {
	httpAddr, natsAddr, adminAddr := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
	vars := map[string]string{
		"SIGNUPSYNC_HTTP_ADDR": httpAddr, "SIGNUPSYNC_METRICS_ADDR": adminAddr, "SIGNUPSYNC_DEV_NATS_ADDR": natsAddr, "SIGNUPSYNC_DATA_DIR": t.TempDir(),
		"SIGNUPSYNC_ACTION_SECRETS": devSecret, "SIGNUPSYNC_DEV_IMPORTER": "false", "SIGNUPSYNC_NATS_URL": "nats://" + natsAddr,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"dev"}, envFrom(vars), &testenv.Buffer{}, &testenv.Buffer{}) }()
	defer func() { cancel(); <-done }()
	waitOK(t, "dev to be ready", "http://"+adminAddr+"/readyz")
	err := run(ctx, []string{"status", "nobody|1"}, envFrom(vars), &testenv.Buffer{}, &testenv.Buffer{})
	if exitCode(err) != 3 {
		t.Fatalf("status of an unknown user: %v (exit %d), want exit 3", err, exitCode(err))
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no command", nil, nil, "no command"},
		{"unknown command", []string{"frobnicate"}, nil, "unknown command"},
		{"ingest without credentials", []string{"ingest"}, nil, "SIGNUPSYNC_ACTION_SECRETS"},
		{"ingest bad secret", []string{"ingest", "--action-secrets", "whsec_!!"}, nil, "--action-secrets (SIGNUPSYNC_ACTION_SECRETS)"},
		{"bad duration in env", []string{"ingest"}, map[string]string{"SIGNUPSYNC_PUBLISH_TIMEOUT": "soon"}, "SIGNUPSYNC_PUBLISH_TIMEOUT (--publish-timeout)"},
		{"importer without project", []string{"importer"}, nil, "--firebase-project"},
		{"importer bad policy", []string{"importer", "--firebase-project", "p", "--email-policy", "merge"}, nil, "--email-policy (SIGNUPSYNC_EMAIL_POLICY)"},
		{"importer batch too large", []string{"importer", "--firebase-project", "p", "--batch-size", "5000"}, nil, "--batch-size (SIGNUPSYNC_BATCH_SIZE)"},
		{"status without id", []string{"status"}, nil, `expected "<auth0-user-id>"`},
		{"sample without secret", []string{"sample"}, nil, "--action-secrets"},
		{"a library error names the flag, not the field", []string{"importer", "--firebase-project", "p", "--importer-workers", "0"}, nil, "--importer-workers (SIGNUPSYNC_IMPORTER_WORKERS) 0: must be 1 to 64"},
		{"an old flag name still works", []string{"reconcile", "--since", "24h", "--rps=-1"}, map[string]string{"SIGNUPSYNC_AUTH0_DOMAIN": "t.example", "SIGNUPSYNC_AUTH0_TOKEN": "x"}, "--rate (SIGNUPSYNC_RECONCILE_RPS) must not be negative"},
		{"a bad value in a variable names it and the flag", []string{"dev"}, map[string]string{"SIGNUPSYNC_DEV_IMPORTER": "maybe"}, `SIGNUPSYNC_DEV_IMPORTER (--importer): "maybe" is not a boolean`},
		{"a subcommand is needed", []string{"dlq"}, nil, "list"},
		{"dlq list takes no --yes", []string{"dlq", "list", "--yes"}, nil, "unknown flag --yes"},
		{"auth0 install without ingest's URL", []string{"auth0", "install", "--dry-run"}, map[string]string{"SIGNUPSYNC_AUTH0_DOMAIN": "t.example", "SIGNUPSYNC_AUTH0_TOKEN": "x"}, "--ingest-url (SIGNUPSYNC_INGEST_URL) is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, envFrom(tt.env), &testenv.Buffer{}, &testenv.Buffer{})
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

// TestHelpIsGeneratedAndExitsTwo: a command's help lists its flags with
// their variables and ends the run with exit status 2; the binary's own
// help exits 0.
func TestHelpIsGeneratedAndExitsTwo(t *testing.T) {
	out := &testenv.Buffer{}
	err := run(context.Background(), []string{"importer", "--help"}, envFrom(nil), out, out)
	if exitCode(err) != 2 || !errors.Is(err, errHelp) {
		t.Fatalf("importer --help: %v (exit %d), want errHelp and exit 2", err, exitCode(err))
	}
	for _, want := range []string{"Importer:", "--batch-size=1000", "SIGNUPSYNC_BATCH_SIZE", "Firebase:", "Auth0 Management API:", "NATS:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("importer --help lacks %q:\n%s", want, out)
		}
	}
	if err := run(context.Background(), []string{"--help"}, envFrom(nil), out, out); err != nil {
		t.Fatalf("--help: %v, want nil", err)
	}
}

func TestVersion(t *testing.T) {
	out := &testenv.Buffer{}
	if err := run(context.Background(), []string{"version"}, envFrom(nil), out, out); err != nil || !strings.HasPrefix(out.String(), "signupsync ") {
		t.Fatalf("version: %q %v", out, err)
	}
}

func getenvDefault(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// runNATSServer makes this test binary a standalone nats-server process (the
// pinned nats-server module, embedded) until it is killed.
func runNATSServer(port, store string) int {
	p, err := strconv.Atoi(port)
	if err != nil {
		return 2
	}
	o := natsembed.Options{Port: p, StoreDir: store, ReadyTimeout: 30 * time.Second}
	if cp := os.Getenv("SIGNUPSYNC_TEST_NATS_CLUSTER_PORT"); cp != "" {
		o.ClusterPort, _ = strconv.Atoi(cp)
		o.ClusterName = "chaos"
		o.ServerName = os.Getenv("SIGNUPSYNC_TEST_NATS_NAME")
		o.Routes = strings.Split(os.Getenv("SIGNUPSYNC_TEST_NATS_ROUTES"), ",")
	}
	ns, err := natsembed.Start(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ns.WaitForShutdown()
	return 0
}

package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/services/importer"
)

// TestBackfillOfAUserDeletedSinceIsNotImported: an export taken before a
// user deleted their account in Auth0 is backfilled through the binary.
// The importer reads every backfill line from the Management API first:
// the deleted user ends skipped/deleted_in_auth0 without a Firebase
// account, the other is imported with the profile Auth0 has now, and
// `backfill` says what the importer does with the file.
func TestBackfillOfAUserDeletedSinceIsNotImported(t *testing.T) {
	nats := testenv.StartNATS(t)
	_, js := nats.Connect()
	testenv.Ensure(t, js)
	ctx := context.Background()
	fb := testenv.FirebaseAuth(t, testenv.ProjectID(t))
	fake := auth0fake.New(t)
	fake.AddUsers(auth0fake.User{UserID: "google-oauth2|501", Email: "new501@example.com", EmailVerified: true, Name: "Now 501",
		CreatedAt: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Identities: []auth0fake.Identity{{Provider: "google-oauth2", Connection: "google-oauth2", UserID: "501", IsSocial: true}}})
	file := filepath.Join(t.TempDir(), "export.json")
	export := `{"user_id":"google-oauth2|500","email":"gone500@example.com","email_verified":true,"name":"Then 500","created_at":"2026-10-01T00:00:00.000Z","identities":[{"provider":"google-oauth2","connection":"google-oauth2","user_id":"500","isSocial":true}]}
{"user_id":"google-oauth2|501","email":"old501@example.com","email_verified":true,"name":"Then 501","created_at":"2026-10-01T00:00:00.000Z","identities":[{"provider":"google-oauth2","connection":"google-oauth2","user_id":"501","isSocial":true}]}
`
	if err := os.WriteFile(file, []byte(export), 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := auth0api.New(ctx, auth0api.Config{Domain: fake.Domain(), Token: fake.Token(), HTTPClient: fake.Client(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := importer.DefaultConfig()
	cfg.FirebaseRPS = 0
	cfg.BatchWindow = 20 * time.Millisecond
	imp, err := importer.New(ctx, cfg, importer.Deps{JetStream: js, Accounts: fb, Enricher: importer.Auth0Enricher(client), Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = imp.Run(runCtx) }()
	defer func() { stop(); <-done }()

	out := &testenv.Buffer{}
	if err := run(ctx, []string{"backfill", "--file", file}, envFrom(map[string]string{"SIGNUPSYNC_NATS_URL": nats.URL}), out, out); err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), backfillFreshNote) {
		t.Fatalf("backfill does not say that its signups are re-read:\n%s", out)
	}
	testenv.WaitDrained(t, js)
	if got := ledgerOutcomes(t, js); got["skipped/"+events.ReasonDeletedInAuth0] != 1 || got["imported"] != 1 || sum(got) != 2 {
		t.Fatalf("ledger outcomes %v, want one imported and one skipped/%s", got, events.ReasonDeletedInAuth0)
	}
	if _, err := fb.GetUser(ctx, "google-oauth2|500"); err == nil {
		t.Fatal("the user deleted in Auth0 since the export has a Firebase account")
	}
	u, err := fb.GetUser(ctx, "google-oauth2|501")
	if err != nil || u.Email != "new501@example.com" || u.DisplayName != "Now 501" {
		t.Fatalf("imported from the export's old profile: %+v %v", u, err)
	}
}

// TestReportCheckAuth0NeedsTheManagementAPI: --check-auth0 without the
// Management API is a usage error naming the flag, before anything runs.
func TestReportCheckAuth0NeedsTheManagementAPI(t *testing.T) {
	out := &testenv.Buffer{}
	err := run(context.Background(), []string{"report", "--check-auth0", "--verify=false"}, envFrom(map[string]string{"SIGNUPSYNC_NATS_URL": "nats://127.0.0.1:1"}), out, out)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "--auth0-domain") {
		t.Fatalf("report --check-auth0 without --auth0-domain: exit %d, %v", exitCode(err), err)
	}
}

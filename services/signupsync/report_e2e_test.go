package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"

	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/services/importer"
	"github.com/signupsync/signupsync/services/operator"
)

// TestReportGatesCutover imports a small export, then checks that `report`
// passes, and fails with exit status 4 once an account is deleted from the
// emulator behind the pipeline's back, or when the export holds a user the
// pipeline never saw.
func TestReportGatesCutover(t *testing.T) {
	nats := testenv.StartNATS(t)
	_, js := nats.Connect()
	testenv.Ensure(t, js)
	ctx := context.Background()
	project := testenv.ProjectID(t)
	fb := testenv.FirebaseAuth(t, project)
	// An account that holds the email of one signup: a conflict.
	if _, err := fb.ImportUsers(ctx, []*auth.UserToImport{(&auth.UserToImport{}).UID("native-1").Email("u3@example.com")}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "export.json")
	truth := testenv.WriteExport(t, file, 40, false)

	cfg := importer.DefaultConfig()
	cfg.FirebaseRPS = 0
	cfg.BatchWindow = 20 * time.Millisecond
	imp, err := importer.New(ctx, cfg, importer.Deps{JetStream: js, Accounts: fb, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = imp.Run(runCtx) }()
	defer func() { stop(); <-done }()

	vars := map[string]string{
		"SIGNUPSYNC_NATS_URL": nats.URL, "SIGNUPSYNC_FIREBASE_PROJECT": project,
		"FIREBASE_AUTH_EMULATOR_HOST": testenv.SharedEmulator(t).Host,
	}
	out := &testenv.Buffer{}
	if err := run(ctx, []string{"backfill", "--file", file}, envFrom(vars), out, out); err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	testenv.WaitDrained(t, js)

	report := func(args ...string) (operator.Report, error) {
		o := &testenv.Buffer{}
		err := run(ctx, append([]string{"report", "--format", "json", "--out", filepath.Join(dir, "csv")}, args...), envFrom(vars), o, &testenv.Buffer{})
		var rep operator.Report
		if jerr := json.Unmarshal([]byte(o.String()), &rep); jerr != nil {
			t.Fatalf("report output: %v\n%s", jerr, o)
		}
		return rep, err
	}
	rep, err := report()
	if err != nil {
		t.Fatalf("report on a complete import: %v", err)
	}
	wantImported := truth.Users["imported"] - 1 // u3 is a conflict
	if rep.Outcomes["imported"] != wantImported || rep.Outcomes["conflict/email_in_use"] != 1 ||
		len(rep.NeedPasswordExport) != truth.Users["database_connection"] || len(rep.Conflicts) != 1 || rep.Verified != wantImported {
		t.Fatalf("report %+v (truth %+v)", rep, truth)
	}
	csv, err := os.ReadFile(filepath.Join(dir, "csv", "need-password-export.csv"))
	if err != nil || strings.Count(string(csv), "\n") != 1+truth.Users["database_connection"] {
		t.Fatalf("need-password-export.csv: %v\n%s", err, csv)
	}

	// An account deleted behind the pipeline's back.
	victim := truth.Eligible[0]
	if err := fb.DeleteUser(ctx, victim); err != nil {
		t.Fatal(err)
	}
	rep, err = report()
	if exitCode(err) != 4 || len(rep.Missing) != 1 || rep.Missing[0].Auth0UserID != victim {
		t.Fatalf("after a deletion: exit %d, missing %+v", exitCode(err), rep.Missing)
	}

	// An export with a user the pipeline never saw.
	extra := filepath.Join(dir, "extra.json")
	if err := os.WriteFile(extra, []byte(`{"user_id":"apple|never","email":"never@example.com","identities":[{"provider":"apple","connection":"apple","user_id":"never","isSocial":true}]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err = report("--file", extra)
	if exitCode(err) != 4 || rep.Outcomes["not_seen"] != 1 || len(rep.Missing) != 1 {
		t.Fatalf("unseen user: exit %d, report %+v", exitCode(err), rep)
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/internal/firebaseprod"
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
	vars := map[string]string{
		"SIGNUPSYNC_NATS_URL": nats.URL, "SIGNUPSYNC_FIREBASE_PROJECT": project,
		"FIREBASE_AUTH_EMULATOR_HOST": testenv.SharedEmulator(t).Host,
	}
	importThroughPipeline(t, js, fb, vars, file)

	report := func(args ...string) (operator.Report, error) {
		return reportJSON(t, vars, filepath.Join(dir, "csv"), args...)
	}
	rep, err := report()
	if err != nil {
		t.Fatalf("report on a complete import: %v", err)
	}
	wantImported := truth.Users["imported"] - 1 // u3 is a conflict
	if rep.Outcomes["imported"] != wantImported || rep.Outcomes["conflict/email_in_use"] != 1 ||
		len(rep.NeedPasswordExport) != truth.Users["database_connection"] || len(rep.Conflicts) != 1 || rep.Verified != wantImported ||
		len(rep.Offenders) != 0 {
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
	if exitCode(err) != 4 || !errors.Is(err, operator.ErrMissing) || len(rep.Missing) != 1 || rep.Missing[0].Auth0UserID != victim ||
		len(rep.Offenders) != 1 || rep.Offenders[0].Problem != operator.ProblemMissing {
		t.Fatalf("after a deletion: exit %d (%v), missing %+v, offenders %+v", exitCode(err), err, rep.Missing, rep.Offenders)
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

// TestReportFailsWhenASecondAccountHoldsAnImportedEmail runs the pipeline
// against the production-semantics stand-in, whose ImportUsers and
// look-ups behave as production's, then adds a second account holding an
// imported user's email, as production's ImportUsers allows: `report` (on
// the ledger and on the export) must exit 4 and name the user and the
// other account, without printing the email.
func TestReportFailsWhenASecondAccountHoldsAnImportedEmail(t *testing.T) {
	nats := testenv.StartNATS(t)
	_, js := nats.Connect()
	testenv.Ensure(t, js)
	ctx := context.Background()
	prod := firebaseprod.New(t)
	// The Admin SDK reads the variable itself, in this test's clients and
	// in the report command's.
	t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", prod.Host())
	project := testenv.ProjectID(t)
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: project})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := app.Auth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "export.json")
	truth := testenv.WriteExport(t, file, 40, false)
	vars := map[string]string{
		"SIGNUPSYNC_NATS_URL": nats.URL, "SIGNUPSYNC_FIREBASE_PROJECT": project,
		"FIREBASE_AUTH_EMULATOR_HOST": prod.Host(),
	}
	importThroughPipeline(t, js, fb, vars, file)
	imported := truth.Users["imported"]

	lookups := func() int { return prod.Stats(project).Calls[firebaseprod.EndpointLookup] }
	before := lookups()
	rep, err := reportJSON(t, vars, filepath.Join(dir, "csv"))
	if err != nil || rep.Verified != imported || len(rep.Offenders) != 0 {
		t.Fatalf("report on a complete import: %v, verified %d of %d, offenders %+v", err, rep.Verified, imported, rep.Offenders)
	}
	// uid and provider identity of every user in one call, the emails of
	// their accounts in a second.
	if n := lookups() - before; n != 2 {
		t.Fatalf("report made %d look-up calls for %d users, want 2", n, imported)
	}

	victim := truth.Eligible[0]
	acct, err := fb.GetUser(ctx, victim)
	if err != nil || acct.Email == "" {
		t.Fatalf("imported account %s: %v (email %q)", victim, err, acct.Email)
	}
	if err := prod.Insert(project, firebaseprod.Account{UID: "second-account", Email: strings.ToUpper(acct.Email)}); err != nil {
		t.Fatal(err)
	}
	if dup := prod.Stats(project).DuplicateEmails; len(dup) != 1 || dup[0] != acct.Email {
		t.Fatalf("stand-in duplicate emails %v", dup)
	}

	for _, args := range [][]string{nil, {"--file", file}} {
		rep, err := reportJSON(t, vars, filepath.Join(dir, "csv"), args...)
		want := operator.Row{Auth0UserID: victim, Outcome: "imported", FirebaseUID: victim, Problem: operator.ProblemEmailOnOtherAccount, OtherUID: "second-account"}
		if exitCode(err) != 4 || !errors.Is(err, operator.ErrUnverified) || errors.Is(err, operator.ErrMissing) ||
			len(rep.Offenders) != 1 || rep.Offenders[0] != want || len(rep.Missing) != 0 || rep.Verified != imported-1 {
			t.Fatalf("report %v: exit %d (%v), offenders %+v, missing %d, verified %d", args, exitCode(err), err, rep.Offenders, len(rep.Missing), rep.Verified)
		}
	}
	csv, err := os.ReadFile(filepath.Join(dir, "csv", "offenders.csv"))
	if err != nil || strings.Count(string(csv), "\n") != 2 || !strings.Contains(string(csv), "email_on_other_account,second-account") {
		t.Fatalf("offenders.csv: %v\n%s", err, csv)
	}
	out := &testenv.Buffer{}
	err = run(ctx, []string{"report"}, envFrom(vars), out, &testenv.Buffer{})
	if exitCode(err) != 4 || !strings.Contains(out.String(), "email_on_other_account: "+victim) ||
		!strings.Contains(out.String(), "other uid second-account") || strings.Contains(out.String(), "@") {
		t.Fatalf("text report: exit %d\n%s", exitCode(err), out)
	}
}

// importThroughPipeline runs an importer on fb and backfills file through
// the binary, and returns once every signup is settled.
func importThroughPipeline(t *testing.T, js jetstream.JetStream, fb *auth.Client, vars map[string]string, file string) {
	t.Helper()
	ctx := context.Background()
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
	out := &testenv.Buffer{}
	if err := run(ctx, []string{"backfill", "--file", file}, envFrom(vars), out, out); err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	testenv.WaitDrained(t, js)
}

// reportJSON runs `report --format json`, also writing the CSVs into
// csvDir, and decodes its output.
func reportJSON(t *testing.T, vars map[string]string, csvDir string, args ...string) (operator.Report, error) {
	t.Helper()
	o := &testenv.Buffer{}
	err := run(context.Background(), append([]string{"report", "--format", "json", "--out", csvDir}, args...), envFrom(vars), o, &testenv.Buffer{})
	var rep operator.Report
	if jerr := json.Unmarshal([]byte(o.String()), &rep); jerr != nil {
		t.Fatalf("report output: %v (report error %v)\n%s", jerr, err, o)
	}
	return rep, err
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"
	"google.golang.org/api/option"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/services/operator"
)

// runReport prints the cutover report and exits 4 when the verification
// pass finds offenders (users missing from Firebase, without their provider
// identity, or whose email or provider identity another account holds), or
// --check-auth0 finds imported users Auth0 no longer has, so it can gate
// cutover.
func runReport(ctx context.Context, args []string, e env) error {
	f := newFlags("report", e.getenv, e.stderr)
	com := addCommon(f)
	file := f.String("file", "", "", "Auth0 export to report on (default: every user in the ledger)")
	tenant := f.String("tenant", "SIGNUPSYNC_AUTH0_TENANT", "default", "Auth0 tenant name")
	format := f.String("format", "", "text", "output: text or json")
	outDir := f.String("out", "", "", "also write need-password-export.csv, conflicts.csv, missing.csv and offenders.csv into this directory")
	verify := f.Bool("verify", "", true, "look every eligible user up in Firebase by uid, provider identity and email (100 identifiers a call)")
	uidPolicy := f.String("uid-policy", "SIGNUPSYNC_UID_POLICY", string(events.UIDAuth0ID), "uid policy the importer uses: auth0_id or hash")
	project := f.String("firebase-project", "SIGNUPSYNC_FIREBASE_PROJECT", e.getenv("GOOGLE_CLOUD_PROJECT"), "Firebase project id")
	creds := f.String("firebase-credentials", "GOOGLE_APPLICATION_CREDENTIALS", "", "service account JSON file")
	checkAuth0 := f.Bool("check-auth0", "SIGNUPSYNC_REPORT_CHECK_AUTH0", false, "ask the Auth0 Management API for every user the ledger holds as imported and list those Auth0 no longer has (deletions no webhook reported; one request per user, needs --auth0-domain)")
	auth0RPS := f.Int("auth0-rps", "SIGNUPSYNC_REPORT_AUTH0_RPS", int(operator.DefaultAuth0CheckConfig().RPS), "Management API requests per second of --check-auth0, 0 = unlimited")
	buildAuth0 := auth0Flags(f)
	if err := f.parse(args); err != nil {
		return usageError{err}
	}
	var a0 auth0api.Config
	if *checkAuth0 {
		var err error
		if a0, err = buildAuth0(); err != nil {
			return usageError{fmt.Errorf("--check-auth0: %w", err)}
		}
		if *auth0RPS < 0 {
			return usageError{errors.New("--auth0-rps (SIGNUPSYNC_REPORT_AUTH0_RPS) must not be negative")}
		}
	}
	if *format != "text" && *format != "json" {
		return usageError{fmt.Errorf("--format %q: want text or json", *format)}
	}
	policy := events.UIDPolicy(*uidPolicy)
	if !policy.Valid() {
		return usageError{fmt.Errorf("--uid-policy (SIGNUPSYNC_UID_POLICY) %q: want auth0_id or hash", *uidPolicy)}
	}
	if *verify && *project == "" {
		return usageError{errors.New("--firebase-project (SIGNUPSYNC_FIREBASE_PROJECT) is required to verify (or --verify=false)")}
	}
	log, err := com.logger(e)
	if err != nil {
		return err
	}
	nc, js, err := connectNATS(*com.natsURL, *com.natsCreds, "signupsync-report", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	kv, err := js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		return fmt.Errorf("ledger bucket at %s: %w", redactURLs(*com.natsURL), err)
	}
	var fb operator.Lookup
	if *verify {
		c, err := firebaseClient(ctx, *project, *creds, e.getenv("FIREBASE_AUTH_EMULATOR_HOST"))
		if err != nil {
			return err
		}
		fb = c
	}
	rep, repErr := operator.BuildReport(ctx, operator.ReportConfig{File: *file, Tenant: *tenant, UIDPolicy: policy, Verify: *verify}, kv, fb)
	if repErr != nil && !errors.Is(repErr, operator.ErrUnverified) {
		return repErr
	}
	if *checkAuth0 {
		api, err := auth0api.New(ctx, a0)
		if err != nil {
			return err
		}
		cc := operator.DefaultAuth0CheckConfig()
		cc.RPS = float64(*auth0RPS)
		var checkErr error
		rep.DeletedInAuth0, _, checkErr = operator.FindDeletedInAuth0(ctx, cc, kv, api)
		if checkErr != nil && !errors.Is(checkErr, operator.ErrDeletedInAuth0) {
			return checkErr
		}
		repErr = errors.Join(repErr, checkErr)
	}
	if *outDir != "" {
		if err := writeReportCSVs(*outDir, rep); err != nil {
			return err
		}
	}
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(e, rep, *verify)
	}
	if repErr != nil {
		return exitError{code: 4, err: repErr}
	}
	return nil
}

func writeReportCSVs(dir string, rep operator.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string]func(w io.Writer) error{
		"need-password-export.csv": func(w io.Writer) error { return operator.WriteCSV(w, rep.NeedPasswordExport) },
		"conflicts.csv":            func(w io.Writer) error { return operator.WriteCSV(w, rep.Conflicts) },
		"missing.csv":              func(w io.Writer) error { return operator.WriteCSV(w, rep.Missing) },
		"offenders.csv":            func(w io.Writer) error { return operator.WriteOffendersCSV(w, rep.Offenders) },
		"lifecycle-conflicts.csv":  func(w io.Writer) error { return operator.WriteCSV(w, rep.LifecycleConflicts) },
		"deleted-in-auth0.csv":     func(w io.Writer) error { return operator.WriteCSV(w, rep.DeletedInAuth0) },
	}
	for name, write := range files {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		werr := write(f)
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

func printReport(e env, rep operator.Report, verified bool) {
	fmt.Fprintf(e.stdout, "cutover report (%s): %d users", rep.Source, rep.Users)
	if rep.Malformed > 0 {
		fmt.Fprintf(e.stdout, ", %d malformed lines", rep.Malformed)
	}
	fmt.Fprintln(e.stdout)
	keys := make([]string, 0, len(rep.Outcomes))
	for k := range rep.Outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%d\n", k, rep.Outcomes[k])
	}
	_ = tw.Flush()
	fmt.Fprintf(e.stdout, "need the password-hash export: %d\nconflicts for manual review: %d\n", len(rep.NeedPasswordExport), len(rep.Conflicts))
	fmt.Fprintf(e.stdout, "database users: %d imported with their password hash, %d migrated on login, %d still waiting, %d other\n",
		rep.Passwords.ImportedWithHash, rep.Passwords.MigratedOnLogin, rep.Passwords.Waiting, rep.Passwords.Other)
	lc := rep.Lifecycle
	fmt.Fprintf(e.stdout, "lifecycle: %d deleted in auth0 (%d firebase accounts deleted, %d before import, %d not created by signupsync), %d updated, %d pending conflicts, %d pending deletions\n",
		lc.Deleted, lc.FirebaseDeleted, lc.DeletedBeforeImport, lc.DeletedNotOurs, lc.Updated, lc.PendingConflicts, lc.PendingDeletions)
	for i, r := range rep.LifecycleConflicts {
		if i == 20 {
			fmt.Fprintf(e.stdout, "  ... and %d more (use --out or --format json)\n", len(rep.LifecycleConflicts)-20)
			break
		}
		fmt.Fprintf(e.stdout, "  %s: %s (firebase uid %s)\n", r.Reason, r.Auth0UserID, r.FirebaseUID)
	}
	if rep.DeletedInAuth0 != nil {
		fmt.Fprintf(e.stdout, "auth0 check: %d imported users no longer exist in auth0\n", len(rep.DeletedInAuth0))
		for i, r := range rep.DeletedInAuth0 {
			if i == 20 {
				fmt.Fprintf(e.stdout, "  ... and %d more (use --out or --format json)\n", len(rep.DeletedInAuth0)-20)
				break
			}
			fmt.Fprintf(e.stdout, "  %s: %s (firebase uid %s)\n", r.Problem, r.Auth0UserID, r.FirebaseUID)
		}
	}
	if !verified {
		fmt.Fprintln(e.stdout, "firebase verification: skipped")
		return
	}
	fmt.Fprintf(e.stdout, "firebase verification: %d as expected, %d missing, %d problems\n", rep.Verified, len(rep.Missing), len(rep.Offenders))
	for i, r := range rep.Offenders {
		if i == 20 {
			fmt.Fprintf(e.stdout, "  ... and %d more (use --out or --format json)\n", len(rep.Offenders)-20)
			break
		}
		fmt.Fprintf(e.stdout, "  %s: %s (outcome %s, expected uid %s", r.Problem, r.Auth0UserID, r.Outcome, r.FirebaseUID)
		if r.OtherUID != "" {
			fmt.Fprintf(e.stdout, ", other uid %s", r.OtherUID)
		}
		fmt.Fprintln(e.stdout, ")")
	}
}

// firebaseClient builds an Admin SDK Auth client; with
// FIREBASE_AUTH_EMULATOR_HOST set it needs no credentials.
func firebaseClient(ctx context.Context, project, credentials, emulatorHost string) (*auth.Client, error) {
	var opts []option.ClientOption
	if credentials != "" && emulatorHost == "" {
		opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, credentials))
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: project}, opts...)
	if err != nil {
		return nil, fmt.Errorf("firebase app: %w", err)
	}
	c, err := app.Auth(ctx)
	if err != nil {
		return nil, fmt.Errorf("firebase auth: %w", err)
	}
	return c, nil
}

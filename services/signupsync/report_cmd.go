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
	"github.com/signupsync/signupsync/services/operator"
)

// runReport prints the cutover report and exits 4 when the verification
// pass finds offenders (users missing from Firebase, without their provider
// identity, or whose email or provider identity another account holds), so
// it can gate cutover.
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
	if err := f.parse(args); err != nil {
		return usageError{err}
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
		opts = append(opts, option.WithCredentialsFile(credentials))
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

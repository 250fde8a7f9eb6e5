package operator

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sampleReport is a small report with a row in every list.
func sampleReport() Report {
	return Report{
		Source:    "ledger",
		Users:     6,
		Malformed: 1,
		Outcomes:  map[string]int{"imported": 3, "skipped/no_email": 1, "not_seen": 1, "conflict/email_exists": 1},
		NeedPasswordExport: []Row{
			{Auth0UserID: "auth0|db1", Outcome: "imported", FirebaseUID: "auth0|db1"},
		},
		Conflicts: []Row{
			{Auth0UserID: "google-oauth2|7", Outcome: "conflict", Reason: "email_exists", Detail: `held by "x", and y`, FirebaseUID: "fb7"},
		},
		Missing: []Row{
			{Auth0UserID: "github|9", Outcome: "imported", FirebaseUID: "github|9", Problem: ProblemMissing},
		},
		Offenders: []Row{
			{Auth0UserID: "github|9", Outcome: "imported", FirebaseUID: "github|9", Problem: ProblemMissing},
			{Auth0UserID: "google-oauth2|8", Outcome: "imported", FirebaseUID: "google-oauth2|8", Problem: ProblemEmailOnOtherAccount, OtherUID: "other8"},
		},
		Verified:           2,
		Passwords:          PasswordCounts{ImportedWithHash: 1, MigratedOnLogin: 2, Waiting: 3, Other: 4},
		Lifecycle:          LifecycleCounts{Deleted: 5, FirebaseDeleted: 4, DeletedBeforeImport: 1, DeletedNotOurs: 2, Updated: 7, PendingConflicts: 1, PendingDeletions: 0},
		LifecycleConflicts: []Row{{Auth0UserID: "auth0|lc1", Outcome: "imported", Reason: "email_conflict", FirebaseUID: "auth0|lc1"}},
		DeletedInAuth0:     []Row{{Auth0UserID: "auth0|gone", Outcome: "imported", FirebaseUID: "auth0|gone", Problem: ProblemDeletedInAuth0}},
	}
}

func TestReportTextListsCountsAndProblems(t *testing.T) {
	var b strings.Builder
	if err := sampleReport().WriteText(&b, true); err != nil {
		t.Fatal(err)
	}
	want := `cutover report (ledger): 6 users, 1 malformed lines
  conflict/email_exists  1
  imported               3
  not_seen               1
  skipped/no_email       1
need the password-hash export: 1
conflicts for manual review: 1
database users: 1 imported with their password hash, 2 migrated on login, 3 still waiting, 4 other
lifecycle: 5 deleted in auth0 (4 firebase accounts deleted, 1 before import, 2 not created by signupsync), 7 updated, 1 pending conflicts, 0 pending deletions
  email_conflict: auth0|lc1 (firebase uid auth0|lc1)
auth0 check: 1 imported users no longer exist in auth0
  deleted_in_auth0: auth0|gone (firebase uid auth0|gone)
firebase verification: 2 as expected, 1 missing, 2 problems
  missing: github|9 (outcome imported, expected uid github|9)
  email_on_other_account: google-oauth2|8 (outcome imported, expected uid google-oauth2|8, other uid other8)
`
	if got := b.String(); got != want {
		t.Errorf("text:\n%s\nwant:\n%s", got, want)
	}
}

func TestReportTextWithoutVerificationOrAuth0Check(t *testing.T) {
	rep := sampleReport()
	rep.Malformed = 0
	rep.DeletedInAuth0 = nil
	rep.Outcomes = map[string]int{"imported": 1}
	var b strings.Builder
	if err := rep.WriteText(&b, false); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	if !strings.HasPrefix(got, "cutover report (ledger): 6 users\n  imported  1\n") {
		t.Errorf("header: %q", got)
	}
	if !strings.HasSuffix(got, "  email_conflict: auth0|lc1 (firebase uid auth0|lc1)\nfirebase verification: skipped\n") {
		t.Errorf("ending: %q", got)
	}
	if strings.Contains(got, "auth0 check") || strings.Contains(got, "github|9") {
		t.Errorf("unverified text lists the auth0 check or offenders:\n%s", got)
	}
}

func TestReportTextCutsLongListsAtTwenty(t *testing.T) {
	rep := Report{Source: "export.json"}
	for i := range 25 {
		rep.Offenders = append(rep.Offenders, Row{Auth0UserID: fmt.Sprintf("auth0|%02d", i), Outcome: "imported", FirebaseUID: "u", Problem: ProblemMissing})
		rep.LifecycleConflicts = append(rep.LifecycleConflicts, Row{Auth0UserID: fmt.Sprintf("auth0|%02d", i), Reason: "email_conflict", FirebaseUID: "u"})
	}
	var b strings.Builder
	if err := rep.WriteText(&b, true); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	if n := strings.Count(got, "  ... and 5 more (use --out or --format json)\n"); n != 2 {
		t.Errorf("%d cut lines, want 2:\n%s", n, got)
	}
	if !strings.Contains(got, "auth0|19") || strings.Contains(got, "auth0|20") {
		t.Errorf("want rows 0-19 only:\n%s", got)
	}
}

// failAfter accepts n writes, then fails.
type failAfter struct{ n int }

var errDiskFull = errors.New("disk full")

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errDiskFull
	}
	f.n--
	return len(p), nil
}

func TestReportTextReturnsTheWriteError(t *testing.T) {
	w := &failAfter{n: 2}
	if err := sampleReport().WriteText(w, true); !errors.Is(err, errDiskFull) {
		t.Fatalf("err = %v, want %v", err, errDiskFull)
	}
}

func TestReportJSONParsesBack(t *testing.T) {
	rep := sampleReport()
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "{\n  \"source\": \"ledger\",\n") || !strings.HasSuffix(b.String(), "}\n") {
		t.Errorf("not indented JSON with a trailing newline:\n%s", b.String())
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rep) {
		t.Errorf("parsed back as %+v, want %+v", back, rep)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return recs
}

func TestReportCSVsWriteEveryListWithoutEmails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out") // WriteCSVs creates it
	rep := sampleReport()
	rep.Missing = nil // an empty list still gets its file and header
	if err := rep.WriteCSVs(dir); err != nil {
		t.Fatal(err)
	}
	cols := []string{"auth0_user_id", "outcome", "reason", "detail", "firebase_uid"}
	offenderCols := append(append([]string{}, cols...), "problem", "other_uid")
	want := map[string][][]string{
		"need-password-export.csv": {cols, {"auth0|db1", "imported", "", "", "auth0|db1"}},
		"conflicts.csv":            {cols, {"google-oauth2|7", "conflict", "email_exists", `held by "x", and y`, "fb7"}},
		"missing.csv":              {cols},
		"offenders.csv": {offenderCols,
			{"github|9", "imported", "", "", "github|9", "missing", ""},
			{"google-oauth2|8", "imported", "", "", "google-oauth2|8", "email_on_other_account", "other8"}},
		"lifecycle-conflicts.csv": {cols, {"auth0|lc1", "imported", "email_conflict", "", "auth0|lc1"}},
		"deleted-in-auth0.csv":    {cols, {"auth0|gone", "imported", "", "", "auth0|gone"}},
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Errorf("%d files, want %d", len(entries), len(want))
	}
	for name, recs := range want {
		got := readCSV(t, filepath.Join(dir, name))
		if !reflect.DeepEqual(got, recs) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, recs)
		}
		for _, col := range got[0] {
			if strings.Contains(col, "email") {
				t.Errorf("%s has column %q", name, col)
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "conflicts.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "auth0_user_id,outcome,reason,detail,firebase_uid\ngoogle-oauth2|7,conflict,email_exists,\"held by \"\"x\"\", and y\",fb7\n"; string(raw) != want {
		t.Errorf("conflicts.csv bytes %q, want %q", raw, want)
	}
}

func TestReportCSVsNameTheFileThatFails(t *testing.T) {
	dir := t.TempDir()
	// A directory where a file should go makes os.Create fail.
	if err := os.Mkdir(filepath.Join(dir, "need-password-export.csv"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := sampleReport().WriteCSVs(dir)
	if err == nil || !strings.Contains(err.Error(), "need-password-export.csv") {
		t.Fatalf("err = %v, want one naming need-password-export.csv", err)
	}
}

package operator

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
)

// TestReportCountsDatabaseUsersByPasswordState: database users are counted
// as imported with their hash, migrated on login, still waiting, or other
// (a conflict of the password path), from the ledger alone and from an
// export joined with it; only the waiting ones need the export.
func TestReportCountsDatabaseUsersByPasswordState(t *testing.T) {
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	entries := []events.LedgerEntry{
		{Auth0UserID: "auth0|a", Outcome: events.OutcomeImported, Reason: events.ReasonPasswordHash, FirebaseUID: "auth0|a", Sources: []events.Source{events.SourceHashExport}},
		{Auth0UserID: "auth0|b", Outcome: events.OutcomeImported, Reason: events.ReasonLazyPassword, FirebaseUID: "auth0|b"},
		{Auth0UserID: "auth0|c", Outcome: events.OutcomeSkipped, Reason: events.ReasonDatabaseConnection, Sources: []events.Source{events.SourceBackfill}},
		{Auth0UserID: "auth0|d", Outcome: events.OutcomeConflict, Reason: events.ReasonAccountExists, Sources: []events.Source{events.SourceBackfill, events.SourceHashExport}},
		imported("google-oauth2|1", "google-oauth2|1"),
	}
	kv := ledgerBucket(t, js, "PW_LEDGER", entries)
	rep, err := BuildReport(context.Background(), ReportConfig{UIDPolicy: events.UIDAuth0ID}, kv, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := PasswordCounts{ImportedWithHash: 1, MigratedOnLogin: 1, Waiting: 1, Other: 1}
	if rep.Passwords != want || len(rep.NeedPasswordExport) != 1 || rep.NeedPasswordExport[0].Auth0UserID != "auth0|c" {
		t.Fatalf("ledger: passwords %+v, need export %+v", rep.Passwords, rep.NeedPasswordExport)
	}

	// The same users in an export, plus one the ledger never saw.
	var lines []string
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		lines = append(lines, `{"user_id":"auth0|`+id+`","email":"`+id+`@example.com","identities":[{"provider":"auth0","connection":"Username-Password-Authentication","user_id":"`+id+`","isSocial":false}]}`)
	}
	file := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = BuildReport(context.Background(), ReportConfig{File: file, UIDPolicy: events.UIDAuth0ID}, kv, nil)
	if err != nil {
		t.Fatal(err)
	}
	want.Waiting = 2
	if rep.Passwords != want || len(rep.NeedPasswordExport) != 2 {
		t.Fatalf("export: passwords %+v, need export %+v", rep.Passwords, rep.NeedPasswordExport)
	}
}

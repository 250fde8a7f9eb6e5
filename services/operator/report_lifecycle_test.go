package operator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/testenv"
)

// TestReportCountsLifecycleChanges: deletions (of accounts signupsync
// created, before import, of accounts it did not create), applied updates
// and the changes still waiting (an email conflict, an identity linked in
// Auth0 but not in Firebase, an account imported after its user's deletion) are counted from the ledger's lifecycle
// records, and the waiting ones are listed without personal data.
func TestReportCountsLifecycleChanges(t *testing.T) {
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	entries := []events.LedgerEntry{
		{Auth0UserID: "github|1", Outcome: events.OutcomeDeleted, Reason: events.ReasonDeletedInAuth0, FirebaseUID: "github|1",
			Lifecycle: &events.LifecycleState{DeletedAt: at, FirebaseDeletedAt: at, OutcomeBefore: events.OutcomeImported, Result: events.LifecycleFirebaseDeleted, Events: 1}},
		{Auth0UserID: "github|2", Outcome: events.OutcomeDeleted, Reason: events.ReasonDeletedInAuth0,
			Lifecycle: &events.LifecycleState{DeletedAt: at, Result: events.LifecycleDeletedBeforeImport, Events: 1}},
		{Auth0UserID: "github|3", Outcome: events.OutcomeAlreadyPresent, Reason: events.ReasonSameUIDAndProvider, FirebaseUID: "github|3",
			Lifecycle: &events.LifecycleState{DeletedAt: at, Result: events.LifecycleNotOurs, Events: 1}},
		{Auth0UserID: "github|4", Outcome: events.OutcomeImported, FirebaseUID: "github|4",
			Lifecycle: &events.LifecycleState{UpdatedAt: at, SyncedAt: at, Result: events.LifecycleProfileUpdated, Events: 2}},
		{Auth0UserID: "github|5", Outcome: events.OutcomeImported, FirebaseUID: "github|5",
			Lifecycle: &events.LifecycleState{UpdatedAt: at, SyncedAt: at.Add(-time.Hour), Result: events.LifecycleEmailConflict, Detail: "email held by uid other", Events: 2}},
		{Auth0UserID: "github|6", Outcome: events.OutcomeDeleted, Reason: events.ReasonDeletedInAuth0,
			Lifecycle: &events.LifecycleState{DeletedAt: at, OrphanUID: "github|6", Result: events.LifecycleDeletedBeforeImport, Events: 1}},
		imported("github|7", "github|7"),
		{Auth0UserID: "github|8", Outcome: events.OutcomeImported, FirebaseUID: "github|8",
			Lifecycle: &events.LifecycleState{UpdatedAt: at, SyncedAt: at, Result: events.LifecycleIdentityUnproven, Detail: "the new facebook.com identity is not linked", Events: 1}},
	}
	kv := ledgerBucket(t, js, "LC_LEDGER", entries)
	rep, err := BuildReport(context.Background(), ReportConfig{UIDPolicy: events.UIDAuth0ID}, kv, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := LifecycleCounts{Deleted: 3, FirebaseDeleted: 1, DeletedBeforeImport: 2, DeletedNotOurs: 1, Updated: 3, PendingConflicts: 2, PendingDeletions: 1}
	if rep.Lifecycle != want {
		t.Fatalf("lifecycle counts %+v, want %+v", rep.Lifecycle, want)
	}
	if rep.Outcomes[string(events.OutcomeDeleted)+"/"+events.ReasonDeletedInAuth0] != 3 {
		t.Fatalf("outcomes %v: want 3 deleted/%s", rep.Outcomes, events.ReasonDeletedInAuth0)
	}
	got := fmt.Sprint(rep.LifecycleConflicts)
	if len(rep.LifecycleConflicts) != 3 || rep.LifecycleConflicts[0].Auth0UserID != "github|5" || rep.LifecycleConflicts[0].Reason != events.LifecycleEmailConflict ||
		rep.LifecycleConflicts[1].Auth0UserID != "github|6" || rep.LifecycleConflicts[1].FirebaseUID != "github|6" ||
		rep.LifecycleConflicts[2].Auth0UserID != "github|8" || rep.LifecycleConflicts[2].Reason != events.LifecycleIdentityUnproven {
		t.Fatalf("lifecycle conflicts %s", got)
	}
}

// auth0Users answers GetUser from a set, 404 for the rest, and fails the
// first failures requests with a transient error.
type auth0Users struct {
	have     map[string]bool
	failures int
	calls    int
}

func (a *auth0Users) GetUser(_ context.Context, id string) (events.SignupData, error) {
	a.calls++
	if a.failures > 0 {
		a.failures--
		return events.SignupData{}, &auth0api.TransientError{Err: errors.New("503"), RetryAfter: time.Millisecond}
	}
	if !a.have[id] {
		return events.SignupData{}, fmt.Errorf("get %s: %w", id, auth0api.ErrNotFound)
	}
	return events.SignupData{UserID: id}, nil
}

// TestAuth0CheckListsImportedUsersAuth0NoLongerHas: of the users the
// ledger holds as imported, the ones the Management API answers 404 for
// are listed (deletions no webhook reported); users signupsync did not
// create, or already deleted, are not asked about; transient failures are
// retried.
func TestAuth0CheckListsImportedUsersAuth0NoLongerHas(t *testing.T) {
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	entries := []events.LedgerEntry{
		imported("github|1", "github|1"), imported("github|2", "github|2"), imported("github|3", "github|3"),
		{Auth0UserID: "github|4", Outcome: events.OutcomeAlreadyPresent, FirebaseUID: "github|4"},
		{Auth0UserID: "github|5", Outcome: events.OutcomeDeleted, Reason: events.ReasonDeletedInAuth0},
		{Auth0UserID: "github|6", Outcome: events.OutcomeSkipped, Reason: events.ReasonLinkedIdentities},
	}
	kv := ledgerBucket(t, js, "CHECK_LEDGER", entries)
	users := &auth0Users{have: map[string]bool{"github|2": true}, failures: 2}
	cfg := Auth0CheckConfig{RPS: 0, Concurrency: 1, MaxAttempts: 3}
	rows, checked, err := FindDeletedInAuth0(context.Background(), cfg, kv, users)
	if !errors.Is(err, ErrDeletedInAuth0) || checked != 3 {
		t.Fatalf("err %v, checked %d: want ErrDeletedInAuth0 after 3 users", err, checked)
	}
	if len(rows) != 2 || rows[0].Auth0UserID != "github|1" || rows[1].Auth0UserID != "github|3" || rows[0].Problem != ProblemDeletedInAuth0 || rows[0].FirebaseUID != "github|1" {
		t.Fatalf("rows %+v", rows)
	}
	if users.calls != 5 {
		t.Fatalf("%d requests, want 5 (3 users, 2 retried)", users.calls)
	}

	// A failure that outlasts the attempts stops the check with an error
	// that is not a finding.
	users = &auth0Users{have: map[string]bool{"github|1": true, "github|2": true, "github|3": true}, failures: 100}
	_, _, err = FindDeletedInAuth0(context.Background(), cfg, kv, users)
	if err == nil || errors.Is(err, ErrDeletedInAuth0) || !strings.Contains(err.Error(), "check auth0 user") {
		t.Fatalf("persistent failure: %v", err)
	}
}

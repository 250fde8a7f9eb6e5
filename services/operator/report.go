package operator

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0export"
)

// Lookup is the part of the Firebase Auth client the verification pass
// uses. *auth.Client satisfies it. GetUsers returns every account that
// matches any of the identifiers, several for one email or provider
// identity when Firebase holds several (production's ImportUsers does not
// refuse duplicates), each at least once and in no particular order.
type Lookup interface {
	GetUsers(ctx context.Context, ids []auth.UserIdentifier) (*auth.GetUsersResult, error)
}

// ReportConfig configures the cutover report.
type ReportConfig struct {
	// File is an Auth0 export to report on; empty means the whole ledger.
	File   string
	Tenant string
	// UIDPolicy gives the expected Firebase uid of users the ledger has no
	// uid for.
	UIDPolicy events.UIDPolicy
	// Verify looks every eligible user up in Firebase.
	Verify bool
	// Providers maps Auth0 social strategies to Firebase provider ids, as
	// the importer's; nil means events.SocialProviders().
	Providers map[string]string
}

// Row is one user in a follow-up list.
type Row struct {
	Auth0UserID string `json:"auth0_user_id"`
	Outcome     string `json:"outcome"`
	Reason      string `json:"reason,omitempty"`
	Detail      string `json:"detail,omitempty"`
	FirebaseUID string `json:"firebase_uid,omitempty"`
	// Problem is set in [Report.Offenders]: one of the Problem constants.
	Problem string `json:"problem,omitempty"`
	// OtherUID is the uid of the other account that holds the user's email
	// or provider identity, for those problems.
	OtherUID string `json:"other_uid,omitempty"`
}

// Report is the cutover report.
type Report struct {
	Source    string `json:"source"`
	Users     int    `json:"users"`
	Malformed int    `json:"malformed_lines,omitempty"`
	// Outcomes counts users by "outcome" or "outcome/reason"; users of an
	// export the ledger never saw count as "not_seen".
	Outcomes map[string]int `json:"outcomes"`
	// NeedPasswordExport are database-connection users: importing them
	// needs Auth0's password-hash export.
	NeedPasswordExport []Row `json:"need_password_export"`
	Conflicts          []Row `json:"conflicts"`
	// Missing are eligible users with no Firebase account at their uid.
	Missing []Row `json:"missing"`
	// Offenders lists every problem the verification pass found, a row per
	// user and problem (and other account): the Missing users again, and
	// users whose account lacks their provider identity or whose email or
	// provider identity another account also holds.
	Offenders []Row `json:"offenders"`
	// Verified counts the users Firebase holds exactly as expected.
	Verified int `json:"verified"`
	// Passwords counts the database-connection users by where their
	// password stands.
	Passwords PasswordCounts `json:"passwords"`
	// Lifecycle counts what Auth0's deletions and profile changes did to
	// the users until now (the importer's lifecycle consumer).
	Lifecycle LifecycleCounts `json:"lifecycle"`
	// LifecycleConflicts are the users whose last profile change could not
	// be applied (their new email belongs to another Firebase account), or
	// whose deleted user still has an account signupsync imported late:
	// Reason is the lifecycle result.
	LifecycleConflicts []Row `json:"lifecycle_conflicts"`
	// DeletedInAuth0 are users the ledger holds as imported that Auth0 no
	// longer has (filled by [FindDeletedInAuth0], report --check-auth0):
	// deletions no lifecycle event reported.
	DeletedInAuth0 []Row `json:"deleted_in_auth0,omitempty"`
}

// LifecycleCounts counts ledger users by what their changes in Auth0 did.
// A user counts once in each count that applies.
type LifecycleCounts struct {
	// Deleted: users deleted in Auth0 (outcome deleted).
	Deleted int `json:"deleted"`
	// FirebaseDeleted: of those, the ones whose Firebase account signupsync
	// had created and deleted.
	FirebaseDeleted int `json:"firebase_deleted"`
	// DeletedBeforeImport: of those, the ones deleted before any signup of
	// theirs was imported: never created.
	DeletedBeforeImport int `json:"deleted_before_import"`
	// DeletedNotOurs: users deleted in Auth0 whose Firebase account
	// signupsync did not create (already_present): recorded, untouched.
	DeletedNotOurs int `json:"deleted_not_ours"`
	// Updated: users whose Firebase account was updated at least once from
	// a profile change read from the Management API.
	Updated int `json:"updated"`
	// PendingConflicts: users whose last profile change is not applied
	// because the new email belongs to another Firebase account, or whose
	// identity linked in Auth0 is not linked in Firebase (identity_conflict,
	// identity_unproven).
	PendingConflicts int `json:"pending_conflicts"`
	// PendingDeletions: users deleted in Auth0 with an account that an
	// import created after the deletion and that is not deleted yet.
	PendingDeletions int `json:"pending_deletions"`
}

// count adds one ledger entry to c, and its row to conflicts when a
// lifecycle change waits for someone.
func (c *LifecycleCounts) count(le *events.LedgerEntry, row Row, conflicts *[]Row) {
	lc := le.Lifecycle
	if le.Outcome == events.OutcomeDeleted {
		c.Deleted++
	}
	if lc == nil {
		return
	}
	switch {
	case le.Outcome == events.OutcomeDeleted && !lc.FirebaseDeletedAt.IsZero():
		c.FirebaseDeleted++
	case le.Outcome == events.OutcomeDeleted && lc.OutcomeBefore == "":
		c.DeletedBeforeImport++
	case le.Outcome == events.OutcomeAlreadyPresent && !lc.DeletedAt.IsZero():
		c.DeletedNotOurs++
	}
	if !lc.SyncedAt.IsZero() {
		c.Updated++
	}
	switch {
	case lc.OrphanUID != "":
		c.PendingDeletions++
		row.Reason, row.FirebaseUID = "pending_deletion", lc.OrphanUID
		*conflicts = append(*conflicts, row)
	case lc.Result == events.LifecycleEmailConflict, lc.Result == events.LifecycleIdentityConflict, lc.Result == events.LifecycleIdentityUnproven:
		c.PendingConflicts++
		row.Reason, row.Detail = lc.Result, lc.Detail
		*conflicts = append(*conflicts, row)
	}
}

// PasswordCounts counts database-connection users: imported with the
// bcrypt hash of Auth0's export (imported/password_hash), migrated when
// they signed in (imported/lazy_password, the exchange's password
// endpoint), still waiting (skipped/database_connection, or unknown to the
// ledger), and the rest (conflicts, dead letters, other skips of the
// password path: see Outcomes).
type PasswordCounts struct {
	ImportedWithHash int `json:"imported_with_hash"`
	MigratedOnLogin  int `json:"migrated_on_login"`
	Waiting          int `json:"waiting"`
	Other            int `json:"other"`
}

// countPassword adds a database-connection user to c.
func (c *PasswordCounts) count(le *events.LedgerEntry) {
	switch {
	case le == nil || le.Outcome == "" || le.Reason == events.ReasonDatabaseConnection:
		c.Waiting++
	case le.Outcome.Final() && le.Reason == events.ReasonPasswordHash:
		c.ImportedWithHash++
	case le.Outcome.Final() && le.Reason == events.ReasonLazyPassword:
		c.MigratedOnLogin++
	default:
		c.Other++
	}
}

// databaseUser reports whether a ledger entry (without a profile) is a
// database-connection user's: its reason says so, or the password path
// recorded it.
func databaseUser(le *events.LedgerEntry) bool {
	switch le.Reason {
	case events.ReasonDatabaseConnection, events.ReasonPasswordHash, events.ReasonLazyPassword:
		return true
	}
	for _, s := range le.Sources {
		if s == events.SourceHashExport {
			return true
		}
	}
	return false
}

// Errors returned by [BuildReport] with the report when the verification
// pass finds problems: ErrUnverified whenever there is any offender, joined
// with ErrMissing when some accounts are absent.
var (
	ErrUnverified = errors.New("firebase does not hold every user as expected")
	ErrMissing    = errors.New("eligible users are missing from Firebase")
)

// BuildReport reads the ledger (and the export, when given), counts
// outcomes, lists follow-ups and, with Verify, checks Firebase in batches
// of 100 identifiers: for every user the ledger says Firebase holds or
// dead-lettered (with File: every eligible user of the export whose ledger
// outcome is not conflict or skipped), the account at the expected uid
// exists and carries the user's provider identity, and no other account
// holds the user's email or provider identity. It returns the report with
// an error wrapping [ErrUnverified] (and [ErrMissing]) when the check finds
// offenders, and a partial report with any other error. It is safe for
// concurrent use if fb is.
func BuildReport(ctx context.Context, cfg ReportConfig, ledger jetstream.KeyValue, fb Lookup) (Report, error) {
	if !cfg.UIDPolicy.Valid() {
		return Report{}, fmt.Errorf("uid policy %q", cfg.UIDPolicy)
	}
	if cfg.Verify && fb == nil {
		return Report{}, errors.New("report: verification needs Firebase")
	}
	rep := Report{Outcomes: map[string]int{}, NeedPasswordExport: []Row{}, Conflicts: []Row{}, Missing: []Row{}, Offenders: []Row{}, LifecycleConflicts: []Row{}}
	var expect []expectation // eligible users and what Firebase must hold for them
	add := func(d *events.SignupData, le *events.LedgerEntry) {
		rep.Users++
		row := Row{Outcome: "not_seen"}
		if le != nil {
			row = Row{Auth0UserID: le.Auth0UserID, Outcome: string(le.Outcome), Reason: le.Reason, Detail: le.Detail, FirebaseUID: le.FirebaseUID}
		}
		if d != nil {
			row.Auth0UserID = d.UserID
		}
		key := row.Outcome
		if row.Reason != "" && row.Outcome != string(events.OutcomeImported) && row.Outcome != string(events.OutcomeAlreadyPresent) {
			key += "/" + row.Reason
		}
		rep.Outcomes[key]++
		if le != nil {
			rep.Lifecycle.count(le, row, &rep.LifecycleConflicts)
		}
		eligible := false
		var el events.Eligibility
		email := ""
		switch {
		case d != nil:
			el = events.Classify(*d, cfg.Providers)
			eligible = el.OK
			email = d.Email
			if el.Reason == events.ReasonDatabaseConnection {
				rep.Passwords.count(le)
				if le == nil || le.Reason == events.ReasonDatabaseConnection {
					rep.NeedPasswordExport = append(rep.NeedPasswordExport, row)
				}
			}
		case le != nil:
			if databaseUser(le) {
				rep.Passwords.count(le)
			}
			eligible = le.Outcome.Final() || le.Outcome == events.OutcomeDeadLettered
			if le.Reason == events.ReasonDatabaseConnection {
				rep.NeedPasswordExport = append(rep.NeedPasswordExport, row)
			}
			// The ledger keeps no profile: the identity follows from the
			// user id, the email from the account found at the uid.
			ids := events.DeriveIdentity(le.Auth0UserID, "", "", "")
			if len(ids) == 1 && cfg.Providers != nil {
				_, ids[0].IsSocial = cfg.Providers[ids[0].Provider]
			}
			el = events.Classify(events.SignupData{UserID: le.Auth0UserID, Identities: ids}, cfg.Providers)
		}
		if row.Outcome == string(events.OutcomeConflict) {
			rep.Conflicts = append(rep.Conflicts, row)
			return
		}
		if eligible && row.Outcome != string(events.OutcomeSkipped) {
			if row.FirebaseUID == "" {
				row.FirebaseUID = cfg.UIDPolicy.FirebaseUID(row.Auth0UserID)
			}
			expect = append(expect, newExpectation(row, el, email))
		}
	}
	if cfg.File == "" {
		rep.Source = "ledger"
		if err := eachLedgerEntry(ctx, ledger, func(le events.LedgerEntry) { add(nil, &le) }); err != nil {
			return rep, err
		}
	} else {
		rep.Source = cfg.File
		if err := eachExportUser(ctx, cfg, ledger, &rep, add); err != nil {
			return rep, err
		}
	}
	sortRows(rep.NeedPasswordExport)
	sortRows(rep.Conflicts)
	sortRows(rep.LifecycleConflicts)
	if !cfg.Verify {
		return rep, nil
	}
	if err := verify(ctx, fb, expect, &rep); err != nil {
		return rep, err
	}
	sortRows(rep.Missing)
	sortOffenders(rep.Offenders)
	return rep, verdict(rep, len(expect))
}

func eachLedgerEntry(ctx context.Context, kv jetstream.KeyValue, fn func(events.LedgerEntry)) error {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list ledger: %w", err)
	}
	defer lister.Stop()
	for k := range lister.Keys() {
		v, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read ledger %s: %w", k, err)
		}
		le, err := events.UnmarshalLedger(v.Value())
		if err != nil {
			return err
		}
		fn(le)
	}
	return nil
}

func eachExportUser(ctx context.Context, cfg ReportConfig, kv jetstream.KeyValue, rep *Report, fn func(*events.SignupData, *events.LedgerEntry)) error {
	f, err := os.Open(cfg.File)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	r, err := auth0export.NewReader(f, 0, cfg.Tenant)
	if err != nil {
		return fmt.Errorf("report %s: %w", cfg.File, err)
	}
	seen := map[string]bool{}
	for r.Next() {
		d, err := r.User()
		if err != nil {
			rep.Malformed++
			continue
		}
		if seen[d.UserID] {
			continue
		}
		seen[d.UserID] = true
		v, err := kv.Get(ctx, events.LedgerKey(d.UserID))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			fn(&d, nil)
		case err != nil:
			return fmt.Errorf("read ledger %s: %w", d.UserID, err)
		default:
			le, err := events.UnmarshalLedger(v.Value())
			if err != nil {
				return err
			}
			fn(&d, &le)
		}
	}
	return r.Fatal()
}

func sortRows(rows []Row) {
	sort.Slice(rows, func(i, j int) bool { return rows[i].Auth0UserID < rows[j].Auth0UserID })
}

// WriteCSV writes rows with a header line. The columns never include the
// problem: use [WriteOffendersCSV] for [Report.Offenders].
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"auth0_user_id", "outcome", "reason", "detail", "firebase_uid"})
	for _, r := range rows {
		_ = cw.Write([]string{r.Auth0UserID, r.Outcome, r.Reason, r.Detail, r.FirebaseUID})
	}
	cw.Flush()
	return cw.Error()
}

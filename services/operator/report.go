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
// uses. *auth.Client satisfies it.
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
}

// Row is one user in a follow-up list.
type Row struct {
	Auth0UserID string `json:"auth0_user_id"`
	Outcome     string `json:"outcome"`
	Reason      string `json:"reason,omitempty"`
	Detail      string `json:"detail,omitempty"`
	FirebaseUID string `json:"firebase_uid,omitempty"`
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
	Missing  []Row `json:"missing"`
	Verified int   `json:"verified"`
}

// ErrMissing is returned by [BuildReport] (with the report) when the
// verification pass found eligible users absent from Firebase.
var ErrMissing = errors.New("eligible users are missing from Firebase")

// BuildReport reads the ledger (and the export, when given), counts
// outcomes, lists follow-ups and, with Verify, checks Firebase in batches
// of 100 identifiers.
func BuildReport(ctx context.Context, cfg ReportConfig, ledger jetstream.KeyValue, fb Lookup) (Report, error) {
	if !cfg.UIDPolicy.Valid() {
		return Report{}, fmt.Errorf("uid policy %q", cfg.UIDPolicy)
	}
	if cfg.Verify && fb == nil {
		return Report{}, errors.New("report: verification needs Firebase")
	}
	rep := Report{Outcomes: map[string]int{}, NeedPasswordExport: []Row{}, Conflicts: []Row{}, Missing: []Row{}}
	var expect []Row // eligible users and the uid they must have
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
		eligible := false
		switch {
		case d != nil:
			el := events.Classify(*d, nil)
			eligible = el.OK
			if el.Reason == events.ReasonDatabaseConnection {
				rep.NeedPasswordExport = append(rep.NeedPasswordExport, row)
			}
		case le != nil:
			eligible = le.Outcome.Final() || le.Outcome == events.OutcomeDeadLettered
			if le.Reason == events.ReasonDatabaseConnection {
				rep.NeedPasswordExport = append(rep.NeedPasswordExport, row)
			}
		}
		if row.Outcome == string(events.OutcomeConflict) {
			rep.Conflicts = append(rep.Conflicts, row)
			return
		}
		if eligible && row.Outcome != string(events.OutcomeSkipped) {
			if row.FirebaseUID == "" {
				row.FirebaseUID = cfg.UIDPolicy.FirebaseUID(row.Auth0UserID)
			}
			expect = append(expect, row)
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
	if !cfg.Verify {
		return rep, nil
	}
	for i := 0; i < len(expect); i += 100 {
		chunk := expect[i:min(i+100, len(expect))]
		ids := make([]auth.UserIdentifier, len(chunk))
		for j, r := range chunk {
			ids[j] = auth.UIDIdentifier{UID: r.FirebaseUID}
		}
		res, err := fb.GetUsers(ctx, ids)
		if err != nil {
			return rep, fmt.Errorf("verify: firebase GetUsers: %w", err)
		}
		found := make(map[string]bool, len(res.Users))
		for _, u := range res.Users {
			found[u.UID] = true
		}
		for _, r := range chunk {
			if found[r.FirebaseUID] {
				rep.Verified++
			} else {
				rep.Missing = append(rep.Missing, r)
			}
		}
	}
	sortRows(rep.Missing)
	if len(rep.Missing) > 0 {
		return rep, fmt.Errorf("%w: %d of %d", ErrMissing, len(rep.Missing), len(expect))
	}
	return rep, nil
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

// WriteCSV writes rows with a header line.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"auth0_user_id", "outcome", "reason", "detail", "firebase_uid"})
	for _, r := range rows {
		_ = cw.Write([]string{r.Auth0UserID, r.Outcome, r.Reason, r.Detail, r.FirebaseUID})
	}
	cw.Flush()
	return cw.Error()
}

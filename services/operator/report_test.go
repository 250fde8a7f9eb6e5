package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
)

// prodLookup answers GetUsers as production Firebase does: every account
// that matches any identifier (emails case-insensitively), several accounts
// per email or provider identity allowed. Like the SDK, it refuses more than
// 100 identifiers; it records how many each call had.
type prodLookup struct {
	accounts []*auth.UserRecord
	mu       sync.Mutex
	calls    []int
}

func (p *prodLookup) GetUsers(_ context.Context, ids []auth.UserIdentifier) (*auth.GetUsersResult, error) {
	p.mu.Lock()
	p.calls = append(p.calls, len(ids))
	p.mu.Unlock()
	if len(ids) > 100 {
		return nil, fmt.Errorf("%d identifiers: at most 100", len(ids))
	}
	res := &auth.GetUsersResult{}
	for _, a := range p.accounts {
		for _, id := range ids {
			if prodMatches(id, a) {
				res.Users = append(res.Users, a)
				break
			}
		}
	}
	return res, nil
}

func prodMatches(id auth.UserIdentifier, a *auth.UserRecord) bool {
	switch id := id.(type) {
	case auth.UIDIdentifier:
		return id.UID == a.UID
	case auth.EmailIdentifier:
		return a.Email != "" && strings.EqualFold(id.Email, a.Email)
	case auth.ProviderIdentifier:
		for _, p := range a.ProviderUserInfo {
			if p.ProviderID == id.ProviderID && p.UID == id.ProviderUID {
				return true
			}
		}
	}
	return false
}

// account is a Firebase account with an email (or none) and provider
// identities given as "provider id/raw id".
func account(uid, email string, providers ...string) *auth.UserRecord {
	a := &auth.UserRecord{UserInfo: &auth.UserInfo{UID: uid, Email: email, ProviderID: "firebase"}}
	for _, p := range providers {
		id, raw, _ := strings.Cut(p, "/")
		a.ProviderUserInfo = append(a.ProviderUserInfo, &auth.UserInfo{ProviderID: id, UID: raw, Email: email})
	}
	return a
}

// exportLine is an Auth0 export line of a user of one social identity.
func exportLine(userID, email string) string {
	provider, raw, _ := strings.Cut(userID, "|")
	b, _ := json.Marshal(map[string]any{
		"user_id": userID, "email": email,
		"identities": []map[string]any{{"provider": provider, "connection": provider, "user_id": raw, "isSocial": true}},
	})
	return string(b)
}

func imported(userID, uid string) events.LedgerEntry {
	return events.LedgerEntry{Auth0UserID: userID, Outcome: events.OutcomeImported, FirebaseUID: uid, Sources: []events.Source{events.SourceBackfill}}
}

// ledgerBucket creates a ledger bucket of its own, holding entries.
func ledgerBucket(t *testing.T, js jetstream.JetStream, name string, entries []events.LedgerEntry) jetstream.KeyValue {
	t.Helper()
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	for _, le := range entries {
		b, err := events.MarshalLedger(le)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, events.LedgerKey(le.Auth0UserID), b); err != nil {
			t.Fatal(err)
		}
	}
	return kv
}

// offense is one expected row of Report.Offenders.
type offense struct{ user, problem, other string }

func TestReportFindsWhatProductionFirebaseGetsWrong(t *testing.T) {
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	alreadyPresent := events.LedgerEntry{Auth0UserID: "github|2", Outcome: events.OutcomeAlreadyPresent, Reason: events.ReasonProviderElsewhere, FirebaseUID: "native-2"}
	conflict := events.LedgerEntry{Auth0UserID: "apple|3", Outcome: events.OutcomeConflict, Reason: events.ReasonEmailInUse, FirebaseUID: "native-3"}
	tests := []struct {
		name     string
		ledger   []events.LedgerEntry
		export   []string // lines of an export to report on; none: the ledger
		accounts []*auth.UserRecord
		want     []offense
		wantErrs []error // all must match; none: no error
		verified int
	}{
		{
			name:   "as expected",
			ledger: []events.LedgerEntry{imported("google-oauth2|1", "google-oauth2|1"), alreadyPresent, conflict},
			accounts: []*auth.UserRecord{
				account("google-oauth2|1", "u1@example.com", "google.com/1"),
				account("native-2", "u2@example.com", "github.com/2"),
				account("native-3", "u3@example.com"),
			},
			verified: 2,
		},
		{
			name:     "conflict is no offender for the email it found in use",
			ledger:   []events.LedgerEntry{imported("google-oauth2|1", "google-oauth2|1"), conflict},
			export:   []string{exportLine("google-oauth2|1", "u1@example.com"), exportLine("apple|3", "U3@example.com")},
			accounts: []*auth.UserRecord{account("google-oauth2|1", "u1@example.com", "google.com/1"), account("native-3", "u3@example.com")},
			verified: 1,
		},
		{
			name:     "missing",
			ledger:   []events.LedgerEntry{imported("google-oauth2|1", "google-oauth2|1"), imported("facebook|4", "facebook|4")},
			accounts: []*auth.UserRecord{account("google-oauth2|1", "u1@example.com", "google.com/1")},
			want:     []offense{{"facebook|4", ProblemMissing, ""}},
			wantErrs: []error{ErrMissing, ErrUnverified},
			verified: 1,
		},
		{
			name:     "missing provider",
			ledger:   []events.LedgerEntry{imported("google-oauth2|1", "google-oauth2|1")},
			accounts: []*auth.UserRecord{account("google-oauth2|1", "u1@example.com", "google.com/999")},
			want:     []offense{{"google-oauth2|1", ProblemMissingProvider, ""}},
			wantErrs: []error{ErrUnverified},
		},
		{
			name:   "email of the ledger user's account on another account",
			ledger: []events.LedgerEntry{imported("google-oauth2|1", "google-oauth2|1")},
			accounts: []*auth.UserRecord{
				account("google-oauth2|1", "U1@Example.com", "google.com/1"),
				account("dup-1", "u1@example.com"),
			},
			want:     []offense{{"google-oauth2|1", ProblemEmailOnOtherAccount, "dup-1"}},
			wantErrs: []error{ErrUnverified},
		},
		{
			name:   "export email on another account",
			ledger: []events.LedgerEntry{imported("twitter|5", "twitter|5")},
			export: []string{exportLine("twitter|5", "u5@example.com")},
			accounts: []*auth.UserRecord{
				account("twitter|5", "", "twitter.com/5"),
				account("dup-5", "U5@EXAMPLE.COM"),
			},
			want:     []offense{{"twitter|5", ProblemEmailOnOtherAccount, "dup-5"}},
			wantErrs: []error{ErrUnverified},
		},
		{
			name:   "provider identity on another account",
			ledger: []events.LedgerEntry{imported("google-oauth2|6", "google-oauth2|6")},
			accounts: []*auth.UserRecord{
				account("google-oauth2|6", "u6@example.com", "google.com/6"),
				account("dup-6", "other@example.com", "google.com/6"),
			},
			want:     []offense{{"google-oauth2|6", ProblemProviderOnOtherAccount, "dup-6"}},
			wantErrs: []error{ErrUnverified},
		},
		{
			name:   "never imported, its identity and email on three other accounts",
			export: []string{exportLine("yahoo|7", "u7@example.com")},
			accounts: []*auth.UserRecord{
				account("dup-7a", "u7@example.com"),
				account("dup-7b", "U7@example.com"),
				account("dup-7c", "x@example.com", "yahoo.com/7"),
			},
			want: []offense{
				{"yahoo|7", ProblemEmailOnOtherAccount, "dup-7a"},
				{"yahoo|7", ProblemEmailOnOtherAccount, "dup-7b"},
				{"yahoo|7", ProblemMissing, ""},
				{"yahoo|7", ProblemProviderOnOtherAccount, "dup-7c"},
			},
			wantErrs: []error{ErrMissing, ErrUnverified},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := ledgerBucket(t, js, fmt.Sprintf("LEDGER_%d", i), tt.ledger)
			cfg := ReportConfig{UIDPolicy: events.UIDAuth0ID, Verify: true}
			if tt.export != nil {
				cfg.File = filepath.Join(t.TempDir(), "export.json")
				if err := os.WriteFile(cfg.File, []byte(strings.Join(tt.export, "\n")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fb := &prodLookup{accounts: tt.accounts}
			rep, err := BuildReport(context.Background(), cfg, kv, fb)
			for _, want := range tt.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("BuildReport error %v, want %v", err, want)
				}
			}
			if len(tt.wantErrs) == 0 && err != nil {
				t.Errorf("BuildReport error %v, want none", err)
			}
			var got []offense
			for _, r := range rep.Offenders {
				got = append(got, offense{r.Auth0UserID, r.Problem, r.OtherUID})
				if r.FirebaseUID == "" || r.Outcome == "" {
					t.Errorf("offender row %+v lacks the expected uid or the outcome", r)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("offenders %v\nwant %v", got, tt.want)
			}
			missing := 0
			for _, o := range tt.want {
				if o.problem == ProblemMissing {
					missing++
				}
			}
			if errors.Is(err, ErrMissing) != (missing > 0) {
				t.Errorf("error %v with %d missing", err, missing)
			}
			if len(rep.Missing) != missing || rep.Verified != tt.verified {
				t.Errorf("missing %+v, verified %d; want %d missing, %d verified", rep.Missing, rep.Verified, missing, tt.verified)
			}
			b, _ := json.Marshal(rep)
			if strings.Contains(string(b), "@") {
				t.Errorf("report holds an email: %s", b)
			}
			for _, c := range fb.calls {
				if c > 100 {
					t.Errorf("GetUsers with %d identifiers", c)
				}
			}
		})
	}
}

// TestReportBatchesLookups checks that look-ups fill GetUsers calls up to
// 100 identifiers rather than calling once per user: a ledger user needs
// its uid and provider identity, then the email its account carries; an
// export user its uid, provider identity and email at once.
func TestReportBatchesLookups(t *testing.T) {
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	const users = 250
	var ledger []events.LedgerEntry
	var export []string
	fb := &prodLookup{}
	for i := range users {
		id := fmt.Sprintf("google-oauth2|%d", i)
		email := fmt.Sprintf("u%d@example.com", i)
		ledger = append(ledger, imported(id, id))
		export = append(export, exportLine(id, email))
		fb.accounts = append(fb.accounts, account(id, email, fmt.Sprintf("google.com/%d", i)))
	}
	kv := ledgerBucket(t, js, "LEDGER", ledger)
	file := filepath.Join(t.TempDir(), "export.json")
	if err := os.WriteFile(file, []byte(strings.Join(export, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		file  string
		calls int
	}{
		{"ledger", "", 10},  // 5 calls of 50 users by uid and provider, 5 of 50 emails
		{"export", file, 8}, // 33 users (99 identifiers) a call
	} {
		t.Run(tt.name, func(t *testing.T) {
			fb.calls = nil
			rep, err := BuildReport(context.Background(), ReportConfig{File: tt.file, UIDPolicy: events.UIDAuth0ID, Verify: true}, kv, fb)
			if err != nil || rep.Verified != users {
				t.Fatalf("BuildReport: %v, verified %d of %d", err, rep.Verified, users)
			}
			total := 0
			for _, c := range fb.calls {
				if c > 100 {
					t.Errorf("GetUsers with %d identifiers", c)
				}
				total += c
			}
			if len(fb.calls) != tt.calls || total != 3*users {
				t.Errorf("%d GetUsers calls with %d identifiers (%v), want %d calls with %d", len(fb.calls), total, fb.calls, tt.calls, 3*users)
			}
		})
	}
}

package operator

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"slices"
	"sort"
	"strings"

	"firebase.google.com/go/v4/auth"

	"github.com/signupsync/signupsync/events"
)

// The problems the verification pass reports in [Row.Problem]. Production
// Firebase's ImportUsers checks no duplicates: it replaces an existing uid
// and makes a duplicate email or provider identity an additional account,
// so the report checks each of these rather than trusting the import.
const (
	// ProblemMissing: no account at the expected uid.
	ProblemMissing = "missing"
	// ProblemMissingProvider: the account at the expected uid does not
	// carry the user's provider identity.
	ProblemMissingProvider = "missing_provider"
	// ProblemEmailOnOtherAccount: the account [Row.OtherUID] also holds
	// the user's email.
	ProblemEmailOnOtherAccount = "email_on_other_account"
	// ProblemProviderOnOtherAccount: the account [Row.OtherUID] also holds
	// the user's provider identity.
	ProblemProviderOnOtherAccount = "provider_on_other_account"
)

// maxIdentifiers is how many identifiers one GetUsers call takes.
const maxIdentifiers = 100

// expectation is what Firebase must hold for one user.
type expectation struct {
	row Row // row.FirebaseUID is the expected uid
	// provider and rawID are the Firebase provider id and the identity's
	// user_id; empty when the user's identity is unknown.
	provider, rawID string
	// email is lower-cased; empty when unknown (a ledger entry) or not a
	// valid address.
	email string
	ids   []auth.UserIdentifier
}

func newExpectation(row Row, el events.Eligibility, email string) expectation {
	e := expectation{row: row}
	if el.OK && el.FirebaseProvider != "" && el.Identity.UserID != "" {
		e.provider, e.rawID = el.FirebaseProvider, el.Identity.UserID
	}
	if m := strings.ToLower(email); validEmail(m) {
		e.email = m
	}
	// An identifier the SDK refuses would fail the whole call; a uid it
	// refuses cannot exist, so that user shows as missing.
	if uid := row.FirebaseUID; uid != "" && len(uid) <= 128 {
		e.ids = append(e.ids, auth.UIDIdentifier{UID: uid})
	}
	if e.provider != "" {
		e.ids = append(e.ids, auth.ProviderIdentifier{ProviderID: e.provider, ProviderUID: e.rawID})
	}
	if e.email != "" {
		e.ids = append(e.ids, auth.EmailIdentifier{Email: e.email})
	}
	return e
}

// validEmail accepts what both the importer and the Admin SDK accept.
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == "" && strings.Count(s, "@") == 1
}

// verify checks, for each expected user, that the account at the expected
// uid exists and carries the user's provider identity, and that no other
// account holds the user's email (the export's, and the one the account at
// the uid carries) or provider identity. It looks users up by uid, provider
// identity and email, as many users a GetUsers call as fit in 100
// identifiers, then the emails it learnt from the accounts found, in a
// second call per chunk. Findings go to rep; the error is a failed call.
func verify(ctx context.Context, fb Lookup, expect []expectation, rep *Report) error {
	for len(expect) > 0 {
		n, ids := 0, 0
		for n < len(expect) && (n == 0 || ids+len(expect[n].ids) <= maxIdentifiers) {
			ids += len(expect[n].ids)
			n++
		}
		chunk := expect[:n]
		expect = expect[n:]
		found, err := lookupChunk(ctx, fb, chunk)
		if err != nil {
			return err
		}
		for _, e := range chunk {
			found.check(e, rep)
		}
	}
	return nil
}

func lookupChunk(ctx context.Context, fb Lookup, chunk []expectation) (*accounts, error) {
	found := &accounts{byUID: map[string]*auth.UserRecord{}, byEmail: map[string][]string{}, byProvider: map[string][]string{}}
	var ids []auth.UserIdentifier
	asked := map[string]bool{}
	for _, e := range chunk {
		ids = append(ids, e.ids...)
		if e.email != "" {
			asked[e.email] = true
		}
	}
	if err := found.get(ctx, fb, ids); err != nil {
		return nil, err
	}
	// The ledger keeps no email, and an account may carry another one than
	// the export: look up the emails of the accounts at the expected uids.
	var more []auth.UserIdentifier
	for _, e := range chunk {
		a := found.byUID[e.row.FirebaseUID]
		if a == nil {
			continue
		}
		if m := strings.ToLower(a.Email); validEmail(m) && !asked[m] {
			asked[m] = true
			more = append(more, auth.EmailIdentifier{Email: m})
		}
	}
	for len(more) > 0 {
		k := min(maxIdentifiers, len(more))
		if err := found.get(ctx, fb, more[:k]); err != nil {
			return nil, err
		}
		more = more[k:]
	}
	return found, nil
}

// accounts indexes the accounts a chunk's look-ups returned. Only the
// result is trusted, never GetUsersResult.NotFound: the SDK matches emails
// case-sensitively there.
type accounts struct {
	byUID      map[string]*auth.UserRecord
	byEmail    map[string][]string // lower-cased email → uids
	byProvider map[string][]string // providerKey → uids
}

func providerKey(provider, rawID string) string { return provider + "\x00" + rawID }

func (x *accounts) get(ctx context.Context, fb Lookup, ids []auth.UserIdentifier) error {
	if len(ids) == 0 {
		return nil
	}
	res, err := fb.GetUsers(ctx, ids)
	if err != nil {
		return fmt.Errorf("verify: firebase GetUsers: %w", err)
	}
	for _, r := range res.Users {
		if r == nil || r.UserInfo == nil {
			continue
		}
		if _, dup := x.byUID[r.UID]; dup {
			continue
		}
		x.byUID[r.UID] = r
		if m := strings.ToLower(r.Email); m != "" {
			x.byEmail[m] = append(x.byEmail[m], r.UID)
		}
		for _, p := range r.ProviderUserInfo {
			if p != nil {
				k := providerKey(p.ProviderID, p.UID)
				x.byProvider[k] = append(x.byProvider[k], r.UID)
			}
		}
	}
	return nil
}

// check records e's problems in rep, or counts it verified.
func (x *accounts) check(e expectation, rep *Report) {
	uid := e.row.FirebaseUID
	before := len(rep.Offenders)
	offend := func(problem, other string) {
		r := e.row
		r.Problem, r.OtherUID = problem, other
		rep.Offenders = append(rep.Offenders, r)
	}
	own := x.byUID[uid]
	key := providerKey(e.provider, e.rawID)
	switch {
	case own == nil:
		rep.Missing = append(rep.Missing, e.row)
		offend(ProblemMissing, "")
	case e.provider != "" && !slices.Contains(x.byProvider[key], uid):
		offend(ProblemMissingProvider, "")
	}
	if e.provider != "" {
		for _, other := range x.byProvider[key] {
			if other != uid {
				offend(ProblemProviderOnOtherAccount, other)
			}
		}
	}
	emails := []string{e.email}
	if own != nil {
		if m := strings.ToLower(own.Email); m != e.email {
			emails = append(emails, m)
		}
	}
	for _, m := range emails {
		if m == "" {
			continue
		}
		for _, other := range x.byEmail[m] {
			if other != uid {
				offend(ProblemEmailOnOtherAccount, other)
			}
		}
	}
	if len(rep.Offenders) == before {
		rep.Verified++
	}
}

// verdict is BuildReport's error for a verified report: nil without
// offenders.
func verdict(rep Report, checked int) error {
	if len(rep.Offenders) == 0 {
		return nil
	}
	counts := map[string]int{}
	for _, r := range rep.Offenders {
		counts[r.Problem]++
	}
	var parts []string
	for _, p := range []string{ProblemMissing, ProblemMissingProvider, ProblemEmailOnOtherAccount, ProblemProviderOnOtherAccount} {
		if counts[p] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", p, counts[p]))
		}
	}
	err := fmt.Errorf("%w: %d of %d users (%s)", ErrUnverified, checked-rep.Verified, checked, strings.Join(parts, ", "))
	if len(rep.Missing) > 0 {
		err = errors.Join(fmt.Errorf("%w: %d of %d", ErrMissing, len(rep.Missing), checked), err)
	}
	return err
}

func sortOffenders(rows []Row) {
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Auth0UserID != b.Auth0UserID {
			return a.Auth0UserID < b.Auth0UserID
		}
		if a.Problem != b.Problem {
			return a.Problem < b.Problem
		}
		return a.OtherUID < b.OtherUID
	})
}

// WriteOffendersCSV writes [Report.Offenders] with a header line: the
// [WriteCSV] columns, then the problem and the other account's uid.
func WriteOffendersCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"auth0_user_id", "outcome", "reason", "detail", "firebase_uid", "problem", "other_uid"})
	for _, r := range rows {
		_ = cw.Write([]string{r.Auth0UserID, r.Outcome, r.Reason, r.Detail, r.FirebaseUID, r.Problem, r.OtherUID})
	}
	cw.Flush()
	return cw.Error()
}

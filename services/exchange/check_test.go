package exchange_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"firebase.google.com/go/v4/auth"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/services/exchange"
)

// auditLines returns the audit lines of the exchanges so far.
func (e *env) auditLines() []string {
	var out []string
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"session exchange"`) {
			out = append(out, line)
		}
	}
	return out
}

// TestExchangeRefusesDeletedAccount: a final ledger entry whose Firebase
// account was deleted since is 404 account_not_found with no token, so a
// sign-in cannot recreate the account blank; the refusal is counted and
// audited with the uid.
func TestExchangeRefusesDeletedAccount(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	// Imported under the policy uid, deleted by support since.
	const imported = "google-oauth2|9101"
	e.setLedger(events.LedgerEntry{Auth0UserID: imported, Outcome: events.OutcomeImported, FirebaseUID: imported})
	// Linked to an existing account, deleted since.
	const linked = "apple|9102"
	e.firebaseAccount("merged-9102", "apple.com", "9102")
	e.setLedger(events.LedgerEntry{Auth0UserID: linked, Outcome: events.OutcomeImported, Reason: events.ReasonLinked, FirebaseUID: "merged-9102"})
	if err := e.fb.DeleteUser(ctx, "merged-9102"); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{imported, linked} {
		a := e.post(e.iss.Token(sub))
		if a.status != http.StatusNotFound || a.fail.Error != exchange.ResultAccountNotFound || a.ok.FirebaseToken != "" {
			t.Fatalf("%s: %d %s, want 404 account_not_found and no token", sub, a.status, a.raw)
		}
	}
	if n := e.counter("signupsync_exchange_account_checks_failed_total", prometheus.Labels{"reason": exchange.CheckAccountNotFound, "via": exchange.ViaLedger}); n != 2 {
		t.Fatalf("account_checks_failed_total{account_not_found,ledger} = %v, want 2", n)
	}
	if n := e.counter("signupsync_exchange_requests_total", prometheus.Labels{"result": exchange.ResultAccountNotFound}); n != 2 {
		t.Fatalf("requests_total{result=account_not_found} = %v, want 2", n)
	}
	audit := e.auditLines()
	if len(audit) != 2 || !strings.Contains(audit[1], `"refused_uid":"merged-9102"`) || !strings.Contains(audit[1], `"result":"account_not_found"`) {
		t.Fatalf("audit lines %v", audit)
	}
	if msgs := e.streamMessages(); len(msgs) != 0 {
		t.Fatalf("%d signups published", len(msgs))
	}
}

// TestExchangeRefusesAccountWithoutCallerIdentity: a ledger entry naming an
// account that is neither the caller's policy uid nor carries the caller's
// provider identity (the wrong entry an unproven link would leave) is 409
// identity_mismatch: no token, the uid stays out of the answer, a warning
// audit line names the uids and no email. The policy uid proves itself
// without an identity (the password export imports under it).
func TestExchangeRefusesAccountWithoutCallerIdentity(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if _, err := e.fb.ImportUsers(ctx, []*auth.UserToImport{
		(&auth.UserToImport{}).UID("victim-1").Email("victim@gmail.com").EmailVerified(true).
			ProviderData([]*auth.UserProvider{{ProviderID: "google.com", UID: "4242"}}),
	}); err != nil {
		t.Fatal(err)
	}
	const attacker = "github|666"
	e.setLedger(events.LedgerEntry{Auth0UserID: attacker, Outcome: events.OutcomeImported, Reason: events.ReasonLinked, FirebaseUID: "victim-1"})
	// Same provider, another person's id: still not the caller's.
	const other = "google-oauth2|4243"
	e.setLedger(events.LedgerEntry{Auth0UserID: other, Outcome: events.OutcomeAlreadyPresent, Reason: events.ReasonProviderElsewhere, FirebaseUID: "victim-1"})
	for _, sub := range []string{attacker, other} {
		a := e.post(e.iss.Token(sub))
		if a.status != http.StatusConflict || a.fail.Error != exchange.ResultIdentityMismatch || a.ok.FirebaseToken != "" {
			t.Fatalf("%s: %d %s, want 409 identity_mismatch and no token", sub, a.status, a.raw)
		}
		if strings.Contains(a.raw, "victim-1") {
			t.Fatalf("the answer names the account: %s", a.raw)
		}
	}
	if n := e.counter("signupsync_exchange_account_checks_failed_total", prometheus.Labels{"reason": exchange.CheckIdentityMismatch, "via": exchange.ViaLedger}); n != 2 {
		t.Fatalf("account_checks_failed_total{identity_mismatch,ledger} = %v, want 2", n)
	}
	audit := e.auditLines()
	if len(audit) != 2 || !strings.Contains(audit[0], `"level":"WARN"`) || !strings.Contains(audit[0], `"refused_uid":"victim-1"`) ||
		!strings.Contains(audit[0], `"auth0_sub":"github|666"`) || strings.Contains(e.logs.String(), "victim@gmail.com") {
		t.Fatalf("audit lines %v", audit)
	}

	// The owner of the identity, and a database user under the policy uid.
	e.setLedger(events.LedgerEntry{Auth0UserID: "google-oauth2|4242", Outcome: events.OutcomeImported, Reason: events.ReasonLinked, FirebaseUID: "victim-1"})
	e.firebaseAccount("auth0|db9", "", "")
	e.setLedger(events.LedgerEntry{Auth0UserID: "auth0|db9", Outcome: events.OutcomeImported, FirebaseUID: "auth0|db9"})
	for sub, uid := range map[string]string{"google-oauth2|4242": "victim-1", "auth0|db9": "auth0|db9"} {
		if a := e.post(e.iss.Token(sub)); a.status != http.StatusOK || a.ok.UID != uid {
			t.Fatalf("%s: %d %s, want 200 for %s", sub, a.status, a.raw, uid)
		}
	}
}

// failingLookups is a Firebase whose look-ups fail with err.
type failingLookups struct {
	exchange.Firebase
	err error
}

func (f failingLookups) GetUsers(context.Context, []auth.UserIdentifier) (*auth.GetUsersResult, error) {
	return nil, f.err
}

// TestExchangeAccountCheckFailures: when the account check cannot be made
// no token is minted: a transport failure is 503 with Retry-After, a
// permanent refusal 500 without.
func TestExchangeAccountCheckFailures(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		result     string
		retryAfter bool
	}{
		{"connection refused", &url.Error{Op: "Post", URL: "https://identitytoolkit.googleapis.com/", Err: errors.New("connection refused")},
			http.StatusServiceUnavailable, exchange.ResultUnavailable, true},
		{"deadline", context.DeadlineExceeded, http.StatusServiceUnavailable, exchange.ResultUnavailable, true},
		{"permanent", errors.New("project not found"), http.StatusInternalServerError, exchange.ResultInternal, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, func(d *exchange.Deps) { d.Firebase = failingLookups{Firebase: d.Firebase, err: tt.err} })
			const sub = "github|9301"
			e.firebaseAccount(sub, "github.com", "9301")
			e.setLedger(events.LedgerEntry{Auth0UserID: sub, Outcome: events.OutcomeImported, FirebaseUID: sub})
			a := e.post(e.iss.Token(sub))
			if a.status != tt.status || a.fail.Error != tt.result || a.ok.FirebaseToken != "" || (a.header.Get("Retry-After") != "") != tt.retryAfter {
				t.Fatalf("%d %v %s, want %d %s (Retry-After %v) and no token", a.status, a.header, a.raw, tt.status, tt.result, tt.retryAfter)
			}
		})
	}
}

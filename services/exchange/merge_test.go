package exchange_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/services/exchange"
)

// mergeEnv is an exchange on the emulator's own project: the client API's
// sign-up (anonymous or with a password) creates accounts only there.
func mergeEnv(t *testing.T, configure func(*exchange.Config)) *env {
	t.Helper()
	return newEnvIn(t, testenv.SharedEmulator(t).Project, configure)
}

// clientSignUp is the client SDK's signUp against the emulator with an API
// key: no body fields is an anonymous sign-in (signInAnonymously), an email
// and password a password account. It returns the uid and the ID token.
func clientSignUp(t *testing.T, email, password string) (string, string) {
	t.Helper()
	body := map[string]any{"returnSecureToken": true}
	if email != "" {
		body["email"], body["password"] = email, password
	}
	b, _ := json.Marshal(body)
	url := "http://" + testenv.SharedEmulator(t).Host + "/identitytoolkit.googleapis.com/v1/accounts:signUp?key=any"
	res, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out struct {
		LocalID string `json:"localId"`
		IDToken string `json:"idToken"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || res.StatusCode != http.StatusOK || out.IDToken == "" {
		t.Fatalf("signUp: %d %s", res.StatusCode, raw)
	}
	return out.LocalID, out.IDToken
}

// reissue returns tok with its payload changed by edit. The emulator's ID
// tokens are unsigned and the Admin SDK skips signatures in emulator mode,
// so this makes expired or old tokens; production tokens cannot be forged.
func reissue(t *testing.T, tok string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	edit(claims)
	b, _ = json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// permanentUser is a migrated person: a Firebase account under the
// policy uid and the importer's ledger entry.
func (e *env) permanentUser(sub string) {
	e.t.Helper()
	provider, raw, _ := strings.Cut(sub, "|")
	e.firebaseAccount(sub, map[string]string{"google-oauth2": "google.com", "github": "github.com"}[provider], raw)
	e.setLedger(events.LedgerEntry{Auth0UserID: sub, Outcome: events.OutcomeImported, FirebaseUID: sub, Sources: []events.Source{events.SourceAction}})
}

func (e *env) exchangeAs(sub, guestToken string) answer {
	e.t.Helper()
	h := http.Header{}
	if guestToken != "" {
		h.Set(exchange.HeaderAnonymousToken, guestToken)
	}
	return e.do(http.MethodPost, e.iss.Token(sub), h)
}

// mergeRequests returns the merge requests ACCOUNTS holds.
func (e *env) mergeRequests() []*jetstream.RawStreamMsg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, events.StreamAccounts)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(events.MergeSubjectAll))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for subj := range info.State.Subjects {
		m, err := st.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func (e *env) userExists(uid string) bool {
	e.t.Helper()
	_, err := e.fb.GetUser(context.Background(), uid)
	if err != nil && !auth.IsUserNotFound(err) {
		e.t.Fatal(err)
	}
	return err == nil
}

// TestAnonymousGuestIsMergedIntoMigratedAccount: an exchange that carries
// the guest's anonymous ID token answers the permanent account's custom
// token and publishes exactly one merge request naming both uids, with the
// trace context, recorded in the permanent user's ledger entry, counted
// and audited with uids only.
func TestAnonymousGuestIsMergedIntoMigratedAccount(t *testing.T) {
	e := mergeEnv(t, nil)
	sub := "google-oauth2|merge-" + strings.ToLower(testenv.ProjectID(t)[5:])
	e.permanentUser(sub)
	anonUID, guestToken := clientSignUp(t, "", "")

	a := e.exchangeAs(sub, guestToken)
	if a.status != http.StatusOK || a.ok.UID != sub || a.ok.FirebaseToken == "" {
		t.Fatalf("exchange: %d %s", a.status, a.raw)
	}
	msgs := e.mergeRequests()
	if len(msgs) != 1 {
		t.Fatalf("%d merge requests, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject != events.MergeSubject(anonUID) {
		t.Fatalf("subject %s", m.Subject)
	}
	ev, err := events.DecodeAccountMerge(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Data.AnonymousUID != anonUID || ev.Data.PermanentUID != sub || ev.Data.Auth0UserID != sub || ev.ID != events.MergeID(anonUID, sub) {
		t.Fatalf("request %+v", ev)
	}
	if m.Header.Get(events.HeaderMsgID) != ev.ID || m.Header.Get("traceparent") == "" {
		t.Fatalf("headers %v: want the pair's Msg-Id and W3C trace context", m.Header)
	}
	le, _ := e.ledgerEntry(sub)
	if r := le.Merge(anonUID); r == nil || r.RequestID != ev.ID || le.Outcome != events.OutcomeImported {
		t.Fatalf("ledger entry %+v", le)
	}
	if n := e.counter("signupsync_exchange_merge_requests_total", prometheus.Labels{"result": exchange.MergeRequested}); n != 1 {
		t.Fatalf("merge_requests_total{requested} = %v", n)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"anonymous merge"`) || !strings.Contains(logs, `"anonymous_uid":"`+anonUID+`"`) || strings.Contains(logs, guestToken[:40]) {
		t.Fatalf("audit log lacks the merge line, or holds the token:\n%s", logs)
	}
	// The guest account is untouched until the app acknowledges the merge.
	if !e.userExists(anonUID) {
		t.Fatal("anonymous account deleted before the app merged it")
	}
}

// TestRefusedGuestTokensPublishNothing: a guest token that is not a valid
// anonymous ID token of the project is a 400 with its reason, before any
// token is minted, and publishes no merge request.
func TestRefusedGuestTokensPublishNothing(t *testing.T) {
	e := mergeEnv(t, nil)
	sub := "github|refuse-" + strings.ToLower(testenv.ProjectID(t)[5:])
	e.permanentUser(sub)
	_, pwToken := clientSignUp(t, "pw-"+testenv.ProjectID(t)+"@example.com", "secret-123")
	revokedUID, revokedTok := clientSignUp(t, "", "")
	if err := e.fb.RevokeRefreshTokens(context.Background(), revokedUID); err != nil {
		t.Fatal(err)
	}
	_, anonTok := clientSignUp(t, "", "")
	now := time.Now().Unix()
	tests := []struct{ name, token, reason string }{
		{"not anonymous: a password account", pwToken, exchange.ReasonNotAnonymous},
		{"tampered: payload not JSON", anonTok[:strings.Index(anonTok, ".")+1] + "e30x" + anonTok[strings.Index(anonTok, ".")+5:], exchange.ReasonAnonymousInvalid},
		{"tampered: another uid", reissue(t, anonTok, func(c map[string]any) { c["sub"], c["user_id"] = "nobody-here", "nobody-here" }), exchange.ReasonAnonymousInvalid},
		{"not a JWT", "guest", exchange.ReasonAnonymousInvalid},
		{"expired", reissue(t, anonTok, func(c map[string]any) { c["iat"], c["auth_time"], c["exp"] = now-7200, now-7200, now-3600 }), exchange.ReasonAnonymousExpired},
		{"revoked", reissue(t, revokedTok, func(c map[string]any) { c["iat"], c["auth_time"] = now-60, now-60 }), exchange.ReasonAnonymousRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.exchangeAs(sub, tt.token)
			if a.status != http.StatusBadRequest || a.fail.Error != tt.reason || a.ok.FirebaseToken != "" {
				t.Fatalf("answer %d %s, want 400 %s", a.status, a.raw, tt.reason)
			}
		})
	}
	if n := len(e.mergeRequests()); n != 0 {
		t.Fatalf("%d merge requests published for refused guest tokens", n)
	}
	if le, _ := e.ledgerEntry(sub); len(le.Merges) != 0 {
		t.Fatalf("ledger records merges: %+v", le.Merges)
	}

	// A guest of another project (the app build points elsewhere).
	other := newEnv(t, nil)
	other.permanentUser(sub)
	a := other.exchangeAs(sub, anonTok)
	if a.status != http.StatusBadRequest || a.fail.Error != exchange.ReasonAnonymousWrongProject {
		t.Fatalf("token of another project: %d %s", a.status, a.raw)
	}
	if n := len(other.mergeRequests()); n != 0 {
		t.Fatalf("%d merge requests for a token of another project", n)
	}
}

// TestMergeRetriesAreOneRequest: the same guest token presented again, in
// sequence or concurrently, answers 200 each time and leaves one request.
func TestMergeRetriesAreOneRequest(t *testing.T) {
	e := mergeEnv(t, nil)
	sub := "google-oauth2|retry-" + strings.ToLower(testenv.ProjectID(t)[5:])
	e.permanentUser(sub)
	anonUID, guestToken := clientSignUp(t, "", "")
	var wg sync.WaitGroup
	statuses := make([]int, 6)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.exchangeAs(sub, guestToken).status
		}()
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Fatalf("retry %d: %d", i, st)
		}
	}
	if a := e.exchangeAs(sub, guestToken); a.status != http.StatusOK {
		t.Fatalf("later retry: %d %s", a.status, a.raw)
	}
	msgs := e.mergeRequests()
	if len(msgs) != 1 || msgs[0].Sequence == 0 {
		t.Fatalf("%d merge requests, want 1", len(msgs))
	}
	le, _ := e.ledgerEntry(sub)
	if len(le.Merges) != 1 || le.Merges[0].AnonymousUID != anonUID {
		t.Fatalf("ledger merges %+v", le.Merges)
	}
	requested := e.counter("signupsync_exchange_merge_requests_total", prometheus.Labels{"result": exchange.MergeRequested})
	again := e.counter("signupsync_exchange_merge_requests_total", prometheus.Labels{"result": exchange.MergeAlreadyRequested})
	if requested != 1 || again != 6 {
		t.Fatalf("requested %v, already_requested %v", requested, again)
	}
}

// TestGuestMergedIntoAnotherAccountIsRefused: a guest already merged into
// one permanent account, presented by another person, is a 409
// anonymous_already_merged without a token, and the first request stays
// the only one.
func TestGuestMergedIntoAnotherAccountIsRefused(t *testing.T) {
	e := mergeEnv(t, nil)
	suffix := strings.ToLower(testenv.ProjectID(t)[5:])
	first, second := "google-oauth2|first-"+suffix, "github|second-"+suffix
	e.permanentUser(first)
	e.permanentUser(second)
	anonUID, guestToken := clientSignUp(t, "", "")
	if a := e.exchangeAs(first, guestToken); a.status != http.StatusOK {
		t.Fatalf("first: %d %s", a.status, a.raw)
	}
	a := e.exchangeAs(second, guestToken)
	if a.status != http.StatusConflict || a.fail.Error != exchange.ResultAnonymousAlreadyMerged || a.ok.FirebaseToken != "" {
		t.Fatalf("second person: %d %s, want 409 %s", a.status, a.raw, exchange.ResultAnonymousAlreadyMerged)
	}
	// The second person still signs in without the guest.
	if a := e.exchangeAs(second, ""); a.status != http.StatusOK || a.ok.UID != second {
		t.Fatalf("second person without the guest: %d %s", a.status, a.raw)
	}
	msgs := e.mergeRequests()
	if len(msgs) != 1 {
		t.Fatalf("%d merge requests", len(msgs))
	}
	ev, err := events.DecodeAccountMerge(msgs[0].Data)
	if err != nil || ev.Data.PermanentUID != first || ev.Data.AnonymousUID != anonUID {
		t.Fatalf("request %+v %v", ev, err)
	}
	if le, _ := e.ledgerEntry(second); len(le.Merges) != 0 {
		t.Fatalf("second person's ledger records a merge: %+v", le.Merges)
	}
}

// publishMerged is the app's worker acknowledging a merge.
func (e *env) publishMerged(anonUID, permanentUID string) {
	e.t.Helper()
	msg, _, err := events.NewAccountMergedMsg("app/merge-worker", events.AccountMergeData{AnonymousUID: anonUID, PermanentUID: permanentUID, At: time.Now()}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(context.Background(), msg, jetstream.WithExpectStream(events.StreamAccounts)); err != nil {
		e.t.Fatal(err)
	}
}

// TestMergedAcknowledgementDeletesAnonymousAccount: with
// --delete-merged-anonymous, the app's acknowledgement deletes the guest's
// account and is recorded in the ledger; an acknowledgement for a pair the
// exchange never requested deletes nothing, and a guest that became a real
// account since (an email) is kept.
func TestMergedAcknowledgementDeletesAnonymousAccount(t *testing.T) {
	e := mergeEnv(t, func(c *exchange.Config) { c.Merge.DeleteAnonymous = true })
	suffix := strings.ToLower(testenv.ProjectID(t)[5:])
	sub, other := "google-oauth2|ack-"+suffix, "github|ack-other-"+suffix
	e.permanentUser(sub)
	e.permanentUser(other)
	anonUID, guestToken := clientSignUp(t, "", "")
	keptUID, keptToken := clientSignUp(t, "", "")
	strangerUID, _ := clientSignUp(t, "", "")
	for _, tok := range []string{guestToken, keptToken} {
		if a := e.exchangeAs(sub, tok); a.status != http.StatusOK {
			t.Fatalf("exchange: %d %s", a.status, a.raw)
		}
	}
	// keptUID links an email after the merge request: no longer anonymous.
	if _, err := e.fb.UpdateUser(context.Background(), keptUID, (&auth.UserToUpdate{}).Email("kept-"+suffix+"@example.com")); err != nil {
		t.Fatal(err)
	}
	stop, err := e.svc.ConsumeMerged(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stop(ctx)
	})
	e.publishMerged(strangerUID, other) // never requested
	e.publishMerged(anonUID, sub)
	e.publishMerged(keptUID, sub)
	testenv.Eventually(t, "acknowledgements settled", func() bool {
		return e.counter("signupsync_exchange_merged_acknowledgements_total", prometheus.Labels{"result": exchange.MergedDeleted}) == 1 &&
			e.counter("signupsync_exchange_merged_acknowledgements_total", prometheus.Labels{"result": exchange.MergedNotAnonymous}) == 1 &&
			e.counter("signupsync_exchange_merged_acknowledgements_total", prometheus.Labels{"result": exchange.MergedUnknownPair}) == 1
	})
	if e.userExists(anonUID) {
		t.Fatal("merged anonymous account still exists")
	}
	if !e.userExists(keptUID) || !e.userExists(strangerUID) || !e.userExists(sub) {
		t.Fatal("an account that is not a merged anonymous one was deleted")
	}
	testenv.Eventually(t, "ledger records the deletion", func() bool {
		le, _ := e.ledgerEntry(sub)
		r, k := le.Merge(anonUID), le.Merge(keptUID)
		return r != nil && !r.MergedAt.IsZero() && !r.AnonymousDeletedAt.IsZero() && k != nil && k.Kept == exchange.MergedNotAnonymous && k.AnonymousDeletedAt.IsZero()
	})
	// The guest's token now names no account: refused, nothing published.
	if a := e.exchangeAs(sub, guestToken); a.status != http.StatusBadRequest || a.fail.Error != exchange.ReasonAnonymousInvalid {
		t.Fatalf("deleted guest's token: %d %s", a.status, a.raw)
	}
	if n := len(e.mergeRequests()); n != 2 {
		t.Fatalf("%d merge requests, want 2", n)
	}
}

// TestMergedAcknowledgementWithDeletionOffKeepsAnonymousAccount: without
// --delete-merged-anonymous the exchange creates no consumer of
// acknowledgements and the guest's account stays.
func TestMergedAcknowledgementWithDeletionOffKeepsAnonymousAccount(t *testing.T) {
	e := mergeEnv(t, nil)
	sub := "google-oauth2|keep-" + strings.ToLower(testenv.ProjectID(t)[5:])
	e.permanentUser(sub)
	anonUID, guestToken := clientSignUp(t, "", "")
	if a := e.exchangeAs(sub, guestToken); a.status != http.StatusOK {
		t.Fatalf("exchange: %d %s", a.status, a.raw)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := exchange.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.svc.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	e.publishMerged(anonUID, sub)
	testenv.Eventually(t, "exchange serving", func() bool {
		res, err := http.Get("http://" + ln.Addr().String() + "/healthz")
		if err == nil {
			res.Body.Close()
		}
		return err == nil
	})
	if _, err := e.js.Consumer(ctx, events.StreamAccounts, events.ConsumerMerged); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("acknowledgement consumer with deletion off: %v", err)
	}
	if !e.userExists(anonUID) {
		t.Fatal("anonymous account deleted with deletion off")
	}
}

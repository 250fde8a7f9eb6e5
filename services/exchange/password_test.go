package exchange_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/internal/exchangetest"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/services/exchange"
)

// passwordOn turns the password fallback on against the Auth0 fake, with
// limits out of the way unless a test sets them.
func passwordOn(c *exchange.Config) {
	c.Password.Enabled = true
	c.Password.Connection = auth0fake.DefaultConnection
	c.Password.ClientID, c.Password.ClientSecret = auth0fake.DefaultClientID, auth0fake.DefaultClientSecret
	c.Password.EmailBurst, c.Password.IPBurst = 1000, 1000
	c.Password.SettleWait = time.Second
}

func passwordEnv(t testing.TB, configure ...func(*exchange.Config)) *env {
	return newEnv(t, func(c *exchange.Config) {
		passwordOn(c)
		for _, f := range configure {
			f(c)
		}
	})
}

// dbUser adds a database-connection user with a password to the Auth0 fake.
func (e *env) dbUser(id, email, password string) {
	e.t.Helper()
	e.auth0.AddUsers(auth0fake.User{UserID: "auth0|" + id, Email: email, EmailVerified: true,
		Identities: []auth0fake.Identity{{Provider: "auth0", Connection: auth0fake.DefaultConnection, UserID: id}}})
	e.auth0.SetPassword("auth0|"+id, password)
}

func (e *env) postPassword(email, password string) answer {
	e.t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	return e.postPasswordRaw("application/json", string(body))
}

func (e *env) postPasswordRaw(contentType, body string) answer {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+exchange.PathPassword, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return e.send(req)
}

func (e *env) send(req *http.Request) answer {
	e.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, raw: string(b)}
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &a.ok); err != nil {
			e.t.Fatalf("200 body %s: %v", b, err)
		}
	} else if len(b) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a.fail); err != nil {
			e.t.Fatalf("%d body %s: %v", res.StatusCode, b, err)
		}
	}
	return a
}

// signInWithPassword is the client SDK's email/password sign-in against the
// emulator; it reports the uid, or "" with the emulator's status.
func (e *env) signInWithPassword(email, password string) (string, int) {
	t := e.t
	t.Helper()
	// The emulator answers an API key for its default project; the test's
	// own project is named in targetProjectId, which needs the emulator's
	// "owner" credentials.
	body, _ := json.Marshal(map[string]any{"email": email, "password": password, "returnSecureToken": true, "targetProjectId": e.project})
	url := "http://" + testenv.SharedEmulator(t).Host + "/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=any"
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer owner")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out struct {
		LocalID string `json:"localId"`
	}
	_ = json.Unmarshal(b, &out)
	return out.LocalID, res.StatusCode
}

// accounts returns the Firebase accounts holding uid or email.
func (e *env) accounts(uid, email string) []*auth.UserRecord {
	e.t.Helper()
	res, err := e.fb.GetUsers(context.Background(), []auth.UserIdentifier{auth.UIDIdentifier{UID: uid}, auth.EmailIdentifier{Email: email}})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Users
}

func (e *env) ledgerEntry(sub string) (events.LedgerEntry, bool) {
	e.t.Helper()
	kve, err := e.ledger.Get(context.Background(), events.LedgerKey(sub))
	if err != nil {
		return events.LedgerEntry{}, false
	}
	le, err := events.UnmarshalLedger(kve.Value())
	if err != nil {
		e.t.Fatal(err)
	}
	return le, true
}

// TestPasswordFallbackCreatesAccount: a database user unknown to Firebase
// posts the right password: 200 with a custom token for the policy uid,
// and from then on Firebase's own email/password sign-in works with that
// email and password. The account carries the owner claim, email_verified
// from Auth0, and the ledger records imported/lazy_password. Auth0 got the
// client's address in auth0-forwarded-for.
func TestPasswordFallbackCreatesAccount(t *testing.T) {
	e := passwordEnv(t)
	e.dbUser("lazy1", "Lazy1@Example.com", "s3cret-Passw0rd")
	a := e.postPassword("lazy1@example.com", "s3cret-Passw0rd")
	if a.status != http.StatusOK || a.ok.UID != "auth0|lazy1" || a.ok.FirebaseToken == "" {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	id := exchangetest.SignInWithCustomToken(t, testenv.SharedEmulator(t).Host, a.ok.FirebaseToken)
	if id["user_id"] != "auth0|lazy1" || id[exchange.ClaimAuth0Sub] != "auth0|lazy1" {
		t.Fatalf("custom token sign-in: %v", id)
	}
	if uid, status := e.signInWithPassword("lazy1@example.com", "s3cret-Passw0rd"); uid != "auth0|lazy1" {
		t.Fatalf("signInWithPassword after the fallback: %d uid %q", status, uid)
	}
	if uid, _ := e.signInWithPassword("lazy1@example.com", "not-the-password"); uid != "" {
		t.Fatal("signInWithPassword accepted a wrong password")
	}
	accts := e.accounts("auth0|lazy1", "lazy1@example.com")
	if len(accts) != 1 || accts[0].CustomClaims[exchange.ClaimAuth0UserID] != "auth0|lazy1" || !accts[0].EmailVerified || accts[0].Email != "lazy1@example.com" {
		t.Fatalf("accounts %+v", accts)
	}
	le, ok := e.ledgerEntry("auth0|lazy1")
	if !ok || le.Outcome != events.OutcomeImported || le.Reason != events.ReasonLazyPassword || le.FirebaseUID != "auth0|lazy1" {
		t.Fatalf("ledger %+v %v", le, ok)
	}
	if got := e.auth0.ForwardedFor(); len(got) != 1 || got[0] != "127.0.0.1" {
		t.Fatalf("auth0-forwarded-for %v, want the client's address", got)
	}
	// Again (the app lost the session): the same account, nothing new.
	if a := e.postPassword("lazy1@example.com", "s3cret-Passw0rd"); a.status != http.StatusOK || a.ok.UID != "auth0|lazy1" {
		t.Fatalf("again: %d %s", a.status, a.raw)
	}
	if n := len(e.accounts("auth0|lazy1", "lazy1@example.com")); n != 1 {
		t.Fatalf("%d accounts", n)
	}
	if n := e.counter("signupsync_exchange_password_requests_total", prometheus.Labels{"result": "ok"}); n != 2 {
		t.Fatalf("password_requests_total{result=ok} = %v", n)
	}
}

// TestPasswordFallbackWrongCredentials: a wrong password and an unknown
// email get the same 401 body, with similar timing, and create nothing.
func TestPasswordFallbackWrongCredentials(t *testing.T) {
	e := passwordEnv(t)
	e.auth0.BruteForce(0) // Auth0's protection is tested elsewhere
	e.dbUser("wc1", "wc1@example.com", "right-password")
	var wrong, unknown answer
	var tWrong, tUnknown []time.Duration
	for range 15 {
		start := time.Now()
		wrong = e.postPassword("wc1@example.com", "wrong-password")
		tWrong = append(tWrong, time.Since(start))
		start = time.Now()
		unknown = e.postPassword("nobody@example.com", "wrong-password")
		tUnknown = append(tUnknown, time.Since(start))
	}
	if wrong.status != http.StatusUnauthorized || wrong.fail.Error != exchange.ResultInvalidCredentials {
		t.Fatalf("wrong password: %d %s", wrong.status, wrong.raw)
	}
	if unknown.status != wrong.status || unknown.raw != wrong.raw {
		t.Fatalf("unknown email %d %s differs from wrong password %d %s", unknown.status, unknown.raw, wrong.status, wrong.raw)
	}
	for _, h := range []string{"Www-Authenticate", "Retry-After", "Content-Type", "Cache-Control"} {
		if wrong.header.Get(h) != unknown.header.Get(h) {
			t.Fatalf("header %s differs: %q vs %q", h, wrong.header.Get(h), unknown.header.Get(h))
		}
	}
	mw, mu := median(tWrong), median(tUnknown)
	t.Logf("median wrong password %v, unknown email %v", mw, mu)
	if d := mw - mu; d > 50*time.Millisecond || d < -50*time.Millisecond {
		t.Fatalf("timing tells the two apart: %v vs %v", mw, mu)
	}
	if n := len(e.accounts("auth0|wc1", "wc1@example.com")); n != 0 {
		t.Fatalf("%d accounts after wrong passwords", n)
	}
	if _, ok := e.ledgerEntry("auth0|wc1"); ok {
		t.Fatal("ledger written for a failed login")
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestPasswordFallbackAuth0Refusals: each Auth0 refusal has its answer,
// and none creates an account.
func TestPasswordFallbackAuth0Refusals(t *testing.T) {
	e := passwordEnv(t)
	e.dbUser("blocked", "blocked@example.com", "password-1")
	e.auth0.BlockUser("auth0|blocked", true)
	e.dbUser("mfa", "mfa@example.com", "password-2")
	e.auth0.RequireMFA("auth0|mfa")
	e.dbUser("brute", "brute@example.com", "password-3")
	e.auth0.BruteForce(3)
	for range 3 {
		if a := e.postPassword("brute@example.com", "guess"); a.status != http.StatusUnauthorized {
			t.Fatalf("guess: %d %s", a.status, a.raw)
		}
	}
	tests := []struct {
		name, email, password string
		before                func()
		status                int
		result                string
		retryAfter            bool
	}{
		{"blocked by an administrator", "blocked@example.com", "password-1", nil, http.StatusTooManyRequests, exchange.ResultLoginBlocked, false},
		{"brute-force protection", "brute@example.com", "password-3", nil, http.StatusTooManyRequests, exchange.ResultLoginBlocked, false},
		{"mfa required", "mfa@example.com", "password-2", nil, http.StatusForbidden, exchange.ResultMFARequired, false},
		{"auth0 down", "mfa@example.com", "password-2", func() { e.auth0.FailPasswordGrant(http.StatusServiceUnavailable, 1) }, http.StatusServiceUnavailable, exchange.ResultUnavailable, true},
		{"grant not enabled", "mfa@example.com", "password-2", func() { e.auth0.SetPasswordGrant(false) }, http.StatusInternalServerError, exchange.ResultInternal, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before()
			}
			a := e.postPassword(tt.email, tt.password)
			if a.status != tt.status || a.fail.Error != tt.result || (a.header.Get("Retry-After") != "") != tt.retryAfter {
				t.Fatalf("%d %v %s, want %d %s", a.status, a.header, a.raw, tt.status, tt.result)
			}
		})
	}
	for _, u := range []string{"blocked", "mfa", "brute"} {
		if n := len(e.accounts("auth0|"+u, u+"@example.com")); n != 0 {
			t.Fatalf("%s: %d accounts", u, n)
		}
	}
}

// TestPasswordFallbackConcurrentRequestsMakeOneAccount: ten requests of one
// person at once end in exactly one account; every answer is 200 for it.
// CreateUser refuses the uid to all but one; the others find the account
// marked as this person's.
func TestPasswordFallbackConcurrentRequestsMakeOneAccount(t *testing.T) {
	e := passwordEnv(t)
	e.dbUser("race", "race@example.com", "race-password")
	var wg sync.WaitGroup
	answers := make([]answer, 10)
	for i := range answers {
		wg.Go(func() { answers[i] = e.postPassword("race@example.com", "race-password") })
	}
	wg.Wait()
	for i, a := range answers {
		if a.status != http.StatusOK || a.ok.UID != "auth0|race" {
			t.Errorf("request %d: %d %s", i, a.status, a.raw)
		}
	}
	if n := len(e.accounts("auth0|race", "race@example.com")); n != 1 {
		t.Fatalf("%d accounts, want 1", n)
	}
	if le, ok := e.ledgerEntry("auth0|race"); !ok || le.Reason != events.ReasonLazyPassword {
		t.Fatalf("ledger %+v", le)
	}
	if uid, _ := e.signInWithPassword("race@example.com", "race-password"); uid != "auth0|race" {
		t.Fatal("signInWithPassword fails after the race")
	}
}

// TestPasswordFallbackExistingAccounts: a password set in Firebase is never
// replaced; signupsync's own account without a password gets it; an
// account under the uid that signupsync did not make, and an email on
// someone else's account, are 409 with their reason codes.
func TestPasswordFallbackExistingAccounts(t *testing.T) {
	e := passwordEnv(t)
	ctx := context.Background()
	create := func(u *auth.UserToCreate) {
		if _, err := e.fb.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	// Imported with a hash whose password has since changed in Auth0.
	e.dbUser("hashed", "hashed@example.com", "new-password")
	create((&auth.UserToCreate{}).UID("auth0|hashed").Email("hashed@example.com").Password("old-password"))
	e.setLedger(events.LedgerEntry{Auth0UserID: "auth0|hashed", Outcome: events.OutcomeImported, Reason: "password_hash", FirebaseUID: "auth0|hashed"})
	if a := e.postPassword("hashed@example.com", "new-password"); a.status != http.StatusOK || a.ok.UID != "auth0|hashed" {
		t.Fatalf("hashed: %d %s", a.status, a.raw)
	}
	if uid, _ := e.signInWithPassword("hashed@example.com", "old-password"); uid != "auth0|hashed" {
		t.Fatal("the password set in Firebase was replaced")
	}

	// signupsync's account without a password: it gets this one.
	e.dbUser("nopw", "nopw@example.com", "nopw-password")
	create((&auth.UserToCreate{}).UID("auth0|nopw").Email("nopw@example.com"))
	e.setLedger(events.LedgerEntry{Auth0UserID: "auth0|nopw", Outcome: events.OutcomeImported, FirebaseUID: "auth0|nopw"})
	if a := e.postPassword("nopw@example.com", "nopw-password"); a.status != http.StatusOK || a.ok.UID != "auth0|nopw" {
		t.Fatalf("nopw: %d %s", a.status, a.raw)
	}
	if uid, _ := e.signInWithPassword("nopw@example.com", "nopw-password"); uid != "auth0|nopw" {
		t.Fatal("the password was not set on signupsync's account")
	}

	// An account under the uid nobody says is signupsync's.
	e.dbUser("foreign", "foreign@example.com", "foreign-password")
	create((&auth.UserToCreate{}).UID("auth0|foreign"))
	if a := e.postPassword("foreign@example.com", "foreign-password"); a.status != http.StatusConflict || a.fail.Error != exchange.ResultAccountExists {
		t.Fatalf("foreign: %d %s", a.status, a.raw)
	}

	// The email is someone else's account.
	e.dbUser("dup", "shared@example.com", "dup-password")
	create((&auth.UserToCreate{}).UID("someone-else").Email("shared@example.com").Password("theirs-123"))
	if a := e.postPassword("shared@example.com", "dup-password"); a.status != http.StatusConflict || a.fail.Error != exchange.ResultEmailInUse {
		t.Fatalf("email in use: %d %s", a.status, a.raw)
	}
	if uid, _ := e.signInWithPassword("shared@example.com", "theirs-123"); uid != "someone-else" {
		t.Fatal("the other account was changed")
	}
}

// TestPasswordFallbackKillSwitch: off (the default), the endpoint answers
// 404 and asks Auth0 nothing.
func TestPasswordFallbackKillSwitch(t *testing.T) {
	e := newEnv(t, nil)
	e.dbUser("off", "off@example.com", "off-password")
	a := e.postPassword("off@example.com", "off-password")
	if a.status != http.StatusNotFound || a.fail.Error != exchange.ResultPasswordDisabled {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if n := e.auth0.Requests()[auth0fake.RoutePasswordGrant]; n != 0 {
		t.Fatalf("%d password grants with the switch off", n)
	}
	if n := len(e.accounts("auth0|off", "off@example.com")); n != 0 {
		t.Fatal("account created with the switch off")
	}
}

// TestPasswordFallbackRejectsRequests: strict bodies, method, media type,
// size, and the per-email and per-address limits.
func TestPasswordFallbackRejectsRequests(t *testing.T) {
	e := passwordEnv(t, func(c *exchange.Config) { c.Password.EmailRate, c.Password.EmailBurst = 1, 2 })
	tests := []struct {
		name, contentType, body string
		status                  int
		result                  string
	}{
		{"text", "text/plain", `{"email":"a@b.c","password":"x"}`, http.StatusUnsupportedMediaType, exchange.ResultUnsupportedMedia},
		{"unknown field", "application/json", `{"email":"a@b.c","password":"x","remember":true}`, http.StatusBadRequest, exchange.ResultInvalidBody},
		{"duplicate key", "application/json", `{"email":"a@b.c","password":"x","password":"y"}`, http.StatusBadRequest, exchange.ResultInvalidBody},
		{"trailing data", "application/json", `{"email":"a@b.c","password":"x"} {}`, http.StatusBadRequest, exchange.ResultInvalidBody},
		{"no email", "application/json", `{"password":"x"}`, http.StatusBadRequest, exchange.ResultInvalidBody},
		{"not an email", "application/json", `{"email":"nobody","password":"x"}`, http.StatusBadRequest, exchange.ResultInvalidBody},
		{"array", "application/json", `[]`, http.StatusBadRequest, exchange.ResultInvalidBody},
		{"too large", "application/json", `{"email":"a@b.c","password":"` + strings.Repeat("x", 5000) + `"}`, http.StatusRequestEntityTooLarge, exchange.ResultBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.postPasswordRaw(tt.contentType, tt.body)
			if a.status != tt.status || a.fail.Error != tt.result {
				t.Fatalf("%d %s, want %d %s", a.status, a.raw, tt.status, tt.result)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+exchange.PathPassword, nil)
	if a := e.send(req); a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != http.MethodPost {
		t.Fatalf("GET: %d %v", a.status, a.header)
	}
	if n := e.auth0.Requests()[auth0fake.RoutePasswordGrant]; n != 0 {
		t.Fatalf("%d password grants for refused requests", n)
	}
	// Per email (case-insensitive): two attempts, then 429 with Retry-After.
	for _, email := range []string{"limit@example.com", "LIMIT@example.com"} {
		if a := e.postPassword(email, "guess"); a.status != http.StatusUnauthorized {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	}
	a := e.postPassword("limit@example.com", "guess")
	if a.status != http.StatusTooManyRequests || a.fail.Error != exchange.ResultRateLimited || a.header.Get("Retry-After") == "" {
		t.Fatalf("third attempt: %d %v %s", a.status, a.header, a.raw)
	}
	if a := e.postPassword("other@example.com", "guess"); a.status != http.StatusUnauthorized {
		t.Fatalf("another email: %d %s", a.status, a.raw)
	}

	t.Run("per address", func(t *testing.T) {
		e := passwordEnv(t, func(c *exchange.Config) { c.Password.IPRate, c.Password.IPBurst = 1, 2 })
		for range 2 {
			if a := e.postPasswordRaw("application/json", `{}`); a.status != http.StatusBadRequest {
				t.Fatalf("%d %s", a.status, a.raw)
			}
		}
		if a := e.postPassword("x@example.com", "guess"); a.status != http.StatusTooManyRequests || a.fail.Error != exchange.ResultRateLimited {
			t.Fatalf("third from one address: %d %s", a.status, a.raw)
		}
	})
}

// TestPasswordFallbackKeepsPasswordSecret: neither the password nor the
// email appears in the logs, span names, attributes or events, whatever
// the outcome.
func TestPasswordFallbackKeepsPasswordSecret(t *testing.T) {
	e := passwordEnv(t)
	const password = "Unique-PW-7f3a9c"
	e.dbUser("secret", "secret.person@example.com", password)
	e.dbUser("secretmfa", "secret.mfa@example.com", password)
	e.auth0.RequireMFA("auth0|secretmfa")
	for _, c := range []struct{ email, password string }{
		{"secret.person@example.com", password},           // created
		{"secret.person@example.com", password},           // existing
		{"secret.person@example.com", password + "wrong"}, // wrong
		{"secret.mfa@example.com", password},              // mfa
		{"secret.nobody@example.com", password},           // unknown
	} {
		e.postPassword(c.email, c.password)
	}
	e.auth0.FailPasswordGrant(http.StatusBadGateway, 1)
	e.postPassword("secret.person@example.com", password)

	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"password fallback"`) {
		t.Fatalf("no audit lines:\n%s", logs)
	}
	leaks := []string{password, "secret.person", "secret.mfa", "secret.nobody"}
	for _, s := range leaks {
		if strings.Contains(logs, s) {
			t.Fatalf("%q appears in the logs:\n%s", s, logs)
		}
	}
	_ = e.tp.ForceFlush(context.Background())
	spans := e.spans.GetSpans()
	if len(spans) == 0 {
		t.Fatal("no spans")
	}
	for _, sp := range spans {
		texts := []string{sp.Name, sp.Status.Description}
		for _, kv := range sp.Attributes {
			texts = append(texts, kv.Value.String())
		}
		for _, ev := range sp.Events {
			texts = append(texts, ev.Name)
			for _, kv := range ev.Attributes {
				texts = append(texts, kv.Value.String())
			}
		}
		for _, txt := range texts {
			for _, s := range leaks {
				if strings.Contains(txt, s) {
					t.Fatalf("span %q carries %q", sp.Name, s)
				}
			}
		}
	}
}

// TestPasswordFallbackLatency measures the endpoint over HTTP on loopback
// with the Auth0 fake (TLS, RS256 ID token) and the Firebase Auth emulator:
// 200 sequential first logins (CreateUser, owner claim, ledger) and 200
// sequential repeat logins of one person (ledger, look-ups), p50 and p99.
func TestPasswordFallbackLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("latency measurement")
	}
	e := passwordEnv(t)
	const n = 200
	for i := range n {
		e.dbUser("lat"+itoa(i), "lat"+itoa(i)+"@example.com", "latency-password")
	}
	measure := func(email func(int) string) []time.Duration {
		out := make([]time.Duration, 0, n)
		for i := range n {
			start := time.Now()
			a := e.postPassword(email(i), "latency-password")
			out = append(out, time.Since(start))
			if a.status != http.StatusOK {
				t.Fatalf("request %d: %d %s", i, a.status, a.raw)
			}
		}
		slices.Sort(out)
		return out
	}
	first := measure(func(i int) string { return "lat" + itoa(i) + "@example.com" })
	repeat := measure(func(int) string { return "lat0@example.com" })
	pct := func(d []time.Duration, p float64) time.Duration { return d[int(float64(len(d)-1)*p)] }
	t.Logf("first login (create): p50 %v p99 %v max %v", pct(first, .5), pct(first, .99), first[len(first)-1])
	t.Logf("repeat login (existing): p50 %v p99 %v max %v", pct(repeat, .5), pct(repeat, .99), repeat[len(repeat)-1])
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

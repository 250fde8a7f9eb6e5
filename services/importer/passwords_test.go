package importer

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/firebaseprod"
)

// bcryptHash makes a cost-4 bcrypt hash of password with the given
// variant prefix ("2a" or "2b"); bcrypt's output is $2a$, the two differ
// only in the prefix.
func bcryptHash(t *testing.T, password, variant string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return "$" + variant + string(h[3:])
}

// dbUser is a database-connection user as the passwords command joins it.
func dbUser(raw, email string) events.SignupData {
	return events.SignupData{
		Tenant: "acme", UserID: "auth0|" + raw, Email: email, EmailVerified: true, Name: "Db " + raw,
		Connection: "Username-Password-Authentication", ConnectionStrategy: "auth0", CreatedAt: "2025-01-02T03:04:05.000Z",
		Identities: []events.Identity{{Provider: "auth0", Connection: "Username-Password-Authentication", UserID: raw}},
	}
}

func (e *env) publishPassword(d events.SignupData, hash string) {
	e.t.Helper()
	m, err := events.NewPasswordMsg(events.PasswordImport{User: d, PasswordHash: hash, Joined: "users_file"})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(context.Background(), m, jetstream.WithExpectStream(events.StreamPasswords)); err != nil {
		e.t.Fatal(err)
	}
}

// idlePasswords waits until the password consumer has nothing pending or
// unacknowledged.
func (e *env) idlePasswords() {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		// Drained also means the ack floor reached the stream's last
		// message: the pending count may lag a publish just acknowledged.
		var last uint64
		if st, err := e.js.Stream(ctx, events.StreamPasswords); err == nil {
			if si, err := st.Info(ctx); err == nil {
				last = si.State.LastSeq
			}
		}
		c, err := e.js.Consumer(ctx, events.StreamPasswords, events.ConsumerPasswords)
		if err == nil {
			if info, err := c.Info(ctx); err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0 && info.AckFloor.Stream >= last {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling the consumer's state
	}
	e.t.Fatalf("password consumer not drained\nlogs:\n%s", e.logs.String())
}

func (e *env) exported(uid string) *auth.ExportedUserRecord {
	e.t.Helper()
	for _, u := range e.accounts() {
		if u.UID == uid {
			return u
		}
	}
	e.t.Fatalf("no account %s", uid)
	return nil
}

// TestDatabaseUsersKeepTheirPasswordHash: database users of the hash
// export are imported with their bcrypt hash ($2a$ and $2b$), a
// skipped/database_connection entry becomes imported/password_hash, and
// the stored hash is the exported one; a user whose uid or email already
// has an account, or whom the ledger holds as migrated on login, is left
// untouched; no hash reaches the logs.
func TestDatabaseUsersKeepTheirPasswordHash(t *testing.T) {
	e := newEnv(t)
	e.start()
	ctx := context.Background()

	// A signup of a database user first: skipped, as today.
	a := dbUser("65f000000000000000000001", "ada@example.com")
	e.publish(events.SourceBackfill, a, 0)
	e.idle()
	if le := e.entry(a.UserID); le.Outcome != events.OutcomeSkipped || le.Reason != events.ReasonDatabaseConnection {
		t.Fatalf("before: %+v", le)
	}
	b := dbUser("my-own-id-7", "Bob@Example.com") // alt_id-style user id
	taken := dbUser("65f000000000000000000003", "taken@example.com")
	emailUsed := dbUser("65f000000000000000000004", "shared@example.com")
	lazy := dbUser("65f000000000000000000005", "lazy@example.com")
	// An account for taken's uid that somebody else made, and one holding
	// emailUsed's email.
	if _, err := e.fb.CreateUser(ctx, (&auth.UserToCreate{}).UID(taken.UserID).DisplayName("made by the app")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fb.CreateUser(ctx, (&auth.UserToCreate{}).UID("other").Email("shared@example.com").Password("app-password")); err != nil {
		t.Fatal(err)
	}
	kv, err := e.js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		t.Fatal(err)
	}
	lazyEntry, _ := events.MarshalLedger(events.LedgerEntry{Auth0UserID: lazy.UserID, Outcome: events.OutcomeImported, Reason: events.ReasonLazyPassword, FirebaseUID: lazy.UserID})
	if _, err := kv.Put(ctx, events.LedgerKey(lazy.UserID), lazyEntry); err != nil {
		t.Fatal(err)
	}

	hashes := map[string]string{
		a.UserID: bcryptHash(t, "pw-a", "2a"), b.UserID: bcryptHash(t, "pw-b", "2b"), taken.UserID: bcryptHash(t, "pw-c", "2b"),
		emailUsed.UserID: bcryptHash(t, "pw-d", "2a"), lazy.UserID: bcryptHash(t, "pw-e", "2b"),
	}
	for _, d := range []events.SignupData{a, b, taken, emailUsed, lazy} {
		e.publishPassword(d, hashes[d.UserID])
	}
	e.idlePasswords()

	want := map[string][2]string{
		a.UserID:         {string(events.OutcomeImported), events.ReasonPasswordHash},
		b.UserID:         {string(events.OutcomeImported), events.ReasonPasswordHash},
		taken.UserID:     {string(events.OutcomeConflict), events.ReasonAccountExists},
		emailUsed.UserID: {string(events.OutcomeConflict), events.ReasonEmailInUse},
		lazy.UserID:      {string(events.OutcomeImported), events.ReasonLazyPassword},
	}
	for id, w := range want {
		if le := e.entry(id); string(le.Outcome) != w[0] || le.Reason != w[1] {
			t.Errorf("%s: ledger %s/%s, want %s/%s", id, le.Outcome, le.Reason, w[0], w[1])
		}
	}
	if le := e.entry(a.UserID); len(le.Sources) != 2 || le.Sources[1] != events.SourceHashExport {
		t.Errorf("sources %v, want backfill and hash_export", le.Sources)
	}
	for _, d := range []events.SignupData{a, b} {
		u := e.exported(d.UserID)
		// The emulator returns the stored hash (base64 of the bytes
		// imported); it cannot verify a bcrypt hash at sign-in.
		got, err := base64.URLEncoding.DecodeString(u.PasswordHash)
		if err != nil {
			got, err = base64.StdEncoding.DecodeString(u.PasswordHash)
		}
		if err != nil || string(got) != hashes[d.UserID] {
			t.Errorf("%s: stored hash %q (%v), want the exported one", d.UserID, u.PasswordHash, err)
		}
		if u.Email != strings.ToLower(d.Email) || !u.EmailVerified || u.CustomClaims[ClaimAuth0ID] != d.UserID || u.DisplayName != d.Name {
			t.Errorf("%s: profile %+v claims %v", d.UserID, u.UserInfo, u.CustomClaims)
		}
		if !hasPassword(u.UserRecord, d.UserID) {
			t.Errorf("%s: no password provider: %+v", d.UserID, u.ProviderUserInfo)
		}
	}
	if u := e.exported(taken.UserID); u.DisplayName != "made by the app" || u.PasswordHash != "" {
		t.Errorf("existing account changed: %+v", u.UserInfo)
	}
	if n := len(e.accounts()); n != 4 {
		t.Errorf("%d accounts, want 4 (a, b, and the two that existed)", n)
	}
	logs := e.logs.String()
	for id, h := range hashes {
		if strings.Contains(logs, h) || strings.Contains(logs, h[7:]) {
			t.Errorf("the hash of %s is in the logs", id)
		}
	}

	// The same export again: nothing changes, nothing is imported twice.
	for _, d := range []events.SignupData{a, b} {
		m, _ := events.NewPasswordMsg(events.PasswordImport{User: d, PasswordHash: hashes[d.UserID]})
		m.Header.Set(events.HeaderMsgID, "again-"+d.UserID) // past the duplicate window
		if _, err := e.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	e.idlePasswords()
	for _, d := range []events.SignupData{a, b} {
		if le := e.entry(d.UserID); le.Outcome != events.OutcomeImported || le.Reason != events.ReasonPasswordHash {
			t.Errorf("%s after a second copy: %s/%s", d.UserID, le.Outcome, le.Reason)
		}
	}
	if n := len(e.accounts()); n != 4 {
		t.Errorf("%d accounts after a second copy, want 4", n)
	}
}

// TestPasswordDeadLetterCarriesNoHash: a password message the importer
// gives up on is dead-lettered in PASSWORDS_DLQ with the user id only;
// SIGNUPS_DLQ stays empty, and the hash is in no body, header or log.
func TestPasswordDeadLetterCarriesNoHash(t *testing.T) {
	e := newEnv(t)
	e.start()
	ctx := context.Background()
	secret := "$2b$10$NOTBCRYPTsecret-value-that-must-not-leak"
	body := `{"v":1,"user":{"user_id":"auth0|65f0000000000000000000aa","email":"x@example.com","identities":[]},"password_hash":"` + secret + `"}`
	m := &jetstreamMsg{subject: events.PasswordSubject, data: []byte(body), userID: "auth0|65f0000000000000000000aa"}
	if _, err := e.js.PublishMsg(ctx, m.nats()); err != nil {
		t.Fatal(err)
	}
	e.idlePasswords()
	if n := len(e.dlq()); n != 0 {
		t.Fatalf("%d dead letters in SIGNUPS_DLQ, want 0", n)
	}
	st, err := e.js.Stream(ctx, events.StreamPasswordsDLQ)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := st.GetLastMsgForSubject(ctx, events.PasswordDLQSubject)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(dl.Data); got != `{"auth0_user_id":"auth0|65f0000000000000000000aa"}` {
		t.Errorf("dead letter body %s", got)
	}
	if dl.Header.Get(events.HeaderDLQReason) != events.ReasonMalformedEvent {
		t.Errorf("reason %q", dl.Header.Get(events.HeaderDLQReason))
	}
	for k, vs := range dl.Header {
		for _, v := range vs {
			if strings.Contains(v, "secret-value") {
				t.Errorf("header %s carries the hash", k)
			}
		}
	}
	if strings.Contains(e.logs.String(), "secret-value") {
		t.Error("the hash is in the logs")
	}
}

// TestPasswordImportKeepsBcryptUnderProductionSemantics runs the password
// path against internal/firebaseprod, which keeps the hash configuration
// the import named (the emulator does not expose it): the account's hash
// is the exported one and its algorithm BCRYPT.
func TestPasswordImportKeepsBcryptUnderProductionSemantics(t *testing.T) {
	prod := firebaseprod.New(t)
	t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", prod.Host())
	e := newEnv(t)
	app, err := firebase.NewApp(context.Background(), &firebase.Config{ProjectID: e.project})
	if err != nil {
		t.Fatal(err)
	}
	if e.fb, err = app.Auth(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.deps.Accounts = e.fb
	e.start()
	d := dbUser("65f0000000000000000000b1", "prod@example.com")
	h := bcryptHash(t, "pw", "2b")
	e.publishPassword(d, h)
	e.idlePasswords()
	accts := prod.Accounts(e.project)
	if len(accts) != 1 {
		t.Fatalf("%d accounts", len(accts))
	}
	got, _ := base64.URLEncoding.DecodeString(accts[0].PasswordHash)
	if string(got) != h || accts[0].Hash == nil || accts[0].Hash.Algorithm != "BCRYPT" {
		t.Fatalf("stored hash %q config %+v; want the exported hash with BCRYPT", accts[0].PasswordHash, accts[0].Hash)
	}
	if le := e.entry(d.UserID); le.Outcome != events.OutcomeImported || le.Reason != events.ReasonPasswordHash {
		t.Fatalf("ledger %+v", le)
	}
}

// jetstreamMsg builds a raw password-subject message.
type jetstreamMsg struct {
	subject, userID string
	data            []byte
}

func (m *jetstreamMsg) nats() *nats.Msg {
	out := nats.NewMsg(m.subject)
	out.Data = m.data
	out.Header.Set(events.HeaderUserID, m.userID)
	return out
}

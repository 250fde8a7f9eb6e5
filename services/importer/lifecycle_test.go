package importer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/internal/testenv"
)

// countingAccounts is the emulator's client, counting the calls that
// change Firebase.
type countingAccounts struct {
	*auth.Client
	mu    sync.Mutex
	calls map[string]int
	// deleted counts every uid a delete call named.
	deleted map[string]int
}

func newCounting(c *auth.Client) *countingAccounts {
	return &countingAccounts{Client: c, calls: map[string]int{}, deleted: map[string]int{}}
}

func (c *countingAccounts) count(op string, uids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[op]++
	for _, u := range uids {
		c.deleted[u]++
	}
}

func (c *countingAccounts) n(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

func (c *countingAccounts) deletes(uid string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deleted[uid]
}

func (c *countingAccounts) ImportUsers(ctx context.Context, users []*auth.UserToImport, opts ...auth.UserImportOption) (*auth.UserImportResult, error) {
	c.count("ImportUsers")
	return c.Client.ImportUsers(ctx, users, opts...)
}

func (c *countingAccounts) UpdateUser(ctx context.Context, uid string, u *auth.UserToUpdate) (*auth.UserRecord, error) {
	c.count("UpdateUser")
	return c.Client.UpdateUser(ctx, uid, u)
}

func (c *countingAccounts) DeleteUser(ctx context.Context, uid string) error {
	c.count("DeleteUser", uid)
	return c.Client.DeleteUser(ctx, uid)
}

func (c *countingAccounts) DeleteUsers(ctx context.Context, uids []string) (*auth.DeleteUsersResult, error) {
	c.count("DeleteUsers", uids...)
	return c.Client.DeleteUsers(ctx, uids)
}

// lifecycleEnv is env with counted Firebase calls and the Auth0 fake as
// the Management API.
func lifecycleEnv(t *testing.T) (*env, *countingAccounts, *auth0fake.Server) {
	t.Helper()
	e := newEnv(t)
	e.cfg.Lifecycle.DeleteUsersRPS = 0
	// A deletion before any import is looked at again after the ambiguity
	// horizon; keep it short.
	e.cfg.FirebaseTimeout, e.cfg.AmbiguousWait = 3*time.Second, 3*time.Second
	fb := newCounting(e.fb)
	e.deps.Accounts = fb
	fake := auth0fake.New(t)
	withEnricher(t, e, fake)
	return e, fb, fake
}

// startStoppable runs an importer and returns a function that stops it
// and waits until it returned.
func (e *env) startStoppable() func() {
	e.t.Helper()
	deps := e.deps
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(e.reg)
		e.deps.Metrics = deps.Metrics
	}
	ctx, cancel := context.WithCancel(context.Background())
	im, err := New(ctx, e.cfg, deps)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = im.Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// publishLifecycle stores a lifecycle event as ingest would.
func (e *env) publishLifecycle(src events.Source, kind events.LifecycleKind, userID string, at time.Time) {
	e.t.Helper()
	msg, _, err := events.NewLifecycleMsg(src, events.LifecycleData{Tenant: "acme", Kind: kind, UserID: userID, At: at}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
		e.t.Fatal(err)
	}
}

// lifecycleIdle waits until the lifecycle consumer settled every message
// of SIGNUPS_LIFECYCLE.
func (e *env) lifecycleIdle() {
	e.t.Helper()
	ctx := context.Background()
	testenv.Eventually(e.t, "lifecycle consumer drained", func() bool {
		st, err := e.js.Stream(ctx, events.StreamLifecycle)
		if err != nil {
			return false
		}
		si, err := st.Info(ctx)
		if err != nil {
			return false
		}
		c, err := e.js.Consumer(ctx, events.StreamLifecycle, events.ConsumerLifecycle)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0 && info.AckFloor.Stream >= si.State.LastSeq
	})
}

func (e *env) exists(uid string) bool {
	e.t.Helper()
	_, err := e.fb.GetUser(context.Background(), uid)
	if auth.IsUserNotFound(err) {
		return false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return true
}

func TestDeletionAfterImportDeletesTheAccountOnceAcrossARestart(t *testing.T) {
	e, fb, fake := lifecycleEnv(t)
	stop := e.startStoppable()
	for i := range 3 {
		d := social("google-oauth2", fmt.Sprint(100+i), fmt.Sprintf("gone%d@example.com", i))
		fake.AddUsers(fakeUser("google-oauth2", fmt.Sprint(100+i), d.Email))
		e.publish(events.SourceEventStream, d, 0)
	}
	e.idle()
	if got := len(e.accounts()); got != 3 {
		t.Fatalf("%d accounts imported, want 3", got)
	}
	// One deletion alone, then the importer restarts, then two at once
	// and the first again from Log Streams (another time, same Msg-Id:
	// stored once) and as a redelivered copy past the window.
	at := time.Now().UTC()
	e.publishLifecycle(events.SourceEventStream, events.LifecycleDeleted, "google-oauth2|100", at)
	e.lifecycleIdle()
	if e.exists("google-oauth2|100") {
		t.Fatal("account of a user deleted in Auth0 still exists")
	}
	stop()
	e.publishLifecycle(events.SourceEventStream, events.LifecycleDeleted, "google-oauth2|101", at)
	e.publishLifecycle(events.SourceEventStream, events.LifecycleDeleted, "google-oauth2|102", at)
	e.publishLifecycle(events.SourceLogStream, events.LifecycleDeleted, "google-oauth2|100", at.Add(2*time.Second))
	e.start()
	e.lifecycleIdle()

	if got := len(e.accounts()); got != 0 {
		t.Fatalf("%d accounts left, want 0", got)
	}
	for i := range 3 {
		uid := fmt.Sprintf("google-oauth2|%d", 100+i)
		if n := fb.deletes(uid); n != 1 {
			t.Fatalf("%s named in %d delete calls, want exactly 1", uid, n)
		}
		le := e.entry(uid)
		if le.Outcome != events.OutcomeDeleted || le.Reason != events.ReasonDeletedInAuth0 || le.Lifecycle == nil ||
			le.Lifecycle.Result != events.LifecycleFirebaseDeleted || le.Lifecycle.FirebaseDeletedAt.IsZero() ||
			le.Lifecycle.DeletedAt.IsZero() || le.Lifecycle.OutcomeBefore != events.OutcomeImported {
			t.Fatalf("ledger of %s: %+v %+v", uid, le, le.Lifecycle)
		}
		raw, err := events.MarshalLedger(le)
		if err != nil {
			t.Fatal(err)
		}
		if s := string(raw); strings.Contains(s, "@example.com") || strings.Contains(s, "Person") {
			t.Fatalf("ledger keeps personal data after the deletion: %s", s)
		}
	}
	if fb.n("DeleteUsers") != 1 || fb.n("DeleteUser") != 1 {
		t.Fatalf("DeleteUser %d, DeleteUsers %d: want one single delete, then one batch for the two that arrived together", fb.n("DeleteUser"), fb.n("DeleteUsers"))
	}
	// A late copy of a deleted user's signup is never imported again.
	imports := fb.n("ImportUsers")
	e.publish(events.SourceReconcile, social("google-oauth2", "101", "gone1@example.com"), 1)
	e.idle()
	if e.exists("google-oauth2|101") || fb.n("ImportUsers") != imports {
		t.Fatalf("a late signup copy re-created a deleted user (ImportUsers %d, was %d)", fb.n("ImportUsers"), imports)
	}
	if got := testutil.ToFloat64(e.deps.Metrics.outcomes.WithLabelValues(string(events.OutcomeSkipped), events.ReasonDeletedInAuth0)); got != 1 {
		t.Fatalf("skipped/deleted_in_auth0 = %v, want 1", got)
	}
}

func TestDeletionBeforeImportIsNeverCreated(t *testing.T) {
	e, fb, fake := lifecycleEnv(t)
	fake.AddUsers(fakeUser("github", "7", "early@example.com"))
	// The event order is reversed: the deletion is settled before the
	// signup is consumed.
	e.publishLifecycle(events.SourceEventStream, events.LifecycleDeleted, "github|7", time.Now())
	e.start()
	e.lifecycleIdle()
	le := e.entry("github|7")
	if le.Outcome != events.OutcomeDeleted || le.Lifecycle == nil || le.Lifecycle.Result != events.LifecycleDeletedBeforeImport {
		t.Fatalf("ledger: %+v", le)
	}
	e.publish(events.SourceEventStream, social("github", "7", "early@example.com"), 0)
	e.publish(events.SourceLogStream, partial("github", "7", "early@example.com"), 1)
	e.idle()
	if got := len(e.accounts()); got != 0 || fb.n("ImportUsers") != 0 {
		t.Fatalf("%d accounts, %d ImportUsers calls: a user deleted first was created", got, fb.n("ImportUsers"))
	}
	if le := e.entry("github|7"); le.Outcome != events.OutcomeDeleted || le.Deliveries < 1 {
		t.Fatalf("ledger after the late signup: %+v", le)
	}
}

func TestEmailChangeIsReadFromTheManagementAPI(t *testing.T) {
	e, fb, fake := lifecycleEnv(t)
	e.start()
	fake.AddUsers(fakeUser("google-oauth2", "31", "old@example.com"))
	e.publish(events.SourceEventStream, social("google-oauth2", "31", "old@example.com"), 0)
	e.idle()
	// Auth0 now holds a new, unverified email, a new name and picture.
	u := fakeUser("google-oauth2", "31", "new@example.com")
	u.EmailVerified, u.Name, u.Picture = false, "Renamed", "https://example.com/new.png"
	fake.AddUsers(u)
	at := time.Now().UTC()
	e.publishLifecycle(events.SourceEventStream, events.LifecycleUpdated, "google-oauth2|31", at)
	e.lifecycleIdle()

	rec, err := e.fb.GetUser(context.Background(), "google-oauth2|31")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Email != "new@example.com" || rec.EmailVerified || rec.DisplayName != "Renamed" || rec.PhotoURL != "https://example.com/new.png" {
		t.Fatalf("account not updated from Auth0: email %q verified %v name %q photo %q", rec.Email, rec.EmailVerified, rec.DisplayName, rec.PhotoURL)
	}
	le := e.entry("google-oauth2|31")
	if le.Outcome != events.OutcomeImported || le.Lifecycle == nil || le.Lifecycle.Result != events.LifecycleProfileUpdated ||
		!le.Lifecycle.UpdatedAt.Equal(at) || le.Lifecycle.SyncedAt.IsZero() {
		t.Fatalf("ledger: %+v %+v", le, le.Lifecycle)
	}
	if fb.n("UpdateUser") != 1 {
		t.Fatalf("UpdateUser called %d times, want 1", fb.n("UpdateUser"))
	}

	// An older update arriving afterwards is ignored: no Firebase call,
	// the newest updated_at stays.
	fake.AddUsers(fakeUser("google-oauth2", "31", "older@example.com"))
	e.publishLifecycle(events.SourceEventStream, events.LifecycleUpdated, "google-oauth2|31", at.Add(-time.Minute))
	e.lifecycleIdle()
	if fb.n("UpdateUser") != 1 {
		t.Fatalf("an older update was applied (UpdateUser %d)", fb.n("UpdateUser"))
	}
	if rec, _ := e.fb.GetUser(context.Background(), "google-oauth2|31"); rec.Email != "new@example.com" {
		t.Fatalf("email %q after an older update", rec.Email)
	}
	if le := e.entry("google-oauth2|31"); !le.Lifecycle.UpdatedAt.Equal(at) {
		t.Fatalf("last applied updated_at moved to %s", le.Lifecycle.UpdatedAt)
	}
	if got := e.lifecycleTotal(events.LifecycleUpdated, events.LifecycleStale); got != 1 {
		t.Fatalf("stale updates counted %v, want 1", got)
	}
}

func (e *env) lifecycleTotal(kind events.LifecycleKind, result string) float64 {
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "signupsync_importer_lifecycle_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["kind"] == string(kind) && l["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestEmailChangeToATakenEmailIsAConflictAndTouchesNothing(t *testing.T) {
	e, fb, fake := lifecycleEnv(t)
	ctx := context.Background()
	if _, err := e.fb.CreateUser(ctx, (&auth.UserToCreate{}).UID("someone-else").Email("taken@example.com")); err != nil {
		t.Fatal(err)
	}
	e.start()
	fake.AddUsers(fakeUser("github", "41", "mine@example.com"))
	e.publish(events.SourceEventStream, social("github", "41", "mine@example.com"), 0)
	e.idle()
	fake.AddUsers(fakeUser("github", "41", "taken@example.com"))
	e.publishLifecycle(events.SourceEventStream, events.LifecycleUpdated, "github|41", time.Now())
	e.lifecycleIdle()
	rec, err := e.fb.GetUser(ctx, "github|41")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Email != "mine@example.com" || fb.n("UpdateUser") != 0 {
		t.Fatalf("account changed (email %q, UpdateUser %d)", rec.Email, fb.n("UpdateUser"))
	}
	if le := e.entry("github|41"); le.Lifecycle == nil || le.Lifecycle.Result != events.LifecycleEmailConflict || strings.Contains(le.Lifecycle.Detail, "@") {
		t.Fatalf("ledger: %+v", le.Lifecycle)
	}
}

func TestDeletionOfAnAccountSignupsyncDidNotCreateTouchesNothing(t *testing.T) {
	e, fb, fake := lifecycleEnv(t)
	ctx := context.Background()
	// The app already holds github|51 (already_present); auth0|db is a
	// database user the signup path skips.
	// (made by the app, so without signupsync's auth0_user_id claim)
	if _, err := e.fb.ImportUsers(ctx, []*auth.UserToImport{(&auth.UserToImport{}).UID("github|51").Email("present@example.com").
		ProviderData([]*auth.UserProvider{{ProviderID: "github.com", UID: "51"}})}); err != nil {
		t.Fatal(err)
	}
	e.start()
	fake.AddUsers(fakeUser("github", "51", "present@example.com"))
	e.publish(events.SourceEventStream, social("github", "51", "present@example.com"), 0)
	e.publish(events.SourceEventStream, events.SignupData{Tenant: "acme", UserID: "auth0|db", Email: "db@example.com",
		Identities: []events.Identity{{Provider: "auth0", Connection: "Username-Password-Authentication", UserID: "db"}}}, 0)
	e.idle()
	if le := e.entry("github|51"); le.Outcome != events.OutcomeAlreadyPresent {
		t.Fatalf("setup: %+v", le)
	}
	e.publishLifecycle(events.SourceEventStream, events.LifecycleDeleted, "github|51", time.Now())
	e.publishLifecycle(events.SourceLogStream, events.LifecycleDeleted, "auth0|db", time.Now())
	e.lifecycleIdle()

	if !e.exists("github|51") || fb.n("DeleteUser")+fb.n("DeleteUsers") != 0 {
		t.Fatalf("an account signupsync did not create was deleted (calls %v)", fb.calls)
	}
	le := e.entry("github|51")
	if le.Outcome != events.OutcomeAlreadyPresent || le.Lifecycle == nil || le.Lifecycle.Result != events.LifecycleNotOurs || le.Lifecycle.DeletedAt.IsZero() {
		t.Fatalf("already_present user: %+v %+v", le, le.Lifecycle)
	}
	le = e.entry("auth0|db")
	if le.Outcome != events.OutcomeDeleted || le.Lifecycle.OutcomeBefore != events.OutcomeSkipped || !le.Lifecycle.FirebaseDeletedAt.IsZero() {
		t.Fatalf("skipped user: %+v %+v", le, le.Lifecycle)
	}
}

func TestMalformedLifecycleEventIsDeadLettered(t *testing.T) {
	e, _, _ := lifecycleEnv(t)
	e.start()
	if _, err := e.js.Publish(context.Background(), events.LifecycleSubject(events.LifecycleDeleted, events.SourceEventStream), []byte(`{"not":"an event"}`)); err != nil {
		t.Fatal(err)
	}
	e.lifecycleIdle()
	dl := e.dlq()
	if len(dl) != 1 || dl[0].Header.Get(events.HeaderDLQReason) != events.ReasonMalformedEvent ||
		dl[0].Header.Get(events.HeaderDLQSubject) != "users.v1.deleted.event_stream" {
		t.Fatalf("dead letters: %+v", dl)
	}
	if !errors.Is(func() error { _, err := events.DecodeLifecycle(dl[0].Data); return err }(), events.ErrMalformedLifecycle) {
		t.Fatal("dead letter is not the original bytes")
	}
}

// TestUpdateBeforeTheSignupIsSettledIsNotLost: Auth0 reports a profile
// change before the importer settled the user's signup (the two are
// consumed independently). The update is recorded, not dropped: one whose
// signup is consumed afterwards is imported with the profile re-read from
// Auth0, not the signup's older body; one whose import is in flight is
// applied when it is checked again after AckWait.
func TestUpdateBeforeTheSignupIsSettledIsNotLost(t *testing.T) {
	e, _, fake := lifecycleEnv(t)
	e.cfg.Delivery.AckWait = time.Second
	u := fakeUser("google-oauth2", "61", "changed@example.com")
	u.Name = "Changed"
	fake.AddUsers(u)
	e.publishLifecycle(events.SourceEventStream, events.LifecycleUpdated, "google-oauth2|61", time.Now())
	e.start()
	e.lifecycleIdle()
	if le := e.entry("google-oauth2|61"); le.Outcome != "" || le.Lifecycle == nil || le.Lifecycle.Result != events.LifecycleUnknownUser {
		t.Fatalf("update of a user without a settled signup not recorded: %+v %+v", le, le.Lifecycle)
	}
	e.publish(events.SourceEventStream, social("google-oauth2", "61", "before@example.com"), 0)
	e.idle()
	rec, err := e.fb.GetUser(context.Background(), "google-oauth2|61")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Email != "changed@example.com" || rec.DisplayName != "Changed" {
		t.Fatalf("imported from the signup's body, older than the update: email %q name %q", rec.Email, rec.DisplayName)
	}
	if le := e.entry("google-oauth2|61"); le.Outcome != events.OutcomeImported {
		t.Fatalf("ledger: %+v", le)
	}
}

// TestEmailChangeKeepsAVerifiedEmailVerified: Firebase resets
// email_verified when the email changes, so a change from one verified
// email to another must say verified again.
func TestEmailChangeKeepsAVerifiedEmailVerified(t *testing.T) {
	e, _, fake := lifecycleEnv(t)
	e.start()
	fake.AddUsers(fakeUser("github", "71", "first@example.com"))
	e.publish(events.SourceEventStream, social("github", "71", "first@example.com"), 0)
	e.idle()
	fake.AddUsers(fakeUser("github", "71", "second@example.com"))
	e.publishLifecycle(events.SourceEventStream, events.LifecycleUpdated, "github|71", time.Now())
	e.lifecycleIdle()
	rec, err := e.fb.GetUser(context.Background(), "github|71")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Email != "second@example.com" || !rec.EmailVerified {
		t.Fatalf("email %q verified %v, want second@example.com verified as in Auth0", rec.Email, rec.EmailVerified)
	}
}

// TestImportThatLandsAfterTheDeletionIsDeleted: an ImportUsers that got no
// answer lands after the user was deleted in Auth0 and recorded
// deleted_before_import (the retried signup is then skipped, so nothing
// records the account). The lifecycle consumer looks once more after the
// ambiguity horizon, finds the account carrying signupsync's claim for the
// user, and deletes it. An account at that uid without the claim (not
// signupsync's) is left alone.
func TestImportThatLandsAfterTheDeletionIsDeleted(t *testing.T) {
	e, fb, fake := lifecycleEnv(t)
	fake.AddUsers(fakeUser("github", "71", "late@example.com"), fakeUser("github", "72", "theirs@example.com"))
	ctx := context.Background()
	// What the unanswered import left behind (mapping.go's claim), and an
	// account someone else made at the other user's uid.
	if _, err := e.fb.ImportUsers(ctx, []*auth.UserToImport{
		(&auth.UserToImport{}).UID("github|71").Email("late@example.com").CustomClaims(map[string]any{ClaimAuth0ID: "github|71"}).
			ProviderData([]*auth.UserProvider{{ProviderID: "github.com", UID: "71"}}),
		(&auth.UserToImport{}).UID("github|72").Email("theirs@example.com"),
	}); err != nil {
		t.Fatal(err)
	}
	e.publishLifecycle(events.SourceEventStream, events.LifecycleDeleted, "github|71", time.Now())
	e.publishLifecycle(events.SourceEventStream, events.LifecycleDeleted, "github|72", time.Now())
	e.start()
	e.lifecycleIdle()
	if e.exists("github|71") {
		t.Fatal("the import that landed after the deletion is still in Firebase")
	}
	if !e.exists("github|72") {
		t.Fatal("an account signupsync did not create was deleted")
	}
	le := e.entry("github|71")
	if le.Outcome != events.OutcomeDeleted || le.Lifecycle == nil || le.Lifecycle.Result != events.LifecycleFirebaseDeleted {
		t.Fatalf("ledger: %+v %+v", le, le.Lifecycle)
	}
	if fb.deletes("github|71") != 1 || fb.deletes("github|72") != 0 {
		t.Fatalf("deletes: %d %d", fb.deletes("github|71"), fb.deletes("github|72"))
	}
}

// TestOwnImportFoundLaterIsImported: a signup whose account is already at its
// uid with its identity and signupsync's claim for it (an earlier attempt's
// import landed without an answer, or its process died before recording
// it) is recorded imported (import_landed), so lifecycle events act on it;
// without the claim it stays already_present.
func TestOwnImportFoundLaterIsImported(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.fb.ImportUsers(ctx, []*auth.UserToImport{
		(&auth.UserToImport{}).UID("github|81").Email("a81@example.com").CustomClaims(map[string]any{ClaimAuth0ID: "github|81"}).
			ProviderData([]*auth.UserProvider{{ProviderID: "github.com", UID: "81"}}),
		(&auth.UserToImport{}).UID("github|82").Email("a82@example.com").
			ProviderData([]*auth.UserProvider{{ProviderID: "github.com", UID: "82"}}),
	}); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.publish(events.SourceAction, social("github", "81", "a81@example.com"), 0)
	e.publish(events.SourceAction, social("github", "82", "a82@example.com"), 1)
	e.idle()
	if le := e.entry("github|81"); le.Outcome != events.OutcomeImported || le.Reason != events.ReasonImportLanded || le.FirebaseUID != "github|81" {
		t.Fatalf("own import: %+v", le)
	}
	if le := e.entry("github|82"); le.Outcome != events.OutcomeAlreadyPresent || le.Reason != events.ReasonSameUIDAndProvider {
		t.Fatalf("someone else's account: %+v", le)
	}
}

// TestIdentityLinkedInAuth0IsLinkedOnlyOnProof: an identity linked to the
// user in Auth0 after the import reaches the Firebase account only under
// the link policy's proof rules. A Google identity of a verified gmail.com
// address whose account's email is verified too is linked; a Facebook
// identity (not authoritative for gmail.com) is recorded identity_unproven
// while the rest of the profile change is applied; an identity another
// Firebase account carries is recorded identity_conflict and that account
// is left as it was. An identity the account has and Auth0 lacks is never
// unlinked.
func TestIdentityLinkedInAuth0IsLinkedOnlyOnProof(t *testing.T) {
	e, _, fake := lifecycleEnv(t)
	ctx := context.Background()
	// Someone's app account already signs in with the Google identity the
	// third user links in Auth0.
	if _, err := e.fb.ImportUsers(ctx, []*auth.UserToImport{(&auth.UserToImport{}).UID("app-account-9").Email("other9@example.com").
		EmailVerified(true).DisplayName("Other").ProviderData([]*auth.UserProvider{{ProviderID: "google.com", UID: "109876543210303"}})}); err != nil {
		t.Fatal(err)
	}
	e.start()
	for _, raw := range []string{"301", "302", "303"} {
		email := "user" + raw + "@gmail.com"
		fake.AddUsers(fakeUser("github", raw, email))
		e.publish(events.SourceEventStream, social("github", raw, email), 0)
	}
	e.idle()
	// The app linked an Apple identity to the second account; Auth0 does
	// not know it.
	if _, err := e.fb.UpdateUser(ctx, "github|302", (&auth.UserToUpdate{}).ProviderToLink(&auth.UserProvider{ProviderID: "apple.com", UID: "001302.apple"})); err != nil {
		t.Fatal(err)
	}

	linked := fakeUser("github", "301", "user301@gmail.com")
	linked.Identities = append(linked.Identities, auth0fake.Identity{Provider: "google-oauth2", Connection: "google-oauth2", UserID: "109876543210301", IsSocial: true})
	unproven := fakeUser("github", "302", "user302@gmail.com")
	unproven.Name = "Renamed 302"
	unproven.Identities = append(unproven.Identities, auth0fake.Identity{Provider: "facebook", Connection: "facebook", UserID: "10230302", Numeric: true, IsSocial: true})
	taken := fakeUser("github", "303", "user303@gmail.com")
	taken.Name = "Renamed 303"
	taken.Identities = append(taken.Identities, auth0fake.Identity{Provider: "google-oauth2", Connection: "google-oauth2", UserID: "109876543210303", IsSocial: true})
	fake.AddUsers(linked, unproven, taken)
	for _, id := range []string{"github|301", "github|302", "github|303"} {
		e.publishLifecycle(events.SourceEventStream, events.LifecycleUpdated, id, time.Now())
	}
	e.lifecycleIdle()

	result := func(t *testing.T, uid, want string) *events.LifecycleState {
		t.Helper()
		le := e.entry(uid)
		if le.Outcome != events.OutcomeImported || le.Lifecycle == nil || le.Lifecycle.Result != want || strings.Contains(le.Lifecycle.Detail, "@") {
			t.Fatalf("ledger of %s: %+v, want result %s (detail without email)", uid, le.Lifecycle, want)
		}
		if got := e.lifecycleTotal(events.LifecycleUpdated, want); got != 1 {
			t.Fatalf("%s counted %v, want 1", want, got)
		}
		return le.Lifecycle
	}
	user := func(t *testing.T, uid string) *auth.UserRecord {
		t.Helper()
		rec, err := e.fb.GetUser(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}

	t.Run("authoritative provider, verified on both sides: linked", func(t *testing.T) {
		lc := result(t, "github|301", events.LifecycleIdentityLinked)
		if !e.hasProvider("github|301", "google.com", "109876543210301") || !e.hasProvider("github|301", "github.com", "301") {
			t.Fatalf("providers of github|301: %+v", user(t, "github|301").ProviderUserInfo)
		}
		if lc.SyncedAt.IsZero() {
			t.Fatal("a link is a Firebase write: synced_at not set")
		}
	})
	t.Run("provider not authoritative: unproven, the rest applied", func(t *testing.T) {
		lc := result(t, "github|302", events.LifecycleIdentityUnproven)
		rec := user(t, "github|302")
		if e.hasProvider("github|302", "facebook.com", "10230302") {
			t.Fatal("a facebook identity was linked on a gmail.com address")
		}
		if rec.DisplayName != "Renamed 302" || lc.SyncedAt.IsZero() {
			t.Fatalf("the name change was not applied with the unproven identity: name %q synced %v", rec.DisplayName, lc.SyncedAt)
		}
		if !e.hasProvider("github|302", "apple.com", "001302.apple") {
			t.Fatal("an identity Auth0 lacks was unlinked")
		}
	})
	t.Run("identity on another account: conflict, that account untouched", func(t *testing.T) {
		result(t, "github|303", events.LifecycleIdentityConflict)
		if e.hasProvider("github|303", "google.com", "109876543210303") {
			t.Fatal("an identity another account carries was linked")
		}
		other := user(t, "app-account-9")
		if !e.hasProvider("app-account-9", "google.com", "109876543210303") || other.Email != "other9@example.com" || other.DisplayName != "Other" {
			t.Fatalf("the account carrying the identity changed: %+v %+v", other.UserInfo, other.ProviderUserInfo)
		}
		if rec := user(t, "github|303"); rec.DisplayName != "Renamed 303" {
			t.Fatalf("the name change was not applied with the conflicting identity: %q", rec.DisplayName)
		}
	})
}

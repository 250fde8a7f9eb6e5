package importer

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"

	"github.com/signupsync/signupsync/events"
)

func sortedProviders() []string {
	var out []string
	for p := range events.SocialProviders() {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func TestProviderMappings(t *testing.T) {
	e := newEnv(t)
	e.start()
	providers := events.SocialProviders()
	for i, p := range sortedProviders() {
		e.publish(events.SourceAction, social(p, fmt.Sprint(70000+i), "map-"+p+"@example.com"), 0)
	}
	e.idle()
	ctx := context.Background()
	for i, p := range sortedProviders() {
		t.Run(p, func(t *testing.T) {
			raw := fmt.Sprint(70000 + i)
			id := p + "|" + raw
			le := e.entry(id)
			if le.Outcome != events.OutcomeImported || le.FirebaseUID != id || len(le.Sources) != 1 || le.Sources[0] != events.SourceAction {
				t.Fatalf("ledger %+v", le)
			}
			u, err := e.fb.GetUser(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if u.Email != "map-"+p+"@example.com" || !u.EmailVerified || u.DisplayName != "Person "+raw || u.PhotoURL != "https://example.com/"+raw+".png" {
				t.Fatalf("profile %+v", u.UserInfo)
			}
			if len(u.ProviderUserInfo) != 1 || u.ProviderUserInfo[0].ProviderID != providers[p] || u.ProviderUserInfo[0].UID != raw {
				t.Fatalf("providers %+v", u.ProviderUserInfo[0])
			}
			if u.CustomClaims[ClaimAuth0ID] != id {
				t.Fatalf("claims %v", u.CustomClaims)
			}
			if u.UserMetadata.CreationTimestamp != 1793527200000 {
				t.Fatalf("created %d", u.UserMetadata.CreationTimestamp)
			}
		})
	}
	if got := len(e.accounts()); got != len(providers) {
		t.Fatalf("%d accounts, want %d", got, len(providers))
	}
}

func TestSkipReasons(t *testing.T) {
	e := newEnv(t)
	e.start()
	linked := social("google-oauth2", "81", "linked@example.com")
	linked.Identities = append(linked.Identities, events.Identity{Provider: "github", Connection: "github", UserID: "9", IsSocial: true})
	db := events.SignupData{Tenant: "acme", UserID: "auth0|82", Email: "db@example.com", Identities: []events.Identity{{Provider: "auth0", Connection: "Username-Password-Authentication", UserID: "82"}}}
	pwless := events.SignupData{Tenant: "acme", UserID: "email|83", Email: "pl@example.com", Identities: []events.Identity{{Provider: "email", Connection: "email", UserID: "83"}}}
	enterprise := events.SignupData{Tenant: "acme", UserID: "samlp|corp|84", Identities: []events.Identity{{Provider: "samlp", Connection: "corp", UserID: "corp|84"}}}
	unsupported := social("linkedin", "85", "li@example.com")
	none := events.SignupData{Tenant: "acme", UserID: "oauth2|86"}
	tests := []struct {
		name string
		data events.SignupData
		want string
	}{
		{"linked identities", linked, events.ReasonLinkedIdentities},
		{"database connection", db, events.ReasonDatabaseConnection},
		{"passwordless connection", pwless, events.ReasonPasswordless},
		{"enterprise connection", enterprise, events.ReasonEnterpriseConnection},
		{"unsupported provider", unsupported, events.ReasonUnsupportedProvider},
		{"no identity", none, events.ReasonNoIdentity},
	}
	for _, tt := range tests {
		e.publish(events.SourceAction, tt.data, 0)
	}
	e.idle()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			le := e.entry(tt.data.UserID)
			if le.Outcome != events.OutcomeSkipped || le.Reason != tt.want {
				t.Fatalf("ledger %+v, want skipped/%s", le, tt.want)
			}
		})
	}
	if got := len(e.accounts()); got != 0 {
		t.Fatalf("%d accounts created for skipped signups", got)
	}
}

func TestSameSignupDeliveredManyTimesIsOneAccount(t *testing.T) {
	e := newEnv(t)
	e.start()
	tests := []struct {
		name    string
		copies  int
		sources []events.Source
	}{
		{"once", 1, []events.Source{events.SourceAction}},
		{"twice", 2, []events.Source{events.SourceAction}},
		{"fifty times", 50, []events.Source{events.SourceAction}},
		{"three sources", 3, []events.Source{events.SourceAction, events.SourceEventStream, events.SourceLogStream}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := social("google-oauth2", fmt.Sprint(90+i), fmt.Sprintf("many%d@example.com", i))
			for c := 0; c < tt.copies; c++ {
				src := tt.sources[c%len(tt.sources)]
				dd := d
				if src == events.SourceLogStream {
					dd.Partial, dd.Name, dd.Picture = true, "", ""
				}
				e.publish(src, dd, c)
			}
			e.idle()
			le := e.entry(d.UserID)
			if le.Outcome != events.OutcomeImported || le.Deliveries != tt.copies || len(le.Sources) != len(tt.sources) {
				t.Fatalf("ledger %+v", le)
			}
			res, err := e.fb.GetUsers(context.Background(), []auth.UserIdentifier{auth.EmailIdentifier{Email: d.Email}, auth.UIDIdentifier{UID: d.UserID}})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Users) != 1 {
				t.Fatalf("%d accounts for one signup", len(res.Users))
			}
		})
	}
	if got := len(e.accounts()); got != len(tests) {
		t.Fatalf("%d accounts, want %d", got, len(tests))
	}
}

func TestExistingAccounts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	present := social("github", "101", "present@example.com")
	taken := social("github", "102", "taken@example.com")
	elsewhere := social("github", "103", "elsewhere@example.com")
	_, err := e.fb.ImportUsers(ctx, []*auth.UserToImport{
		(&auth.UserToImport{}).UID(present.UserID).Email("present@example.com").ProviderData([]*auth.UserProvider{{ProviderID: "github.com", UID: "101"}}),
		(&auth.UserToImport{}).UID(taken.UserID).Email("someone-else@example.com"),
		(&auth.UserToImport{}).UID("firebase-native-103").Email("other@example.com").ProviderData([]*auth.UserProvider{{ProviderID: "github.com", UID: "103"}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.start()
	for _, d := range []events.SignupData{present, taken, elsewhere} {
		e.publish(events.SourceAction, d, 0)
	}
	e.idle()
	tests := []struct {
		name    string
		userID  string
		outcome events.Outcome
		reason  string
		fbUID   string
	}{
		{"same uid and provider", present.UserID, events.OutcomeAlreadyPresent, events.ReasonSameUIDAndProvider, present.UserID},
		{"uid taken by another person", taken.UserID, events.OutcomeConflict, events.ReasonUIDTaken, taken.UserID},
		{"provider identity on another account", elsewhere.UserID, events.OutcomeAlreadyPresent, events.ReasonProviderElsewhere, "firebase-native-103"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			le := e.entry(tt.userID)
			if le.Outcome != tt.outcome || le.Reason != tt.reason || le.FirebaseUID != tt.fbUID {
				t.Fatalf("ledger %+v", le)
			}
		})
	}
	// Never overwritten: the taken uid keeps its own email.
	u, err := e.fb.GetUser(ctx, taken.UserID)
	if err != nil || u.Email != "someone-else@example.com" {
		t.Fatalf("existing account changed: %+v %v", u, err)
	}
	if got := len(e.accounts()); got != 3 {
		t.Fatalf("%d accounts, want the 3 that existed", got)
	}
}

func TestEmailConflictPolicies(t *testing.T) {
	tests := []struct {
		name          string
		policy        EmailPolicy
		existingVerif bool
		outcome       events.Outcome
		reason        string
		linked        bool
	}{
		{"conflict", EmailConflict, true, events.OutcomeConflict, events.ReasonEmailInUse, false},
		{"skip", EmailSkip, true, events.OutcomeSkipped, events.ReasonEmailInUse, false},
		// link: see link_test.go.
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.cfg.EmailPolicy = tt.policy
			ctx := context.Background()
			if _, err := e.fb.ImportUsers(ctx, []*auth.UserToImport{
				(&auth.UserToImport{}).UID("existing-1").Email("shared@example.com").EmailVerified(tt.existingVerif),
			}); err != nil {
				t.Fatal(err)
			}
			e.start()
			d := social("google-oauth2", "201", "Shared@Example.com")
			e.publish(events.SourceAction, d, 0)
			e.idle()
			le := e.entry(d.UserID)
			if le.Outcome != tt.outcome || le.Reason != tt.reason || le.FirebaseUID != "existing-1" {
				t.Fatalf("ledger %+v", le)
			}
			accts := e.accounts()
			if len(accts) != 1 {
				t.Fatalf("%d accounts, want 1", len(accts))
			}
			u, err := e.fb.GetUser(ctx, "existing-1")
			if err != nil {
				t.Fatal(err)
			}
			hasGoogle := false
			for _, p := range u.ProviderUserInfo {
				if p.ProviderID == "google.com" && p.UID == "201" {
					hasGoogle = true
				}
			}
			if hasGoogle != tt.linked {
				t.Fatalf("google linked = %v, want %v (%+v)", hasGoogle, tt.linked, u.ProviderUserInfo)
			}
		})
	}
}

func TestSameEmailTwiceInOneBatch(t *testing.T) {
	e := newEnv(t)
	e.start()
	a := social("google-oauth2", "301", "twins@example.com")
	b := social("facebook", "302", "twins@example.com")
	e.publish(events.SourceAction, a, 0)
	e.publish(events.SourceAction, b, 0)
	e.idle()
	la, lb := e.entry(a.UserID), e.entry(b.UserID)
	outcomes := map[events.Outcome]int{la.Outcome: 1}
	outcomes[lb.Outcome]++
	if outcomes[events.OutcomeImported] != 1 || outcomes[events.OutcomeConflict] != 1 {
		t.Fatalf("outcomes %v / %v, want one imported and one conflict", la, lb)
	}
	if got := len(e.accounts()); got != 1 {
		t.Fatalf("%d accounts with one email, want 1", got)
	}
}

func TestBadUserDoesNotFailTheBatch(t *testing.T) {
	e := newEnv(t)
	e.cfg.BatchWindow = 200 * time.Millisecond
	var good []events.SignupData
	for i := range 20 {
		good = append(good, social("apple", fmt.Sprint(400+i), fmt.Sprintf("good%d@example.com", i)))
	}
	bad := social("apple", "499", "not-an-email")
	for i, d := range good {
		if i == 10 {
			e.publish(events.SourceAction, bad, 0)
		}
		e.publish(events.SourceAction, d, 0)
	}
	e.start()
	e.idle()
	for _, d := range good {
		if le := e.entry(d.UserID); le.Outcome != events.OutcomeImported {
			t.Fatalf("%s: %+v", d.UserID, le)
		}
	}
	le := e.entry(bad.UserID)
	if le.Outcome != events.OutcomeDeadLettered || le.Reason != events.ReasonFirebaseRejected {
		t.Fatalf("bad user ledger %+v", le)
	}
	dl := e.dlq()
	if len(dl) != 1 || dl[0].Header.Get(events.HeaderUserID) != bad.UserID || dl[0].Header.Get(events.HeaderDLQReason) != events.ReasonFirebaseRejected {
		t.Fatalf("dead letters %+v", dl)
	}
	if got := len(e.accounts()); got != len(good) {
		t.Fatalf("%d accounts, want %d", got, len(good))
	}
}

func TestPoisonMessageIsDeadLetteredWithHeaders(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.publishRaw(events.Subject(events.SourceAction), []byte(`{"not":"an event"}`))
	e.idle()
	dl := e.dlq()
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	h := dl[0].Header
	for _, k := range []string{events.HeaderDLQReason, events.HeaderDLQError, events.HeaderDLQStream, events.HeaderDLQSubject, events.HeaderDLQSequence, events.HeaderDLQDeliveries, events.HeaderDLQFirstPublished, events.HeaderDLQFailedAt} {
		if h.Get(k) == "" {
			t.Errorf("dead letter lacks %s (headers %v)", k, h)
		}
	}
	if h.Get(events.HeaderDLQReason) != events.ReasonMalformedEvent || h.Get(events.HeaderDLQStream) != events.StreamSignups || h.Get(events.HeaderDLQSubject) != events.Subject(events.SourceAction) {
		t.Fatalf("headers %v", h)
	}
	if string(dl[0].Data) != `{"not":"an event"}` {
		t.Fatalf("dead letter data %q", dl[0].Data)
	}
}

func TestConcurrentReplicasImportEachUserOnce(t *testing.T) {
	e := newEnv(t)
	e.cfg.BatchSize = 25
	const users = 300
	for i := range users {
		d := social("google-oauth2", fmt.Sprint(5000+i), fmt.Sprintf("r%d@example.com", i))
		e.publish(events.SourceAction, d, 0)
		if i%3 == 0 {
			e.publish(events.SourceEventStream, d, 1) // a late copy, past the window
		}
	}
	e.start()
	e.start()
	e.start()
	e.idle()
	counts := map[events.Outcome]int{}
	for i := range users {
		counts[e.entry(fmt.Sprintf("google-oauth2|%d", 5000+i)).Outcome]++
	}
	if counts[events.OutcomeImported] != users {
		t.Fatalf("outcomes %v, want %d imported", counts, users)
	}
	if got := len(e.accounts()); got != users {
		t.Fatalf("%d accounts, want %d", got, users)
	}
	if n := len(e.dlq()); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

package firebaseprod_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"firebase.google.com/go/v4/auth"
	"firebase.google.com/go/v4/errorutils"
	"google.golang.org/api/iterator"

	"github.com/signupsync/signupsync/internal/firebaseprod"
)

func uidsOf(recs []*auth.UserRecord) []string {
	var uids []string
	for _, r := range recs {
		uids = append(uids, r.UID)
	}
	slices.Sort(uids)
	return uids
}

func TestGetUsersByEmailReturnsEveryAccountHoldingIt(t *testing.T) {
	srv, c, p := start(t)
	ctx := t.Context()
	importUsers(t, c, user("u1", "jane@example.com"))
	if err := srv.Insert(p, firebaseprod.Account{UID: "u2", Email: "Jane@Example.com"}); err != nil {
		t.Fatal(err)
	}

	got, err := c.GetUsers(ctx, []auth.UserIdentifier{auth.EmailIdentifier{Email: "jane@example.com"}})

	if err != nil {
		t.Fatal(err)
	}
	if uids := uidsOf(got.Users); !slices.Equal(uids, []string{"u1", "u2"}) || len(got.NotFound) != 0 {
		t.Errorf("GetUsers by email = %v, %d not found; want both accounts", uids, len(got.NotFound))
	}
	// GetUserByEmail keeps the first account answered: the oldest.
	if one, err := c.GetUserByEmail(ctx, "jane@example.com"); err != nil || one.UID != "u1" {
		t.Errorf("GetUserByEmail = %v, %v; want u1", one, err)
	}
	if st := srv.Stats(p); !slices.Equal(st.DuplicateEmails, []string{"jane@example.com"}) {
		t.Errorf("duplicate emails = %q", st.DuplicateEmails)
	}
}

func TestGetUsersCallsAMixedCaseEmailNotFoundThoughItFoundIt(t *testing.T) {
	// Firebase matches emails without case, but the SDK decides NotFound by
	// comparing the identifier with the answered email exactly: callers
	// must lower-case emails before looking them up.
	_, c, _ := start(t)
	importUsers(t, c, user("u1", "jane@example.com"))

	got, err := c.GetUsers(t.Context(), []auth.UserIdentifier{auth.EmailIdentifier{Email: "JANE@example.com"}})

	if err != nil {
		t.Fatal(err)
	}
	if len(got.Users) != 1 || len(got.NotFound) != 1 {
		t.Errorf("GetUsers(JANE@...) = %d users, %d not found; want 1 and 1", len(got.Users), len(got.NotFound))
	}
}

func TestLookupOfMissingAccountIsUserNotFound(t *testing.T) {
	_, c, _ := start(t)
	ctx := t.Context()

	if _, err := c.GetUser(ctx, "nobody"); !auth.IsUserNotFound(err) {
		t.Errorf("GetUser: %v, want user not found", err)
	}
	if _, err := c.GetUserByProviderUID(ctx, "google.com", "nobody"); !auth.IsUserNotFound(err) {
		t.Errorf("GetUserByProviderUID: %v, want user not found", err)
	}
	got, err := c.GetUsers(ctx, []auth.UserIdentifier{auth.UIDIdentifier{UID: "nobody"}})
	if err != nil || len(got.Users) != 0 || len(got.NotFound) != 1 {
		t.Errorf("GetUsers = %+v, %v; want no users, one not found, no error", got, err)
	}
}

func TestUpdateToAnEmailAnotherAccountHoldsIsRefused(t *testing.T) {
	_, c, _ := start(t)
	ctx := t.Context()
	for uid, email := range map[string]string{"u1": "a@example.com", "u2": "b@example.com"} {
		if _, err := c.CreateUser(ctx, (&auth.UserToCreate{}).UID(uid).Email(email)); err != nil {
			t.Fatal(err)
		}
	}

	_, err := c.UpdateUser(ctx, "u2", (&auth.UserToUpdate{}).Email("A@example.com"))

	if !auth.IsEmailAlreadyExists(err) {
		t.Errorf("UpdateUser to a held email: %v, want email already exists", err)
	}
	if got, _ := c.GetUser(ctx, "u2"); got == nil || got.Email != "b@example.com" {
		t.Errorf("u2 after refusal = %v, want its email unchanged", got)
	}
	if _, err := c.UpdateUser(ctx, "u1", (&auth.UserToUpdate{}).Email("A@Example.com")); err != nil {
		t.Errorf("UpdateUser to its own email in other case: %v", err)
	}
}

func TestLinkOfAnIdentityLinkedElsewhereIsRefused(t *testing.T) {
	_, c, _ := start(t)
	ctx := t.Context()
	importUsers(t, c, user("u1", "").ProviderData([]*auth.UserProvider{{ProviderID: "google.com", UID: "g-1"}}))
	if _, err := c.CreateUser(ctx, (&auth.UserToCreate{}).UID("u2")); err != nil {
		t.Fatal(err)
	}

	_, err := c.UpdateUser(ctx, "u2", (&auth.UserToUpdate{}).ProviderToLink(&auth.UserProvider{ProviderID: "google.com", UID: "g-1"}))

	// The SDK has no check of its own for this code: it is an invalid
	// argument whose text carries the code.
	if !errorutils.IsInvalidArgument(err) || !strings.Contains(err.Error(), "FEDERATED_USER_ID_ALREADY_LINKED") {
		t.Errorf("link of an identity held elsewhere: %v, want invalid argument FEDERATED_USER_ID_ALREADY_LINKED", err)
	}
	if got, _ := c.GetUser(ctx, "u2"); got == nil || len(got.ProviderUserInfo) != 0 {
		t.Errorf("u2 after refusal = %v, want no provider", got)
	}
}

func TestUpdateOfMissingUIDIsUserNotFound(t *testing.T) {
	_, c, _ := start(t)

	_, err := c.UpdateUser(t.Context(), "nobody", (&auth.UserToUpdate{}).DisplayName("X"))

	if !auth.IsUserNotFound(err) {
		t.Errorf("UpdateUser of a missing uid: %v, want user not found", err)
	}
}

func TestUpdateChangesOnlyWhatItNames(t *testing.T) {
	_, c, _ := start(t)
	ctx := t.Context()
	if _, err := c.CreateUser(ctx, (&auth.UserToCreate{}).UID("u1").Email("jane@example.com").
		DisplayName("Jane").PhotoURL("https://example.com/p.png").Password("secret1")); err != nil {
		t.Fatal(err)
	}

	got, err := c.UpdateUser(ctx, "u1", (&auth.UserToUpdate{}).
		CustomClaims(map[string]any{"tier": "gold"}).
		DisplayName("").
		Disabled(true).
		EmailVerified(true).
		ProviderToLink(&auth.UserProvider{ProviderID: "github.com", UID: "77"}))

	if err != nil {
		t.Fatal(err)
	}
	providers := func(r *auth.UserRecord) []string {
		var ids []string
		for _, p := range r.ProviderUserInfo {
			ids = append(ids, p.ProviderID+"/"+p.UID)
		}
		return ids
	}
	if got.CustomClaims["tier"] != "gold" || got.DisplayName != "" || got.PhotoURL != "https://example.com/p.png" ||
		!got.Disabled || !got.EmailVerified || got.Email != "jane@example.com" ||
		!slices.Equal(providers(got), []string{"github.com/77", "password/jane@example.com"}) {
		t.Errorf("after update: %+v %+v, providers %v", got.UserInfo, got, providers(got))
	}

	got, err = c.UpdateUser(ctx, "u1", (&auth.UserToUpdate{}).ProvidersToDelete([]string{"github.com"}).PhotoURL(""))

	if err != nil {
		t.Fatal(err)
	}
	if got.PhotoURL != "" || !slices.Equal(providers(got), []string{"password/jane@example.com"}) || got.CustomClaims["tier"] != "gold" {
		t.Errorf("after unlink: photo %q, providers %v, claims %v", got.PhotoURL, providers(got), got.CustomClaims)
	}
}

func TestCreateUserRefusesDuplicateUIDAndEmail(t *testing.T) {
	srv, c, p := start(t)
	ctx := t.Context()
	if _, err := c.CreateUser(ctx, (&auth.UserToCreate{}).UID("u1").Email("a@example.com")); err != nil {
		t.Fatal(err)
	}

	_, errUID := c.CreateUser(ctx, (&auth.UserToCreate{}).UID("u1").Email("b@example.com"))
	_, errEmail := c.CreateUser(ctx, (&auth.UserToCreate{}).UID("u2").Email("A@example.com"))
	generated, errNew := c.CreateUser(ctx, (&auth.UserToCreate{}).Email("c@example.com"))

	if !auth.IsUIDAlreadyExists(errUID) {
		t.Errorf("duplicate uid: %v, want uid already exists", errUID)
	}
	if !auth.IsEmailAlreadyExists(errEmail) {
		t.Errorf("duplicate email: %v, want email already exists", errEmail)
	}
	if errNew != nil || generated.UID == "" {
		t.Errorf("create without uid: %v, %v; want a generated uid", generated, errNew)
	}
	if n := srv.Stats(p).Accounts; n != 2 {
		t.Errorf("accounts = %d, want 2", n)
	}
}

func TestDeleteUserAndDeleteUsers(t *testing.T) {
	srv, c, p := start(t)
	ctx := t.Context()
	importUsers(t, c, user("u1", ""), user("u2", ""), user("u3", ""), user("u4", ""))

	if err := c.DeleteUser(ctx, "u1"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := c.GetUser(ctx, "u1"); !auth.IsUserNotFound(err) {
		t.Errorf("GetUser after delete: %v, want user not found", err)
	}
	if err := c.DeleteUser(ctx, "u1"); !auth.IsUserNotFound(err) {
		t.Errorf("DeleteUser of a deleted uid: %v, want user not found", err)
	}
	res, err := c.DeleteUsers(ctx, []string{"u2", "u3", "nobody"})
	if err != nil || res.SuccessCount != 3 || res.FailureCount != 0 {
		t.Errorf("DeleteUsers = %+v, %v; want 3 successes (a missing uid counts as deleted)", res, err)
	}
	if accounts := srv.Accounts(p); len(accounts) != 1 || accounts[0].UID != "u4" {
		t.Errorf("accounts = %+v, want u4 only", accounts)
	}
	tooMany := make([]string, firebaseprod.MaxDeleteUIDs+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprint("x", i)
	}
	if _, err := c.DeleteUsers(ctx, tooMany); err == nil {
		t.Error("DeleteUsers of 1001 uids succeeded")
	}
}

func TestUsersIteratorPagesThroughEveryAccount(t *testing.T) {
	srv, c, p := start(t)
	ctx := t.Context()
	const total = 2500
	users := make([]*auth.UserToImport, total)
	for i := range users {
		users[i] = user(fmt.Sprintf("user-%04d", i), fmt.Sprintf("u%d@example.com", i))
	}
	for batch := range slices.Chunk(users, firebaseprod.MaxImportUsers) {
		importUsers(t, c, batch...)
	}

	seen := map[string]bool{}
	it := c.Users(ctx, "")
	for {
		u, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if seen[u.UID] {
			t.Fatalf("%s listed twice", u.UID)
		}
		seen[u.UID] = true
	}

	if len(seen) != total {
		t.Errorf("listed %d accounts, want %d", len(seen), total)
	}
	if n := srv.Stats(p).Calls[firebaseprod.EndpointBatchGet]; n != 3 {
		t.Errorf("%d pages fetched, want 3 of at most 1000", n)
	}

	pages := 0
	pager := iterator.NewPager(c.Users(ctx, ""), 100, "")
	for {
		var page []*auth.ExportedUserRecord
		token, err := pager.NextPage(&page)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 0 {
			pages++
		}
		if token == "" {
			break
		}
	}
	if pages != total/100 {
		t.Errorf("%d pages of 100, want %d", pages, total/100)
	}
}

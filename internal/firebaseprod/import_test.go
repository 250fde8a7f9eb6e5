package firebaseprod_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"firebase.google.com/go/v4/auth"
	"firebase.google.com/go/v4/auth/hash"

	"github.com/signupsync/signupsync/internal/firebaseprod"
)

func TestImportOfExistingUIDReplacesIt(t *testing.T) {
	srv, c, p := start(t)
	ctx := t.Context()
	if _, err := c.CreateUser(ctx, (&auth.UserToCreate{}).UID("u1").Email("old@example.com").DisplayName("Old").Password("secret1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateUser(ctx, "u1", (&auth.UserToUpdate{}).
		CustomClaims(map[string]any{"role": "admin"}).
		ProviderToLink(&auth.UserProvider{ProviderID: "google.com", UID: "g-1"})); err != nil {
		t.Fatal(err)
	}

	res := importUsers(t, c, user("u1", "new@example.com"))

	if res.SuccessCount != 1 || res.FailureCount != 0 {
		t.Fatalf("import result = %+v, want one success", res)
	}
	got, err := c.GetUser(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != "new@example.com" || got.DisplayName != "" || got.CustomClaims != nil || len(got.ProviderUserInfo) != 0 {
		t.Errorf("after import: email %q, name %q, claims %v, providers %d; want only the imported email",
			got.Email, got.DisplayName, got.CustomClaims, len(got.ProviderUserInfo))
	}
	if _, err := c.GetUserByEmail(ctx, "old@example.com"); !auth.IsUserNotFound(err) {
		t.Errorf("look-up of the replaced email: %v, want user not found", err)
	}
	if st := srv.Stats(p); st.Accounts != 1 || st.Replacements != 1 {
		t.Errorf("stats = %d accounts, %d replacements; want 1, 1", st.Accounts, st.Replacements)
	}
}

func TestImportOfDuplicateEmailAddsAnotherAccount(t *testing.T) {
	srv, c, p := start(t)
	importUsers(t, c, user("u1", "Jane@Example.com"))

	res := importUsers(t, c, user("u2", "jane@example.com"), user("u3", "JANE@example.com"))

	if res.SuccessCount != 2 || res.FailureCount != 0 {
		t.Fatalf("import result = %+v, want two successes", res)
	}
	st := srv.Stats(p)
	if st.Accounts != 3 || st.Replacements != 0 {
		t.Errorf("stats = %d accounts, %d replacements; want 3, 0", st.Accounts, st.Replacements)
	}
	if !slices.Equal(st.DuplicateEmails, []string{"jane@example.com"}) {
		t.Errorf("duplicate emails = %q, want the lower-cased email once", st.DuplicateEmails)
	}
}

func TestImportOfDuplicateProviderIdentityAddsAnotherAccount(t *testing.T) {
	srv, c, p := start(t)
	google := func() []*auth.UserProvider {
		return []*auth.UserProvider{{ProviderID: "google.com", UID: "g-42"}}
	}
	importUsers(t, c, user("u1", "").ProviderData(google()))

	res := importUsers(t, c, user("u2", "").ProviderData(google()))

	if res.SuccessCount != 1 {
		t.Fatalf("import result = %+v, want one success", res)
	}
	st := srv.Stats(p)
	want := []firebaseprod.Identity{{ProviderID: "google.com", RawID: "g-42"}}
	if st.Accounts != 2 || !slices.Equal(st.DuplicateIdentities, want) {
		t.Errorf("stats = %d accounts, duplicate identities %v; want 2, %v", st.Accounts, st.DuplicateIdentities, want)
	}
	got, err := c.GetUsers(t.Context(), []auth.UserIdentifier{auth.ProviderIdentifier{ProviderID: "google.com", ProviderUID: "g-42"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Users) != 2 || len(got.NotFound) != 0 {
		t.Errorf("GetUsers by identity: %d users, %d not found; want 2, 0", len(got.Users), len(got.NotFound))
	}
	// GetUserByProviderUID keeps the first account answered: the oldest.
	one, err := c.GetUserByProviderUID(t.Context(), "google.com", "g-42")
	if err != nil || one.UID != "u1" {
		t.Errorf("GetUserByProviderUID = %v, %v; want u1", one, err)
	}
}

func TestSameUIDTwiceInOneImportKeepsTheLater(t *testing.T) {
	srv, c, p := start(t)

	res := importUsers(t, c, user("u1", "first@example.com"), user("u1", "second@example.com"))

	if res.SuccessCount != 2 || res.FailureCount != 0 {
		t.Fatalf("import result = %+v, want two successes and no error", res)
	}
	if st := srv.Stats(p); st.Accounts != 1 || st.Replacements != 1 {
		t.Errorf("stats = %d accounts, %d replacements; want 1, 1", st.Accounts, st.Replacements)
	}
	got, err := c.GetUser(t.Context(), "u1")
	if err != nil || got.Email != "second@example.com" {
		t.Errorf("GetUser = %v, %v; want the later email", got, err)
	}
}

func TestInvalidUserFailsOnlyItsIndex(t *testing.T) {
	srv, c, p := start(t)
	// Each invalid user passes the SDK's own checks, so the server judges it.
	users := []*auth.UserToImport{
		user("ok-0", "ok0@example.com"),
		user("bad-email", "jane doe@example.com"),
		user("ok-2", "ok2@example.com"),
		user("bad-photo", "").PhotoURL("not a url"),
		user("bad-provider", "").ProviderData([]*auth.UserProvider{{ProviderID: "google-oauth2", UID: "1"}}),
		user("bad-phone", "").PhoneNumber("+1 650 555 0100"),
	}

	res := importUsers(t, c, users...)

	var failed []int
	for _, e := range res.Errors {
		failed = append(failed, e.Index)
		if e.Reason == "" {
			t.Errorf("error at %d has no reason", e.Index)
		}
	}
	if want := []int{1, 3, 4, 5}; !slices.Equal(failed, want) || res.SuccessCount != 2 {
		t.Errorf("failed indexes %v, %d successes; want %v, 2", failed, res.SuccessCount, want)
	}
	var uids []string
	for _, a := range srv.Accounts(p) {
		uids = append(uids, a.UID)
	}
	if !slices.Equal(uids, []string{"ok-0", "ok-2"}) {
		t.Errorf("accounts = %v, want the valid users", uids)
	}
}

func TestImportRejectsInvalidDataTheSDKLetsThrough(t *testing.T) {
	// What the Go SDK checks itself still gets a per-user error from the
	// server, for clients that skip the checks.
	tests := []struct {
		name string
		user map[string]any
		want string
	}{
		{"empty uid", map[string]any{"localId": ""}, "localId"},
		{"uid over 128 characters", map[string]any{"localId": strings.Repeat("u", 129)}, "localId"},
		{"reserved claim", map[string]any{"localId": "u", "customAttributes": `{"sub":"x"}`}, "reserved"},
		{"claims not an object", map[string]any{"localId": "u", "customAttributes": `[1]`}, "Invalid custom claims"},
		{"claims too large", map[string]any{"localId": "u", "customAttributes": `{"k":"` + strings.Repeat("x", 1000) + `"}`}, "too large"},
		{"provider without rawId", map[string]any{"localId": "u", "providerUserInfo": []map[string]string{{"providerId": "google.com"}}}, "providerUserInfo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := firebaseprod.New(t)
			p := projectID(t)
			body := map[string]any{"users": []map[string]any{{"localId": "valid"}, tt.user}}

			status, b := raw(t, srv, http.MethodPost, apiPath(p, firebaseprod.EndpointBatchCreate), body)

			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, b)
			}
			res := decodeJSON[struct {
				Error []struct {
					Index   int    `json:"index"`
					Message string `json:"message"`
				} `json:"error"`
			}](t, b)
			if len(res.Error) != 1 || res.Error[0].Index != 1 || !strings.Contains(res.Error[0].Message, tt.want) {
				t.Errorf("errors = %+v, want one at index 1 mentioning %q", res.Error, tt.want)
			}
			if n := srv.Stats(p).Accounts; n != 1 {
				t.Errorf("accounts = %d, want the valid user only", n)
			}
		})
	}
}

func TestImportOfMoreThan1000UsersIsRefused(t *testing.T) {
	srv, c, p := start(t)
	users := make([]*auth.UserToImport, firebaseprod.MaxImportUsers+1)
	wire := make([]map[string]any, len(users))
	for i := range users {
		uid := fmt.Sprintf("u%04d", i)
		users[i] = user(uid, "")
		wire[i] = map[string]any{"localId": uid}
	}

	// The SDK refuses before calling.
	if _, err := c.ImportUsers(t.Context(), users); err == nil {
		t.Fatal("SDK imported 1001 users")
	}
	if n := srv.Stats(p).Calls[firebaseprod.EndpointBatchCreate]; n != 0 {
		t.Errorf("%d calls reached the server, want the SDK to refuse first", n)
	}
	// The server refuses the whole call too.
	status, b := raw(t, srv, http.MethodPost, apiPath(p, firebaseprod.EndpointBatchCreate), map[string]any{"users": wire})
	if status != http.StatusBadRequest || !strings.HasPrefix(decodeJSON[googleError](t, b).Error.Message, "MAXIMUM_USER_COUNT_EXCEEDED") {
		t.Errorf("1001 users: status %d, %s; want 400 MAXIMUM_USER_COUNT_EXCEEDED", status, b)
	}
	if n := srv.Stats(p).Accounts; n != 0 {
		t.Errorf("accounts = %d after a refused call, want 0", n)
	}
	if res := importUsers(t, c, users[:firebaseprod.MaxImportUsers]...); res.SuccessCount != firebaseprod.MaxImportUsers {
		t.Errorf("1000 users: %d successes, want all", res.SuccessCount)
	}
}

func TestImportKeepsPasswordHashAndSalt(t *testing.T) {
	srv, c, p := start(t)
	u := user("u1", "jane@example.com").PasswordHash([]byte("hash-bytes")).PasswordSalt([]byte("salt-bytes"))

	res, err := c.ImportUsers(t.Context(), []*auth.UserToImport{u}, auth.WithHash(hash.HMACSHA256{Key: []byte("signer")}))

	if err != nil || res.SuccessCount != 1 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	a := srv.Accounts(p)[0]
	if a.PasswordHash != b64([]byte("hash-bytes")) || a.Salt != b64([]byte("salt-bytes")) ||
		a.Hash == nil || a.Hash.Algorithm != "HMAC_SHA256" || a.Hash.SignerKey != b64([]byte("signer")) {
		t.Errorf("stored hash %q, salt %q, config %+v; want what was imported", a.PasswordHash, a.Salt, a.Hash)
	}
	exported, err := c.Users(t.Context(), "").Next()
	if err != nil {
		t.Fatal(err)
	}
	if exported.PasswordHash != a.PasswordHash || exported.PasswordSalt != a.Salt {
		t.Errorf("listed hash %q, salt %q; want the imported ones", exported.PasswordHash, exported.PasswordSalt)
	}
	if !slices.ContainsFunc(exported.ProviderUserInfo, func(p *auth.UserInfo) bool { return p.ProviderID == "password" }) {
		t.Errorf("providers %v lack the password provider an email with a hash makes", exported.ProviderUserInfo)
	}
	// A password hash without its algorithm is meaningless: the call fails.
	status, _ := raw(t, srv, http.MethodPost, apiPath(p, firebaseprod.EndpointBatchCreate),
		map[string]any{"users": []map[string]any{{"localId": "u2", "passwordHash": "aGFzaA"}}})
	if status != http.StatusBadRequest {
		t.Errorf("hash without algorithm: status %d, want 400", status)
	}
}

package auth0fake_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/signupsync/signupsync/internal/auth0fake"
)

const dbConn = auth0fake.DefaultConnection

func passwordServer(t *testing.T) *auth0fake.Server {
	t.Helper()
	s := auth0fake.New(t)
	s.AddUsers(auth0fake.User{UserID: "auth0|alice", Email: "Alice@Example.com", EmailVerified: true, Name: "Alice",
		Identities: []auth0fake.Identity{{Provider: "auth0", Connection: dbConn, UserID: "alice"}}})
	s.SetPassword("auth0|alice", "correct horse")
	return s
}

// passwordGrant posts the password-realm grant as a form with the fake's
// client; edit changes the parameters.
func passwordGrant(t *testing.T, s *auth0fake.Server, username, password string, edit func(url.Values), header ...string) response {
	t.Helper()
	f := url.Values{
		"grant_type": {auth0fake.GrantPasswordRealm}, "username": {username}, "password": {password},
		"realm": {dbConn}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}, "scope": {"openid email profile"},
	}
	if edit != nil {
		edit(f)
	}
	return call(t, s, http.MethodPost, "/oauth/token", "", strings.NewReader(f.Encode()),
		append([]string{"Content-Type", "application/x-www-form-urlencoded"}, header...)...)
}

func oauthErr(t *testing.T, r response) (code, description string) {
	t.Helper()
	var b struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	r.json(t, &b)
	return b.Error, b.Description
}

// TestPasswordGrantIssuesVerifiableIDToken: the right password answers
// Auth0's token response; the ID token verifies against the fake's JWKS and
// carries iss, aud (the client), sub and, with scope email, the email.
func TestPasswordGrantIssuesVerifiableIDToken(t *testing.T) {
	s := passwordServer(t)
	for _, asJSON := range []bool{false, true} {
		var r response
		if asJSON {
			body, _ := json.Marshal(map[string]string{
				"grant_type": auth0fake.GrantPasswordRealm, "username": "alice@example.com", "password": "correct horse",
				"realm": dbConn, "client_id": s.ClientID(), "client_secret": s.ClientSecret(), "scope": "openid email",
			})
			r = call(t, s, http.MethodPost, "/oauth/token", "", bytes.NewReader(body), "Content-Type", "application/json")
		} else {
			r = passwordGrant(t, s, "alice@example.com", "correct horse", nil)
		}
		if r.status != http.StatusOK {
			t.Fatalf("json=%v: %d %s", asJSON, r.status, r.body)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
			IDToken     string `json:"id_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int    `json:"expires_in"`
		}
		r.json(t, &tok)
		if tok.AccessToken == "" || tok.IDToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 {
			t.Fatalf("token response %s", r.body)
		}
		jr := call(t, s, http.MethodGet, "/.well-known/jwks.json", "", nil)
		set, err := jwk.Parse(jr.body)
		if err != nil {
			t.Fatal(err)
		}
		idt, err := jwt.Parse([]byte(tok.IDToken), jwt.WithKeySet(set), jwt.WithIssuer(s.URL()+"/"), jwt.WithAudience(s.ClientID()))
		if err != nil {
			t.Fatalf("id token does not verify against the JWKS: %v", err)
		}
		email, _ := idt.Get("email")
		verified, _ := idt.Get("email_verified")
		if idt.Subject() != "auth0|alice" || email != "alice@example.com" || verified != true {
			t.Fatalf("id token claims sub=%s email=%v email_verified=%v", idt.Subject(), email, verified)
		}
	}
	// Without openid there is no ID token.
	r := passwordGrant(t, s, "alice@example.com", "correct horse", func(f url.Values) { f.Set("scope", "") })
	if r.status != http.StatusOK || strings.Contains(string(r.body), "id_token") {
		t.Fatalf("no openid scope: %d %s", r.status, r.body)
	}
	if n := s.Requests()[auth0fake.RoutePasswordGrant]; n != 3 {
		t.Fatalf("%d password grants counted, want 3", n)
	}
}

// TestPasswordGrantErrors pins each documented refusal: status, error code,
// and that an unknown email and a wrong password are indistinguishable.
func TestPasswordGrantErrors(t *testing.T) {
	s := passwordServer(t)
	s.AddUsers(auth0fake.User{UserID: "auth0|bob", Email: "bob@example.com",
		Identities: []auth0fake.Identity{{Provider: "auth0", Connection: dbConn, UserID: "bob"}}})
	s.SetPassword("auth0|bob", "bobpass")
	s.BlockUser("auth0|bob", true)
	s.AddUsers(auth0fake.User{UserID: "auth0|carol", Email: "carol@example.com",
		Identities: []auth0fake.Identity{{Provider: "auth0", Connection: dbConn, UserID: "carol"}}})
	s.SetPassword("auth0|carol", "carolpass")
	s.RequireMFA("auth0|carol")

	wrong := passwordGrant(t, s, "alice@example.com", "wrong", nil)
	unknown := passwordGrant(t, s, "nobody@example.com", "wrong", nil)
	if wrong.status != http.StatusForbidden || string(wrong.body) != string(unknown.body) || unknown.status != wrong.status {
		t.Fatalf("wrong password %d %s, unknown email %d %s: want the same 403", wrong.status, wrong.body, unknown.status, unknown.body)
	}
	if code, desc := oauthErr(t, wrong); code != "invalid_grant" || desc != auth0fake.MessageWrongCredentials {
		t.Fatalf("wrong password: %s %q", code, desc)
	}

	tests := []struct {
		name        string
		user, pass  string
		edit        func(url.Values)
		status      int
		code        string
		description string
	}{
		{"blocked user", "bob@example.com", "bobpass", nil, http.StatusUnauthorized, "unauthorized", auth0fake.MessageUserBlocked},
		{"mfa", "carol@example.com", "carolpass", nil, http.StatusForbidden, "mfa_required", auth0fake.MessageMFARequired},
		{"wrong client secret", "alice@example.com", "correct horse", func(f url.Values) { f.Set("client_secret", "x") }, http.StatusUnauthorized, "access_denied", ""},
		{"missing username", "", "correct horse", nil, http.StatusBadRequest, "invalid_request", "Missing required parameter: username"},
		{"missing realm", "alice@example.com", "correct horse", func(f url.Values) { f.Del("realm") }, http.StatusBadRequest, "invalid_request", "Missing required parameter: realm"},
		{"unknown realm", "alice@example.com", "correct horse", func(f url.Values) { f.Set("realm", "Nope") }, http.StatusBadRequest, "invalid_request", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := passwordGrant(t, s, tt.user, tt.pass, tt.edit)
			code, desc := oauthErr(t, r)
			if r.status != tt.status || code != tt.code || (tt.description != "" && desc != tt.description) {
				t.Fatalf("%d %s, want %d %s %q", r.status, r.body, tt.status, tt.code, tt.description)
			}
		})
	}
	r := passwordGrant(t, s, "carol@example.com", "carolpass", nil)
	var mfa struct {
		MFAToken string `json:"mfa_token"`
	}
	r.json(t, &mfa)
	if mfa.MFAToken == "" {
		t.Fatalf("mfa_required without mfa_token: %s", r.body)
	}

	s.SetPasswordGrant(false)
	r = passwordGrant(t, s, "alice@example.com", "correct horse", nil)
	if code, _ := oauthErr(t, r); r.status != http.StatusForbidden || code != "unauthorized_client" {
		t.Fatalf("grant disabled: %d %s", r.status, r.body)
	}
	s.SetPasswordGrant(true)

	s.FailPasswordGrant(http.StatusServiceUnavailable, 1)
	if r := passwordGrant(t, s, "alice@example.com", "correct horse", nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("forced failure: %d %s", r.status, r.body)
	}
	if r := passwordGrant(t, s, "alice@example.com", "correct horse", nil); r.status != http.StatusOK {
		t.Fatalf("after the forced failure: %d %s", r.status, r.body)
	}
}

// TestPasswordGrantBruteForceProtection: consecutive failures of one user
// from the address in auth0-forwarded-for block that pair with 429
// too_many_attempts, even for the right password; another address is not
// blocked, and the header values are recorded.
func TestPasswordGrantBruteForceProtection(t *testing.T) {
	s := passwordServer(t)
	s.BruteForce(3)
	from := []string{"auth0-forwarded-for", "203.0.113.7"}
	for range 3 {
		if r := passwordGrant(t, s, "alice@example.com", "wrong", nil, from...); r.status != http.StatusForbidden {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	r := passwordGrant(t, s, "alice@example.com", "correct horse", nil, from...)
	if code, desc := oauthErr(t, r); r.status != http.StatusTooManyRequests || code != "too_many_attempts" || desc != auth0fake.MessageTooManyAttempts {
		t.Fatalf("after 3 failures: %d %s", r.status, r.body)
	}
	if r := passwordGrant(t, s, "alice@example.com", "correct horse", nil, "auth0-forwarded-for", "198.51.100.1"); r.status != http.StatusOK {
		t.Fatalf("another address: %d %s", r.status, r.body)
	}
	got := s.ForwardedFor()
	if len(got) != 5 || got[0] != "203.0.113.7" || got[4] != "198.51.100.1" {
		t.Fatalf("recorded auth0-forwarded-for %v", got)
	}
}

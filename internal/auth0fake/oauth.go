package auth0fake

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// The Authentication API's password grant, as Auth0 documents it
// ("Resource Owner Password Flow"; API reference "Resource Owner
// Password"): POST /oauth/token with grant_type
// http://auth0.com/oauth/grant-type/password-realm, username, password,
// realm (the database connection), client_id and client_secret (in the
// body or as HTTP Basic), and optionally audience and scope, as a form or
// a JSON body. Auth0 reads the end user's address from the
// auth0-forwarded-for header when the application has "Trust Token
// Endpoint IP Header" on; the fake always does, and keys its brute-force
// protection on it.
//
// Answers:
//
//	200 {"access_token","id_token" (scope openid),"scope","expires_in","token_type":"Bearer"}
//	400 invalid_request       a required parameter is missing, the realm is unknown
//	401 access_denied         wrong client credentials
//	401 unauthorized          "user is blocked" (blocked by an administrator, BlockUser)
//	403 unauthorized_client   the grant is not enabled for the client (SetPasswordGrant)
//	403 invalid_grant         "Wrong email or password." for an unknown email and a wrong password alike
//	403 mfa_required          with mfa_token (RequireMFA)
//	429 too_many_attempts     brute-force protection: the threshold of consecutive failures
//	                          for one user from one address was reached (BruteForce)
//
// The id_token is RS256, signed by a key served at GET /.well-known/jwks.json
// (or, with [WithIDTokenSigner], by a key whose JWKS is served elsewhere),
// with iss, sub, aud (the client id), iat, exp, and email and
// email_verified with scope email, name and nickname with scope profile.
const (
	GrantPasswordRealm = "http://auth0.com/oauth/grant-type/password-realm"
	// RoutePasswordGrant counts password-realm token requests in
	// [Server.Requests] (they also count under RouteToken).
	RoutePasswordGrant = "POST /oauth/token password-realm"
	RouteJWKS          = "GET /.well-known/jwks.json"
	// DefaultConnection is the database connection the fake knows besides
	// those of its users' auth0 identities.
	DefaultConnection = "Username-Password-Authentication"
	// DefaultBruteForceThreshold is Auth0's default: ten consecutive failed
	// logins for one user from one address block that pair.
	DefaultBruteForceThreshold = 10
	// IDTokenTTL is Auth0's default ID token lifetime (36,000 s).
	IDTokenTTL = 10 * time.Hour
)

// Messages Auth0 sends with the password grant's errors.
const (
	MessageWrongCredentials = "Wrong email or password."
	MessageTooManyAttempts  = "Your account has been blocked after multiple consecutive login attempts. We've sent you an email with instructions on how to unblock it."
	MessageUserBlocked      = "user is blocked"
	MessageMFARequired      = "Multifactor authentication required"
)

// WithIDTokenSigner makes the password grant sign ID tokens with key,
// naming kid and writing issuer as iss, instead of the fake's own key and
// URL: tests of a verifier that already trusts a JWKS served elsewhere
// (internal/exchangetest) use it.
func WithIDTokenSigner(issuer, kid string, key *rsa.PrivateKey) Option {
	return func(c *config) { c.idIssuer, c.idKID, c.idKey = issuer, kid, key }
}

// passwordState is what the password grant keeps. Guarded by Server.mu.
type passwordState struct {
	passwords map[string]string // user id → password
	blocked   map[string]bool
	mfa       map[string]bool
	failures  map[string]int // lower(username) + " " + address → consecutive failures
	threshold int
	disabled  bool // the grant is not enabled for the client
	failCode  int
	failN     int
	forwarded []string

	keyOnce sync.Once
}

func newPasswordState() *passwordState {
	return &passwordState{
		passwords: map[string]string{}, blocked: map[string]bool{}, mfa: map[string]bool{},
		failures: map[string]int{}, threshold: DefaultBruteForceThreshold,
	}
}

// SetPassword gives user id a password for the password grant. A user
// without one cannot log in with a password.
func (s *Server) SetPassword(id, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pw.passwords[id] = password
}

// BlockUser blocks (or, with false, unblocks) a user as an administrator
// does: the password grant answers 401 unauthorized "user is blocked".
func (s *Server) BlockUser(id string, blocked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pw.blocked[id] = blocked
}

// RequireMFA makes the user's correct password answer 403 mfa_required.
func (s *Server) RequireMFA(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pw.mfa[id] = true
}

// SetPasswordGrant enables or disables the password-realm grant for the
// client (enabled by default); disabled, it answers 403
// unauthorized_client.
func (s *Server) SetPasswordGrant(enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pw.disabled = !enabled
}

// BruteForce sets how many consecutive failed logins of one user from one
// address block that pair (default [DefaultBruteForceThreshold]); a
// successful login resets the count.
func (s *Server) BruteForce(threshold int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pw.threshold = threshold
}

// FailPasswordGrant makes the next n password-grant requests answer status
// (5xx, or 429 too_many_requests) after client authentication.
func (s *Server) FailPasswordGrant(status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pw.failCode, s.pw.failN = status, n
}

// ForwardedFor returns the auth0-forwarded-for values password-grant
// requests carried, in order ("" for none).
func (s *Server) ForwardedFor() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pw.forwarded)
}

// IDTokenIssuer is the iss of the ID tokens the password grant issues.
func (s *Server) IDTokenIssuer() string {
	if s.cfg.idIssuer != "" {
		return s.cfg.idIssuer
	}
	return s.ts.URL + "/"
}

// signingKey returns the ID token key, generating the fake's own on first
// use.
func (s *Server) signingKey() (string, *rsa.PrivateKey) {
	s.pw.keyOnce.Do(func() {
		if s.cfg.idKey != nil {
			return
		}
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic("auth0fake: generate rsa key: " + err.Error()) // crypto/rand does not fail
		}
		s.cfg.idKID, s.cfg.idKey = "auth0fake-1", k
	})
	return s.cfg.idKID, s.cfg.idKey
}

func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	kid, key := s.signingKey()
	pub, err := jwk.FromRaw(&key.PublicKey)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	_ = pub.Set(jwk.KeyIDKey, kid)
	_ = pub.Set(jwk.AlgorithmKey, jwa.RS256)
	_ = pub.Set(jwk.KeyUsageKey, jwk.ForSignature)
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	writeJSON(w, http.StatusOK, set)
}

// tokenParams are the parameters of a POST /oauth/token request.
type tokenParams struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Audience     string `json:"audience"`
	Username     string `json:"username"`
	Password     string `json:"password"`
	Realm        string `json:"realm"`
	Scope        string `json:"scope"`
}

// parseTokenRequest reads a form or JSON body and HTTP Basic client
// credentials. It answers 400 invalid_request itself and returns false on a
// malformed body.
func parseTokenRequest(w http.ResponseWriter, r *http.Request) (tokenParams, bool) {
	var p tokenParams
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&p); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "Invalid JSON body")
			return p, false
		}
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "Invalid form body")
			return p, false
		}
		f := r.PostForm
		p = tokenParams{
			GrantType: f.Get("grant_type"), ClientID: f.Get("client_id"), ClientSecret: f.Get("client_secret"),
			Audience: f.Get("audience"), Username: f.Get("username"), Password: f.Get("password"),
			Realm: f.Get("realm"), Scope: f.Get("scope"),
		}
	}
	if id, secret, ok := r.BasicAuth(); ok {
		p.ClientID, p.ClientSecret = id, secret
	}
	return p, true
}

func (s *Server) handlePasswordRealm(w http.ResponseWriter, r *http.Request, p tokenParams) {
	forwarded := r.Header.Get("auth0-forwarded-for")
	addr := strings.TrimSpace(forwarded)
	if addr == "" {
		addr, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	s.mu.Lock()
	s.requests[RoutePasswordGrant]++
	s.pw.forwarded = append(s.pw.forwarded, forwarded)
	s.mu.Unlock()

	switch {
	case p.ClientID != s.cfg.clientID || p.ClientSecret != s.cfg.clientSecret:
		oauthError(w, http.StatusUnauthorized, "access_denied", "Unauthorized")
		return
	case p.Username == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: username")
		return
	case p.Password == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: password")
		return
	case p.Realm == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: realm")
		return
	}

	s.mu.Lock()
	if s.pw.disabled {
		s.mu.Unlock()
		oauthError(w, http.StatusForbidden, "unauthorized_client", "Grant type '"+GrantPasswordRealm+"' not allowed for the client.")
		return
	}
	if s.pw.failN > 0 {
		s.pw.failN--
		code := s.pw.failCode
		s.mu.Unlock()
		if code == http.StatusTooManyRequests {
			oauthError(w, code, "too_many_requests", "Global limit has been reached")
		} else {
			oauthError(w, code, "temporarily_unavailable", http.StatusText(code))
		}
		return
	}
	if !s.knownRealm(p.Realm) {
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_request", "Unknown or invalid realm: "+p.Realm)
		return
	}
	u, found := s.userByEmail(p.Realm, p.Username)
	key := strings.ToLower(p.Username) + " " + addr
	if found && s.pw.threshold > 0 && s.pw.failures[key] >= s.pw.threshold {
		s.mu.Unlock()
		oauthError(w, http.StatusTooManyRequests, "too_many_attempts", MessageTooManyAttempts)
		return
	}
	want, hasPassword := s.pw.passwords[u.UserID]
	if !found || !hasPassword || want != p.Password {
		if found {
			s.pw.failures[key]++
		}
		s.mu.Unlock()
		oauthError(w, http.StatusForbidden, "invalid_grant", MessageWrongCredentials)
		return
	}
	delete(s.pw.failures, key)
	blocked, mfa := s.pw.blocked[u.UserID], s.pw.mfa[u.UserID]
	now := s.now()
	s.mu.Unlock()

	switch {
	case blocked:
		oauthError(w, http.StatusUnauthorized, "unauthorized", MessageUserBlocked)
		return
	case mfa:
		writeJSON(w, http.StatusForbidden, map[string]string{
			"error": "mfa_required", "error_description": MessageMFARequired, "mfa_token": "mfa." + randomID(24),
		})
		return
	}
	scopes := strings.Fields(p.Scope)
	body := map[string]any{
		"access_token": "fake.user." + randomID(24),
		"expires_in":   86400,
		"token_type":   "Bearer",
		"scope":        strings.Join(scopes, " "),
	}
	if slices.Contains(scopes, "openid") {
		tok, err := s.idToken(u, p.ClientID, scopes, now)
		if err != nil {
			oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
			return
		}
		body["id_token"] = tok
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}

// knownRealm reports whether realm is a database connection: the default
// one or one of a user's auth0 identities. The caller holds mu.
func (s *Server) knownRealm(realm string) bool {
	if realm == DefaultConnection {
		return true
	}
	for _, u := range s.users {
		for _, id := range u.Identities {
			if id.Provider == "auth0" && id.Connection == realm {
				return true
			}
		}
	}
	return false
}

// userByEmail finds the user of the database connection realm with email
// (Auth0 stores emails lower-cased). The caller holds mu.
func (s *Server) userByEmail(realm, email string) (User, bool) {
	for _, u := range s.users {
		if !strings.EqualFold(u.Email, email) {
			continue
		}
		for _, id := range u.Identities {
			if id.Provider == "auth0" && id.Connection == realm {
				return u, true
			}
		}
	}
	return User{}, false
}

func (s *Server) idToken(u User, clientID string, scopes []string, now time.Time) (string, error) {
	claims := map[string]any{
		"iss": s.IDTokenIssuer(), "sub": u.UserID, "aud": clientID,
		"iat": now.Unix(), "exp": now.Add(IDTokenTTL).Unix(),
	}
	if slices.Contains(scopes, "email") && u.Email != "" {
		claims["email"], claims["email_verified"] = strings.ToLower(u.Email), u.EmailVerified
	}
	if slices.Contains(scopes, "profile") {
		if u.Name != "" {
			claims["name"] = u.Name
		}
		if u.Nickname != "" {
			claims["nickname"] = u.Nickname
		}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	kid, key := s.signingKey()
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, kid)
	_ = h.Set(jws.TypeKey, "JWT")
	b, err := jws.Sign(payload, jws.WithKey(jwa.RS256, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Package exchangetest plays the Auth0 side of the session exchange in
// tests: an issuer whose JWKS is served over HTTP on 127.0.0.1 with RSA keys
// that can be rotated and withdrawn, token signing (including the forged
// kinds a verifier must refuse), and the Firebase Auth emulator's
// signInWithCustomToken. It is for tests only.
package exchangetest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Key is a signing key and its kid.
type Key struct {
	ID      string
	Private *rsa.PrivateKey
}

// Keys are slow to generate under the race detector, so a process shares a
// pool; an issuer still never gives two of its kids the same key.
var (
	poolMu sync.Mutex
	pool   []*rsa.PrivateKey
)

func poolKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	poolMu.Lock()
	defer poolMu.Unlock()
	for len(pool) <= i {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatalf("generate rsa key: %v", err)
		}
		pool = append(pool, k)
	}
	return pool[i]
}

// Issuer is a fake Auth0 tenant: GET /.well-known/jwks.json serves the
// published keys. Its methods are safe for concurrent use.
type Issuer struct {
	t        testing.TB
	srv      *httptest.Server
	audience string

	mu        sync.Mutex
	next      int
	published []*Key
	current   *Key
	failWith  int
	fetches   atomic.Int64
}

// NewIssuer starts an issuer with one published key; it stops when the
// test ends. audience is what Claims puts in aud.
func NewIssuer(t testing.TB, audience string) *Issuer {
	t.Helper()
	iss := &Issuer{t: t, audience: audience}
	iss.srv = httptest.NewServer(http.HandlerFunc(iss.serveJWKS))
	t.Cleanup(iss.srv.Close)
	iss.Rotate()
	return iss
}

func (iss *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/.well-known/jwks.json" {
		http.NotFound(w, r)
		return
	}
	iss.fetches.Add(1)
	iss.mu.Lock()
	fail := iss.failWith
	keys := append([]*Key(nil), iss.published...)
	iss.mu.Unlock()
	if fail != 0 {
		http.Error(w, "unavailable", fail)
		return
	}
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := jwk.FromRaw(&k.Private.PublicKey)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = pub.Set(jwk.KeyIDKey, k.ID)
		_ = pub.Set(jwk.AlgorithmKey, jwa.RS256)
		_ = pub.Set(jwk.KeyUsageKey, jwk.ForSignature)
		_ = set.AddKey(pub)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// URL is the issuer identifier, "http://127.0.0.1:port/", as Auth0 writes
// it (with the trailing slash).
func (iss *Issuer) URL() string { return iss.srv.URL + "/" }

// Audience is the aud Claims uses.
func (iss *Issuer) Audience() string { return iss.audience }

// Client is an HTTP client for the JWKS server.
func (iss *Issuer) Client() *http.Client { return iss.srv.Client() }

// Fetches counts JWKS requests served.
func (iss *Issuer) Fetches() int64 { return iss.fetches.Load() }

// FailWith makes the JWKS endpoint answer status (0 restores it).
func (iss *Issuer) FailWith(status int) {
	iss.mu.Lock()
	iss.failWith = status
	iss.mu.Unlock()
}

// NewKey makes a key with a fresh kid without publishing it.
func (iss *Issuer) NewKey() *Key {
	iss.t.Helper()
	iss.mu.Lock()
	n := iss.next
	iss.next++
	iss.mu.Unlock()
	return &Key{ID: "kid-" + strconv.Itoa(n+1), Private: poolKey(iss.t, n)}
}

// Rotate publishes a new key and makes it the one Token signs with; the
// previous keys stay published, as Auth0 keeps them during a rotation.
func (iss *Issuer) Rotate() *Key {
	iss.t.Helper()
	k := iss.NewKey()
	iss.mu.Lock()
	iss.published = append(iss.published, k)
	iss.current = k
	iss.mu.Unlock()
	return k
}

// Withdraw stops publishing the key named kid (a revocation).
func (iss *Issuer) Withdraw(kid string) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	kept := iss.published[:0]
	for _, k := range iss.published {
		if k.ID != kid {
			kept = append(kept, k)
		}
	}
	iss.published = kept
}

// Current is the key Token signs with.
func (iss *Issuer) Current() *Key {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.current
}

// Claims are the claims of a valid access token for sub issued at now:
// iss, aud, sub, iat, exp (an hour later), scope.
func (iss *Issuer) Claims(sub string, now time.Time) map[string]any {
	return map[string]any{
		"iss": iss.URL(), "aud": []string{iss.audience, iss.URL() + "userinfo"}, "sub": sub,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "scope": "openid profile",
	}
}

// Token is a valid token for sub issued now, signed with the current key.
func (iss *Issuer) Token(sub string) string {
	iss.t.Helper()
	return Sign(iss.t, iss.Current(), iss.Claims(sub, time.Now()))
}

// Sign signs claims with key (RS256, kid in the protected header).
func Sign(t testing.TB, key *Key, claims map[string]any) string {
	t.Helper()
	return SignWith(t, jwa.RS256, key.Private, key.ID, claims)
}

// SignWith signs claims with any algorithm and key jwx accepts, naming kid.
func SignWith(t testing.TB, alg jwa.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, kid)
	_ = h.Set(jws.TypeKey, "JWT")
	b, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return string(b)
}

// Unsigned is an "alg":"none" token naming kid.
func Unsigned(t testing.TB, kid string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	header := fmt.Sprintf(`{"alg":"none","typ":"JWT","kid":%q}`, kid)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(payload) + "."
}

// PublicKeyPEM is the PEM of key's public half: the secret an HS256
// algorithm-confusion attack signs with.
func PublicKeyPEM(t testing.TB, key *Key) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&key.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// WithPayload replaces the payload of a signed token, keeping its header
// and signature: a tampered token.
func WithPayload(t testing.TB, token string, claims map[string]any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS")
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// Payload decodes the claims of a JWT without verifying it.
func Payload(t testing.TB, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) < 2 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("payload: %v", err)
	}
	return m
}

// SignInWithCustomToken signs in to the Firebase Auth emulator at
// emulatorHost with a custom token, as a client SDK does, and returns the
// claims of the ID token it gets.
func SignInWithCustomToken(t testing.TB, emulatorHost, customToken string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"token": customToken, "returnSecureToken": true})
	url := "http://" + emulatorHost + "/identitytoolkit.googleapis.com/v1/accounts:signInWithCustomToken?key=any"
	res, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("signInWithCustomToken: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("signInWithCustomToken: %d %s", res.StatusCode, b)
	}
	var out struct {
		IDToken string `json:"idToken"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.IDToken == "" {
		t.Fatalf("signInWithCustomToken: no idToken in %s", b)
	}
	return Payload(t, out.IDToken)
}

package exchange_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/signupsync/signupsync/internal/exchangetest"
	"github.com/signupsync/signupsync/services/exchange"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const audience = "https://api.example.com/"

func verifierConfig(iss *exchangetest.Issuer) exchange.VerifierConfig {
	return exchange.VerifierConfig{
		Issuer: iss.URL(), Audience: audience, ClockSkew: 30 * time.Second, MaxTokenAge: 15 * time.Minute,
		RefreshInterval: 30 * time.Second, KeysMaxAge: 10 * time.Minute, FetchTimeout: 5 * time.Second,
	}
}

func newVerifier(t *testing.T, iss *exchangetest.Issuer, clk *clock) *exchange.Verifier {
	t.Helper()
	v, err := exchange.NewVerifier(verifierConfig(iss), iss.Client(), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// with returns a copy of claims with changes applied; a nil value deletes.
func with(claims map[string]any, changes map[string]any) map[string]any {
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

// TestVerify is the verifier's table: every way a token can be wrong maps
// to its sentinel (and to ErrInvalidToken), and the good ones pass.
func TestVerify(t *testing.T) {
	iss := exchangetest.NewIssuer(t, audience)
	clk := newClock()
	v := newVerifier(t, iss, clk)
	key := iss.Current()
	now := clk.Now()
	good := iss.Claims("google-oauth2|1001", now)
	sign := func(c map[string]any) func(*testing.T) string {
		return func(t *testing.T) string { return exchangetest.Sign(t, key, c) }
	}
	stranger := iss.NewKey() // never published
	tests := []struct {
		name   string
		token  func(*testing.T) string
		want   error
		reason string
	}{
		{"valid", sign(good), nil, ""},
		{"expired within the skew", sign(with(good, map[string]any{"exp": now.Add(-20 * time.Second).Unix()})), nil, ""},
		{"auth_time recent, iat old", sign(with(good, map[string]any{"iat": now.Add(-10 * time.Minute).Unix(), "auth_time": now.Add(-time.Minute).Unix()})), nil, ""},
		{"empty", func(*testing.T) string { return "" }, exchange.ErrMissingToken, exchange.ReasonMissingToken},
		{"garbage", func(*testing.T) string { return "not.a.jwt" }, exchange.ErrMalformedToken, exchange.ReasonInvalidToken},
		{"two parts", func(*testing.T) string { return "abc.def" }, exchange.ErrMalformedToken, exchange.ReasonInvalidToken},
		{"expired", sign(with(good, map[string]any{"exp": now.Add(-2 * time.Minute).Unix(), "iat": now.Add(-5 * time.Minute).Unix()})), exchange.ErrExpired, exchange.ReasonExpired},
		{"not yet valid (nbf)", sign(with(good, map[string]any{"nbf": now.Add(5 * time.Minute).Unix()})), exchange.ErrNotYetValid, exchange.ReasonNotYetValid},
		{"issued in the future", sign(with(good, map[string]any{"iat": now.Add(5 * time.Minute).Unix()})), exchange.ErrNotYetValid, exchange.ReasonNotYetValid},
		{"wrong issuer", sign(with(good, map[string]any{"iss": "https://evil.auth0.com/"})), exchange.ErrIssuer, exchange.ReasonInvalidToken},
		{"wrong audience", sign(with(good, map[string]any{"aud": "https://other-api.example.com/"})), exchange.ErrAudience, exchange.ReasonInvalidToken},
		{"no audience", sign(with(good, map[string]any{"aud": nil})), exchange.ErrAudience, exchange.ReasonInvalidToken},
		{"alg none", func(t *testing.T) string { return exchangetest.Unsigned(t, key.ID, good) }, exchange.ErrAlgorithm, exchange.ReasonInvalidToken},
		{"HS256 with the public key as secret", func(t *testing.T) string {
			return exchangetest.SignWith(t, jwa.HS256, exchangetest.PublicKeyPEM(t, key), key.ID, good)
		}, exchange.ErrAlgorithm, exchange.ReasonInvalidToken},
		{"RS512", func(t *testing.T) string { return exchangetest.SignWith(t, jwa.RS512, key.Private, key.ID, good) }, exchange.ErrAlgorithm, exchange.ReasonInvalidToken},
		{"PS256", func(t *testing.T) string { return exchangetest.SignWith(t, jwa.PS256, key.Private, key.ID, good) }, exchange.ErrAlgorithm, exchange.ReasonInvalidToken},
		{"unknown kid", func(t *testing.T) string { return exchangetest.Sign(t, stranger, good) }, exchange.ErrUnknownKey, exchange.ReasonInvalidToken},
		{"no kid", func(t *testing.T) string { return exchangetest.SignWith(t, jwa.RS256, key.Private, "", good) }, exchange.ErrUnknownKey, exchange.ReasonInvalidToken},
		{"published kid, other key", func(t *testing.T) string {
			return exchangetest.SignWith(t, jwa.RS256, stranger.Private, key.ID, good)
		}, exchange.ErrSignature, exchange.ReasonInvalidToken},
		{"tampered payload", func(t *testing.T) string {
			return exchangetest.WithPayload(t, exchangetest.Sign(t, key, good), with(good, map[string]any{"sub": "google-oauth2|666"}))
		}, exchange.ErrSignature, exchange.ReasonInvalidToken},
		{"too old (iat)", sign(with(good, map[string]any{"iat": now.Add(-20 * time.Minute).Unix()})), exchange.ErrTooOld, exchange.ReasonTooOld},
		{"too old (auth_time)", sign(with(good, map[string]any{"auth_time": now.Add(-20 * time.Minute).Unix()})), exchange.ErrTooOld, exchange.ReasonTooOld},
		{"no iat nor auth_time", sign(with(good, map[string]any{"iat": nil})), exchange.ErrMissingClaim, exchange.ReasonInvalidToken},
		{"no exp", sign(with(good, map[string]any{"exp": nil})), exchange.ErrMissingClaim, exchange.ReasonInvalidToken},
		{"no sub", sign(with(good, map[string]any{"sub": nil})), exchange.ErrMissingClaim, exchange.ReasonInvalidToken},
		{"client credentials subject", sign(with(good, map[string]any{"sub": "abc123@clients"})), exchange.ErrSubject, exchange.ReasonInvalidToken},
		{"auth_time in the future", sign(with(good, map[string]any{"auth_time": now.Add(5 * time.Minute).Unix()})), exchange.ErrNotYetValid, exchange.ReasonNotYetValid},
		{"auth_time years ahead, iat now", sign(with(good, map[string]any{"auth_time": now.AddDate(10, 0, 0).Unix()})), exchange.ErrNotYetValid, exchange.ReasonNotYetValid},
		{"auth_time ahead within the skew", sign(with(good, map[string]any{"auth_time": now.Add(20 * time.Second).Unix()})), nil, ""},
		{"auth_time just past the skew", sign(with(good, map[string]any{"auth_time": now.Add(31 * time.Second).Unix()})), exchange.ErrNotYetValid, exchange.ReasonNotYetValid},
		{"auth_time not a number", sign(with(good, map[string]any{"auth_time": "yesterday"})), exchange.ErrMalformedToken, exchange.ReasonInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tt.token(t))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want success", err)
				}
				if c.Subject != "google-oauth2|1001" {
					t.Fatalf("subject %q", c.Subject)
				}
				return
			}
			if !errors.Is(err, tt.want) || !errors.Is(err, exchange.ErrInvalidToken) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			var te *exchange.TokenError
			if !errors.As(err, &te) || te.Reason != tt.reason {
				t.Fatalf("reason %v, want %s", te, tt.reason)
			}
		})
	}
}

// TestVerifierKeyRotation: a token signed with a key published after the
// cache was filled is accepted after exactly one fetch; made-up kids cause
// at most one fetch per refresh interval (counted from any fetch).
func TestVerifierKeyRotation(t *testing.T) {
	iss := exchangetest.NewIssuer(t, audience)
	clk := newClock()
	v := newVerifier(t, iss, clk)
	ctx := context.Background()
	if _, err := v.Verify(ctx, exchangetest.Sign(t, iss.Current(), iss.Claims("github|1", clk.Now()))); err != nil {
		t.Fatal(err)
	}
	if n := iss.Fetches(); n != 1 {
		t.Fatalf("%d fetches for the first token, want 1", n)
	}
	newKey := iss.Rotate()
	clk.Advance(31 * time.Second) // past the refresh interval of the first fetch
	if _, err := v.Verify(ctx, exchangetest.Sign(t, newKey, iss.Claims("github|1", clk.Now()))); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	if n := iss.Fetches(); n != 2 {
		t.Fatalf("%d fetches after rotation, want 2", n)
	}

	forged := iss.NewKey()
	for range 5 {
		_, err := v.Verify(ctx, exchangetest.Sign(t, forged, iss.Claims("github|1", clk.Now())))
		if !errors.Is(err, exchange.ErrUnknownKey) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := iss.Fetches(); n != 2 {
		t.Fatalf("%d fetches after 5 unknown kids right after a fetch, want 2 (throttled)", n)
	}
	clk.Advance(31 * time.Second)
	for range 5 {
		_, err := v.Verify(ctx, exchangetest.Sign(t, forged, iss.Claims("github|1", clk.Now())))
		if !errors.Is(err, exchange.ErrUnknownKey) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := iss.Fetches(); n != 3 {
		t.Fatalf("%d fetches after the interval, want 3 (one refresh)", n)
	}
}

// TestVerifierWithdrawnKey: once the keys are older than KeysMaxAge they are
// fetched again, and a withdrawn key stops working.
func TestVerifierWithdrawnKey(t *testing.T) {
	iss := exchangetest.NewIssuer(t, audience)
	old := iss.Current()
	iss.Rotate()
	clk := newClock()
	v := newVerifier(t, iss, clk)
	ctx := context.Background()
	if _, err := v.Verify(ctx, exchangetest.Sign(t, old, iss.Claims("apple|1", clk.Now()))); err != nil {
		t.Fatal(err)
	}
	iss.Withdraw(old.ID)
	clk.Advance(11 * time.Minute)
	_, err := v.Verify(ctx, exchangetest.Sign(t, old, iss.Claims("apple|1", clk.Now())))
	if !errors.Is(err, exchange.ErrUnknownKey) {
		t.Fatalf("withdrawn key: %v, want ErrUnknownKey", err)
	}
	if _, err := v.Verify(ctx, exchangetest.Sign(t, iss.Current(), iss.Claims("apple|1", clk.Now()))); err != nil {
		t.Fatalf("current key: %v", err)
	}
}

// TestVerifierIssuerDown: without any keys the answer is
// ErrKeysUnavailable (a 503, not a 401); keys fetched once survive an
// outage.
func TestVerifierIssuerDown(t *testing.T) {
	iss := exchangetest.NewIssuer(t, audience)
	iss.FailWith(http.StatusBadGateway)
	clk := newClock()
	v := newVerifier(t, iss, clk)
	ctx := context.Background()
	tok := iss.Token("github|2")
	_, err := v.Verify(ctx, tok)
	if !errors.Is(err, exchange.ErrKeysUnavailable) || errors.Is(err, exchange.ErrInvalidToken) {
		t.Fatalf("issuer down: %v, want ErrKeysUnavailable only", err)
	}
	_, err = v.Verify(ctx, tok)
	if !errors.Is(err, exchange.ErrKeysUnavailable) || iss.Fetches() != 1 {
		t.Fatalf("retry within a second: %v after %d fetches, want no second fetch", err, iss.Fetches())
	}
	iss.FailWith(0)
	clk.Advance(2 * time.Second)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("issuer back: %v", err)
	}
	iss.FailWith(http.StatusInternalServerError)
	clk.Advance(11 * time.Minute) // keys stale; the refresh fails; they are kept
	if _, err := v.Verify(ctx, exchangetest.Sign(t, iss.Current(), iss.Claims("github|2", clk.Now()))); err != nil {
		t.Fatalf("stale keys during an outage: %v", err)
	}
}

// TestVerifierConcurrentUnknownKid: many requests with a new kid at once
// cause one fetch, and all of them succeed.
func TestVerifierConcurrentUnknownKid(t *testing.T) {
	iss := exchangetest.NewIssuer(t, audience)
	clk := newClock()
	v := newVerifier(t, iss, clk)
	if err := v.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(31 * time.Second)
	tok := exchangetest.Sign(t, iss.Rotate(), iss.Claims("github|3", clk.Now()))
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := v.Verify(context.Background(), tok)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := iss.Fetches(); n != 2 {
		t.Fatalf("%d fetches, want 2 (warm + one refresh)", n)
	}
}

func TestNewVerifierRejectsConfig(t *testing.T) {
	iss := exchangetest.NewIssuer(t, audience)
	cfg := verifierConfig(iss)
	cfg.Audience = ""
	if _, err := exchange.NewVerifier(cfg, nil, nil); err == nil {
		t.Fatal("verifier without audience")
	}
}

// FuzzVerify: no input panics, and anything accepted carries the subject
// the issuer signed.
func FuzzVerify(f *testing.F) {
	iss := exchangetest.NewIssuer(f, audience)
	v, err := exchange.NewVerifier(verifierConfig(iss), iss.Client(), nil)
	if err != nil {
		f.Fatal(err)
	}
	good := iss.Token("google-oauth2|fuzz")
	f.Add(good)
	f.Add(exchangetest.Unsigned(f, iss.Current().ID, iss.Claims("google-oauth2|fuzz", time.Now())))
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(context.Background(), tok)
		if err == nil && c.Subject != "google-oauth2|fuzz" {
			t.Fatalf("accepted a token for %q", c.Subject)
		}
	})
}

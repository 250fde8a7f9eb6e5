package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Reason codes of a rejected token, sent in the "error" field of a 401
// body. They tell the app what to do (refresh the Auth0 token, or give up)
// and nothing about which check failed beyond that.
const (
	ReasonMissingToken = "missing_token"
	ReasonInvalidToken = "invalid_token"
	ReasonExpired      = "expired"
	ReasonNotYetValid  = "not_yet_valid"
	ReasonTooOld       = "token_too_old"
)

// ErrInvalidToken is matched (errors.Is) by every [*TokenError]: the
// request carried no token or one that failed verification.
var ErrInvalidToken = errors.New("invalid token")

// TokenError is a token that failed verification. Reason is the code the
// client sees; the error text (and whatever wraps it) is for logs only.
type TokenError struct {
	Reason string
	text   string
}

func (e *TokenError) Error() string { return e.text }

// Is makes every TokenError match [ErrInvalidToken].
func (e *TokenError) Is(target error) bool { return target == ErrInvalidToken }

// The ways a token fails. Verify wraps them with detail for the log; test
// with errors.Is.
var (
	ErrMissingToken   = &TokenError{ReasonMissingToken, "no bearer token"}
	ErrMalformedToken = &TokenError{ReasonInvalidToken, "malformed token"}
	ErrAlgorithm      = &TokenError{ReasonInvalidToken, "signature algorithm not allowed"}
	ErrUnknownKey     = &TokenError{ReasonInvalidToken, "unknown signing key"}
	ErrSignature      = &TokenError{ReasonInvalidToken, "signature does not verify"}
	ErrIssuer         = &TokenError{ReasonInvalidToken, "wrong issuer"}
	ErrAudience       = &TokenError{ReasonInvalidToken, "wrong audience"}
	ErrMissingClaim   = &TokenError{ReasonInvalidToken, "required claim missing"}
	ErrSubject        = &TokenError{ReasonInvalidToken, "subject is not an Auth0 user id"}
	ErrExpired        = &TokenError{ReasonExpired, "token expired"}
	ErrNotYetValid    = &TokenError{ReasonNotYetValid, "token not yet valid"}
	ErrTooOld         = &TokenError{ReasonTooOld, "authentication too old"}
)

// ErrKeysUnavailable means no signing keys are known because the JWKS could
// not be fetched. It is not a token problem: the answer is 503.
var ErrKeysUnavailable = errors.New("signing keys unavailable")

// allowedAlg is the one signature algorithm accepted: Auth0 signs with
// RS256, and an allow-list of one rules out "none" and HMAC-with-the-
// public-key confusion.
const allowedAlg = jwa.RS256

// maxTokenBytes bounds what is parsed at all.
const maxTokenBytes = 16 << 10

// VerifierConfig configures a [Verifier].
type VerifierConfig struct {
	// Issuer is the exact iss value, "https://tenant.auth0.com/".
	Issuer string
	// Audience must be one of the token's aud values.
	Audience string
	// JWKSURL is where the signing keys are; "" means Issuer +
	// ".well-known/jwks.json".
	JWKSURL string
	// ClockSkew is allowed on exp, nbf, iat and the age check.
	ClockSkew time.Duration
	// MaxTokenAge bounds now − auth_time (or iat when auth_time is absent);
	// that time more than ClockSkew in the future is refused too.
	MaxTokenAge time.Duration
	// RefreshInterval is the least time between two JWKS fetches caused by
	// an unknown kid.
	RefreshInterval time.Duration
	// KeysMaxAge is how long fetched keys are used before they are fetched
	// again (picking up rotations and revocations).
	KeysMaxAge time.Duration
	// FetchTimeout bounds one JWKS fetch.
	FetchTimeout time.Duration
}

func (c VerifierConfig) jwksURL() string {
	if c.JWKSURL != "" {
		return c.JWKSURL
	}
	return strings.TrimSuffix(c.Issuer, "/") + "/.well-known/jwks.json"
}

// Claims are what a verified token says.
type Claims struct {
	// Subject is the Auth0 user id.
	Subject   string
	IssuedAt  time.Time
	AuthTime  time.Time // zero when the token has no auth_time
	ExpiresAt time.Time
}

// Verifier verifies Auth0 access or ID tokens: compact JWS, RS256 only,
// signed by a key of the tenant's JWKS (cached; fetched again on an
// unknown kid at most once per RefreshInterval), then issuer, audience,
// expiry, not-before and the sign-in time (auth_time, else iat): neither in
// the future beyond ClockSkew nor older than MaxTokenAge. It is safe for
// concurrent use.
type Verifier struct {
	cfg  VerifierConfig
	keys *keyCache
	now  func() time.Time
}

// NewVerifier builds a verifier fetching keys with client (nil means a
// client with FetchTimeout) and reading time from now (nil means
// time.Now). It does no I/O.
func NewVerifier(cfg VerifierConfig, client *http.Client, now func() time.Time) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("verifier: issuer and audience are required")
	}
	if cfg.RefreshInterval <= 0 || cfg.KeysMaxAge <= 0 || cfg.FetchTimeout <= 0 || cfg.ClockSkew < 0 || cfg.MaxTokenAge <= 0 {
		return nil, errors.New("verifier: refresh interval, keys max age, fetch timeout and max token age must be positive, clock skew not negative")
	}
	if now == nil {
		now = time.Now
	}
	if client == nil {
		client = &http.Client{Timeout: cfg.FetchTimeout}
	}
	return &Verifier{
		cfg:  cfg,
		keys: newKeyCache(cfg.jwksURL(), client, cfg.RefreshInterval, cfg.KeysMaxAge, cfg.FetchTimeout, now),
		now:  now,
	}, nil
}

// Warm fetches the signing keys now, so the first request does not wait.
func (v *Verifier) Warm(ctx context.Context) error { return v.keys.warm(ctx) }

// Verify checks raw and returns its claims. Errors match [ErrInvalidToken]
// and one of the Err* token errors above, or [ErrKeysUnavailable] when no
// keys could be fetched. Claims are looked at only after the signature
// verified, so an unsigned token learns nothing about them.
func (v *Verifier) Verify(ctx context.Context, raw string) (Claims, error) {
	c, _, err := v.verify(ctx, raw)
	return c, err
}

// verify is Verify that also returns the token, for claims beyond Claims
// (the ID tokens of the password fallback carry email and email_verified).
func (v *Verifier) verify(ctx context.Context, raw string) (Claims, jwt.Token, error) {
	if raw == "" {
		return Claims{}, nil, ErrMissingToken
	}
	if len(raw) > maxTokenBytes || strings.Count(raw, ".") != 2 {
		return Claims{}, nil, fmt.Errorf("%w: not a compact JWS", ErrMalformedToken)
	}
	msg, err := jws.Parse([]byte(raw), jws.WithCompact())
	if err != nil {
		return Claims{}, nil, fmt.Errorf("%w: %v", ErrMalformedToken, err)
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 {
		return Claims{}, nil, fmt.Errorf("%w: %d signatures", ErrMalformedToken, len(sigs))
	}
	h := sigs[0].ProtectedHeaders()
	if alg := h.Algorithm(); alg != allowedAlg {
		return Claims{}, nil, fmt.Errorf("%w: %q", ErrAlgorithm, truncate(alg.String(), 16))
	}
	if len(h.Critical()) > 0 {
		return Claims{}, nil, fmt.Errorf("%w: crit header", ErrMalformedToken)
	}
	key, err := v.keys.key(ctx, h.KeyID())
	if err != nil {
		return Claims{}, nil, err
	}
	payload, err := jws.Verify([]byte(raw), jws.WithCompact(), jws.WithKey(allowedAlg, key))
	if err != nil {
		return Claims{}, nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	tok, err := jwt.Parse(payload, jwt.WithVerify(false), jwt.WithValidate(false))
	if err != nil {
		return Claims{}, nil, fmt.Errorf("%w: claims: %v", ErrMalformedToken, err)
	}
	now := v.now()
	err = jwt.Validate(tok,
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithAcceptableSkew(v.cfg.ClockSkew),
		jwt.WithRequiredClaim(jwt.SubjectKey),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithAudience(v.cfg.Audience),
	)
	if err != nil {
		return Claims{}, nil, validationError(err)
	}
	c := Claims{Subject: tok.Subject(), IssuedAt: tok.IssuedAt(), ExpiresAt: tok.Expiration()}
	if at, ok := tok.Get("auth_time"); ok {
		t, err := numericDate(at)
		if err != nil {
			return Claims{}, nil, fmt.Errorf("%w: auth_time: %v", ErrMalformedToken, err)
		}
		c.AuthTime = t
	}
	// The Auth0 user id is provider|id; client-credentials tokens carry
	// "<client>@clients" and are not a person.
	if !strings.Contains(c.Subject, "|") || len(c.Subject) > 256 {
		return Claims{}, nil, ErrSubject
	}
	ref := c.AuthTime
	if ref.IsZero() {
		ref = c.IssuedAt
	}
	if ref.IsZero() {
		return Claims{}, nil, fmt.Errorf("%w: neither auth_time nor iat", ErrMissingClaim)
	}
	// A sign-in in the future would pass the age check below for as long
	// as it lies ahead plus MaxTokenAge; jwx checks iat but not auth_time.
	if ahead := ref.Sub(now); ahead > v.cfg.ClockSkew {
		return Claims{}, nil, fmt.Errorf("%w: sign-in time %s ahead", ErrNotYetValid, ahead.Truncate(time.Second))
	}
	if age := now.Sub(ref); age > v.cfg.MaxTokenAge+v.cfg.ClockSkew {
		return Claims{}, nil, fmt.Errorf("%w: %s old", ErrTooOld, age.Truncate(time.Second))
	}
	return c, tok, nil
}

// validationError maps jwx's validation errors to ours.
func validationError(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired()):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotYetValid()), errors.Is(err, jwt.ErrInvalidIssuedAt()):
		return fmt.Errorf("%w: %v", ErrNotYetValid, err)
	case errors.Is(err, jwt.ErrInvalidIssuer()):
		return ErrIssuer
	case errors.Is(err, jwt.ErrInvalidAudience()):
		return ErrAudience
	case errors.Is(err, jwt.ErrRequiredClaim()):
		return fmt.Errorf("%w: %v", ErrMissingClaim, err)
	default:
		return fmt.Errorf("%w: %v", ErrMalformedToken, err)
	}
}

// numericDate reads a JSON NumericDate (seconds since the epoch).
func numericDate(v any) (time.Time, error) {
	switch n := v.(type) {
	case float64:
		return time.Unix(int64(n), 0), nil
	case json.Number:
		f, err := n.Float64()
		if err != nil {
			return time.Time{}, err
		}
		return time.Unix(int64(f), 0), nil
	case int64:
		return time.Unix(n, 0), nil
	default:
		return time.Time{}, fmt.Errorf("not a number (%T)", v)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

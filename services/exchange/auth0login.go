package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// grantPasswordRealm is Auth0's extension of the OAuth 2.0 password grant
// that names the database connection (realm) to check the password against.
const grantPasswordRealm = "http://auth0.com/oauth/grant-type/password-realm"

// headerForwardedFor carries the end user's address to Auth0. Auth0 uses it
// for brute-force protection and suspicious-IP throttling only when the
// application has "Trust Token Endpoint IP Header" on (Advanced Settings →
// OAuth), which Auth0 allows for confidential applications only; without
// it every login counts against the exchange's own address.
const headerForwardedFor = "auth0-forwarded-for"

// Refusals of the Auth0 password grant (errors.Is).
var (
	// errWrongCredentials: invalid_grant, for an unknown email and a wrong
	// password alike.
	errWrongCredentials = errors.New("auth0: wrong email or password")
	// errLoginBlocked: too_many_attempts (brute-force protection) or a
	// user an administrator blocked.
	errLoginBlocked = errors.New("auth0: login blocked")
	// errMFARequired: the user must complete multi-factor authentication
	// in Auth0.
	errMFARequired = errors.New("auth0: mfa required")
	// errLoginDenied: access_denied from an Action or rule.
	errLoginDenied = errors.New("auth0: login denied")
)

// auth0Login is the person Auth0 authenticated.
type auth0Login struct {
	sub           string
	email         string
	emailVerified bool
}

// auth0Error is a refusal Auth0 answered, by status and error code only:
// descriptions can echo what was sent and are left out.
type auth0Error struct {
	status     int
	code       string
	retryAfter time.Duration
}

func (e *auth0Error) Error() string {
	return fmt.Sprintf("auth0 password grant: %d %s", e.status, e.code)
}

// login checks email and password with Auth0's password-realm grant
// against the configured database connection and verifies the ID token it
// answers (RS256 against the tenant's JWKS, issuer, audience = the client
// id, expiry). from is the end user's address for auth0-forwarded-for, or
// "". The password is sent in the request body and nowhere else; errors
// never contain it or the email. Errors match errWrongCredentials,
// errLoginBlocked, errMFARequired, errLoginDenied, ErrUnavailable
// (transient: 5xx, 429 too_many_requests, timeouts, transport failures) or
// ErrDependency (a configuration problem: the client, the grant, the
// realm).
func (s *Service) login(ctx context.Context, email, password, from string) (auth0Login, error) {
	ctx, span := s.tracer.Start(ctx, "auth0 password grant", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("http.request.method", http.MethodPost), attribute.String("server.address", s.pw.host)))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	form := url.Values{
		"grant_type":    {grantPasswordRealm},
		"username":      {email},
		"password":      {password},
		"realm":         {s.cfg.Password.Connection},
		"client_id":     {s.cfg.Password.ClientID},
		"client_secret": {s.cfg.Password.ClientSecret},
		"scope":         {"openid email"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.pw.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return auth0Login{}, fmt.Errorf("%w: auth0 password grant: %w", ErrDependency, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if from != "" {
		req.Header.Set(headerForwardedFor, from)
	}
	res, err := s.pw.client.Do(req)
	if err != nil {
		// *url.Error names the URL only, never the body.
		recordError(span, err)
		return auth0Login{}, fmt.Errorf("%w: auth0 password grant: %w", ErrUnavailable, err)
	}
	defer res.Body.Close()
	span.SetAttributes(attribute.Int("http.response.status_code", res.StatusCode))
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		recordError(span, err)
		return auth0Login{}, fmt.Errorf("%w: auth0 password grant: read answer: %w", ErrUnavailable, err)
	}
	var body struct {
		Error   string `json:"error"`
		IDToken string `json:"id_token"`
	}
	_ = json.Unmarshal(b, &body)
	if res.StatusCode != http.StatusOK {
		err := classifyAuth0(res, body.Error, s.now())
		if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDependency) {
			recordError(span, err)
		}
		span.SetAttributes(attribute.String("signupsync.auth0.error", truncate(body.Error, 40)))
		return auth0Login{}, err
	}
	claims, tok, err := s.pw.idVerifier.verify(ctx, body.IDToken)
	if err != nil {
		recordError(span, err)
		if errors.Is(err, ErrKeysUnavailable) {
			return auth0Login{}, fmt.Errorf("%w: id token: %w", ErrUnavailable, err)
		}
		return auth0Login{}, fmt.Errorf("%w: auth0 id token: %w", ErrDependency, err)
	}
	// Database users are auth0|<id>; anything else is not a user of the
	// connection the password was checked against.
	if !strings.HasPrefix(claims.Subject, "auth0|") {
		return auth0Login{}, fmt.Errorf("%w: auth0 id token: subject is not a database user", ErrDependency)
	}
	l := auth0Login{sub: claims.Subject}
	if v, ok := tok.Get("email"); ok {
		l.email, _ = v.(string)
	}
	if v, ok := tok.Get("email_verified"); ok {
		switch b := v.(type) {
		case bool:
			l.emailVerified = b
		case string: // some connections send "true"
			l.emailVerified = b == "true"
		}
	}
	if l.email == "" {
		return auth0Login{}, fmt.Errorf("%w: auth0 id token has no email claim (is the email scope allowed?)", ErrDependency)
	}
	l.email = strings.ToLower(l.email)
	return l, nil
}

// classifyAuth0 maps an Auth0 refusal to the sentinels of login.
func classifyAuth0(res *http.Response, code string, now time.Time) error {
	e := &auth0Error{status: res.StatusCode, code: truncate(code, 40)}
	switch {
	case code == "invalid_grant":
		return fmt.Errorf("%w (%w)", errWrongCredentials, e)
	case code == "too_many_attempts", code == "unauthorized" && res.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%w (%w)", errLoginBlocked, e)
	case code == "mfa_required":
		return fmt.Errorf("%w (%w)", errMFARequired, e)
	case code == "access_denied" && res.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w (%w)", errLoginDenied, e)
	case res.StatusCode == http.StatusTooManyRequests, res.StatusCode >= 500:
		e.retryAfter = rateLimitReset(res.Header, now)
		return fmt.Errorf("%w: %w", ErrUnavailable, e)
	}
	return fmt.Errorf("%w: %w", ErrDependency, e)
}

// rateLimitReset reads Auth0's X-RateLimit-Reset (epoch seconds) or
// Retry-After; 0 when neither is usable.
func rateLimitReset(h http.Header, now time.Time) time.Duration {
	if v, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
		if d := time.Unix(v, 0).Sub(now); d > 0 && d < 10*time.Minute {
			return d
		}
	}
	if v, err := strconv.Atoi(h.Get("Retry-After")); err == nil && v > 0 && v < 600 {
		return time.Duration(v) * time.Second
	}
	return 0
}

// Package exchange is the session bridge of the cutover: it exchanges a
// valid Auth0 token for a Firebase custom token of the same person, so a
// signed-in app user stays signed in when the app switches to Firebase.
//
// POST /v1/session/exchange takes the Auth0 token as a bearer token,
// verifies it fully ([Verifier]), finds the person's Firebase account (the
// importer's ledger, then Firebase by uid and by provider identity) and
// answers a custom token minted with the Admin SDK. A uid taken from the
// ledger is proven first: the account must exist (else 404
// account_not_found) and be the subject's policy uid or carry the
// subject's provider identity (else 409 identity_mismatch), so neither a
// deleted account nor a wrong ledger entry yields a token. A person who is
// eligible but not imported yet is imported on the spot through the
// importer's own code path: the exchange publishes the signup (read from
// the Auth0 Management API) like the reconciler does, with the same
// Nats-Msg-Id, and waits for the importer's ledger entry. The token
// exchange never writes to Firebase itself, so mapping and idempotency stay
// in one place.
//
// POST /v1/session/password (password.go, off unless Config.Password.Enabled)
// is the migration on next login for database users the password-hash
// export does not cover: the app sends the email and password its Firebase
// sign-in refused; Auth0's password-realm grant checks them, and the
// exchange creates the Firebase account with that password (CreateUser,
// which refuses a duplicate uid or email in production too, so concurrent
// requests make one account), records it in the ledger and answers a custom
// token. It is the only place the exchange writes accounts.
package exchange

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/singleflight"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
)

// PathExchange is the endpoint.
const PathExchange = "/v1/session/exchange"

// Config configures the exchange role. Start from [DefaultConfig].
type Config struct {
	Addr string
	// Issuer is the Auth0 tenant's issuer, exactly as in the tokens' iss
	// ("https://tenant.auth0.com/"); the JWKS is read from
	// <Issuer>.well-known/jwks.json. https, or http on a loopback host.
	Issuer string
	// Audience must be one of the token's aud values: the API identifier
	// for access tokens, or the application's client id for ID tokens.
	Audience string
	// ClockSkew is tolerated on exp, nbf, iat and the age check.
	ClockSkew time.Duration
	// MaxTokenAge bounds the time since auth_time (iat when absent).
	MaxTokenAge time.Duration
	// JWKSRefreshInterval is the least time between two JWKS fetches caused
	// by tokens with an unknown kid.
	JWKSRefreshInterval time.Duration
	// JWKSMaxAge is how long fetched keys are trusted before a fetch.
	JWKSMaxAge  time.Duration
	JWKSTimeout time.Duration
	// ImportWait bounds the wait for the importer after an on-the-spot
	// publish; past it the answer is 503 import_pending.
	ImportWait time.Duration
	// CallTimeout bounds each ledger, Firebase, Auth0 and publish call.
	CallTimeout time.Duration
	// RetryAfter is sent with 503 answers.
	RetryAfter time.Duration
	// UIDPolicy must be the importer's.
	UIDPolicy events.UIDPolicy
	// Tenant is recorded in the signups the exchange publishes.
	Tenant string
	// Management reads profiles from the Auth0 Management API (required).
	Management auth0api.Config
	// SubjectRate (per minute) and SubjectBurst limit exchanges per Auth0
	// user, after verification.
	SubjectRate  float64
	SubjectBurst int
	// IPRate (per minute) and IPBurst limit requests per client address
	// (IPv6 per /64), before verification.
	IPRate  float64
	IPBurst int
	// LimiterKeys bounds the keys each rate limiter tracks.
	LimiterKeys int
	// ClientIPHeader names a header a trusted proxy sets to the client's
	// address (X-Forwarded-For, Fly-Client-IP, …); its last value is used.
	// Empty means the connection's address.
	ClientIPHeader string
	// Password configures the password fallback (password.go); off unless
	// Password.Enabled.
	Password PasswordConfig
	// Merge configures the anonymous merge (merge.go): requests are
	// always served when the app sends HeaderAnonymousToken; deleting the
	// merged anonymous accounts is off unless Merge.DeleteAnonymous.
	Merge MergeConfig

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
}

// DefaultConfig returns production defaults without issuer, audience or
// Management API credentials.
func DefaultConfig() Config {
	return Config{
		Addr:                "127.0.0.1:8081",
		ClockSkew:           30 * time.Second,
		MaxTokenAge:         15 * time.Minute,
		JWKSRefreshInterval: 30 * time.Second,
		JWKSMaxAge:          10 * time.Minute,
		JWKSTimeout:         5 * time.Second,
		ImportWait:          5 * time.Second,
		CallTimeout:         5 * time.Second,
		RetryAfter:          5 * time.Second,
		UIDPolicy:           events.UIDAuth0ID,
		Tenant:              "default",
		SubjectRate:         6,
		SubjectBurst:        3,
		IPRate:              120,
		IPBurst:             60,
		LimiterKeys:         100_000,
		Password:            DefaultPasswordConfig(),
		ReadHeaderTimeout:   5 * time.Second,
		ReadTimeout:         10 * time.Second,
		WriteTimeout:        45 * time.Second, // above ImportWait + 7 CallTimeouts
		IdleTimeout:         120 * time.Second,
		ShutdownTimeout:     20 * time.Second,
	}
}

// Validate reports every problem at once, naming each field as Config
// spells it (the command line tells them as its flags).
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("exchange: Addr is empty"))
	}
	if err := validIssuer(c.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("exchange: Issuer: %w", err))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("exchange: Audience is required: the API identifier of the access tokens the app sends"))
	}
	if c.ClockSkew < 0 || c.ClockSkew > 5*time.Minute {
		errs = append(errs, fmt.Errorf("exchange: ClockSkew %s: must be 0 to 5m", c.ClockSkew))
	}
	if c.MaxTokenAge < time.Minute || c.MaxTokenAge > 24*time.Hour {
		errs = append(errs, fmt.Errorf("exchange: MaxTokenAge %s: must be 1m to 24h", c.MaxTokenAge))
	}
	if c.JWKSRefreshInterval < time.Second {
		errs = append(errs, fmt.Errorf("exchange: JWKSRefreshInterval %s: must be at least 1s", c.JWKSRefreshInterval))
	}
	if c.JWKSMaxAge < c.JWKSRefreshInterval {
		errs = append(errs, errors.New("exchange: JWKSMaxAge must not be shorter than JWKSRefreshInterval"))
	}
	if c.JWKSTimeout <= 0 || c.CallTimeout <= 0 || c.RetryAfter <= 0 {
		errs = append(errs, errors.New("JWKS timeout, call timeout and Retry-After must be positive"))
	}
	if c.ImportWait <= 0 || c.ImportWait+2*c.CallTimeout >= c.WriteTimeout {
		errs = append(errs, fmt.Errorf("exchange: ImportWait %s: must be positive and leave time for the look-ups within the %s write timeout", c.ImportWait, c.WriteTimeout))
	}
	if !c.UIDPolicy.Valid() {
		errs = append(errs, fmt.Errorf("exchange: UIDPolicy %q: want auth0_id or hash", c.UIDPolicy))
	}
	if c.Tenant == "" {
		errs = append(errs, errors.New("exchange: Tenant is empty"))
	}
	if err := c.Management.Validate(); err != nil {
		errs = append(errs, err)
	} else if !c.Management.Enabled() {
		errs = append(errs, errors.New("exchange: Management is required, the exchange reads users from the Auth0 Management API: set Domain and Token, or ClientID and ClientSecret"))
	}
	if c.SubjectRate <= 0 || c.SubjectBurst < 1 {
		errs = append(errs, errors.New("exchange: SubjectRate and SubjectBurst must be positive"))
	}
	if c.IPRate <= 0 || c.IPBurst < 1 {
		errs = append(errs, errors.New("exchange: IPRate and IPBurst must be positive"))
	}
	if c.LimiterKeys < 1 {
		errs = append(errs, errors.New("limiter keys must be positive"))
	}
	if err := c.Password.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 {
		errs = append(errs, errors.New("HTTP read-header, read and write timeouts must be positive"))
	}
	return errors.Join(errs...)
}

func validIssuer(s string) error {
	if s == "" {
		return errors.New("is required, e.g. https://tenant.auth0.com/")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q is not an issuer URL such as https://tenant.auth0.com/", s)
	}
	if !strings.HasSuffix(u.Path, "/") {
		return fmt.Errorf("%q: Auth0 issuers end with a slash, as in https://tenant.auth0.com/ (tokens are matched exactly)", s)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (u.Hostname() == "localhost" || isLoopback(u.Hostname())):
	default:
		return fmt.Errorf("%q: the issuer must use https (http only on a loopback host)", s)
	}
	return nil
}

// VerifierConfig is the token verification part of c.
func (c Config) VerifierConfig() VerifierConfig {
	return VerifierConfig{
		Issuer: c.Issuer, Audience: c.Audience, ClockSkew: c.ClockSkew, MaxTokenAge: c.MaxTokenAge,
		RefreshInterval: c.JWKSRefreshInterval, KeysMaxAge: c.JWKSMaxAge, FetchTimeout: c.JWKSTimeout,
	}
}

// Firebase is the part of the Firebase Auth client the exchange uses:
// look-ups and minting. The password fallback's writes are [Accounts].
// *auth.Client satisfies it.
type Firebase interface {
	GetUsers(ctx context.Context, ids []auth.UserIdentifier) (*auth.GetUsersResult, error)
	CustomTokenWithClaims(ctx context.Context, uid string, claims map[string]any) (string, error)
}

// Users reads a user from the Auth0 Management API. It returns an error
// matching auth0api.ErrNotFound for a user that does not exist.
// *auth0api.Client satisfies it.
type Users interface {
	GetUser(ctx context.Context, auth0UserID string) (events.SignupData, error)
}

// Deps are the collaborators of the exchange role. JetStream, Firebase,
// Users and Logger are required.
type Deps struct {
	JetStream jetstream.JetStream
	Firebase  Firebase
	Users     Users
	Logger    *slog.Logger
	// Metrics records exchanges; nil records nothing.
	Metrics *Metrics
	// JWKSClient fetches the issuer's keys; nil means a client with
	// Config.JWKSTimeout.
	JWKSClient *http.Client
	// Ready reports readiness for /readyz; nil means always ready.
	Ready      func(context.Context) error
	Tracer     trace.TracerProvider
	Propagator propagation.TextMapPropagator
	// Providers maps Auth0 social strategies to Firebase provider ids; nil
	// means events.SocialProviders(), as the importer uses.
	Providers map[string]string
	Now       func() time.Time
	// Accounts creates accounts for the password fallback; nil means
	// Firebase, when it implements Accounts. Needed only with
	// Config.Password.Enabled.
	Accounts Accounts
	// Guests verifies the guest's ID token and deletes merged anonymous
	// accounts; nil means Firebase, when it implements Guests.
	Guests Guests
}

// Service is the exchange HTTP handler set. It is safe for concurrent use.
type Service struct {
	cfg        Config
	js         jetstream.JetStream
	ledger     jetstream.KeyValue
	fb         Firebase
	users      Users
	log        *slog.Logger
	metrics    *Metrics
	ready      func(context.Context) error
	tracerProv trace.TracerProvider
	tracer     trace.Tracer
	prop       propagation.TextMapPropagator
	providers  map[string]string
	now        func() time.Time
	verifier   *Verifier
	bySubject  *keyedLimiter
	byIP       *keyedLimiter
	flight     singleflight.Group
	pw         *passwordDeps // nil: the password fallback is off
	merge      *mergeDeps
}

// New checks cfg and deps, opens the ledger bucket (created by
// events.Ensure) and builds the service. It does not fetch the JWKS; Serve
// warms it.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("exchange config: %w", err)
	}
	if deps.JetStream == nil || deps.Firebase == nil || deps.Users == nil || deps.Logger == nil {
		return nil, errors.New("exchange: JetStream, Firebase, Users and Logger are required")
	}
	s := &Service{
		cfg: cfg, js: deps.JetStream, fb: deps.Firebase, users: deps.Users, log: deps.Logger,
		metrics: deps.Metrics, ready: deps.Ready, tracerProv: deps.Tracer, prop: deps.Propagator,
		providers: deps.Providers, now: deps.Now,
		bySubject: newKeyedLimiter(cfg.SubjectRate, cfg.SubjectBurst, cfg.LimiterKeys),
		byIP:      newKeyedLimiter(cfg.IPRate, cfg.IPBurst, cfg.LimiterKeys),
	}
	if s.metrics == nil {
		s.metrics, _ = NewMetrics(nil)
	}
	if s.tracerProv == nil {
		s.tracerProv = noop.NewTracerProvider()
	}
	s.tracer = s.tracerProv.Tracer("github.com/signupsync/signupsync/services/exchange")
	if s.prop == nil {
		s.prop = propagation.TraceContext{}
	}
	if s.providers == nil {
		s.providers = events.SocialProviders()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ready == nil {
		s.ready = func(context.Context) error { return nil }
	}
	v, err := NewVerifier(cfg.VerifierConfig(), deps.JWKSClient, s.now)
	if err != nil {
		return nil, err
	}
	v.keys.onFetch = s.metrics.jwksFetch
	s.verifier = v
	kv, err := deps.JetStream.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		return nil, fmt.Errorf("ledger bucket: %w", err)
	}
	s.ledger = kv
	if err := s.setupPassword(deps); err != nil {
		return nil, err
	}
	if err := s.setupMerge(deps); err != nil {
		return nil, err
	}
	return s, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

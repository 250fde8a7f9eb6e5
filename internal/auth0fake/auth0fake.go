// Package auth0fake is an in-process fake of the parts of the Auth0
// Management API v2 that signupsync uses, served over TLS by
// [httptest.NewTLSServer]. It is for tests only.
//
// It answers, in Auth0's documented shapes:
//
//   - POST /oauth/token (client credentials; form, JSON or HTTP Basic), and
//     the Authentication API's password-realm grant with ID tokens whose
//     keys GET /.well-known/jwks.json serves (oauth.go),
//   - GET /api/v2/users/{id}, GET /api/v2/users (q with a subset of Lucene,
//     sort, page, per_page, include_totals, fields) and
//     GET /api/v2/users-by-email,
//   - POST /api/v2/jobs/users-exports and GET /api/v2/jobs/{id}, whose
//     completed job links to a gzipped NDJSON (or CSV) file the fake serves
//     like a pre-signed S3 URL that expires,
//   - the Event Streams deliveries: GET /api/v2/event-streams/{id}/deliveries
//     (statuses, event_types, date_from, date_to, from, take),
//     GET /api/v2/event-streams/{id}/deliveries/{event_id}, and
//     POST /api/v2/event-streams/{id}/redeliver[/{event_id}] (eventstreams.go),
//   - the Actions, trigger bindings, Event Streams and Log Streams
//     configuration endpoints (actions.go, streams.go).
//
// User search lags behind writes as Auth0's index does when [WithIndexLag]
// is set: GET /api/v2/users lists a user only that long after it was added,
// while GET /api/v2/users/{id} reads it at once.
//
// Every /api/v2 request needs a bearer token ([Server.Token] or one issued by
// /oauth/token). Every /api/v2 and /oauth/token response carries
// X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset from one
// fixed-window budget (see [WithRateLimit]); [Server.Fail] forces failures.
// Errors have Auth0's body: {"statusCode","error","message","errorCode"}.
//
// Time is the wall clock plus an offset the test moves with [Server.Advance],
// so token expiry, rate-limit windows and link expiry need no sleeping.
//
// A Server is safe for concurrent use.
package auth0fake

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Routes, as the keys of [Server.Requests].
const (
	RouteToken        = "POST /oauth/token"
	RouteGetUser      = "GET /api/v2/users/{id}"
	RouteListUsers    = "GET /api/v2/users"
	RouteUsersByEmail = "GET /api/v2/users-by-email"
	RouteCreateExport = "POST /api/v2/jobs/users-exports"
	RouteGetJob       = "GET /api/v2/jobs/{id}"
	RouteDownload     = "GET /exports/{link}/{file}"

	RouteListDeliveries = "GET /api/v2/event-streams/{id}/deliveries"
	RouteGetDelivery    = "GET /api/v2/event-streams/{id}/deliveries/{event_id}"
	RouteRedeliver      = "POST /api/v2/event-streams/{id}/redeliver/{event_id}"
	RouteRedeliverMany  = "POST /api/v2/event-streams/{id}/redeliver"
)

// Defaults of the options.
const (
	DefaultToken        = "auth0fake-static-token"
	DefaultClientID     = "auth0fake-client-id"
	DefaultClientSecret = "auth0fake-client-secret"
	DefaultRateLimit    = 10000
	DefaultRateWindow   = time.Minute
	DefaultTokenTTL     = 24 * time.Hour
	DefaultLinkTTL      = time.Minute
	DefaultExportPolls  = 1
	// SearchCap is how many results of one query Auth0 lets a client page
	// through.
	SearchCap = 1000
	// MaxPerPage is the largest per_page Auth0 accepts.
	MaxPerPage = 100
)

type config struct {
	token, clientID, clientSecret string
	rateLimit                     int
	rateWindow, tokenTTL, linkTTL time.Duration
	exportPolls                   int
	indexLag                      time.Duration
	// ID tokens of the password grant (oauth.go).
	idIssuer, idKID string
	idKey           *rsa.PrivateKey
}

// Option configures a [Server].
type Option func(*config)

// WithStaticToken sets the bearer token the Management API accepts besides
// the ones /oauth/token issues (default [DefaultToken]).
func WithStaticToken(token string) Option { return func(c *config) { c.token = token } }

// WithClientCredentials sets the one client /oauth/token accepts (default
// [DefaultClientID], [DefaultClientSecret]).
func WithClientCredentials(id, secret string) Option {
	return func(c *config) { c.clientID, c.clientSecret = id, secret }
}

// WithRateLimit gives the API a budget of limit requests per fixed window
// (default [DefaultRateLimit] per [DefaultRateWindow]). A window starts at
// the first request after the previous one ended.
func WithRateLimit(limit int, window time.Duration) Option {
	return func(c *config) { c.rateLimit, c.rateWindow = limit, window }
}

// WithTokenTTL sets expires_in of issued tokens (default [DefaultTokenTTL]).
func WithTokenTTL(d time.Duration) Option { return func(c *config) { c.tokenTTL = d } }

// WithLinkTTL sets how long an export's download link works after the job
// was read (default [DefaultLinkTTL]).
func WithLinkTTL(d time.Duration) Option { return func(c *config) { c.linkTTL = d } }

// WithExportPolls sets how many GET /api/v2/jobs/{id} calls answer
// "processing" before the export completes (default [DefaultExportPolls];
// 0 completes on the first poll).
func WithExportPolls(n int) Option { return func(c *config) { c.exportPolls = n } }

// WithIndexLag makes a user appear in GET /api/v2/users searches only d
// after [Server.AddUsers] stored it, as Auth0's search index lags behind its
// user store (default 0: at once). GET /api/v2/users/{id} is not affected.
func WithIndexLag(d time.Duration) Option { return func(c *config) { c.indexLag = d } }

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	t   testing.TB
	ts  *httptest.Server
	cfg config

	mu       sync.Mutex
	offset   time.Duration
	users    []User
	indexed  map[string]time.Time // user id → when searches first list it
	streams  map[string]*stream
	tokens   map[string]time.Time // issued token → expiry
	jobs     map[string]*job
	links    map[string]link
	requests map[string]int
	winEnd   time.Time
	winUsed  int
	failCode int
	failN    int
	pw       *passwordState // the password grant (oauth.go)
	tenant   *tenantState   // actions, bindings, event and log streams (actions.go)
}

// New starts a fake and stops it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config{
		token: DefaultToken, clientID: DefaultClientID, clientSecret: DefaultClientSecret,
		rateLimit: DefaultRateLimit, rateWindow: DefaultRateWindow,
		tokenTTL: DefaultTokenTTL, linkTTL: DefaultLinkTTL, exportPolls: DefaultExportPolls,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.rateLimit < 1 || cfg.rateWindow <= 0 {
		t.Fatalf("auth0fake: rate limit %d per %v: both must be positive", cfg.rateLimit, cfg.rateWindow)
	}
	s := &Server{
		t: t, cfg: cfg,
		tokens: map[string]time.Time{}, jobs: map[string]*job{}, links: map[string]link{},
		requests: map[string]int{}, indexed: map[string]time.Time{}, streams: map[string]*stream{},
		pw: newPasswordState(), tenant: newTenantState(),
	}
	mux := http.NewServeMux()
	s.route(mux, RouteToken, false, s.handleToken)
	s.route(mux, RouteGetUser, true, s.handleGetUser)
	s.route(mux, RouteListUsers, true, s.handleListUsers)
	s.route(mux, RouteUsersByEmail, true, s.handleUsersByEmail)
	s.route(mux, RouteCreateExport, true, s.handleCreateExport)
	s.route(mux, RouteGetJob, true, s.handleGetJob)
	s.route(mux, RouteListDeliveries, true, s.handleListDeliveries)
	s.route(mux, RouteGetDelivery, true, s.handleGetDelivery)
	s.route(mux, RouteRedeliver, true, s.handleRedeliver)
	s.route(mux, RouteRedeliverMany, true, s.handleRedeliverMany)
	s.registerTenant(mux)
	mux.HandleFunc(RouteJWKS, func(w http.ResponseWriter, r *http.Request) {
		s.count(RouteJWKS)
		s.handleJWKS(w, r)
	})
	mux.HandleFunc(RouteDownload, func(w http.ResponseWriter, r *http.Request) {
		s.count(RouteDownload)
		s.handleDownload(w, r)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "Not Found", "")
	})
	s.ts = httptest.NewUnstartedServer(mux)
	s.ts.Config.ErrorLog = log.New(handshakeFilter{os.Stderr}, "", log.LstdFlags)
	s.ts.StartTLS()
	t.Cleanup(s.ts.Close)
	return s
}

// URL is the base URL, "https://127.0.0.1:port".
func (s *Server) URL() string { return s.ts.URL }

// Domain is the tenant domain as Auth0 SDKs take it: "127.0.0.1:port".
func (s *Server) Domain() string { return strings.TrimPrefix(s.ts.URL, "https://") }

// Client returns an HTTP client that trusts the fake's certificate.
func (s *Server) Client() *http.Client { return s.ts.Client() }

// Token is the static bearer token the API accepts.
func (s *Server) Token() string { return s.cfg.token }

// ClientID and ClientSecret are the credentials /oauth/token accepts.
func (s *Server) ClientID() string { return s.cfg.clientID }

// ClientSecret: see [Server.ClientID].
func (s *Server) ClientSecret() string { return s.cfg.clientSecret }

// Audience is the Management API audience /oauth/token requires.
func (s *Server) Audience() string { return s.ts.URL + "/api/v2/" }

// Now is the fake's clock: the wall clock plus every [Server.Advance].
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

func (s *Server) now() time.Time { return time.Now().Add(s.offset) }

// Advance moves the fake's clock forward, expiring tokens, links and
// rate-limit windows without sleeping.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// Fail makes the next n /api/v2 requests answer status (429 or 5xx, say)
// with an Auth0 error body, before the bearer token is checked. The token
// endpoint and downloads are not affected.
// A later call replaces an earlier one.
func (s *Server) Fail(status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCode, s.failN = status, n
}

// Requests returns how many requests each route received, keyed by the
// Route constants, counting rejected ones.
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

func (s *Server) count(route string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[route]++
}

// route registers h behind counting, rate limiting, forced failures and,
// for the API, bearer authentication.
func (s *Server) route(mux *http.ServeMux, pattern string, api bool, h http.HandlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[pattern]++
		now := s.now()
		if !now.Before(s.winEnd) {
			s.winEnd, s.winUsed = now.Add(s.cfg.rateWindow), 0
		}
		limited := s.winUsed >= s.cfg.rateLimit
		if !limited {
			s.winUsed++
		}
		reset := s.winEnd.Unix()
		if s.winEnd.Truncate(time.Second).Before(s.winEnd) {
			reset++
		}
		fail := 0
		if api && s.failN > 0 {
			s.failN--
			fail = s.failCode
		}
		authErr := ""
		if api && fail == 0 && !limited {
			authErr = s.authenticate(r.Header.Get("Authorization"), now)
		}
		remaining := s.cfg.rateLimit - s.winUsed
		s.mu.Unlock()

		hd := w.Header()
		hd.Set("X-RateLimit-Limit", strconv.Itoa(s.cfg.rateLimit))
		hd.Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
		if fail == http.StatusTooManyRequests {
			remaining = 0
		}
		hd.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
		switch {
		case fail != 0:
			apiError(w, fail, defaultMessage(fail), defaultCode(fail))
		case limited:
			if api {
				apiError(w, http.StatusTooManyRequests, defaultMessage(429), defaultCode(429))
			} else {
				oauthError(w, http.StatusTooManyRequests, "too_many_requests", "Global limit has been reached")
			}
		case authErr != "":
			apiError(w, http.StatusUnauthorized, authErr, "")
		default:
			h(w, r)
		}
	})
}

// authenticate returns "" for an accepted Authorization header, else
// Auth0's 401 message. The caller holds mu.
func (s *Server) authenticate(header string, now time.Time) string {
	scheme, tok, ok := strings.Cut(header, " ")
	if header == "" || !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "Missing authentication"
	}
	if tok == s.cfg.token {
		return ""
	}
	exp, ok := s.tokens[tok]
	switch {
	case !ok:
		return "Invalid token"
	case !now.Before(exp):
		return "Expired token received for JSON Web Token validation"
	}
	return ""
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	p, ok := parseTokenRequest(w, r)
	if !ok {
		return
	}
	if p.GrantType == GrantPasswordRealm {
		s.handlePasswordRealm(w, r, p)
		return
	}
	switch {
	case p.GrantType != "client_credentials":
		oauthError(w, http.StatusForbidden, "unsupported_grant_type", "Unsupported grant type: "+p.GrantType)
		return
	case p.ClientID != s.cfg.clientID || p.ClientSecret != s.cfg.clientSecret:
		oauthError(w, http.StatusUnauthorized, "access_denied", "Unauthorized")
		return
	case p.Audience != s.Audience():
		oauthError(w, http.StatusForbidden, "access_denied", "Service not enabled within domain: "+p.Audience)
		return
	}
	tok := "fake." + randomID(24)
	s.mu.Lock()
	s.tokens[tok] = s.now().Add(s.cfg.tokenTTL)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"scope":        "read:users",
		"expires_in":   int(s.cfg.tokenTTL / time.Second),
		"token_type":   "Bearer",
	})
}

// apiError writes Auth0's Management API error body.
func apiError(w http.ResponseWriter, status int, message, errorCode string) {
	body := map[string]any{"statusCode": status, "error": http.StatusText(status), "message": message}
	if errorCode != "" {
		body["errorCode"] = errorCode
	}
	writeJSON(w, status, body)
}

// oauthError writes the Authentication API's OAuth 2.0 error body.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func defaultMessage(status int) string {
	if status == http.StatusTooManyRequests {
		return "Global limit has been reached"
	}
	return http.StatusText(status)
}

func defaultCode(status int) string {
	if status == http.StatusTooManyRequests {
		return "too_many_requests"
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(fmt.Sprintf(`{"statusCode":500,"error":"Internal Server Error","message":%q}`, err.Error()))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}

// handshakeFilter drops the TLS handshake errors a closing server logs for
// connections a client dialled but never used.
type handshakeFilter struct{ w io.Writer }

func (f handshakeFilter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), "TLS handshake error") {
		return len(p), nil
	}
	return f.w.Write(p)
}

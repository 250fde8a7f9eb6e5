// Package auth0api reads users from the Auth0 Management API v2: the
// importer enriches partial signups with [Client.GetUser], the reconciler
// sweeps signups by creation time with [Client.ListUsersCreated], and the
// export command runs a users-export job ([Client.ExportUsers],
// [Client.ExportJob], [Client.DownloadExport]).
// It is built on go-auth0's management client with the SDK's own retries
// switched off, so the caller owns every retry decision (the importer
// negatively acknowledges the message with a delay).
//
// Every error is classified, because the ack decision depends on it:
//
//   - [ErrNotFound]: the user does not exist (404). Permanent; the importer
//     records outcome skipped with reason events.ReasonDeletedInAuth0.
//   - [*TransientError]: 429, 408, 5xx, network failures, timeouts and
//     cancelled contexts. Retry later, after [RetryAfter] when it is
//     non-zero. Test with [IsTransient].
//   - [ErrPermanent]: any other 4xx (including 401 and 403 for bad
//     credentials), a response that cannot be decoded, or bad arguments.
//     Redelivery cannot help. [ErrNotFound] and [ErrBeyondSearchLimit] match
//     it too.
//   - [ErrLinkExpired]: an export's download link no longer works; read the
//     job again for a fresh one.
package auth0api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/auth0/go-auth0/management"
	"golang.org/x/oauth2"

	"github.com/signupsync/signupsync/events"
)

// DefaultTimeout bounds one Management API call when [Config.Timeout] is 0.
const DefaultTimeout = 10 * time.Second

// Auth0's paging limits for GET /api/v2/users.
const (
	// MaxPerPage is the largest page Auth0 returns.
	MaxPerPage = 100
	// SearchLimit is how many results of one query Auth0 lets a client page
	// through; a window holding more must be split.
	SearchLimit = 1000
)

// maxRetryAfter caps a server-suggested delay.
const maxRetryAfter = time.Hour

// Config configures the Management API client. The zero value is valid and
// disabled.
type Config struct {
	// Domain is the tenant domain, "example.eu.auth0.com" (an https://
	// prefix is accepted).
	Domain string
	// ClientID and ClientSecret of a machine-to-machine application with
	// read:users, used with the client-credentials grant. Exclusive with
	// Token.
	ClientID     string
	ClientSecret string
	// Token is a static Management API access token. Exclusive with the
	// client credentials.
	Token string
	// HTTPClient is copied and wrapped, never modified; nil means a new
	// client with http.DefaultTransport.
	HTTPClient *http.Client
	// Timeout bounds each call, token requests included; 0 means
	// [DefaultTimeout].
	Timeout time.Duration
}

// Enabled reports whether the configuration names a domain and a way to
// authenticate.
func (c Config) Enabled() bool {
	return c.Domain != "" && (c.Token != "" || (c.ClientID != "" && c.ClientSecret != ""))
}

// Validate reports every problem at once, naming each field as Config
// spells it (the command line tells them as its flags). A
// configuration with nothing set is valid (and disabled).
func (c Config) Validate() error {
	var errs []error
	if c.Timeout < 0 {
		errs = append(errs, errors.New("auth0: Timeout must not be negative"))
	}
	if c.Domain == "" && c.Token == "" && c.ClientID == "" && c.ClientSecret == "" {
		return errors.Join(errs...)
	}
	host := strings.TrimPrefix(c.Domain, "https://")
	switch {
	case c.Domain == "":
		errs = append(errs, errors.New("auth0: Domain is required to use the Auth0 Management API"))
	case host == "" || strings.ContainsAny(host, "/ ?#@"):
		errs = append(errs, fmt.Errorf("auth0: Domain %q: want a host name such as example.eu.auth0.com", c.Domain))
	}
	creds := c.ClientID != "" || c.ClientSecret != ""
	switch {
	case c.Token != "" && creds:
		errs = append(errs, errors.New("auth0: set either Token or ClientID and ClientSecret, not both"))
	case creds && (c.ClientID == "" || c.ClientSecret == ""):
		errs = append(errs, errors.New("auth0: ClientID and ClientSecret must be set together"))
	case c.Token == "" && !creds:
		errs = append(errs, errors.New("auth0: Domain needs Token, or ClientID and ClientSecret"))
	}
	return errors.Join(errs...)
}

// Client reads users from the Management API. It is safe for concurrent
// use; with client credentials it fetches a token on first use and again
// before it expires.
type Client struct {
	m       *management.Management
	timeout time.Duration
	// download fetches export files: the caller's transport, no bearer
	// token and no client timeout (the context bounds it).
	download *http.Client
}

// New builds a client. It does no I/O: bad credentials surface as
// [ErrPermanent] on the first call. It fails for an invalid or disabled
// configuration. ctx only carries values into token requests; cancelling it
// later does not affect the client.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("auth0 management api: %w", err)
	}
	if !cfg.Enabled() {
		return nil, errors.New("auth0 management api: not configured: set Domain and Token, or ClientID and ClientSecret")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	m, err := NewManagement(ctx, cfg)
	if err != nil {
		return nil, err
	}
	base, checkRedirect := http.DefaultTransport, (func(*http.Request, []*http.Request) error)(nil)
	if cfg.HTTPClient != nil {
		checkRedirect = cfg.HTTPClient.CheckRedirect
		if cfg.HTTPClient.Transport != nil {
			base = cfg.HTTPClient.Transport
		}
	}
	download := &http.Client{Transport: base, CheckRedirect: checkRedirect}
	return &Client{m: m, timeout: timeout, download: download}, nil
}

// NewManagement builds go-auth0's Management API client for cfg, for
// callers with their own retry policy: go-auth0's retries are off, a static
// token or client credentials (fetched on first use, renewed before
// expiry), cfg.HTTPClient copied (never modified) with cfg.Timeout (or
// [DefaultTimeout]) as its own timeout, which is what bounds token
// requests, and every response recorded for [RecordResponse]. It does no
// I/O and fails for an invalid or disabled configuration. ctx only carries
// values into token requests.
func NewManagement(ctx context.Context, cfg Config) (*management.Management, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("auth0 management api: %w", err)
	}
	if !cfg.Enabled() {
		return nil, errors.New("auth0 management api: not configured: set Domain and Token, or ClientID and ClientSecret")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		*hc = *cfg.HTTPClient
	}
	if hc.Timeout == 0 {
		// Token requests do not carry the call's context, so the client's
		// own timeout is what bounds them.
		hc.Timeout = timeout
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = recordingTransport{base: base}
	opts := []management.Option{management.WithClient(hc), management.WithNoRetries()}
	if cfg.Token != "" {
		opts = append(opts, management.WithStaticToken(cfg.Token))
	} else {
		tokenCtx := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, hc)
		opts = append(opts, management.WithClientCredentials(tokenCtx, cfg.ClientID, cfg.ClientSecret))
	}
	m, err := management.New(strings.TrimPrefix(cfg.Domain, "https://"), opts...)
	if err != nil {
		return nil, fmt.Errorf("auth0 management api: %w", err)
	}
	return m, nil
}

// userFields are the profile fields signupsync reads.
var userFields = []string{
	"user_id", "email", "email_verified", "name", "given_name", "family_name",
	"nickname", "picture", "created_at", "identities", "app_metadata", "user_metadata",
}

// GetUser reads one user and maps it to signup data: Partial is false and
// Tenant, Trigger and ConnectionStrategy are left for the caller. It returns
// [ErrNotFound] for a user that does not exist, a [*TransientError] for
// failures worth retrying, and [ErrPermanent] otherwise.
func (c *Client) GetUser(ctx context.Context, auth0UserID string) (events.SignupData, error) {
	if auth0UserID == "" {
		return events.SignupData{}, fmt.Errorf("get auth0 user: empty user id: %w", ErrPermanent)
	}
	var u user
	if err := c.get(ctx, c.m.URI("users", auth0UserID), &u, management.IncludeFields(userFields...)); err != nil {
		return events.SignupData{}, fmt.Errorf("get auth0 user %s: %w", auth0UserID, err)
	}
	d, err := u.signupData()
	if err != nil {
		return events.SignupData{}, fmt.Errorf("get auth0 user %s: %w", auth0UserID, err)
	}
	return d, nil
}

// ListUsersCreated returns one page of the users created in [from, to),
// oldest first, and how many users match (Auth0 reports at most
// [SearchLimit]: a total of SearchLimit means the window may hold more and
// should be split). Auth0 keeps milliseconds, and both bounds are rounded up
// to the millisecond, so adjacent windows neither overlap nor leave gaps.
// Auth0's search index is eventually consistent: a user created moments ago
// may be missing.
//
// page counts from 0; perPage is 1 to [MaxPerPage]. A page reaching past the
// first SearchLimit results returns [ErrBeyondSearchLimit] without a
// request. Other errors are classified as for [Client.GetUser].
func (c *Client) ListUsersCreated(ctx context.Context, from, to time.Time, page, perPage int) ([]events.SignupData, int, error) {
	lo, hi := formatTime(from), formatTime(to)
	op := fmt.Sprintf("list auth0 users created in [%s, %s) page %d", lo, hi, page)
	switch {
	case !from.Before(to):
		return nil, 0, fmt.Errorf("%s: empty window: %w", op, ErrPermanent)
	case page < 0 || perPage < 1 || perPage > MaxPerPage:
		return nil, 0, fmt.Errorf("%s: per page %d: want page ≥ 0 and 1 to %d per page: %w", op, perPage, MaxPerPage, ErrPermanent)
	case (page+1)*perPage > SearchLimit:
		return nil, 0, fmt.Errorf("%s: %w", op, ErrBeyondSearchLimit)
	}
	var res struct {
		Total int    `json:"total"`
		Users []user `json:"users"`
	}
	err := c.get(ctx, c.m.URI("users"), &res,
		management.Query(fmt.Sprintf("created_at:[%s TO %s}", lo, hi)), // also sets search_engine=v3
		management.Sort("created_at:1"),
		management.Page(page),
		management.PerPage(perPage),
		management.IncludeTotals(true),
		management.IncludeFields(userFields...),
	)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", op, err)
	}
	out := make([]events.SignupData, 0, len(res.Users))
	for _, u := range res.Users {
		d, err := u.signupData()
		if err != nil {
			return nil, 0, fmt.Errorf("%s: user %s: %w", op, u.UserID, err)
		}
		out = append(out, d)
	}
	return out, res.Total, nil
}

// formatTime writes t as Auth0 does, rounded up to the millisecond.
func formatTime(t time.Time) string {
	if r := t.Truncate(time.Millisecond); r.Before(t) {
		t = r.Add(time.Millisecond)
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// get performs one GET under the call timeout and classifies its failure.
func (c *Client) get(ctx context.Context, uri string, out any, opts ...management.RequestOption) error {
	return c.call(ctx, func(ctx context.Context) error {
		return c.m.Request(ctx, http.MethodGet, uri, out, opts...)
	})
}

// exchange records the status and headers of a call's last response, which
// go-auth0's errors do not carry.
// Response is the status and header of the last HTTP response to a
// request made with a context from [RecordResponse]: go-auth0's errors
// carry the status but not the header (Retry-After, X-RateLimit-Reset).
type Response struct {
	Status int
	Header http.Header
}

type exchangeKey struct{}

// RecordResponse returns ctx carrying r, which a client from
// [NewManagement] fills with the answer to each request made under it
// (on the caller's goroutine, before the request returns).
func RecordResponse(ctx context.Context, r *Response) context.Context {
	return context.WithValue(ctx, exchangeKey{}, r)
}

// recordingTransport fills the Response found in the request's context.
type recordingTransport struct{ base http.RoundTripper }

func (t recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(r)
	if ex, ok := r.Context().Value(exchangeKey{}).(*Response); ok && res != nil {
		ex.Status, ex.Header = res.StatusCode, res.Header
	}
	return res, err
}

// user is the part of Auth0's user object signupsync reads. It decodes
// through events.Auth0User, the one decoder of Auth0 users: email_verified
// and isSocial may be strings ("true"/"false"), created_at a string or an
// object, identities' user_id a string or a number. Any other type fails the
// response's decoding with a *json.UnmarshalTypeError naming the field,
// which classify turns into [ErrPermanent].
type user events.Auth0User

// signupData maps the user. It fails with [ErrPermanent] for a profile
// without user_id or with an identity user_id that is neither a string nor a
// number.
func (u user) signupData() (events.SignupData, error) {
	if u.UserID == "" {
		return events.SignupData{}, fmt.Errorf("user without user_id: %w", ErrPermanent)
	}
	d := events.SignupData{
		UserID:        u.UserID,
		Email:         u.Email,
		EmailVerified: bool(u.EmailVerified),
		Name:          u.Name,
		GivenName:     u.GivenName,
		FamilyName:    u.FamilyName,
		Nickname:      u.Nickname,
		Picture:       u.Picture,
		CreatedAt:     string(u.CreatedAt),
		Identities:    make([]events.Identity, 0, len(u.Identities)),
		AppMetadata:   object(u.AppMetadata),
		UserMetadata:  object(u.UserMetadata),
	}
	for _, id := range u.Identities {
		uid, err := identityUserID(id.UserID)
		if err != nil {
			return events.SignupData{}, err
		}
		d.Identities = append(d.Identities, events.Identity{
			Provider: id.Provider, Connection: id.Connection, UserID: uid, IsSocial: bool(id.IsSocial),
		})
	}
	if len(d.Identities) == 1 {
		d.Connection = d.Identities[0].Connection
	}
	return d, nil
}

// identityUserID reads a string or, keeping every digit, a number.
func identityUserID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("identity user_id: %w: %w", ErrPermanent, err)
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("identity user_id %s: %w", raw, ErrPermanent)
	}
	return n.String(), nil
}

// object keeps a JSON object and drops null.
func object(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

// ErrPermanent is matched by every failure that retrying cannot fix.
var ErrPermanent = errors.New("permanent auth0 api failure")

// ErrNotFound means the user (or other resource) does not exist: Auth0
// answered 404. It also matches [ErrPermanent].
var ErrNotFound error = permanent("auth0 user not found")

// ErrBeyondSearchLimit means a page reaches past the first [SearchLimit]
// results of a query, which Auth0 refuses. Narrow the window instead. It
// also matches [ErrPermanent].
var ErrBeyondSearchLimit error = permanent("page beyond auth0's search limit of 1000 results")

type permanent string

func (e permanent) Error() string        { return string(e) }
func (e permanent) Is(target error) bool { return target == ErrPermanent }

// TransientError is a failure worth retrying: Status is the HTTP status
// (0 for network failures and timeouts) and RetryAfter the delay Auth0
// asked for (0 when it did not say).
type TransientError struct {
	Status     int
	RetryAfter time.Duration
	Err        error
}

func (e *TransientError) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("transient auth0 api failure: %v", e.Err)
	case e.RetryAfter > 0:
		return fmt.Sprintf("transient auth0 api failure (status %d, retry after %v): %v", e.Status, e.RetryAfter, e.Err)
	}
	return fmt.Sprintf("transient auth0 api failure (status %d): %v", e.Status, e.Err)
}

func (e *TransientError) Unwrap() error { return e.Err }

// IsTransient reports whether err wraps a [*TransientError].
func IsTransient(err error) bool {
	var t *TransientError
	return errors.As(err, &t)
}

// RetryAfter returns the delay a [*TransientError] in err asks for, or 0.
func RetryAfter(err error) time.Duration {
	var t *TransientError
	if errors.As(err, &t) {
		return t.RetryAfter
	}
	return 0
}

// classify turns a go-auth0 failure into ErrNotFound, a *TransientError or
// ErrPermanent.
func classify(err error, ex *Response, now time.Time) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &TransientError{Err: err}
	}
	// The token endpoint refused (client-credentials mode).
	var rErr *oauth2.RetrieveError
	if errors.As(err, &rErr) && rErr.Response != nil {
		return byStatus(rErr.Response.StatusCode, rErr.Response.Header, err, now)
	}
	var mErr management.Error
	if errors.As(err, &mErr) {
		var h http.Header
		if ex.Status == mErr.Status() {
			h = ex.Header
		}
		return byStatus(mErr.Status(), h, err, now)
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syntax) || errors.As(err, &typ) {
		return fmt.Errorf("%w: undecodable response: %w", ErrPermanent, err)
	}
	// Anything else failed on the way: DNS, connection, TLS, a cut body.
	return &TransientError{Err: err}
}

func byStatus(status int, h http.Header, err error, now time.Time) error {
	switch {
	case status == http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout, status >= 500:
		return &TransientError{Status: status, RetryAfter: retryAfter(status, h, now), Err: err}
	}
	return fmt.Errorf("%w: %w", ErrPermanent, err)
}

// retryAfter reads Retry-After (seconds or a date) or, for 429, Auth0's
// X-RateLimit-Reset (Unix seconds), capped at an hour.
func retryAfter(status int, h http.Header, now time.Time) time.Duration {
	var d time.Duration
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(v); err == nil {
			d = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			d = t.Sub(now)
		}
	} else if v := h.Get("X-RateLimit-Reset"); v != "" && status == http.StatusTooManyRequests {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil {
			d = time.Unix(s, 0).Sub(now)
		}
	}
	return max(0, min(d, maxRetryAfter))
}

package tenant

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
)

// Defaults of [Config].
const (
	// DefaultPrefix starts the name of everything the installer owns.
	DefaultPrefix = "signupsync"
	// DefaultTimeout bounds one Management API call.
	DefaultTimeout = 10 * time.Second
	// DefaultBuildTimeout bounds the wait for one Action to build and then
	// to deploy. Auth0 builds take seconds, at times 30 to 45 (as
	// auth0-deploy-cli observed, auth0/auth0-deploy-cli#524).
	DefaultBuildTimeout = 3 * time.Minute
	// Runtime is the Node runtime of the Actions: deploy/auth0/README.md
	// asks for Node 22, Auth0 having deprecated Node 18.
	Runtime = "node22"
)

// Config configures the installer. Start from [DefaultConfig]. The command
// layer fills ActionSecret, EventStreamToken and LogStreamToken from the
// variables ingest reads (SIGNUPSYNC_ACTION_SECRETS,
// SIGNUPSYNC_EVENT_STREAM_TOKEN, SIGNUPSYNC_LOG_STREAM_TOKEN; the first
// entry of each list), so that a re-run keeps what ingest accepts.
type Config struct {
	// Domain is the tenant's domain, "example.eu.auth0.com" (an https://
	// prefix is accepted).
	Domain string
	// ClientID and ClientSecret of a machine-to-machine application
	// authorised for the Management API to read, create, update and delete
	// actions (triggers and their bindings included), event streams and
	// log streams (the read:/create:/update:/delete: scopes of actions,
	// event_streams and log_streams; status and a dry run only read).
	// Exclusive with Token.
	ClientID, ClientSecret string
	// Token is a static Management API access token with those scopes.
	// Exclusive with ClientID and ClientSecret.
	Token string
	// Timeout bounds one Management API call; 0 means [DefaultTimeout].
	Timeout time.Duration

	// IngestURL is the public base URL of ingest, such as
	// https://signupsync.example.com (a path prefix is kept). The Actions
	// get it as SIGNUPSYNC_URL and append /v1/hooks/auth0-action; the
	// streams deliver to its /v1/hooks/auth0-event-stream and
	// /v1/hooks/auth0-log-stream.
	IngestURL string
	// Prefix names what the installer owns: the Actions
	// <Prefix>-post-login and <Prefix>-post-user-registration, the event
	// stream <Prefix>-events and the log stream <Prefix>-logs. A second
	// environment in the same tenant takes another prefix. Lower-case
	// letters, digits and '-', at most 40 characters.
	Prefix string

	// Actions, EventStream and LogStream select the parts to install,
	// report and uninstall; at least one must be set.
	Actions, EventStream, LogStream bool

	// ActionSecret is the Standard Webhooks secret ("whsec_" and the
	// base64 of at least 16 bytes) the Actions sign with; empty generates
	// one (24 random bytes) when none is installed, and is refused
	// ([ErrSecretsNotSupplied]) when one is, unless RewriteSecrets.
	ActionSecret string
	// EventStreamToken is the bearer token Event Streams send; empty
	// generates one (32 random bytes, base64url) as ActionSecret does.
	EventStreamToken string
	// LogStreamToken is the Authorization header value Log Streams send,
	// compared whole by ingest; empty keeps the installed one (Auth0
	// returns it) or generates one (32 random bytes, base64url).
	LogStreamToken string
	// ActionBudget sets the Actions' SIGNUPSYNC_BUDGET_MS, 250 ms to 10 s
	// in whole milliseconds; 0 leaves it unset (the Actions' default, 5 s).
	ActionBudget time.Duration
	// RewriteSecrets writes every secret and token, supplied or generated,
	// even where Auth0 shows no difference: a rotation (Auth0 never returns
	// the Actions' secret or the Event Streams token, so a re-install
	// without them is refused otherwise).
	RewriteSecrets bool
	// BuildTimeout bounds the wait for one Action to build, and again to
	// deploy; 0 means [DefaultBuildTimeout].
	BuildTimeout time.Duration
}

// DefaultConfig returns a configuration installing every part under
// [DefaultPrefix], without credentials, URL or secrets.
func DefaultConfig() Config {
	return Config{
		Prefix: DefaultPrefix, Timeout: DefaultTimeout, BuildTimeout: DefaultBuildTimeout,
		Actions: true, EventStream: true, LogStream: true,
	}
}

var prefixPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

// management is the Management API part of c, checked and built by
// internal/auth0api as every other Management API client of signupsync.
func (c Config) management() auth0api.Config {
	return auth0api.Config{Domain: c.Domain, ClientID: c.ClientID, ClientSecret: c.ClientSecret, Token: c.Token, Timeout: c.Timeout}
}

// Validate reports every problem at once, naming the Config field.
func (c Config) Validate() error {
	var errs []error
	mc := c.management()
	if err := mc.Validate(); err != nil {
		errs = append(errs, err)
	} else if !mc.Enabled() {
		errs = append(errs, errors.New("missing Domain, and Token or ClientID and ClientSecret, for the Management API"))
	}
	if err := checkIngestURL(c.IngestURL); err != nil {
		errs = append(errs, err)
	}
	if !prefixPattern.MatchString(c.Prefix) {
		errs = append(errs, fmt.Errorf("bad Prefix %q: want 1 to 40 lower-case letters, digits and '-', not starting or ending with '-'", c.Prefix))
	}
	if !c.Actions && !c.EventStream && !c.LogStream {
		errs = append(errs, errors.New("none of Actions, EventStream and LogStream is set: nothing to do"))
	}
	if c.ActionSecret != "" {
		if err := checkWebhookSecret(c.ActionSecret); err != nil {
			errs = append(errs, fmt.Errorf("ActionSecret: %w", err))
		}
	}
	for _, t := range []struct{ field, value string }{{"EventStreamToken", c.EventStreamToken}, {"LogStreamToken", c.LogStreamToken}} {
		if t.value != "" && !validToken(t.value) {
			errs = append(errs, fmt.Errorf("%s: want printable ASCII without spaces or commas (ingest reads a comma-separated list)", t.field))
		}
	}
	if c.ActionBudget != 0 && (c.ActionBudget < 250*time.Millisecond || c.ActionBudget > 10*time.Second || c.ActionBudget%time.Millisecond != 0) {
		errs = append(errs, fmt.Errorf("ActionBudget %v: want 0 (the Actions' default) or 250ms to 10s in whole milliseconds", c.ActionBudget))
	}
	if c.Timeout < 0 || c.BuildTimeout < 0 {
		errs = append(errs, errors.New("negative Timeout or BuildTimeout"))
	}
	return errors.Join(errs...)
}

// checkIngestURL accepts an absolute https URL without credentials, query
// or fragment: Event Streams refuse any other scheme (their schema's
// webhook_endpoint pattern is ^https://), and the Actions send only over
// https to a host other than loopback.
func checkIngestURL(raw string) error {
	if raw == "" {
		return errors.New("IngestURL is required: the public base URL of ingest, such as https://signupsync.example.com")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("IngestURL: %w", err)
	case u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("IngestURL %q: want an https URL such as https://signupsync.example.com", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("IngestURL: want no credentials, query or fragment")
	case strings.HasSuffix(strings.TrimRight(u.Path, "/"), events.PathAction):
		return fmt.Errorf("IngestURL: want the base URL, without %s", events.PathAction)
	}
	return nil
}

// checkWebhookSecret is the check both ingest (DecodeWebhookSecret) and the
// Actions (signupsyncDecodeSecret) make, with the whsec_ prefix required.
func checkWebhookSecret(s string) error {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return errors.New(`want "whsec_" followed by base64`)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return errors.New("not base64 after whsec_")
	}
	if len(key) < 16 {
		return fmt.Errorf("key is %d bytes, want at least 16", len(key))
	}
	return nil
}

func validToken(s string) bool {
	for _, r := range s {
		if r <= ' ' || r > '~' || r == ',' {
			return false
		}
	}
	return true
}

// endpoint joins the ingest base URL and a receiver path.
func endpoint(base, path string) string { return strings.TrimRight(base, "/") + path }

// Deps are the installer's collaborators; every one is optional.
type Deps struct {
	// HTTPClient is copied and wrapped, never modified; nil means a client
	// with http.DefaultTransport.
	HTTPClient *http.Client
	// Sleep waits d or until ctx ends, returning ctx's error then. It paces
	// retries after rate limiting and the polling of builds; nil waits on
	// a timer. Tests pass one that returns at once.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock that rate-limit reset times are compared with; nil
	// means time.Now.
	Now func() time.Time
}

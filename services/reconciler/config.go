package reconciler

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/signupsync/signupsync/internal/auth0api"
)

// Defaults of [Config].
const (
	// DefaultSettleLag keeps a sweep away from the last minute: those users
	// are still being reported by the webhooks, and Auth0's search index
	// may not hold them yet.
	DefaultSettleLag = time.Minute
	// DefaultRPS leaves room in Auth0's smallest Management API budget
	// (2 requests per second on free tenants) for the importer's look-ups.
	DefaultRPS      = 2
	DefaultPageSize = auth0api.MaxPerPage
	// DefaultLookback is how far before the checkpoint every sweep starts
	// again: longer than Auth0's search index takes to list a new user
	// (seconds, a few minutes when the tenant is busy), and longer than
	// Auth0's retries of a failing Event Streams delivery take to end in
	// status failed (about a minute).
	DefaultLookback       = 10 * time.Minute
	DefaultMaxAttempts    = 6
	DefaultPublishTimeout = 5 * time.Second
	DefaultConcurrency    = 16
	DefaultTenant         = "default"
)

// Mode is what a [Reconciler] does each round.
type Mode string

// The modes.
const (
	// ModeSweep lists the users created in the window ([Reconciler.Sweep]).
	// It is the zero Mode.
	ModeSweep Mode = ""
	// ModeDeliveries lists the failed Event Streams deliveries of
	// Config.StreamID in the window ([Reconciler.RecoverDeliveries]).
	ModeDeliveries Mode = "deliveries"
)

// streamIDPattern is what an Auth0 event stream id looks like ("est_…");
// it is also part of a state bucket key.
var streamIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Config configures a [Reconciler]. Start from [DefaultConfig].
type Config struct {
	// Mode is a sweep (the default) or the recovery of failed deliveries.
	Mode Mode
	// StreamID is the Auth0 event stream whose failed deliveries
	// ModeDeliveries recovers ("est_…"). Required in that mode only.
	StreamID string
	// Since is where the first round starts (users created, or events
	// sent, at or after it). Once a checkpoint exists, every later round
	// starts at it (less Lookback), however far back it is: a reconcile
	// outage longer than Since leaves no gap. Required.
	Since time.Time
	// Until ends every sweep (exclusive). Zero means the time of the sweep
	// minus SettleLag, so each sweep covers what happened since the last.
	Until time.Time
	// Lookback is how far before the checkpoint each round starts again,
	// for users Auth0's search index listed late and deliveries that
	// failed late; 0 means none. Re-listing is cheap: a user the importer
	// recorded is only a ledger read, one published within the duplicate
	// window is acknowledged as a duplicate, and nothing is imported twice.
	Lookback time.Duration
	// SettleLag is how far behind now a sweep ends when Until is zero.
	SettleLag time.Duration
	// Every is the pause between sweeps in [Reconciler.Run]; 0 means one
	// sweep.
	Every time.Duration
	// RPS caps Management API requests per second; 0 means no cap.
	RPS float64
	// PageSize is users per request, 1 to 100.
	PageSize int
	// MaxAttempts bounds the tries of one request after transient failures.
	MaxAttempts int
	// PublishTimeout bounds the wait for JetStream's acknowledgement.
	PublishTimeout time.Duration
	// Concurrency is how many users of a page are checked and published
	// at once.
	Concurrency int
	// Tenant is recorded in the events.
	Tenant string
	// IgnoreCheckpoint starts the sweep at Since even when a checkpoint
	// lies beyond it (a re-sweep). The checkpoint is still written.
	IgnoreCheckpoint bool
	// DryRun lists and checks the ledger but publishes nothing and writes
	// no checkpoint.
	DryRun bool
}

// DefaultConfig returns every default; Since is left for the caller.
func DefaultConfig() Config {
	return Config{
		SettleLag: DefaultSettleLag, Lookback: DefaultLookback, RPS: DefaultRPS, PageSize: DefaultPageSize,
		MaxAttempts: DefaultMaxAttempts, PublishTimeout: DefaultPublishTimeout, Concurrency: DefaultConcurrency,
		Tenant: DefaultTenant,
	}
}

// Validate reports every problem at once, naming each field as Config
// spells it (the command line tells them as its flags).
func (c Config) Validate() error {
	var errs []error
	if c.Since.IsZero() {
		errs = append(errs, errors.New("reconcile: Since is required: an RFC 3339 time or a duration such as 24h"))
	}
	if !c.Until.IsZero() && !c.Until.After(c.Since) {
		errs = append(errs, errors.New("reconcile: Until must be after Since"))
	}
	if !c.Until.IsZero() && c.Every > 0 {
		errs = append(errs, errors.New("reconcile: Until and Every contradict each other: a fixed end leaves nothing for the next sweep"))
	}
	switch c.Mode {
	case ModeSweep:
		if c.StreamID != "" {
			errs = append(errs, errors.New("reconcile: StreamID is for ModeDeliveries only"))
		}
	case ModeDeliveries:
		if !streamIDPattern.MatchString(c.StreamID) {
			errs = append(errs, fmt.Errorf("reconcile: StreamID %q: want the id of the Auth0 event stream (est_…)", c.StreamID))
		}
	default:
		errs = append(errs, fmt.Errorf("mode %q: want %q or %q", c.Mode, ModeSweep, ModeDeliveries))
	}
	if c.Lookback < 0 {
		errs = append(errs, errors.New("reconcile: Lookback must not be negative"))
	}
	if c.SettleLag < 0 {
		errs = append(errs, errors.New("reconcile: SettleLag must not be negative"))
	}
	if c.Every < 0 || (c.Every > 0 && c.Every < time.Second) {
		errs = append(errs, fmt.Errorf("reconcile: Every %s: want 0 (one sweep) or at least 1s", c.Every))
	}
	if c.RPS < 0 {
		errs = append(errs, errors.New("reconcile: RPS must not be negative"))
	}
	if c.PageSize < 1 || c.PageSize > auth0api.MaxPerPage {
		errs = append(errs, fmt.Errorf("page size %d: want 1 to %d", c.PageSize, auth0api.MaxPerPage))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts %d: must be at least 1", c.MaxAttempts))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency %d: must be at least 1", c.Concurrency))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, errors.New("publish timeout must be positive"))
	}
	if strings.TrimSpace(c.Tenant) == "" || len(c.Tenant) > 256 {
		errs = append(errs, errors.New("reconcile: Tenant must be 1 to 256 characters"))
	}
	return errors.Join(errs...)
}

// ParseTime reads a point in time for --since and --until: an RFC 3339
// time ("2026-11-01T10:00:00Z"), a date ("2026-11-01", midnight UTC), or a
// positive Go duration meaning that long before now ("24h", "90m").
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("empty time")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time, a date (2006-01-02) or a duration before now (24h)", s)
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("%q: the duration must be positive (it counts back from now)", s)
	}
	return now.Add(-d).UTC(), nil
}

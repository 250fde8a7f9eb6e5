// Package importer consumes signup events from JetStream and imports the
// eligible ones (unlinked social accounts) into Firebase Auth, exactly once
// per Auth0 user, behind a circuit breaker. Every message ends in one
// outcome (imported, already_present, skipped, conflict, dead_lettered),
// recorded in the ledger bucket and counted in metrics; permanent failures
// and messages that exhaust MaxDeliver go to the SIGNUPS_DLQ stream before
// the original is terminated.
//
// Ack semantics: a message is acknowledged only after its ledger entry is
// written (and, for dead letters, after SIGNUPS_DLQ acknowledged the copy).
// Transient failures are negatively acknowledged with the delay of
// events.Delivery.Delay; while the breaker is open the importer stops
// fetching, so an outage costs no deliveries.
//
// # Linking to an existing account
//
// With the link email policy a signup whose email belongs to an existing
// Firebase account is attached to that account only when the person is
// proven to own the email: the Auth0 profile read from the Management API
// (whatever the message says, and with or without EnrichAll) has the email
// verified by a provider that hosts that mailbox
// (events.EmailAuthoritative: Google for gmail.com, Apple for its private
// relay), and the Firebase account's email is verified. Anything else is
// outcome conflict with reason email_unproven and the account is left
// untouched. A conflict asks the app to link: once the person has signed in
// to the existing Firebase account, the app has them sign in with the
// provider too and calls linkWithCredential, which proves both accounts are
// theirs. A signup whose user_id is not its primary identity's is
// dead-lettered with reason invalid_identity.
package importer

import (
	"errors"
	"fmt"
	"time"

	"github.com/signupsync/signupsync/events"
)

// EmailPolicy decides what happens when the email of a signup already
// belongs to another Firebase account.
type EmailPolicy string

// Email policies.
const (
	// EmailConflict records outcome conflict for manual resolution.
	EmailConflict EmailPolicy = "conflict"
	// EmailLink attaches the provider to the existing account only when
	// the Auth0 profile read from the Management API proves the email (a
	// verified email from a provider authoritative for its domain) and the
	// account's email is verified; otherwise it records a conflict with
	// reason email_unproven. It needs an Enricher.
	EmailLink EmailPolicy = "link"
	// EmailSkip records outcome skipped with reason email_in_use.
	EmailSkip EmailPolicy = "skip"
)

// Config configures the importer role. Start from [DefaultConfig].
type Config struct {
	Delivery events.Delivery
	// BatchSize is the most users imported in one ImportUsers call (≤ 1000).
	BatchSize int
	// BatchWindow is how long a fetch waits to fill a batch.
	BatchWindow time.Duration
	// Workers is the number of concurrent fetch-and-import loops.
	Workers     int
	UIDPolicy   events.UIDPolicy
	EmailPolicy EmailPolicy
	// FirebaseRPS limits Firebase calls per second; 0 means unlimited.
	FirebaseRPS float64
	// Breaker settings: trip after BreakerFailures consecutive transient
	// failures; stay open BreakerOpenFor before a half-open probe.
	BreakerFailures uint32
	BreakerOpenFor  time.Duration
	// FirebaseTimeout bounds every Firebase call (a probe gets at most
	// BreakerOpenFor, so a hung endpoint cannot stall recovery).
	FirebaseTimeout time.Duration
	// EnrichAll reads every signup from the Management API, not only partial
	// ones (needs an enricher).
	EnrichAll bool
	// FreshAfter is the age beyond which a signup's profile is re-read from
	// the Management API before import (needs an enricher): the age is the
	// time since the event's time, when signupsync learnt the profile. A
	// deletion or a profile change in Auth0 since then must win over the
	// old copy. 0 turns the age rule off; backfill signups and replayed
	// dead letters are re-read whatever their age (see enrich.go).
	FreshAfter time.Duration
	// Concurrency of ledger reads, enrichment and Firebase look-ups within
	// one batch.
	Concurrency int
	// DeferDelay is the shortest redelivery delay of a signup that waits
	// for another attempt's claim (events.ClaimKeys).
	DeferDelay time.Duration
	// AmbiguousWait is how long an import that failed without an answer
	// (timeout, broken connection) may still be applied by Firebase: the
	// user is not looked up or imported again before it passes. It must be
	// shorter than the claim TTL minus AckWait.
	AmbiguousWait time.Duration
	// Lifecycle configures the consumer of Auth0 deletions and profile
	// changes (lifecycle.go).
	Lifecycle LifecycleConfig
}

// DefaultConfig returns defaults suited to production Firebase.
func DefaultConfig() Config {
	return Config{
		Delivery:        events.DefaultDelivery(),
		BatchSize:       1000,
		BatchWindow:     50 * time.Millisecond,
		Workers:         2,
		UIDPolicy:       events.UIDAuth0ID,
		EmailPolicy:     EmailConflict,
		FirebaseRPS:     10,
		BreakerFailures: 3,
		BreakerOpenFor:  5 * time.Second,
		FirebaseTimeout: 30 * time.Second,
		FreshAfter:      time.Hour,
		Concurrency:     16,
		DeferDelay:      500 * time.Millisecond,
		AmbiguousWait:   time.Minute,
		Lifecycle:       DefaultLifecycleConfig(),
	}
}

// Validate reports every problem at once, naming each field as Config
// spells it (the command line tells them as its flags).
func (c Config) Validate() error {
	var errs []error
	if err := c.Delivery.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("importer: Delivery.AckWait, Delivery.MaxDeliver: %w", err))
	}
	if c.BatchSize < 1 || c.BatchSize > 1000 {
		errs = append(errs, fmt.Errorf("importer: BatchSize %d: must be 1 to 1000", c.BatchSize))
	}
	if c.BatchWindow <= 0 {
		errs = append(errs, errors.New("importer: BatchWindow must be positive"))
	}
	if c.BatchWindow >= c.Delivery.AckWait/2 {
		errs = append(errs, errors.New("importer: BatchWindow must be shorter than half of Delivery.AckWait"))
	}
	if c.Workers < 1 || c.Workers > 64 {
		errs = append(errs, fmt.Errorf("importer: Workers %d: must be 1 to 64", c.Workers))
	}
	if !c.UIDPolicy.Valid() {
		errs = append(errs, fmt.Errorf("importer: UIDPolicy %q: want auth0_id or hash", c.UIDPolicy))
	}
	switch c.EmailPolicy {
	case EmailConflict, EmailLink, EmailSkip:
	default:
		errs = append(errs, fmt.Errorf("importer: EmailPolicy %q: want conflict, link or skip", c.EmailPolicy))
	}
	if c.FirebaseRPS < 0 {
		errs = append(errs, errors.New("importer: FirebaseRPS must not be negative"))
	}
	if c.BreakerFailures < 1 {
		errs = append(errs, errors.New("importer: BreakerFailures must be at least 1"))
	}
	if c.BreakerOpenFor <= 0 {
		errs = append(errs, errors.New("importer: BreakerOpenFor must be positive"))
	}
	if c.FirebaseTimeout <= 0 {
		errs = append(errs, errors.New("importer: FirebaseTimeout must be positive"))
	}
	if c.FreshAfter < 0 {
		errs = append(errs, errors.New("importer: FreshAfter must not be negative (0 turns the age rule off)"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("importer: Concurrency must be positive"))
	}
	if c.DeferDelay <= 0 {
		errs = append(errs, errors.New("defer delay must be positive"))
	}
	if c.AmbiguousWait < c.FirebaseTimeout {
		errs = append(errs, errors.New("importer: AmbiguousWait must not be shorter than FirebaseTimeout"))
	}
	if c.Lifecycle.Enabled {
		if err := c.Lifecycle.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

package events

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names of the JetStream resources signupsync owns.
const (
	StreamSignups    = "SIGNUPS"
	StreamDeadLetter = "SIGNUPS_DLQ"
	BucketLedger     = "SIGNUPS_LEDGER"
	BucketState      = "SIGNUPSYNC_STATE"
	ConsumerImporter = "importer"
	// StreamPasswords, StreamPasswordsDLQ and ConsumerPasswords (the
	// password-hash export) are declared in passwords.go.
	// BucketClaims ([ClaimKeys]) is declared with the claim contract.
	// StreamLifecycle and ConsumerLifecycle (deletions and profile
	// changes) are declared in lifecycle.go.
	// StreamAccounts and ConsumerMerged (anonymous account merges) are
	// declared in accounts.go.
)

// Defaults of the topology. See the package documentation for the window.
const (
	DefaultDuplicateWindow = 10 * time.Minute
	DefaultSignupMaxAge    = 30 * 24 * time.Hour
)

// Topology sizes the streams and buckets. The zero value is not useful; start
// from [DefaultTopology].
type Topology struct {
	// Replicas of every stream and bucket (1, or 3 in a cluster).
	Replicas int
	// DuplicateWindow is how long SIGNUPS remembers a Nats-Msg-Id.
	DuplicateWindow time.Duration
	// SignupMaxAge is how long an accepted signup stays in SIGNUPS. It must
	// exceed the longest importer outage you plan to survive.
	SignupMaxAge time.Duration
	// Storage is file storage in production; tests may use memory.
	Storage jetstream.StorageType
	// ClaimTTL is how long an import claim lives (see [ClaimKeys]); it must
	// exceed the importer's AckWait.
	ClaimTTL time.Duration
}

// DefaultTopology is one replica, file storage, a 10-minute duplicate window
// and 30 days of retention.
func DefaultTopology() Topology {
	return Topology{Replicas: 1, DuplicateWindow: DefaultDuplicateWindow, SignupMaxAge: DefaultSignupMaxAge, Storage: jetstream.FileStorage, ClaimTTL: DefaultClaimTTL}
}

// Validate reports an unusable topology.
func (t Topology) Validate() error {
	var errs []error
	if t.Replicas < 1 || t.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d: must be 1 to 5", t.Replicas))
	}
	if t.DuplicateWindow <= 0 {
		errs = append(errs, errors.New("duplicate window must be positive"))
	}
	if t.ClaimTTL < time.Second {
		errs = append(errs, fmt.Errorf("claim ttl %s: must be at least 1s", t.ClaimTTL))
	}
	if t.SignupMaxAge > 0 && t.SignupMaxAge < t.DuplicateWindow {
		errs = append(errs, errors.New("signup max age must not be shorter than the duplicate window"))
	}
	return errors.Join(errs...)
}

// SignupStream is the SIGNUPS stream: every accepted signup, kept under
// limits retention (not work-queue) so it can be inspected and re-read.
func (t Topology) SignupStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamSignups,
		Description: "Accepted Auth0 signups, one message per signup within the duplicate window",
		Subjects:    []string{SubjectAll},
		Retention:   jetstream.LimitsPolicy,
		Storage:     t.Storage,
		Replicas:    t.Replicas,
		Duplicates:  t.DuplicateWindow,
		MaxAge:      t.SignupMaxAge,
		Discard:     jetstream.DiscardOld,
	}
}

// DeadLetterStream is SIGNUPS_DLQ: messages the importer gave up on, kept
// until an operator replays or purges them.
func (t Topology) DeadLetterStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamDeadLetter,
		Description: "Signups the importer could not import, with reason headers",
		Subjects:    []string{DLQSubjectAll},
		Retention:   jetstream.LimitsPolicy,
		Storage:     t.Storage,
		Replicas:    t.Replicas,
		Duplicates:  t.DuplicateWindow,
	}
}

// bucket is a one-revision key-value bucket with t's storage and replicas.
func (t Topology) bucket(name, description string) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: name, Description: description, History: 1, Storage: t.Storage, Replicas: t.Replicas}
}

// LedgerBucket is the key-value bucket of [LedgerEntry] values, one per
// Auth0 user, keyed by [LedgerKey].
func (t Topology) LedgerBucket() jetstream.KeyValueConfig {
	return t.bucket(BucketLedger, "Outcome of every Auth0 user signupsync has seen")
}

// ClaimBucket is SIGNUPS_CLAIMS: the import claims of [ClaimKeys], each
// expiring ClaimTTL after it was written.
func (t Topology) ClaimBucket() jetstream.KeyValueConfig {
	c := t.bucket(BucketClaims, "Import claims on Firebase uids, provider identities and emails")
	c.TTL, c.LimitMarkerTTL = t.ClaimTTL, ClaimMarkerTTL
	return c
}

// StateBucket holds checkpoints (reconcile sweeps, backfills).
func (t Topology) StateBucket() jetstream.KeyValueConfig {
	return t.bucket(BucketState, "signupsync checkpoints")
}

// Ensure creates or updates the streams and buckets of t. It is idempotent
// and safe to call from every role at start-up.
func Ensure(ctx context.Context, js jetstream.JetStream, t Topology) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	for _, cfg := range []jetstream.StreamConfig{t.SignupStream(), t.DeadLetterStream(), t.PasswordStream(), t.PasswordDeadLetterStream(), t.LifecycleStream(), t.AccountsStream()} {
		if st, err := js.Stream(ctx, cfg.Name); err == nil && covers(st.CachedInfo().Config, cfg) {
			continue
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range []jetstream.KeyValueConfig{t.LedgerBucket(), t.StateBucket(), t.ClaimBucket()} {
		if st, err := js.Stream(ctx, "KV_"+cfg.Bucket); err == nil && bucketCovers(st.CachedInfo().Config, cfg) {
			continue
		}
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("ensure bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}

// covers reports whether a stream's config already has every field want
// sets. Ensure updates only streams that differ: every role runs it at
// start, and an update request racing a consumer creation on the same
// stream is a data race inside nats-server 2.15 (fileStore.UpdateConfig vs
// ConsumerStore), seen when several importers start at once.
func covers(have, want jetstream.StreamConfig) bool {
	h, w := reflect.ValueOf(have), reflect.ValueOf(want)
	for i := range w.NumField() {
		if f := w.Field(i); !f.IsZero() && !reflect.DeepEqual(f.Interface(), h.Field(i).Interface()) {
			return false
		}
	}
	return true
}

// bucketCovers is covers for a key-value bucket's stream (KV_<bucket>),
// on the settings the bucket config maps onto it.
func bucketCovers(have jetstream.StreamConfig, want jetstream.KeyValueConfig) bool {
	history := int64(want.History)
	if history == 0 {
		history = 1
	}
	replicas := want.Replicas
	if replicas == 0 {
		replicas = 1
	}
	return have.MaxAge == want.TTL && have.MaxMsgsPerSubject == history && have.Replicas == replicas &&
		have.Storage == want.Storage && have.SubjectDeleteMarkerTTL == want.LimitMarkerTTL &&
		(want.MaxBytes == 0 || have.MaxBytes == want.MaxBytes)
}

// Delivery policy of the importer's durable consumer.
const (
	DefaultAckWait       = 60 * time.Second
	DefaultMaxDeliver    = 10
	DefaultMaxAckPending = 20000
)

var defaultBackOff = []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute}

// DefaultBackOff returns a copy of the redelivery schedule after a transient
// failure: the delay before delivery n+1 is BackOff[min(n-1, len-1)]. The
// importer applies it with NakWithDelay rather than through the consumer's
// BackOff field, because a server-side BackOff replaces AckWait and would
// redeliver a large batch that is still being imported.
func DefaultBackOff() []time.Duration { return append([]time.Duration(nil), defaultBackOff...) }

// Delivery configures the importer's durable pull consumer.
type Delivery struct {
	Durable string
	AckWait time.Duration
	// MaxDeliver is the importer's own limit: a signup that failed
	// transiently on its MaxDeliver-th delivery is dead-lettered. The
	// server-side MaxDeliver of the consumer is unlimited (see
	// [Delivery.ConsumerConfig]).
	MaxDeliver    int
	MaxAckPending int
	BackOff       []time.Duration
}

// DefaultDelivery returns the defaults above.
func DefaultDelivery() Delivery {
	return Delivery{Durable: ConsumerImporter, AckWait: DefaultAckWait, MaxDeliver: DefaultMaxDeliver, MaxAckPending: DefaultMaxAckPending, BackOff: DefaultBackOff()}
}

// Validate reports an unusable delivery policy.
func (d Delivery) Validate() error {
	var errs []error
	if d.Durable == "" {
		errs = append(errs, errors.New("durable name is empty"))
	}
	if d.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("ack wait %s: must be at least 1s", d.AckWait))
	}
	if d.MaxDeliver < 2 {
		errs = append(errs, fmt.Errorf("max deliver %d: must be at least 2", d.MaxDeliver))
	}
	if d.MaxAckPending < 1 {
		errs = append(errs, fmt.Errorf("max ack pending %d: must be positive", d.MaxAckPending))
	}
	if len(d.BackOff) == 0 {
		errs = append(errs, errors.New("backoff schedule is empty"))
	}
	for _, b := range d.BackOff {
		if b <= 0 {
			errs = append(errs, fmt.Errorf("backoff %s: must be positive", b))
		}
	}
	return errors.Join(errs...)
}

// ConsumerConfig is the durable pull consumer the importer replicas share.
//
// Its server-side MaxDeliver is unlimited (-1), on purpose: the server stops
// delivering a message that reached MaxDeliver and records nothing, so a
// signup whose last delivery could not be dead-lettered (the dead-letter
// stream unavailable, the importer killed) would stay in the stream with no
// outcome. The importer enforces d.MaxDeliver itself and dead-letters at
// that delivery; if the dead letter cannot be written it naks, and the
// server delivers again until it can. A consumer someone configured with a
// finite MaxDeliver is caught by the importer's backstop on the server's
// MAX_DELIVERIES advisory.
func (d Delivery) ConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       d.Durable,
		Description:   "signupsync importer",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: d.MaxAckPending,
		FilterSubject: SubjectAll,
	}
}

// Delay returns how long to wait before redelivering a message that failed
// transiently on its numDelivered-th delivery.
func (d Delivery) Delay(numDelivered uint64) time.Duration {
	if len(d.BackOff) == 0 {
		return time.Second
	}
	i := int(numDelivered) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(d.BackOff) {
		i = len(d.BackOff) - 1
	}
	return d.BackOff[i]
}

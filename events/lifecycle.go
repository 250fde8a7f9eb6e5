package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Lifecycle events: what happened to an Auth0 user after the signup. Until
// cutover the importer makes Firebase follow Auth0 for the accounts
// signupsync created: a deletion deletes the Firebase account, a profile
// change (email, verification, name, picture) is re-read from the
// Management API and applied. See the package documentation for why they
// have a stream of their own.

// LifecycleKind is what happened to the user.
type LifecycleKind string

// The lifecycle kinds.
const (
	LifecycleDeleted LifecycleKind = "deleted"
	LifecycleUpdated LifecycleKind = "updated"
)

// Valid reports whether k is a known kind.
func (k LifecycleKind) Valid() bool { return k == LifecycleDeleted || k == LifecycleUpdated }

// Names of the lifecycle resources.
const (
	StreamLifecycle   = "SIGNUPS_LIFECYCLE"
	ConsumerLifecycle = "lifecycle"
)

// Lifecycle subjects: users.v1.<kind>.<source>, outside signups.v1.> so the
// importer's signup consumer never sees them.
const (
	LifecycleSubjectPrefix = "users.v1"
	LifecycleSubjectAll    = LifecycleSubjectPrefix + ".>"
)

// LifecycleSubject is the subject a lifecycle event of kind from src is
// published on.
func LifecycleSubject(kind LifecycleKind, src Source) string {
	return LifecycleSubjectPrefix + "." + string(kind) + "." + string(src)
}

// TypeLifecycleV1 is the CloudEvents type of the version 1 lifecycle event.
const TypeLifecycleV1 = "dev.signupsync.user.lifecycle.v1"

// LifecycleData is the data of a lifecycle event. It carries no profile
// field: the importer never trusts a webhook body for an email or its
// verification and re-reads the profile from the Management API, and a
// stream of deletions holds no personal data beyond the user id.
type LifecycleData struct {
	Tenant string        `json:"tenant"`
	Kind   LifecycleKind `json:"kind"`
	UserID string        `json:"user_id"`
	// At orders the events of one user: Auth0's updated_at of the state an
	// update describes; for a deletion, Auth0's deleted_at, else the event
	// time, else the log entry's date. A consumer never applies an event
	// older than the last one it applied.
	At time.Time `json:"at"`
	// Trigger says what reported it: the Event Streams type or
	// "log:<type code>".
	Trigger string `json:"trigger,omitempty"`
}

// Lifecycle is the version 1 lifecycle event: a CloudEvents 1.0
// structured-mode JSON envelope whose subject is the Auth0 user_id
// (schemas/user-lifecycle-event.v1.json).
type Lifecycle struct {
	SpecVersion     string        `json:"specversion"`
	ID              string        `json:"id"`
	Source          string        `json:"source"`
	Type            string        `json:"type"`
	Time            time.Time     `json:"time"`
	Subject         string        `json:"subject"`
	DataContentType string        `json:"datacontenttype"`
	Data            LifecycleData `json:"data"`
}

// LifecycleEventID is the event id and Nats-Msg-Id of a lifecycle event:
// "lc_" and 32 hex digits of the SHA-256 of the user id, the kind and, for
// an update, At. A user is deleted once, so every source reporting the
// deletion (Event Streams and Log Streams, with different times) and every
// retry is one message within the duplicate window; each distinct
// updated_at of a user is its own update.
func LifecycleEventID(d LifecycleData) string {
	key := d.UserID + "\x00" + string(d.Kind)
	if d.Kind == LifecycleUpdated {
		key += "\x00" + d.At.UTC().Format(time.RFC3339Nano)
	}
	sum := sha256.Sum256([]byte(key))
	return "lc_" + hex.EncodeToString(sum[:16])
}

// ErrMalformedLifecycle is wrapped by [DecodeLifecycle] and [NewLifecycleMsg]
// for an event that is not a valid version 1 lifecycle event. It is
// permanent.
var ErrMalformedLifecycle = errors.New("malformed lifecycle event")

func (d LifecycleData) check() error {
	switch {
	case !d.Kind.Valid():
		return fmt.Errorf("%w: kind %q", ErrMalformedLifecycle, d.Kind)
	case !strings.Contains(d.UserID, "|") || len(d.UserID) < 3 || len(d.UserID) > 256:
		return fmt.Errorf("%w: user_id is not provider|id", ErrMalformedLifecycle)
	case d.At.IsZero():
		return fmt.Errorf("%w: no time", ErrMalformedLifecycle)
	}
	return nil
}

// NewLifecycle wraps d in a version 1 envelope learnt from src at t.
func NewLifecycle(src Source, d LifecycleData, t time.Time) Lifecycle {
	d.At = d.At.UTC()
	return Lifecycle{
		SpecVersion: SpecVersion, ID: LifecycleEventID(d), Source: sourcePrefix + string(src),
		Type: TypeLifecycleV1, Time: t.UTC(), Subject: d.UserID, DataContentType: DataContentType, Data: d,
	}
}

// EventSource returns the [Source] named by the envelope, or "".
func (l Lifecycle) EventSource() Source {
	return Signup{Source: l.Source}.EventSource()
}

// NewLifecycleMsg builds the NATS message of a lifecycle event learnt from
// src at t: the encoded event on LifecycleSubject, with Nats-Msg-Id set to
// the event id and the source and user id headers. Callers add the trace
// context and publish with jetstream.WithExpectStream(StreamLifecycle). It
// refuses incomplete data with [ErrMalformedLifecycle].
func NewLifecycleMsg(src Source, d LifecycleData, t time.Time) (*nats.Msg, Lifecycle, error) {
	if err := d.check(); err != nil {
		return nil, Lifecycle{}, err
	}
	ev := NewLifecycle(src, d, t)
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, Lifecycle{}, fmt.Errorf("encode lifecycle %s: %w", ev.ID, err)
	}
	msg := &nats.Msg{Subject: LifecycleSubject(d.Kind, src), Data: b, Header: nats.Header{}}
	msg.Header.Set(HeaderMsgID, ev.ID)
	msg.Header.Set(HeaderSource, string(src))
	msg.Header.Set(HeaderUserID, d.UserID)
	return msg, ev, nil
}

// DecodeLifecycle unmarshals and checks a version 1 lifecycle event. Errors
// wrap [ErrMalformedLifecycle].
func DecodeLifecycle(b []byte) (Lifecycle, error) {
	var l Lifecycle
	if err := json.Unmarshal(b, &l); err != nil {
		return Lifecycle{}, fmt.Errorf("%w: %w", ErrMalformedLifecycle, err)
	}
	switch {
	case l.SpecVersion != SpecVersion:
		return Lifecycle{}, fmt.Errorf("%w: specversion %q", ErrMalformedLifecycle, l.SpecVersion)
	case l.Type != TypeLifecycleV1:
		return Lifecycle{}, fmt.Errorf("%w: type %q", ErrMalformedLifecycle, l.Type)
	case l.Subject != l.Data.UserID:
		return Lifecycle{}, fmt.Errorf("%w: subject does not match data.user_id", ErrMalformedLifecycle)
	case l.EventSource() == "":
		return Lifecycle{}, fmt.Errorf("%w: source %q", ErrMalformedLifecycle, l.Source)
	}
	if err := l.Data.check(); err != nil {
		return Lifecycle{}, err
	}
	if l.ID != LifecycleEventID(l.Data) {
		return Lifecycle{}, fmt.Errorf("%w: id does not match its data", ErrMalformedLifecycle)
	}
	return l, nil
}

// EventStreamLifecycle normalises an Event Streams user.updated or
// user.deleted event (decoded from JSON, valid against
// schemas.Auth0EventStream). ok is false for any other type. At is the
// object's updated_at (an update) or deleted_at (a deletion), else the
// event's time; a zero At means the event carries no usable time.
func EventStreamLifecycle(ev map[string]any, defaultTenant string) (LifecycleData, bool) {
	var kind LifecycleKind
	var atField string
	switch evString(ev, "type") {
	case EventStreamUserUpdated:
		kind, atField = LifecycleUpdated, "updated_at"
	case EventStreamUserDeleted:
		kind, atField = LifecycleDeleted, "deleted_at"
	default:
		return LifecycleData{}, false
	}
	tenant := evString(ev, "a0tenant")
	if tenant == "" {
		tenant = defaultTenant
	}
	obj := evObject(evObject(ev, "data"), "object")
	d := LifecycleData{Tenant: tenant, Kind: kind, UserID: evString(obj, "user_id"), Trigger: evString(ev, "type")}
	d.At = parseLifecycleTime(obj[atField])
	if d.At.IsZero() && kind == LifecycleDeleted {
		d.At = parseLifecycleTime(obj["updated_at"])
	}
	if d.At.IsZero() {
		d.At = parseLifecycleTime(ev["time"])
	}
	return d, true
}

// Event Streams types that are lifecycle events.
const (
	EventStreamUserUpdated = "user.updated"
	EventStreamUserDeleted = "user.deleted"
)

// LogDeletionTypes are the Auth0 log event type codes of a user deletion:
// sdu (Successful User Deletion) and du (Deleted User, the older code).
func LogDeletionTypes() []string { return []string{"sdu", "du"} }

// IsLogDeletion reports whether typ is one of [LogDeletionTypes].
func IsLogDeletion(typ string) bool { return typ == "sdu" || typ == "du" }

// LogLifecycle normalises the data object of a Log Streams user deletion
// entry: its user_id, tenant_name and date.
func LogLifecycle(data map[string]any, defaultTenant string) LifecycleData {
	tenant := evString(data, "tenant_name")
	if tenant == "" {
		tenant = defaultTenant
	}
	return LifecycleData{Tenant: tenant, Kind: LifecycleDeleted, UserID: evString(data, "user_id"),
		At: parseLifecycleTime(data["date"]), Trigger: "log:" + evString(data, "type")}
}

// parseLifecycleTime reads an Auth0 time (a string, or an object with
// $date, see [ParseAuth0Time]); zero when absent or unparsable.
func parseLifecycleTime(v any) time.Time {
	s, _ := ParseAuth0Time(v)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// LifecycleStream is SIGNUPS_LIFECYCLE: every accepted lifecycle event,
// limits retention, the signup stream's duplicate window and age.
func (t Topology) LifecycleStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamLifecycle,
		Description: "Auth0 user deletions and profile changes, applied to the accounts signupsync created",
		Subjects:    []string{LifecycleSubjectAll},
		Retention:   jetstream.LimitsPolicy,
		Storage:     t.Storage,
		Replicas:    t.Replicas,
		Duplicates:  t.DuplicateWindow,
		MaxAge:      t.SignupMaxAge,
		Discard:     jetstream.DiscardOld,
	}
}

// LifecycleConsumerConfig is the durable pull consumer of lifecycle events
// the importer replicas share: d's AckWait and MaxAckPending, the server's
// MaxDeliver unlimited for the reason [Delivery.ConsumerConfig] gives.
func (d Delivery) LifecycleConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerLifecycle,
		Description:   "signupsync importer: Auth0 deletions and profile changes",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: d.MaxAckPending,
		FilterSubject: LifecycleSubjectAll,
	}
}

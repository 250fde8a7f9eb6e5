package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Account merges: a guest who used the new app under a Firebase anonymous
// account, then signs in with the session bridge, has made progress the
// app keeps under the anonymous uid. Firebase's answer when linking fails
// with credential-already-in-use is to sign in to the existing account and
// merge the data on a trusted server that verified both ID tokens. The
// exchange is that server for the identities: it verifies the guest's ID
// token next to the Auth0 token and publishes an [AccountMerge] request;
// the app's own worker moves the data (it is the app's) in one transaction
// and answers with an [AccountMerged] acknowledgement.
//
// # Stream and subjects
//
// Both travel in the stream [StreamAccounts], subjects accounts.v1.>, apart
// from everything signups: nothing here is a signup and the app's worker
// gets permissions on this stream alone. A request is published on
// accounts.v1.merge.<anonymous key> ([MergeSubject]), an acknowledgement on
// accounts.v1.merged.<anonymous key> ([MergedSubject]); the anonymous key
// ([AnonymousKey]) is a hash of the anonymous uid, because a Firebase uid
// may hold bytes a subject token may not.
//
// # One request per guest
//
// The request is itself the record keyed by the anonymous uid: it is
// published with Nats-Expected-Last-Subject-Sequence 0, so JetStream
// stores it only if its subject holds no message yet (create-if-absent,
// atomically with the publish, in any replica of the exchange). A retry
// of the same pair finds the request in place (the exchange reads the
// subject's last message and answers 200 without a second request; within
// the duplicate window the Nats-Msg-Id, [MergeID] of the pair, makes it a
// duplicate before that); a second permanent account for the same guest
// finds another pair there and is refused (409 anonymous_already_merged).
// A separate key-value bucket would need a second write, with a window
// between the record and the request in which a crash leaves one without
// the other; the stream makes them one write.
//
// For the record to hold, the stream keeps the requests: no MaxAge
// ([Topology.AccountsStream]), one message per subject. A guest's
// anonymous account, and so its ID tokens, can live indefinitely, and the
// guard must outlive it. The stream grows by one request and at most one
// acknowledgement per merged guest (under a kilobyte each).

// Names of the account merge resources.
const (
	StreamAccounts = "ACCOUNTS"
	// ConsumerMerged is the exchange's durable consumer of
	// acknowledgements (with --delete-merged-anonymous only).
	ConsumerMerged = "exchange_merged"
)

// Account merge subjects.
const (
	AccountsSubjectPrefix = "accounts.v1"
	AccountsSubjectAll    = AccountsSubjectPrefix + ".>"
	MergeSubjectPrefix    = AccountsSubjectPrefix + ".merge"
	MergeSubjectAll       = MergeSubjectPrefix + ".>"
	MergedSubjectPrefix   = AccountsSubjectPrefix + ".merged"
	MergedSubjectAll      = MergedSubjectPrefix + ".>"
)

// CloudEvents types of the version 1 merge request and acknowledgement
// (schemas/account-merge.v1.json).
const (
	TypeAccountMergeV1  = "dev.signupsync.account.merge.v1"
	TypeAccountMergedV1 = "dev.signupsync.account.merged.v1"
)

// SourceExchange is the CloudEvents source of the requests.
const SourceExchange = sourcePrefix + "exchange"

// HeaderAnonymousUID and HeaderPermanentUID carry the pair on merge
// messages, so a worker can route or log without decoding the body.
const (
	HeaderAnonymousUID = "Signupsync-Anonymous-Uid"
	HeaderPermanentUID = "Signupsync-Permanent-Uid"
)

// AnonymousKey is the subject token of an anonymous uid: 32 hex digits of
// its SHA-256.
func AnonymousKey(anonymousUID string) string {
	sum := sha256.Sum256([]byte(anonymousUID))
	return hex.EncodeToString(sum[:16])
}

// MergeSubject is the subject of the merge request of an anonymous uid.
func MergeSubject(anonymousUID string) string {
	return MergeSubjectPrefix + "." + AnonymousKey(anonymousUID)
}

// MergedSubject is the subject of the acknowledgement for an anonymous uid.
func MergedSubject(anonymousUID string) string {
	return MergedSubjectPrefix + "." + AnonymousKey(anonymousUID)
}

func pairHash(anonymousUID, permanentUID string) string {
	sum := sha256.Sum256([]byte(anonymousUID + "\x00" + permanentUID))
	return hex.EncodeToString(sum[:16])
}

// MergeID is the event id and Nats-Msg-Id of the merge request of a pair:
// "mg_" and 32 hex digits of the SHA-256 of the anonymous and the
// permanent uid. It is also the key a worker makes its merge idempotent by.
func MergeID(anonymousUID, permanentUID string) string {
	return "mg_" + pairHash(anonymousUID, permanentUID)
}

// MergedID is the event id and Nats-Msg-Id of the acknowledgement of a
// pair: "md_" and the same digits as [MergeID].
func MergedID(anonymousUID, permanentUID string) string {
	return "md_" + pairHash(anonymousUID, permanentUID)
}

// AccountMergeData is the data of a merge request or acknowledgement. It
// holds uids, the Auth0 subject and a time: no email, no token.
type AccountMergeData struct {
	// AnonymousUID is the guest's Firebase uid (the data's source).
	AnonymousUID string `json:"anonymous_uid"`
	// PermanentUID is the migrated account's Firebase uid (the target).
	PermanentUID string `json:"permanent_uid"`
	// Auth0UserID is the Auth0 subject of the exchange (requests only).
	Auth0UserID string `json:"auth0_user_id,omitempty"`
	// At is when the exchange asked (request) or the worker committed the
	// merge (acknowledgement).
	At time.Time `json:"at"`
}

// AccountMerge is a version 1 merge request or acknowledgement: a
// CloudEvents 1.0 structured JSON envelope whose subject is the anonymous
// uid.
type AccountMerge struct {
	SpecVersion     string           `json:"specversion"`
	ID              string           `json:"id"`
	Source          string           `json:"source"`
	Type            string           `json:"type"`
	Time            time.Time        `json:"time"`
	Subject         string           `json:"subject"`
	DataContentType string           `json:"datacontenttype"`
	Data            AccountMergeData `json:"data"`
}

// AccountMerged is the acknowledgement: the same envelope with
// [TypeAccountMergedV1].
type AccountMerged = AccountMerge

// ErrMalformedMerge is wrapped by the constructors and decoders for a merge
// message that is not valid. It is permanent.
var ErrMalformedMerge = errors.New("malformed account merge")

func (d AccountMergeData) check(request bool) error {
	switch {
	case d.AnonymousUID == "" || len(d.AnonymousUID) > 128:
		return fmt.Errorf("%w: anonymous_uid", ErrMalformedMerge)
	case d.PermanentUID == "" || len(d.PermanentUID) > 128:
		return fmt.Errorf("%w: permanent_uid", ErrMalformedMerge)
	case d.AnonymousUID == d.PermanentUID:
		return fmt.Errorf("%w: anonymous and permanent uid are the same", ErrMalformedMerge)
	case request && (d.Auth0UserID == "" || len(d.Auth0UserID) > 256):
		return fmt.Errorf("%w: auth0_user_id", ErrMalformedMerge)
	case d.At.IsZero():
		return fmt.Errorf("%w: no time", ErrMalformedMerge)
	}
	return nil
}

// NewAccountMerge is the merge request of d at t.
func NewAccountMerge(d AccountMergeData, t time.Time) AccountMerge {
	d.At = d.At.UTC()
	return AccountMerge{
		SpecVersion: SpecVersion, ID: MergeID(d.AnonymousUID, d.PermanentUID), Source: SourceExchange,
		Type: TypeAccountMergeV1, Time: t.UTC(), Subject: d.AnonymousUID, DataContentType: DataContentType, Data: d,
	}
}

// NewAccountMerged is the acknowledgement of d at t, from source (the
// app's worker, e.g. "app/merge-worker").
func NewAccountMerged(source string, d AccountMergeData, t time.Time) AccountMerged {
	d.At = d.At.UTC()
	return AccountMerged{
		SpecVersion: SpecVersion, ID: MergedID(d.AnonymousUID, d.PermanentUID), Source: source,
		Type: TypeAccountMergedV1, Time: t.UTC(), Subject: d.AnonymousUID, DataContentType: DataContentType, Data: d,
	}
}

// NewAccountMergeMsg builds the NATS message of the merge request of d at
// t: on [MergeSubject], Nats-Msg-Id [MergeID], the pair's headers and
// Nats-Expected-Last-Subject-Sequence 0, so JetStream stores it only as the
// first message of its subject (see the section on one request per
// guest). Callers add the trace context and publish with
// jetstream.WithExpectStream(StreamAccounts). It refuses incomplete data
// with [ErrMalformedMerge].
func NewAccountMergeMsg(d AccountMergeData, t time.Time) (*nats.Msg, AccountMerge, error) {
	if err := d.check(true); err != nil {
		return nil, AccountMerge{}, err
	}
	ev := NewAccountMerge(d, t)
	msg, err := mergeMsg(MergeSubject(d.AnonymousUID), ev)
	if err != nil {
		return nil, AccountMerge{}, err
	}
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	return msg, ev, nil
}

// NewAccountMergedMsg builds the acknowledgement message an app's worker
// publishes once its merge of d committed: on [MergedSubject], Nats-Msg-Id
// [MergedID].
func NewAccountMergedMsg(source string, d AccountMergeData, t time.Time) (*nats.Msg, AccountMerged, error) {
	if err := d.check(false); err != nil {
		return nil, AccountMerged{}, err
	}
	ev := NewAccountMerged(source, d, t)
	msg, err := mergeMsg(MergedSubject(d.AnonymousUID), ev)
	return msg, ev, err
}

func mergeMsg(subject string, ev AccountMerge) (*nats.Msg, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode account merge %s: %w", ev.ID, err)
	}
	msg := &nats.Msg{Subject: subject, Data: b, Header: nats.Header{}}
	msg.Header.Set(HeaderMsgID, ev.ID)
	msg.Header.Set(HeaderAnonymousUID, ev.Data.AnonymousUID)
	msg.Header.Set(HeaderPermanentUID, ev.Data.PermanentUID)
	return msg, nil
}

// DecodeAccountMerge unmarshals and checks a version 1 merge request.
// Errors wrap [ErrMalformedMerge].
func DecodeAccountMerge(b []byte) (AccountMerge, error) {
	return decodeMerge(b, TypeAccountMergeV1)
}

// DecodeAccountMerged unmarshals and checks a version 1 acknowledgement.
// Errors wrap [ErrMalformedMerge].
func DecodeAccountMerged(b []byte) (AccountMerged, error) {
	return decodeMerge(b, TypeAccountMergedV1)
}

func decodeMerge(b []byte, typ string) (AccountMerge, error) {
	var m AccountMerge
	if err := json.Unmarshal(b, &m); err != nil {
		return AccountMerge{}, fmt.Errorf("%w: %w", ErrMalformedMerge, err)
	}
	switch {
	case m.SpecVersion != SpecVersion:
		return AccountMerge{}, fmt.Errorf("%w: specversion %q", ErrMalformedMerge, m.SpecVersion)
	case m.Type != typ:
		return AccountMerge{}, fmt.Errorf("%w: type %q", ErrMalformedMerge, m.Type)
	case m.Subject != m.Data.AnonymousUID:
		return AccountMerge{}, fmt.Errorf("%w: subject does not match data.anonymous_uid", ErrMalformedMerge)
	}
	if err := m.Data.check(typ == TypeAccountMergeV1); err != nil {
		return AccountMerge{}, err
	}
	want := MergeID(m.Data.AnonymousUID, m.Data.PermanentUID)
	if typ == TypeAccountMergedV1 {
		want = MergedID(m.Data.AnonymousUID, m.Data.PermanentUID)
	}
	if m.ID != want {
		return AccountMerge{}, fmt.Errorf("%w: id does not match its data", ErrMalformedMerge)
	}
	return m, nil
}

// AccountsStream is ACCOUNTS: merge requests and acknowledgements, limits
// retention without MaxAge and one message per subject, because each
// request is the record that keeps a guest to one permanent account (see
// the section on one request per guest above). Direct get lets the
// exchange read a subject's request from any replica.
func (t Topology) AccountsStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              StreamAccounts,
		Description:       "Requests to merge a Firebase anonymous account into a migrated account, and the app's acknowledgements",
		Subjects:          []string{AccountsSubjectAll},
		Retention:         jetstream.LimitsPolicy,
		Storage:           t.Storage,
		Replicas:          t.Replicas,
		Duplicates:        t.DuplicateWindow,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true,
	}
}

// Delivery of the exchange's acknowledgement consumer.
const (
	DefaultMergedAckWait = 30 * time.Second
	DefaultMergedPending = 100
)

// MergedConsumerConfig is the exchange's durable pull consumer of
// acknowledgements (accounts.v1.merged.>), shared by its replicas. The
// exchange acks after it deleted the anonymous account (or found it gone or
// no longer anonymous), naks a transient failure with a delay from
// [DefaultBackOff] and terms a malformed acknowledgement or one for a pair
// it never requested. Server-side MaxDeliver is unlimited for the reason
// [Delivery.ConsumerConfig] gives.
func MergedConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerMerged,
		Description:   "signupsync exchange: delete merged anonymous accounts",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       DefaultMergedAckWait,
		MaxDeliver:    -1,
		MaxAckPending: DefaultMergedPending,
		FilterSubject: MergedSubjectAll,
	}
}

// MergeRecord is one merge request in the permanent user's
// [LedgerEntry].Merges: uids, ids and times only.
type MergeRecord struct {
	AnonymousUID string    `json:"anonymous_uid"`
	RequestID    string    `json:"request_id"`
	RequestedAt  time.Time `json:"requested_at"`
	// MergedAt is the time of the app's acknowledgement, as the exchange
	// consumed it (with --delete-merged-anonymous only).
	MergedAt time.Time `json:"merged_at,omitzero"`
	// AnonymousDeletedAt is when the exchange deleted the anonymous
	// account after the acknowledgement; zero when it was kept.
	AnonymousDeletedAt time.Time `json:"anonymous_deleted_at,omitzero"`
	// Kept says why the anonymous account was not deleted (it is no longer
	// anonymous, or was already gone).
	Kept string `json:"kept,omitempty"`
}

// Merge returns the record of anonymousUID in e, or nil.
func (e *LedgerEntry) Merge(anonymousUID string) *MergeRecord {
	for i := range e.Merges {
		if e.Merges[i].AnonymousUID == anonymousUID {
			return &e.Merges[i]
		}
	}
	return nil
}

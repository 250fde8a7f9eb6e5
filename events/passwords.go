package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Password-hash export: database-connection users (skipped by the signup
// pipeline with [ReasonDatabaseConnection]) keep their passwords when Auth0
// support's bcrypt export is imported. `signupsync passwords` reads the
// export, joins each line to its Auth0 user and publishes one
// [PasswordImport] per user on [PasswordSubject] into the PASSWORDS stream;
// the importer consumes it with its own durable consumer
// ([ConsumerPasswords]) through the same ledger, claims, look-ups and
// import as a signup, adding the hash and the BCRYPT hash configuration to
// the ImportUsers call. The outcome is imported with [ReasonPasswordHash].
//
// # Why a stream of its own
//
// A password hash is a secret. SIGNUPS keeps signups for 30 days and every
// role that reads it (the backstop, operators listing messages) would see
// the hashes; SIGNUPS_DLQ keeps dead letters until an operator acts.
// PASSWORDS keeps a message [DefaultPasswordMaxAge] (72 hours: a weekend's
// importer outage, after which the operator runs the command again), is
// readable only by the importer and writable only by the command's user,
// and bounds messages at [PasswordMaxMsgSize]. Its duplicate window is the
// signup window: a rerun of the same file within it is stored once, and
// past it the ledger makes the copy already_present.
//
// # Dead letters carry no hash
//
// A password message the importer gives up on goes to PASSWORDS_DLQ
// ([PasswordDLQSubject], the same 72-hour retention) with the usual reason
// headers and a body of the user id only ([PasswordDeadLetter]): the hash
// is dropped. The ledger records dead_lettered with the reason, so running
// the command again on the same export (with --restart) imports the user
// once the cause is fixed. Hashes are never logged, put in span attributes
// or in headers.
//
// # Existing accounts are never replaced
//
// Production ImportUsers replaces an existing uid whole, so a user whose
// uid already has a Firebase account is never imported: it is
// already_present with [ReasonPasswordSet] when the account is the one
// signupsync made for this user (its auth0_user_id claim) and already has a
// password (the lazy migration on login did it), otherwise conflict with
// [ReasonAccountExists]. An email held by another account is conflict with
// [ReasonEmailInUse] (skipped under the skip email policy); password users
// are never linked.
const (
	StreamPasswords    = "PASSWORDS"
	StreamPasswordsDLQ = "PASSWORDS_DLQ"
	ConsumerPasswords  = "importer_passwords"

	PasswordSubjectPrefix    = "passwords.v1"
	PasswordSubjectAll       = PasswordSubjectPrefix + ".>"
	PasswordSubject          = PasswordSubjectPrefix + ".hash_export"
	PasswordDLQSubjectPrefix = "dlq." + PasswordSubjectPrefix
	PasswordDLQSubjectAll    = PasswordDLQSubjectPrefix + ".>"
	PasswordDLQSubject       = PasswordDLQSubjectPrefix + ".hash_export"

	// DefaultPasswordMaxAge is the retention of PASSWORDS and PASSWORDS_DLQ.
	DefaultPasswordMaxAge = 72 * time.Hour
	// PasswordMaxMsgSize bounds one message: a profile of the fields the
	// importer reads and a 60-byte hash fit many times over.
	PasswordMaxMsgSize = 64 << 10
)

// SourceHashExport is the ledger source of a user learnt from the
// password-hash export. It is not a signup [Source] (no signup event
// carries it).
const SourceHashExport Source = "hash_export"

// Reasons of the password path.
const (
	// ReasonPasswordHash: imported with the bcrypt hash of the export.
	ReasonPasswordHash = "password_hash"
	// ReasonAccountExists: the uid already has a Firebase account that is
	// not signupsync's account of this user with a password; it is never
	// imported over.
	ReasonAccountExists = "account_exists"
	// ReasonPasswordSet: signupsync's account of this user already has a
	// password.
	ReasonPasswordSet = "password_set"
	// ReasonNoEmail: a database user without an email cannot sign in to
	// Firebase with a password.
	ReasonNoEmail = "no_email"
	// ReasonNotDatabaseUser: the joined Auth0 user is eligible for the
	// signup pipeline (a social user), not for the password path.
	ReasonNotDatabaseUser = "not_database_user"
)

// PasswordImport is the body of a message on [PasswordSubject]: the Auth0
// user joined to its line of the hash export. PasswordHash is a secret.
type PasswordImport struct {
	// Version is 1.
	Version int `json:"v"`
	// User is the Auth0 profile; Partial when it was built from the hash
	// line alone (the importer then reads it from the Management API when it
	// has one).
	User         SignupData `json:"user"`
	PasswordHash string     `json:"password_hash"`
	// PasswordSetAt is the export's password_set_date, when present.
	PasswordSetAt time.Time `json:"password_set_at,omitzero"`
	// Joined names where the profile came from: users_file, ledger, or
	// auth0 (nobody here knew the user; the importer reads it from the
	// Management API, as for every partial signup).
	Joined string `json:"joined,omitempty"`
}

// ErrMalformedPassword is wrapped by [DecodePasswordImport].
var ErrMalformedPassword = errors.New("malformed password import")

// ValidBcrypt reports whether h has the shape of a bcrypt hash as Auth0
// exports it: $2a$, $2b$ (or $2y$), a two-digit cost from 04 to 31, and 53
// characters of bcrypt's base64.
func ValidBcrypt(h string) bool {
	if len(h) != 60 || h[0] != '$' || h[3] != '$' || h[6] != '$' {
		return false
	}
	switch h[1:3] {
	case "2a", "2b", "2y":
	default:
		return false
	}
	if h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9' {
		return false
	}
	if c := int(h[4]-'0')*10 + int(h[5]-'0'); c < 4 || c > 31 {
		return false
	}
	for i := 7; i < 60; i++ {
		c := h[i]
		if !(c == '.' || c == '/' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// PasswordMsgID is the Nats-Msg-Id of a user's password message: derived
// from the user id alone ("pw_" and the digits of [EventID]), never from
// the hash.
func PasswordMsgID(auth0UserID string) string {
	return "pw_" + strings.TrimPrefix(EventID(auth0UserID), "su_")
}

// NewPasswordMsg builds the message of p: the JSON body on
// [PasswordSubject] with Nats-Msg-Id [PasswordMsgID] and the user id header.
// Publish it with jetstream.WithExpectStream(StreamPasswords). It refuses a
// p without a user id or with a hash that is not bcrypt.
func NewPasswordMsg(p PasswordImport) (*nats.Msg, error) {
	p.Version = 1
	if err := p.check(); err != nil {
		return nil, err
	}
	if p.User.Identities == nil {
		p.User.Identities = []Identity{}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode password import %s: %w", p.User.UserID, err)
	}
	m := &nats.Msg{Subject: PasswordSubject, Data: b, Header: nats.Header{}}
	m.Header.Set(HeaderMsgID, PasswordMsgID(p.User.UserID))
	m.Header.Set(HeaderUserID, p.User.UserID)
	return m, nil
}

func (p PasswordImport) check() error {
	switch {
	case p.Version != 1:
		return fmt.Errorf("%w: version %d", ErrMalformedPassword, p.Version)
	case p.User.UserID == "":
		return fmt.Errorf("%w: no user_id", ErrMalformedPassword)
	case !ValidBcrypt(p.PasswordHash):
		// Never echo the value: it is a secret.
		return fmt.Errorf("%w: password_hash is not a bcrypt hash", ErrMalformedPassword)
	}
	return nil
}

// DecodePasswordImport decodes and checks a [PasswordImport]. Errors wrap
// [ErrMalformedPassword] and never contain the hash.
func DecodePasswordImport(b []byte) (PasswordImport, error) {
	var p PasswordImport
	if err := json.Unmarshal(b, &p); err != nil {
		return PasswordImport{}, fmt.Errorf("%w: not JSON of the expected shape", ErrMalformedPassword)
	}
	if err := p.check(); err != nil {
		return PasswordImport{}, err
	}
	return p, nil
}

// PasswordDeadLetter is the body of a dead letter on [PasswordDLQSubject]:
// the user, never the hash.
type PasswordDeadLetter struct {
	Auth0UserID string `json:"auth0_user_id"`
}

// PasswordStream is PASSWORDS: joined users with their hashes, kept
// [DefaultPasswordMaxAge], file storage, bounded messages.
func (t Topology) PasswordStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamPasswords,
		Description: "Database users with their bcrypt hash from the Auth0 export (secrets: short retention)",
		Subjects:    []string{PasswordSubjectAll},
		Retention:   jetstream.LimitsPolicy,
		Storage:     t.Storage,
		Replicas:    t.Replicas,
		Duplicates:  t.DuplicateWindow,
		MaxAge:      DefaultPasswordMaxAge,
		MaxMsgSize:  PasswordMaxMsgSize,
		Discard:     jetstream.DiscardOld,
	}
}

// PasswordDeadLetterStream is PASSWORDS_DLQ: password messages the
// importer gave up on, by user id only (no hash), kept as long as
// PASSWORDS.
func (t Topology) PasswordDeadLetterStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamPasswordsDLQ,
		Description: "Password imports the importer gave up on: user id and reason headers, never the hash",
		Subjects:    []string{PasswordDLQSubjectAll},
		Retention:   jetstream.LimitsPolicy,
		Storage:     t.Storage,
		Replicas:    t.Replicas,
		Duplicates:  t.DuplicateWindow,
		MaxAge:      DefaultPasswordMaxAge,
		MaxMsgSize:  PasswordMaxMsgSize,
		Discard:     jetstream.DiscardOld,
	}
}

// PasswordConsumerConfig is the importer's durable consumer on PASSWORDS:
// the delivery policy of the signup consumer ([Delivery.ConsumerConfig],
// unlimited server-side MaxDeliver included) under its own name.
func (d Delivery) PasswordConsumerConfig() jetstream.ConsumerConfig {
	c := d.ConsumerConfig()
	c.Durable = ConsumerPasswords
	c.Description = "signupsync importer: password-hash export"
	c.FilterSubject = PasswordSubjectAll
	return c
}

package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Outcome is how the importer finished with a signup. Every message ends in
// exactly one.
type Outcome string

// The outcomes.
const (
	OutcomeImported       Outcome = "imported"
	OutcomeAlreadyPresent Outcome = "already_present"
	OutcomeSkipped        Outcome = "skipped"
	OutcomeConflict       Outcome = "conflict"
	OutcomeDeadLettered   Outcome = "dead_lettered"
	// OutcomeDeleted: the user was deleted in Auth0 (reason
	// deleted_in_auth0). Firebase no longer holds an account signupsync
	// created for them, and none is ever created afterwards: a signup that
	// arrives later is skipped. See [LifecycleState].
	OutcomeDeleted Outcome = "deleted"
)

// Outcomes lists every [Outcome].
func Outcomes() []Outcome {
	return []Outcome{OutcomeImported, OutcomeAlreadyPresent, OutcomeSkipped, OutcomeConflict, OutcomeDeadLettered, OutcomeDeleted}
}

// Final reports whether the outcome means Firebase holds the person, so a
// later copy of the signup needs no work.
func (o Outcome) Final() bool { return o == OutcomeImported || o == OutcomeAlreadyPresent }

// Decided reports whether the outcome is a decision about the person that a
// later copy of the signup must not overturn: imported, already_present,
// skipped, conflict or deleted. dead_lettered is not: a replay may still
// import.
func (o Outcome) Decided() bool {
	return o.Final() || o == OutcomeSkipped || o == OutcomeConflict || o == OutcomeDeleted
}

// SupersededBy reports whether a ledger entry whose outcome is o takes next
// as its new outcome. A decided outcome is never downgraded: an entry that
// says Firebase holds the person keeps it, and skipped or conflict give way
// only to an outcome that says Firebase now holds the person (an operator
// resolved the conflict and replayed it). A later copy that does not
// supersede is recorded as seen (sources, deliveries, last seen) only.
func (o Outcome) SupersededBy(next Outcome) bool {
	switch {
	case o == "":
		return true
	case o == OutcomeDeleted:
		// A user deleted in Auth0 is never created again by a late copy.
		return false
	case o.Final():
		return false
	case o.Decided():
		return next.Final()
	}
	return true
}

// SupersededBy reports whether the entry takes next (with nextReason) as
// its new outcome: [Outcome.SupersededBy], and in addition a skip for a
// database connection gives way to any other decided outcome. That skip
// says only that the signup pipeline does not import password users; the
// password-hash path (events/passwords.go) then decides the person,
// including a conflict or a skip of its own.
func (e LedgerEntry) SupersededBy(next Outcome, nextReason string) bool {
	if e.Outcome.SupersededBy(next) {
		return true
	}
	return e.Outcome == OutcomeSkipped && e.Reason == ReasonDatabaseConnection && next.Decided() &&
		!(next == OutcomeSkipped && nextReason == ReasonDatabaseConnection)
}

// Reasons qualify an outcome. Skip reasons say why a signup is not imported
// by this pipeline; the others explain the remaining outcomes.
const (
	ReasonLinkedIdentities     = "linked_identities"
	ReasonDatabaseConnection   = "database_connection"
	ReasonPasswordless         = "passwordless_connection"
	ReasonEnterpriseConnection = "enterprise_connection"
	ReasonUnsupportedProvider  = "unsupported_provider"
	ReasonNoIdentity           = "no_identity"
	ReasonDeletedInAuth0       = "deleted_in_auth0"
	ReasonEmailInUse           = "email_in_use"
	ReasonUIDTaken             = "uid_taken"
	ReasonProviderElsewhere    = "provider_on_other_account"
	ReasonSameUIDAndProvider   = "same_uid_and_provider"
	// ReasonImportLanded: imported, found by a later attempt — an earlier
	// ImportUsers got no answer (or its process died) yet landed; the
	// account carries signupsync's auth0_user_id claim for this user.
	ReasonImportLanded      = "import_landed"
	ReasonLedger            = "ledger"
	ReasonDuplicateDelivery = "duplicate_delivery"
	ReasonLinked            = "linked_to_existing_account"
	ReasonMalformedEvent    = "malformed_event"
	ReasonFirebaseRejected  = "firebase_rejected"
	ReasonMaxDeliveries     = "max_deliveries"
	ReasonPermanentError    = "permanent_error"
)

// ReasonLazyPassword qualifies the imported outcome of a database user the
// exchange moved at their first sign-in to the new app (migration on next
// login): Auth0 accepted their email and password, and the exchange created
// the Firebase account with that password (or set it on the account
// signupsync had created without one). The password itself is never
// recorded.
const ReasonLazyPassword = "lazy_password"

// LedgerEntry is the importer's record of one Auth0 user, stored as JSON in
// the SIGNUPS_LEDGER bucket under [LedgerKey].
type LedgerEntry struct {
	Auth0UserID string    `json:"auth0_user_id"`
	Outcome     Outcome   `json:"outcome"`
	Reason      string    `json:"reason,omitempty"`
	Detail      string    `json:"detail,omitempty"`
	FirebaseUID string    `json:"firebase_uid,omitempty"`
	Sources     []Source  `json:"sources"`
	Deliveries  int       `json:"deliveries"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
	TraceID     string    `json:"trace_id,omitempty"`
	// Lifecycle is what signupsync did with the user's later changes in
	// Auth0 (deletion, profile updates); nil until one arrived.
	Lifecycle *LifecycleState `json:"lifecycle,omitempty"`
	// Merges are the anonymous Firebase accounts the session bridge asked
	// the app to merge into this person's account (events/accounts.go),
	// one per guest; nil until one was requested. Written by the exchange
	// with compare-and-set; every other writer keeps it as read.
	Merges []MergeRecord `json:"anonymous_merges,omitempty"`
}

// LifecycleState records the lifecycle events applied to one user. It
// holds times, a result and Firebase uids only, never an email or a name:
// after a deletion the entry keeps only what proves it happened.
type LifecycleState struct {
	// DeletedAt is when Auth0 deleted the user (the event's time).
	DeletedAt time.Time `json:"deleted_at,omitzero"`
	// FirebaseDeletedAt is when signupsync deleted the Firebase account it
	// had created; zero when there was none to delete.
	FirebaseDeletedAt time.Time `json:"firebase_deleted_at,omitzero"`
	// OutcomeBefore is the signup outcome the deletion replaced.
	OutcomeBefore Outcome `json:"outcome_before_deletion,omitempty"`
	// UpdatedAt is Auth0's updated_at of the newest profile change seen;
	// an update not newer than it is ignored.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// SyncedAt is when Firebase was last written for a profile change.
	SyncedAt time.Time `json:"synced_at,omitzero"`
	// Result is the last lifecycle decision (one of the Lifecycle* result
	// constants) and Detail its explanation (never personal data).
	Result string `json:"result"`
	Detail string `json:"detail,omitempty"`
	// OrphanUID is a Firebase uid an import created after the user was
	// deleted (the signup and the deletion crossed); the importer deletes
	// it and clears the field.
	OrphanUID string `json:"orphan_firebase_uid,omitempty"`
	// Events counts the lifecycle events settled for the user.
	Events int `json:"events"`
}

// Lifecycle results, the values of [LifecycleState.Result] and of the
// lifecycle metrics' result label.
const (
	// LifecycleFirebaseDeleted: the account signupsync created was deleted.
	LifecycleFirebaseDeleted = "firebase_deleted"
	// LifecycleDeletedBeforeImport: deleted before any signup was settled;
	// a later signup is skipped.
	LifecycleDeletedBeforeImport = "deleted_before_import"
	// LifecycleNotOurs: the Firebase account was not created by signupsync
	// (already_present), or none was (skipped, conflict, dead_lettered):
	// recorded, nothing touched in Firebase.
	LifecycleNotOurs = "not_created_by_signupsync"
	// LifecycleProfileUpdated: the Firebase account was updated from the profile
	// read from the Management API.
	LifecycleProfileUpdated = "updated"
	// LifecycleUnchanged: the profile read matched the account.
	LifecycleUnchanged = "unchanged"
	// LifecycleStale: an update not newer than the last one applied.
	LifecycleStale = "stale"
	// LifecycleAfterDeletion: an update of a deleted user.
	LifecycleAfterDeletion = "after_deletion"
	// LifecycleEmailConflict: the new email belongs to another Firebase
	// account; the account was left untouched.
	LifecycleEmailConflict = "email_conflict"
	// LifecycleIdentityLinked: an identity linked to the user in Auth0
	// after the import was linked to the Firebase account, under the link
	// policy's proof rules (the provider is authoritative for the email's
	// domain, Auth0 and Firebase both hold the email as verified); any
	// other profile change was applied too.
	LifecycleIdentityLinked = "identity_linked"
	// LifecycleIdentityConflict: an identity linked in Auth0 cannot be
	// linked in Firebase: another Firebase account carries it, or the
	// account already has another identity of that provider. It is not
	// linked; the other profile changes were applied.
	LifecycleIdentityConflict = "identity_conflict"
	// LifecycleIdentityUnproven: an identity linked in Auth0 is not linked
	// in Firebase because the profile does not prove the person owns the
	// email under the link policy's rules; the app links it after the
	// person signs in with both. The other profile changes were applied.
	LifecycleIdentityUnproven = "identity_unproven"
	// LifecycleAccountMissing: the account signupsync created no longer
	// exists in Firebase (deleted by the app).
	LifecycleAccountMissing = "firebase_account_missing"
	// LifecycleUnknownUser: an update of a user no signup was settled for.
	// It is recorded (an entry without an outcome), so the signup, when it
	// comes, is re-read from the Management API, and a later update is
	// applied even if not newer.
	LifecycleUnknownUser = "unknown_user"
	// LifecycleNoManagementAPI: an update that cannot be applied because
	// the importer has no Management API access to re-read the profile.
	LifecycleNoManagementAPI = "no_management_api"
)

// AddSource records src once.
func (e *LedgerEntry) AddSource(src Source) {
	for _, s := range e.Sources {
		if s == src {
			return
		}
	}
	e.Sources = append(e.Sources, src)
}

// MarshalLedger encodes an entry.
func MarshalLedger(e LedgerEntry) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode ledger entry %s: %w", e.Auth0UserID, err)
	}
	return b, nil
}

// UnmarshalLedger decodes an entry.
func UnmarshalLedger(b []byte) (LedgerEntry, error) {
	var e LedgerEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return LedgerEntry{}, fmt.Errorf("decode ledger entry: %w", err)
	}
	return e, nil
}

// LedgerKey maps an Auth0 user_id to a key-value key. NATS keys allow only
// [-/_=.a-zA-Z0-9]; every other byte, and '=' and '.' themselves, become
// '=' and two upper-case hex digits, so the mapping is reversible and
// "google-oauth2|123" reads as "google-oauth2=7C123".
func LedgerKey(auth0UserID string) string {
	var b strings.Builder
	for i := 0; i < len(auth0UserID); i++ {
		c := auth0UserID[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return b.String()
}

// UserIDFromLedgerKey reverses [LedgerKey].
func UserIDFromLedgerKey(key string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		if key[i] != '=' {
			b.WriteByte(key[i])
			continue
		}
		if i+2 >= len(key) {
			return "", fmt.Errorf("ledger key %q: truncated escape", key)
		}
		c, err := strconv.ParseUint(key[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("ledger key %q: bad escape: %w", key, err)
		}
		b.WriteByte(byte(c))
		i += 2
	}
	return b.String(), nil
}

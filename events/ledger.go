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
)

// Outcomes lists every [Outcome].
func Outcomes() []Outcome {
	return []Outcome{OutcomeImported, OutcomeAlreadyPresent, OutcomeSkipped, OutcomeConflict, OutcomeDeadLettered}
}

// Final reports whether the outcome means Firebase holds the person, so a
// later copy of the signup needs no work.
func (o Outcome) Final() bool { return o == OutcomeImported || o == OutcomeAlreadyPresent }

// Decided reports whether the outcome is a decision about the person that a
// later copy of the signup must not overturn: imported, already_present,
// skipped or conflict. dead_lettered is not: a replay may still import.
func (o Outcome) Decided() bool {
	return o.Final() || o == OutcomeSkipped || o == OutcomeConflict
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
	case o.Final():
		return false
	case o.Decided():
		return next.Final()
	}
	return true
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
	ReasonLedger               = "ledger"
	ReasonDuplicateDelivery    = "duplicate_delivery"
	ReasonLinked               = "linked_to_existing_account"
	ReasonMalformedEvent       = "malformed_event"
	ReasonFirebaseRejected     = "firebase_rejected"
	ReasonMaxDeliveries        = "max_deliveries"
	ReasonPermanentError       = "permanent_error"
)

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
}

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

package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Claims: cross-process exclusion for imports.
//
// Production Firebase's ImportUsers checks no unique field: an existing uid
// is replaced whole and a duplicate email or provider identity becomes a
// second account. Look-ups alone cannot prevent that when two importers (two
// replicas, or two workers of one) look up at the same moment and both find
// the email free. So before an importer looks a candidate up, it claims the
// candidate's uid, provider identity and normalised email in the
// SIGNUPS_CLAIMS bucket with a create-if-absent write, which exactly one
// writer wins in any process:
//
//  1. Claim every key of the candidate ([ClaimKeys]) with Create.
//  2. A key held by another attempt (every attempt, even a redelivery of
//     the same message, has its own [ClaimHolder]) is taken over with a
//     compare-and-set only when that attempt is certainly over: its
//     person is in the ledger as held by Firebase ([Outcome.Final]); or the
//     claim is older than the importer's AckWait (an importer bounds each
//     batch to 80 % of AckWait, so the batch that wrote it has ended); or
//     its ambiguity horizon (below) has passed. Otherwise the holder may
//     still be importing and the candidate waits: it is redelivered later.
//     A redelivery is no proof: a broker that restarts can deliver a
//     message again while its first delivery is still being imported. A
//     claim is never resolved by a blind import.
//  3. Only with every key held does the importer look the candidate up in
//     Firebase (uid, provider identity, email) and import it if nothing
//     holds any of them. Since the look-up happens after the claim, and a
//     claim is taken over only after its holder's import finished, the
//     look-up sees every account an earlier holder created.
//  4. Once the outcome is in the ledger the claims are removed (purged on
//     their revision, so a successor's claim is never touched, with a
//     marker that lives [ClaimMarkerTTL]): an imported account is now
//     visible to every later
//     look-up, and an outcome that left no account needs no protection. A
//     transient failure removes them too, unless the import itself got no
//     answer (below): either the import was not sent or was refused, or it
//     was applied and every later look-up sees the account. So the bucket
//     holds only the claims of imports in flight.
//
// An import that failed without an answer is ambiguous: production may still
// apply the request after the client gave up, and a look-up issued later
// can be answered before it. The uid claim then records
// [Claim.AmbiguousUntil], and every attempt waits until it passes before
// looking up; the importer's horizon (--ambiguous-import-wait) bounds how
// long an abandoned request can still land.
//
// Claims expire ([DefaultClaimTTL], the bucket's TTL), which clears those
// left by crashed importers; the TTL must exceed the importer's AckWait plus
// its ambiguity horizon, so neither a live holder nor an ambiguity mark is
// lost too early (the importer checks this at start-up).
//
// The keys hold no personal data: each is a SHA-256 of its kind and value.

// BucketClaims is the key-value bucket of [Claim] values.
const BucketClaims = "SIGNUPS_CLAIMS"

// DefaultClaimTTL is how long a claim left behind lives. It exceeds the
// importer's AckWait plus its ambiguity horizon with room for non-default
// settings; it costs nothing in the normal case, where a claim is removed
// as soon as its outcome is recorded.
const DefaultClaimTTL = 15 * time.Minute

// ClaimMarkerTTL is how long the marker of a removed or expired claim stays
// in the bucket. Markers need no lifetime of their own (a missing key and a
// marker mean the same to a claimant); a short one keeps the bucket to the
// claims in flight.
const ClaimMarkerTTL = time.Second

// Claim is the value of a claim key: which Auth0 user holds it, under which
// Firebase uid, and which attempt (a message of a stream) took it.
type Claim struct {
	Auth0UserID string    `json:"auth0_user_id"`
	FirebaseUID string    `json:"firebase_uid"`
	Holder      string    `json:"holder"`
	At          time.Time `json:"at"`
	// AmbiguousUntil is set on the uid claim when an import of this user
	// failed without an answer (a timeout, a broken connection): Firebase
	// may still apply that request. Until then nobody, not even the same
	// message, may look the user up and import it, since the look-up could
	// overtake the earlier import and a second import would replace it.
	AmbiguousUntil time.Time `json:"ambiguous_until,omitzero"`
}

// ClaimHolder names one attempt to import a message: the stream and
// sequence of the message, and a value unique to the attempt, so no two
// deliveries of a message, and no two copies of a signup, share it.
func ClaimHolder(stream string, seq uint64, attempt string) string {
	return stream + "/" + strconv.FormatUint(seq, 10) + "/" + attempt
}

// MarshalClaim encodes a claim.
func MarshalClaim(c Claim) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode claim %s: %w", c.Auth0UserID, err)
	}
	return b, nil
}

// UnmarshalClaim decodes a claim.
func UnmarshalClaim(b []byte) (Claim, error) {
	var c Claim
	if err := json.Unmarshal(b, &c); err != nil {
		return Claim{}, fmt.Errorf("decode claim: %w", err)
	}
	return c, nil
}

// ClaimKind names what a claim key stands for.
type ClaimKind string

// Claim kinds, in the order [ClaimKeys] returns them.
const (
	ClaimUID      ClaimKind = "uid"
	ClaimProvider ClaimKind = "provider"
	ClaimEmail    ClaimKind = "email"
)

// ClaimKey is one key of [ClaimKeys].
type ClaimKey struct {
	Kind ClaimKind
	Key  string
}

// ClaimKeys returns the claim keys of a Firebase account: its uid, its
// provider identity (Firebase provider id and the provider's user id) and,
// when not empty, its email, normalised like Firebase compares emails
// (lower case, surrounding space trimmed). Keys are "<kind>.<hex>", the
// first 128 bits of a SHA-256 of kind and value.
func ClaimKeys(uid, providerID, providerUID, email string) []ClaimKey {
	keys := []ClaimKey{
		{ClaimUID, claimKey(ClaimUID, uid)},
		{ClaimProvider, claimKey(ClaimProvider, providerID+"\x00"+providerUID)},
	}
	if e := NormaliseEmail(email); e != "" {
		keys = append(keys, ClaimKey{ClaimEmail, claimKey(ClaimEmail, e)})
	}
	return keys
}

// NormaliseEmail is the form in which two emails are the same account key.
func NormaliseEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

func claimKey(kind ClaimKind, v string) string {
	sum := sha256.Sum256([]byte(string(kind) + "\x00" + v))
	return string(kind) + "." + hex.EncodeToString(sum[:16])
}

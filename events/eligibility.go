package events

import "strings"

// Eligibility says whether this pipeline imports a signup and, if not, why.
type Eligibility struct {
	OK bool
	// Reason is the skip reason when !OK.
	Reason string
	// FirebaseProvider is the Firebase provider id when OK.
	FirebaseProvider string
	Identity         Identity
}

// Classify applies the import rule: exactly one identity, social, from a
// provider in providers (Auth0 strategy → Firebase provider id; nil means
// [SocialProviders]). The importer, backfill's dry run and the report all
// use it, so they agree on what is eligible.
//
// The skip reason follows the identity's connection strategy, read from its
// provider or, when the provider is not a known strategy, from the signup's
// ConnectionStrategy (see strategyKinds for the table and its sources):
// database strategies ("auth0", "custom") give [ReasonDatabaseConnection],
// passwordless ones [ReasonPasswordless], enterprise ones
// [ReasonEnterpriseConnection]. Otherwise isSocial decides: a social
// identity is eligible when providers holds its provider
// ([ReasonUnsupportedProvider] when not), and any other identity is an
// unknown non-social connection, counted as [ReasonEnterpriseConnection].
func Classify(d SignupData, providers map[string]string) Eligibility {
	if providers == nil {
		providers = SocialProviders()
	}
	switch n := len(d.Identities); {
	case n == 0:
		return Eligibility{Reason: ReasonNoIdentity}
	case n > 1:
		return Eligibility{Reason: ReasonLinkedIdentities}
	}
	id := d.Identities[0]
	switch identityKind(d, id) {
	case kindDatabase:
		return Eligibility{Reason: ReasonDatabaseConnection}
	case kindPasswordless:
		return Eligibility{Reason: ReasonPasswordless}
	case kindEnterprise:
		return Eligibility{Reason: ReasonEnterpriseConnection}
	}
	if !id.IsSocial {
		return Eligibility{Reason: ReasonEnterpriseConnection}
	}
	fp, ok := providers[id.Provider]
	if !ok {
		return Eligibility{Reason: ReasonUnsupportedProvider}
	}
	if id.UserID == "" {
		return Eligibility{Reason: ReasonNoIdentity}
	}
	return Eligibility{OK: true, FirebaseProvider: fp, Identity: id}
}

// UIDPolicy chooses the Firebase uid of an imported account.
type UIDPolicy string

// UID policies.
const (
	// UIDAuth0ID uses the Auth0 user_id ("google-oauth2|123") as the uid.
	UIDAuth0ID UIDPolicy = "auth0_id"
	// UIDHash uses 32 hex digits derived from the user_id, for projects
	// whose uids must not contain '|'.
	UIDHash UIDPolicy = "hash"
)

// Valid reports whether p is a known policy.
func (p UIDPolicy) Valid() bool { return p == UIDAuth0ID || p == UIDHash }

// FirebaseUID applies the policy to an Auth0 user_id.
func (p UIDPolicy) FirebaseUID(auth0UserID string) string {
	if p == UIDHash {
		return strings.TrimPrefix(EventID(auth0UserID), "su_")
	}
	return auth0UserID
}

package importer

import (
	"strings"
	"time"

	"firebase.google.com/go/v4/auth"

	"github.com/signupsync/signupsync/events"
)

// passwordlessProviders are Auth0's passwordless connection strategies.
var passwordlessProviders = map[string]bool{"email": true, "sms": true}

// eligibility says whether a signup can be imported by this pipeline and,
// if not, why.
type eligibility struct {
	ok bool
	// reason is the skip reason when !ok.
	reason string
	// firebaseProvider is the Firebase provider id when ok.
	firebaseProvider string
	identity         events.Identity
}

// eligible applies the import rule: exactly one identity, social, from a
// provider Firebase knows. providers maps Auth0 strategies to Firebase
// provider ids (events.SocialProviders by default).
func eligible(d events.SignupData, providers map[string]string) eligibility {
	switch n := len(d.Identities); {
	case n == 0:
		return eligibility{reason: events.ReasonNoIdentity}
	case n > 1:
		return eligibility{reason: events.ReasonLinkedIdentities}
	}
	id := d.Identities[0]
	if !id.IsSocial {
		switch {
		case id.Provider == "auth0":
			return eligibility{reason: events.ReasonDatabaseConnection}
		case passwordlessProviders[id.Provider]:
			return eligibility{reason: events.ReasonPasswordless}
		default:
			return eligibility{reason: events.ReasonEnterpriseConnection}
		}
	}
	fp, ok := providers[id.Provider]
	if !ok {
		return eligibility{reason: events.ReasonUnsupportedProvider}
	}
	if id.UserID == "" {
		return eligibility{reason: events.ReasonNoIdentity}
	}
	return eligibility{ok: true, firebaseProvider: fp, identity: id}
}

// firebaseUID applies the uid policy.
func firebaseUID(p UIDPolicy, auth0ID string) string {
	if p == UIDHash {
		return strings.TrimPrefix(events.EventID(auth0ID), "su_")
	}
	return auth0ID
}

// ClaimAuth0ID is the custom claim that carries the Auth0 user_id.
const ClaimAuth0ID = "auth0_user_id"

// toImport maps an eligible signup to a Firebase user.
func toImport(uid string, d events.SignupData, e eligibility) *auth.UserToImport {
	u := (&auth.UserToImport{}).UID(uid).CustomClaims(map[string]interface{}{ClaimAuth0ID: d.UserID})
	if d.Email != "" {
		u.Email(strings.ToLower(d.Email)).EmailVerified(d.EmailVerified)
	}
	if d.Name != "" {
		u.DisplayName(d.Name)
	}
	if d.Picture != "" {
		u.PhotoURL(d.Picture)
	}
	if t, err := time.Parse(time.RFC3339Nano, d.CreatedAt); err == nil {
		u.Metadata(&auth.UserMetadata{CreationTimestamp: t.UnixMilli()})
	}
	u.ProviderData([]*auth.UserProvider{providerInfo(d, e)})
	return u
}

func providerInfo(d events.SignupData, e eligibility) *auth.UserProvider {
	return &auth.UserProvider{
		ProviderID:  e.firebaseProvider,
		UID:         e.identity.UserID,
		Email:       strings.ToLower(d.Email),
		DisplayName: d.Name,
		PhotoURL:    d.Picture,
	}
}

package importer

import (
	"strings"
	"time"

	"firebase.google.com/go/v4/auth"

	"github.com/signupsync/signupsync/events"
)

// ClaimAuth0ID is the custom claim that carries the Auth0 user_id.
const ClaimAuth0ID = "auth0_user_id"

// toImport maps an eligible signup to a Firebase user.
func toImport(uid string, d events.SignupData, e events.Eligibility) *auth.UserToImport {
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

func providerInfo(d events.SignupData, e events.Eligibility) *auth.UserProvider {
	return &auth.UserProvider{
		ProviderID:  e.FirebaseProvider,
		UID:         e.Identity.UserID,
		Email:       strings.ToLower(d.Email),
		DisplayName: d.Name,
		PhotoURL:    d.Picture,
	}
}

package events_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/signupsync/signupsync/events"
)

func TestCheckPrimaryIdentityAcceptsAuth0Shapes(t *testing.T) {
	tests := []struct {
		name string
		data events.SignupData
	}{
		{"social", withIdentity("google-oauth2|1093", "google-oauth2", "google-oauth2", "1093", true)},
		{"numeric github id", withIdentity("github|77", "github", "github", "77", true)},
		{"database", withIdentity("auth0|5f1c", "auth0", "Username-Password-Authentication", "5f1c", false)},
		{"custom database id with a prefix", withIdentity("auth0|MyConnection1|42", "auth0", "legacy-db", "MyConnection1|42", false)},
		{"passwordless", withIdentity("email|64a0", "email", "email", "64a0", false)},
		{"saml, identity id with the connection", withIdentity("samlp|corp|jane@corp.example", "samlp", "corp", "corp|jane@corp.example", false)},
		{"saml, identity id without the connection", withIdentity("samlp|corp|jane@corp.example", "samlp", "corp", "jane@corp.example", false)},
		{"custom social", withIdentity("oauth2|acme-sso|9", "oauth2", "acme-sso", "9", true)},
		{"no identities", events.SignupData{UserID: "google-oauth2|5"}},
		{"linked: the primary identity counts", func() events.SignupData {
			d := withIdentity("google-oauth2|1", "google-oauth2", "google-oauth2", "1", true)
			d.Identities = append(d.Identities, events.Identity{Provider: "github", UserID: "2", IsSocial: true})
			return d
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := events.CheckPrimaryIdentity(tt.data); err != nil {
				t.Fatalf("genuine Auth0 shape refused: %v", err)
			}
		})
	}
}

func TestCheckPrimaryIdentityRefusesMismatch(t *testing.T) {
	tests := []struct {
		name string
		data events.SignupData
	}{
		{"another provider", withIdentity("github|1001", "google-oauth2", "google-oauth2", "1001", true)},
		{"another person", withIdentity("github|1001", "github", "github", "2002", true)},
		{"social with a connection segment", withIdentity("google-oauth2|x|1", "google-oauth2", "x", "1", true)},
		{"case differs", withIdentity("GitHub|1", "github", "github", "1", true)},
		{"empty identity", withIdentity("github|1", "", "", "", true)},
		{"secondary identity matches, primary does not", func() events.SignupData {
			d := withIdentity("github|7", "google-oauth2", "google-oauth2", "8", true)
			d.Identities = append(d.Identities, events.Identity{Provider: "github", UserID: "7", IsSocial: true})
			return d
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := events.CheckPrimaryIdentity(tt.data)
			var ie *events.IdentityError
			if !errors.Is(err, events.ErrInvalidUser) || !errors.As(err, &ie) || ie.Field != "user_id" {
				t.Fatalf("err = %v, want an IdentityError on user_id wrapping ErrInvalidUser", err)
			}
			if _, _, err := events.NewMsg(events.SourceEventStream, tt.data, time.Now()); !errors.Is(err, events.ErrInvalidUser) {
				t.Fatalf("NewMsg err = %v, want ErrInvalidUser: no publisher may store it", err)
			}
		})
	}
}

func TestEmailAuthoritative(t *testing.T) {
	tests := []struct {
		provider, email string
		want            bool
	}{
		{"google-oauth2", "someone@gmail.com", true},
		{"google-oauth2", "Someone@GoogleMail.com", true},
		{"google-oauth2", "someone@example.com", false},
		{"google-oauth2", "someone@mail.gmail.com", false},
		{"google-oauth2", "gmail.com@example.com", false},
		{"apple", "x1y2@privaterelay.appleid.com", true},
		{"apple", "someone@gmail.com", false},
		{"github", "someone@gmail.com", false},
		{"windowslive", "someone@outlook.com", false},
		{"facebook", "someone@facebook.com", false},
		{"google-oauth2", "gmail.com", false},
		{"google-oauth2", "someone@", false},
	}
	for _, tt := range tests {
		t.Run(tt.provider+" "+tt.email, func(t *testing.T) {
			if got := events.EmailAuthoritative(tt.provider, tt.email); got != tt.want {
				t.Fatalf("EmailAuthoritative = %v, want %v", got, tt.want)
			}
		})
	}
}

func withIdentity(userID, provider, connection, raw string, social bool) events.SignupData {
	return events.SignupData{Tenant: "acme", UserID: userID,
		Identities: []events.Identity{{Provider: provider, Connection: connection, UserID: raw, IsSocial: social}}}
}

// A body naming one person's user_id with another person's identity is
// refused before it is stored.
func ExampleCheckPrimaryIdentity() {
	forged := events.SignupData{UserID: "github|1001",
		Identities: []events.Identity{{Provider: "google-oauth2", UserID: "1001", IsSocial: true}}}
	_, _, err := events.NewMsg(events.SourceEventStream, forged, time.Now())
	fmt.Println(errors.Is(err, events.ErrInvalidUser))
	fmt.Println(err)
	// Output:
	// true
	// invalid auth0 user: user_id: is not provider|user_id of the primary identity (identities[0])
}

package events

import (
	"fmt"
	"strings"
)

// ReasonInvalidIdentity is the dead-letter reason of a signup whose user_id
// is not its primary identity's (see [CheckPrimaryIdentity]).
const ReasonInvalidIdentity = "invalid_identity"

// IdentityError is returned by [CheckPrimaryIdentity]. It wraps
// [ErrInvalidUser], so errors.Is(err, ErrInvalidUser) holds. Field names the
// signup data field ("user_id"); Reason is a fixed text that never echoes
// the input, so both are safe to show to the sender.
type IdentityError struct {
	Field  string
	Reason string
}

func (e *IdentityError) Error() string {
	return fmt.Sprintf("%s: %s: %s", ErrInvalidUser, e.Field, e.Reason)
}

// Unwrap returns [ErrInvalidUser].
func (e *IdentityError) Unwrap() error { return ErrInvalidUser }

// CheckPrimaryIdentity checks that a signup's user_id is the one Auth0
// derives from its primary identity (identities[0]) when that identity is
// social, the only kind signupsync imports: the identity's provider (the
// connection strategy), "|", and the identity's user_id, as in
// "google-oauth2|1234". Identities of other kinds (database, passwordless,
// enterprise, Event Streams' "custom" type) pass whatever their user_id's
// shape ("auth0|MyConnection1|42", "samlp|<connection>|<id>", ...): they are
// skipped, never imported, linked or looked up. A signup without identities
// passes: it has nothing to contradict (its identity, if any, is derived
// from the user_id, see [DeriveIdentity]).
//
// The check exists because the importer and the exchange key on the
// user_id but look Firebase accounts up by the identity: a body pairing
// one person's user_id with another person's identity would make the
// ledger of the first name the account of the second. It returns nil or
// an [*IdentityError].
func CheckPrimaryIdentity(d SignupData) error {
	if len(d.Identities) == 0 {
		return nil
	}
	id := d.Identities[0]
	if _, social := SocialProviders()[id.Provider]; !social && id.Provider != "" {
		// Only social identities are imported, linked or looked up; the
		// others are skipped whatever their user_id. Auth0 documents
		// several shapes for them (custom databases, enterprise
		// connections, the "custom" identity type of Event Streams), and
		// refusing a genuine one would only lose its skip record.
		return nil
	}
	if id.Provider != "" && id.UserID != "" && d.UserID == id.Provider+"|"+id.UserID {
		return nil
	}
	return &IdentityError{Field: "user_id", Reason: "is not provider|user_id of the primary identity (identities[0])"}
}

// ReasonEmailUnproven is the conflict reason of a signup whose email
// belongs to an existing Firebase account that the link policy may not
// attach it to: ownership of the email is not proven (see
// [EmailAuthoritative]).
const ReasonEmailUnproven = "email_unproven"

// emailAuthorities maps Auth0 social strategies to the email domains the
// provider itself hosts, so that its verified flag proves ownership of the
// mailbox and not only that the provider once sent a message to it.
//
// Sources:
//   - google-oauth2: Google's "Verify the Google ID token" guide (section
//     "Using email, email_verified and hd") says that for an address ending
//     in gmail.com (googlemail.com is the same mailbox) Google is the
//     authority; for other domains it is not, unless hd names a Workspace
//     domain, which signupsync does not receive.
//   - apple: Apple runs the private relay (privaterelay.appleid.com);
//     Sign in with Apple's ID token marks those addresses is_private_email.
//     Apple is the authority for the relay address it issued, not for the
//     Apple ID's own address, which may be anybody's domain.
//
// Left out on purpose: windowslive (Microsoft documents the email claim of
// its tokens as unverified and mutable), facebook, github, twitter, yahoo
// (no documented authority that Auth0 passes on). Auth0 documents that a
// federated connection's email_verified is whatever the provider says.
var emailAuthorities = map[string][]string{
	"google-oauth2": {"gmail.com", "googlemail.com"},
	"apple":         {"privaterelay.appleid.com"},
}

// EmailAuthorities returns a copy of the table of Auth0 social strategies
// and the email domains each is authoritative for. It is data: extend it
// only with a documented source.
func EmailAuthorities() map[string][]string {
	out := make(map[string][]string, len(emailAuthorities))
	for p, ds := range emailAuthorities {
		out[p] = append([]string(nil), ds...)
	}
	return out
}

// EmailAuthoritative reports whether the Auth0 social strategy provider is
// authoritative for email's domain (exact domain, case-insensitive), so that
// a verified email from it proves the person owns the mailbox.
func EmailAuthoritative(provider, email string) bool {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return false
	}
	domain := strings.ToLower(email[at+1:])
	for _, d := range emailAuthorities[provider] {
		if domain == d {
			return true
		}
	}
	return false
}

package importer

import (
	"context"
	"strings"

	"firebase.google.com/go/v4/auth"

	"github.com/signupsync/signupsync/events"
)

// link applies the link policy to c, whose email belongs to the existing
// account rec. It attaches c's provider identity to rec only when the
// person is proven to own both: the profile read from the Management API
// (never the message, which anyone holding an ingest credential can write)
// has the email verified by a provider that hosts that mailbox
// (events.EmailAuthoritative), and rec's email is verified too. Anything
// less is a conflict with reason email_unproven: the app links the two
// after the person signs in with both.
func (im *Importer) link(ctx context.Context, c *item, rec *auth.UserRecord) {
	p := c.data
	if !c.enriched {
		d, ok := im.readProfile(c.ctx, c)
		if !ok {
			return
		}
		p = d
	}
	elig, why := im.proveEmail(c, p, rec)
	if why != "" {
		im.log.InfoContext(c.ctx, "not linked: email ownership not proven", "auth0_user_id", c.ev.Subject, "firebase_uid", rec.UID, "why", why)
		c.settle(events.OutcomeConflict, events.ReasonEmailUnproven, rec.UID, why)
		return
	}
	err := im.firebase(ctx, "UpdateUser", func(ctx context.Context) error {
		_, err := im.accounts.UpdateUser(ctx, rec.UID, (&auth.UserToUpdate{}).ProviderToLink(providerInfo(p, elig)))
		return classifyFirebase("UpdateUser", err)
	})
	switch {
	case err == nil:
		c.settle(events.OutcomeImported, events.ReasonLinked, rec.UID, "")
	case IsTransient(err):
		c.retry(err, retryAfter(err))
	default:
		c.settle(events.OutcomeConflict, events.ReasonEmailInUse, rec.UID, "link refused by Firebase: "+err.Error())
	}
}

// proveEmail returns the eligibility to link under, or why the profile p
// does not prove that c's person owns rec's email. The reasons name no
// email or domain: they go to the ledger and the logs.
func (im *Importer) proveEmail(c *item, p events.SignupData, rec *auth.UserRecord) (events.Eligibility, string) {
	if p.UserID != c.ev.Subject || events.CheckPrimaryIdentity(p) != nil {
		return events.Eligibility{}, "the Auth0 profile does not match the signup's user_id"
	}
	elig := events.Classify(p, im.providers)
	switch {
	case !elig.OK:
		return elig, "the Auth0 profile is not an unlinked social account (" + elig.Reason + ")"
	case elig.FirebaseProvider != c.elig.FirebaseProvider || elig.Identity.UserID != c.elig.Identity.UserID:
		return elig, "the Auth0 profile's identity is not the signup's"
	case !p.EmailVerified:
		return elig, "Auth0 does not hold the email as verified"
	case !strings.EqualFold(p.Email, rec.Email):
		return elig, "the Auth0 profile's email is not the Firebase account's"
	case !events.EmailAuthoritative(elig.Identity.Provider, p.Email):
		return elig, elig.Identity.Provider + " is not authoritative for the email's domain"
	case !rec.EmailVerified:
		return elig, "the Firebase account's email is not verified"
	}
	return elig, ""
}

package importer

import (
	"context"
	"errors"
	"slices"
	"strings"

	"firebase.google.com/go/v4/auth"

	"github.com/signupsync/signupsync/events"
)

// An identity linked to the user in Auth0 after the import reaches the
// Firebase account under the link policy's rules (link.go), never on
// Auth0's word alone: Auth0 links accounts on whatever its tenant's rules
// or Actions decide, and a Firebase identity is a way to sign in to the
// account. Of the profile's social identities Firebase can hold that the
// account does not carry (same Firebase provider id and raw id), each is
//
//   - not linked, identity_conflict, when another Firebase account
//     carries it or the account already has another identity of its
//     provider (Firebase holds one per provider; production refuses
//     both, the emulator silently moves or replaces the identity);
//   - linked when the provider is authoritative for the profile's email
//     domain (events.EmailAuthoritative), Auth0 holds that email as
//     verified, and the account's email is the same and verified in
//     Firebase before this update: identity_linked;
//   - otherwise not linked, identity_unproven: the app links it after the
//     person signs in with both.
//
// The profile's other changes are applied whatever becomes of the
// identities. Identities the account has and Auth0 lacks are left alone:
// signupsync never unlinks.

// newIdentity is a social identity of the Auth0 profile that the Firebase
// account does not carry.
type newIdentity struct {
	provider string // Auth0 strategy, "google-oauth2"
	fp       string // Firebase provider id, "google.com"
	raw      string // the provider's id of the person
}

// identityPlan is what becomes of the new identities of one update.
type identityPlan struct {
	link  []newIdentity
	notes []string // per identity, in order; no email or domain
	// the strongest result so far: conflict, then unproven, then linked.
	conflict, unproven, linked bool
}

// result is the lifecycle result and detail of an update whose profile
// part ended in base (updated or unchanged).
func (p *identityPlan) result(base string) (string, string) {
	r := base
	switch {
	case p.conflict:
		r = events.LifecycleIdentityConflict
	case p.unproven:
		r = events.LifecycleIdentityUnproven
	case p.linked:
		r = events.LifecycleIdentityLinked
	}
	if len(p.notes) == 0 {
		return r, ""
	}
	detail := strings.Join(p.notes, "; ")
	if base == events.LifecycleProfileUpdated {
		detail = "profile updated; " + detail
	}
	return r, detail
}

// newIdentities lists the identities of d that are social, of a provider
// Firebase knows (providers), and not on cur, each once.
func newIdentities(d events.SignupData, cur *auth.UserRecord, providers map[string]string) []newIdentity {
	var out []newIdentity
	for _, id := range d.Identities {
		fp, ok := providers[id.Provider]
		if !ok || !id.IsSocial || id.UserID == "" {
			continue
		}
		n := newIdentity{provider: id.Provider, fp: fp, raw: id.UserID}
		if hasIdentity(cur, fp, id.UserID) || slices.Contains(out, n) {
			continue
		}
		out = append(out, n)
	}
	return out
}

func hasIdentity(rec *auth.UserRecord, fp, raw string) bool {
	return slices.ContainsFunc(rec.ProviderUserInfo, func(p *auth.UserInfo) bool {
		return p != nil && p.ProviderID == fp && p.UID == raw
	})
}

// planIdentities decides the new identities of d on the account cur
// (uid): the ones to link and the ones recorded as conflict or unproven.
// It returns the Firebase look-up's error, classified.
func (im *Importer) planIdentities(ctx context.Context, uid string, cur *auth.UserRecord, d events.SignupData) (identityPlan, error) {
	var plan identityPlan
	fresh := newIdentities(d, cur, im.providers)
	if len(fresh) == 0 {
		return plan, nil
	}
	held, err := im.identityHolders(ctx, uid, fresh)
	if err != nil {
		return plan, err
	}
	taken := map[string]bool{}
	for _, p := range cur.ProviderUserInfo {
		if p != nil {
			taken[p.ProviderID] = true
		}
	}
	for _, id := range fresh {
		switch {
		case held[id] != "":
			plan.conflict = true
			plan.notes = append(plan.notes, "the new "+id.fp+" identity belongs to firebase uid "+held[id])
		case taken[id.fp]:
			plan.conflict = true
			plan.notes = append(plan.notes, "the new "+id.fp+" identity is not linked: the account already has another "+id.fp+" identity")
		default:
			if why := proveIdentity(id.provider, d, cur); why != "" {
				plan.unproven = true
				plan.notes = append(plan.notes, "the new "+id.fp+" identity is not linked: "+why+
					"; the app links it after the person signs in with both")
				continue
			}
			taken[id.fp] = true
			plan.link = append(plan.link, id)
		}
	}
	return plan, nil
}

// proveIdentity returns why the profile d does not prove that the person
// owns the email of the account cur for the Auth0 strategy provider, or
// "" when it does: the link policy's rules (see [Importer.proveEmail]).
// cur is the account as it was before the update, so an email or a
// verification changed by the same update proves nothing yet. The reasons
// name no email or domain.
func proveIdentity(provider string, d events.SignupData, cur *auth.UserRecord) string {
	switch {
	case !d.EmailVerified:
		return "Auth0 does not hold the email as verified"
	case !strings.EqualFold(d.Email, cur.Email):
		return "the Auth0 profile's email is not the Firebase account's"
	case !events.EmailAuthoritative(provider, d.Email):
		return provider + " is not authoritative for the email's domain"
	case !cur.EmailVerified:
		return "the Firebase account's email is not verified"
	}
	return ""
}

// identityHolders maps each of ids carried by a Firebase account other
// than uid to that account's uid, 100 identifiers per GetUsers call.
func (im *Importer) identityHolders(ctx context.Context, uid string, ids []newIdentity) (map[newIdentity]string, error) {
	held := map[newIdentity]string{}
	for chunk := range slices.Chunk(ids, 100) {
		lookup := make([]auth.UserIdentifier, len(chunk))
		for i, id := range chunk {
			lookup[i] = auth.ProviderIdentifier{ProviderID: id.fp, ProviderUID: id.raw}
		}
		var res *auth.GetUsersResult
		err := im.firebase(ctx, "GetUsers", func(ctx context.Context) error {
			r, err := im.accounts.GetUsers(ctx, lookup)
			res = r
			return classifyFirebase("GetUsers", err)
		})
		if err != nil {
			return nil, err
		}
		for _, r := range res.Users {
			if r.UID == uid {
				continue
			}
			for _, id := range chunk {
				if held[id] == "" && hasIdentity(r, id.fp, id.raw) {
					held[id] = r.UID
				}
			}
		}
	}
	return held, nil
}

// linkIdentities links plan's proven identities to the account uid, one
// UpdateUser each, and notes the outcome in plan. A link Firebase refuses
// (an identity another account took since the look-up) is a conflict. It
// returns errAccountMissing or a transient error, which stop it.
func (im *Importer) linkIdentities(ctx context.Context, uid string, d events.SignupData, plan *identityPlan) error {
	for _, id := range plan.link {
		link := (&auth.UserToUpdate{}).ProviderToLink(&auth.UserProvider{ProviderID: id.fp, UID: id.raw, Email: strings.ToLower(d.Email)})
		err := im.firebase(ctx, "UpdateUser", func(ctx context.Context) error {
			_, err := im.accounts.UpdateUser(ctx, uid, link)
			if auth.IsUserNotFound(err) {
				return errAccountMissing
			}
			return classifyFirebase("UpdateUser", err)
		})
		switch {
		case err == nil:
			plan.linked = true
			plan.notes = append(plan.notes, "the new "+id.fp+" identity is linked")
		case errors.Is(err, errAccountMissing), IsTransient(err):
			return err
		default:
			plan.conflict = true
			plan.notes = append(plan.notes, "the new "+id.fp+" identity is not linked: Firebase refused the link ("+err.Error()+")")
		}
	}
	return nil
}

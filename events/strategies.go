package events

// connectionKind is what an Auth0 connection strategy says about the people
// it holds, which decides [Classify]'s skip reason.
type connectionKind int

const (
	kindUnknown connectionKind = iota
	// kindDatabase: Auth0 holds the password; importing the user needs the
	// password hashes, which only Auth0 support exports.
	kindDatabase
	// kindPasswordless: email or SMS one-time codes, no password anywhere.
	kindPasswordless
	// kindEnterprise: a workforce or partner identity provider.
	kindEnterprise
)

// strategyKinds maps Auth0 connection strategies to their kind. Auth0 writes
// the strategy of the connection an identity belongs to as that identity's
// provider ("auth0|…", "samlp|…"), so the same table reads both. It is data:
// extend it when Auth0 adds a strategy.
//
// Sources:
//   - the Management API v2 connection strategy enum (POST
//     /api/v2/connections "strategy",
//     https://auth0.com/docs/api/management/v2/connections/post-connections);
//   - the identity variants of the Event Streams user.created object
//     (https://auth0.com/docs/events/user/user.created): database identities
//     have provider "auth0", custom identities "custom", passwordless ones
//     "email" or "sms", and enterprise ones ad, adfs, google-apps, ip,
//     office365, oidc, okta, pingfederate, samlp, sharepoint or waad;
//   - the post-user-registration Action event object
//     (https://auth0.com/docs/customize/actions/explore-triggers/signup-and-login-triggers/post-user-registration-trigger/post-user-registration-event-object):
//     "auth0 (database connections)", "waad", "ad".
//
// Social strategies are not listed: an identity is social when Auth0 marks
// it isSocial, and [SocialProviders] says which of those Firebase can hold.
//
// "custom" counts as a database. The Event Streams catalog lists provider
// "custom" as an identity variant of its own next to the database one, and
// issue 12 found it on a database-connection user in Auth0's Event Streams
// example. The choice errs on the safe side: a user wrongly counted as a
// database user costs one needless row in the password-export list, while a
// database user counted as anything else silently loses the password.
var strategyKinds = map[string]connectionKind{
	"auth0":  kindDatabase,
	"custom": kindDatabase,

	"email": kindPasswordless,
	"sms":   kindPasswordless,

	"ad":           kindEnterprise,
	"adfs":         kindEnterprise,
	"auth0-adldap": kindEnterprise,
	"google-apps":  kindEnterprise,
	"ip":           kindEnterprise,
	"office365":    kindEnterprise,
	"oidc":         kindEnterprise,
	"okta":         kindEnterprise,
	"pingfederate": kindEnterprise,
	"samlp":        kindEnterprise,
	"sharepoint":   kindEnterprise,
	"waad":         kindEnterprise,
}

// identityKind is the kind of the connection an identity of d belongs to:
// the identity's provider when the table knows it, otherwise the strategy
// the sender reported for the signup's connection, when that connection is
// the identity's.
func identityKind(d SignupData, id Identity) connectionKind {
	if k, ok := strategyKinds[id.Provider]; ok {
		return k
	}
	if d.ConnectionStrategy != "" && (id.Connection == "" || d.Connection == "" || id.Connection == d.Connection) {
		return strategyKinds[d.ConnectionStrategy]
	}
	return kindUnknown
}

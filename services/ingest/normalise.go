package ingest

import (
	"strings"

	"github.com/signupsync/signupsync/events"
)

// userData maps an Auth0 user object (as Actions and Event Streams carry
// it) to signup data, with the rules every source shares
// (events.UserObjectSignup). The object has passed auth0-user.json.
func userData(tenant string, user map[string]any, connection, strategy string) events.SignupData {
	return events.UserObjectSignup(tenant, user, connection, strategy)
}

// actionData normalises a validated Action webhook body.
func actionData(body map[string]any, defaultTenant string) events.SignupData {
	tenant := str(body, "tenant")
	if tenant == "" {
		tenant = defaultTenant
	}
	conn := obj(body, "connection")
	d := userData(tenant, obj(body, "user"), str(conn, "name"), str(conn, "strategy"))
	d.Trigger = str(body, "trigger")
	return d
}

// eventStreamData normalises a validated Event Streams user.created event
// (events.EventStreamSignup, which the reconciler's delivery recovery uses
// too).
func eventStreamData(ev map[string]any, defaultTenant string) events.SignupData {
	return events.EventStreamSignup(ev, defaultTenant)
}

// logStreamData normalises a validated Log Streams "ss" entry. The result is
// partial: a log entry carries no name, picture or verified flag.
func logStreamData(entry map[string]any, defaultTenant string) events.SignupData {
	data := obj(entry, "data")
	tenant := str(data, "tenant_name")
	if tenant == "" {
		tenant = defaultTenant
	}
	d := events.SignupData{
		Tenant:             tenant,
		Partial:            true,
		Trigger:            "log:" + str(data, "type"),
		Connection:         str(data, "connection"),
		ConnectionStrategy: str(data, "strategy"),
		UserID:             str(data, "user_id"),
		CreatedAt:          str(data, "date"),
	}
	if name := str(data, "user_name"); strings.Contains(name, "@") {
		d.Email = name
	}
	d.Identities = events.DeriveIdentity(d.UserID, d.Connection, d.ConnectionStrategy, str(data, "strategy_type"))
	return d
}

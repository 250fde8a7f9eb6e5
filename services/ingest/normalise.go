package ingest

import (
	"strings"

	"github.com/signupsync/signupsync/events"
)

// userData maps an Auth0 user object (as Actions and Event Streams carry
// it) to signup data. connection and strategy describe the connection the
// signup used when the sender knows it.
func userData(tenant string, user map[string]any, connection, strategy string) events.SignupData {
	d := events.SignupData{
		Tenant:             tenant,
		Connection:         connection,
		ConnectionStrategy: strategy,
		UserID:             str(user, "user_id"),
		Email:              str(user, "email"),
		EmailVerified:      boolean(user, "email_verified"),
		Name:               str(user, "name"),
		GivenName:          str(user, "given_name"),
		FamilyName:         str(user, "family_name"),
		Nickname:           str(user, "nickname"),
		Picture:            str(user, "picture"),
		CreatedAt:          str(user, "created_at"),
		AppMetadata:        rawJSON(user, "app_metadata"),
		UserMetadata:       rawJSON(user, "user_metadata"),
	}
	ids, _ := user["identities"].([]any)
	for _, raw := range ids {
		m, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		d.Identities = append(d.Identities, events.Identity{
			Provider:   str(m, "provider"),
			Connection: str(m, "connection"),
			UserID:     str(m, "user_id"),
			IsSocial:   boolean(m, "isSocial"),
		})
	}
	if len(d.Identities) == 0 {
		d.Identities = events.DeriveIdentity(d.UserID, connection, strategy, "")
	}
	if d.Connection == "" && len(d.Identities) == 1 {
		d.Connection = d.Identities[0].Connection
	}
	return d
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

// eventStreamData normalises a validated Event Streams user.created event.
func eventStreamData(ev map[string]any, defaultTenant string) events.SignupData {
	tenant := str(ev, "a0tenant")
	if tenant == "" {
		tenant = defaultTenant
	}
	d := userData(tenant, obj(obj(ev, "data"), "object"), "", "")
	d.Trigger = str(ev, "type")
	return d
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

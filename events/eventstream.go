package events

import (
	"encoding/json"
)

// Event Streams event attributes signupsync reads.
const (
	// EventStreamUserCreated is the type of the one Event Streams event
	// that is a signup.
	EventStreamUserCreated = "user.created"
	// EventStreamTestPurpose is a0purpose of a test delivery (the
	// dashboard's or the Management API's "send a test event"), never a
	// signup.
	EventStreamTestPurpose = "test"
)

// IsEventStreamSignup reports whether ev, one Event Streams CloudEvent
// decoded from JSON, is a signup: type user.created and not a test
// delivery.
func IsEventStreamSignup(ev map[string]any) bool {
	return evString(ev, "type") == EventStreamUserCreated && evString(ev, "a0purpose") != EventStreamTestPurpose
}

// EventStreamSignup normalises an Event Streams user.created event, decoded
// from JSON (json.Number for numbers, so a numeric identity user_id keeps
// every digit) and valid against schemas.Auth0EventStream, to signup data:
// the tenant is a0tenant or else defaultTenant, the trigger the event's
// type, and the profile data.object. A user without identities gets one
// derived from its user_id ([DeriveIdentity]).
//
// It is the normalisation ingest's Event Streams receiver applies, shared so
// that the reconciler's recovery of failed deliveries publishes the same
// event the receiver would have.
func EventStreamSignup(ev map[string]any, defaultTenant string) SignupData {
	tenant := evString(ev, "a0tenant")
	if tenant == "" {
		tenant = defaultTenant
	}
	d := UserObjectSignup(tenant, evObject(evObject(ev, "data"), "object"), "", "")
	d.Trigger = evString(ev, "type")
	return d
}

// UserObjectSignup maps an Auth0 user object, as Actions and Event Streams
// carry it (decoded from JSON with json.Number, valid against the
// auth0-user schema), to signup data. connection and strategy describe the
// connection the signup used when the sender knows it. Fields are read with
// the rules of [Auth0User]: email_verified and isSocial through
// [ParseAuth0Bool], created_at through [ParseAuth0Time]; a wrong type reads
// as absent. A user without identities gets one derived from its user_id
// ([DeriveIdentity]). Ingest's receivers and the reconciler's delivery
// recovery both use it, so a recovered event is the one ingest would have
// published.
func UserObjectSignup(tenant string, user map[string]any, connection, strategy string) SignupData {
	created, _ := ParseAuth0Time(user["created_at"])
	d := SignupData{
		Tenant:             tenant,
		Connection:         connection,
		ConnectionStrategy: strategy,
		UserID:             evString(user, "user_id"),
		Email:              evString(user, "email"),
		EmailVerified:      evBool(user, "email_verified"),
		Name:               evString(user, "name"),
		GivenName:          evString(user, "given_name"),
		FamilyName:         evString(user, "family_name"),
		Nickname:           evString(user, "nickname"),
		Picture:            evString(user, "picture"),
		CreatedAt:          created,
		AppMetadata:        evRaw(user, "app_metadata"),
		UserMetadata:       evRaw(user, "user_metadata"),
	}
	ids, _ := user["identities"].([]any)
	for _, raw := range ids {
		m, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		d.Identities = append(d.Identities, Identity{
			Provider:   evString(m, "provider"),
			Connection: evString(m, "connection"),
			UserID:     evString(m, "user_id"),
			IsSocial:   evBool(m, "isSocial"),
		})
	}
	if len(d.Identities) == 0 {
		d.Identities = DeriveIdentity(d.UserID, connection, strategy, "")
	}
	if d.Connection == "" && len(d.Identities) == 1 {
		d.Connection = d.Identities[0].Connection
	}
	return d
}

// Accessors over decoded JSON: a wrong type reads as absent.

func evObject(m map[string]any, key string) map[string]any {
	v, _ := m[key].(map[string]any)
	return v
}

func evString(m map[string]any, key string) string {
	switch v := m[key].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

func evBool(m map[string]any, key string) bool {
	v, _ := ParseAuth0Bool(m[key])
	return v
}

func evRaw(m map[string]any, key string) json.RawMessage {
	v, ok := m[key].(map[string]any)
	if !ok || len(v) == 0 {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

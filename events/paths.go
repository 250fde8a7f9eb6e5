package events

// The webhook receivers' paths under ingest's base URL: what ingest
// serves, and where the Auth0 Actions, Event Streams and Log Streams send
// (deploy/auth0, `signupsync auth0 install`). Both sides read them here so
// they cannot drift apart.
const (
	PathAction      = "/v1/hooks/auth0-action"
	PathEventStream = "/v1/hooks/auth0-event-stream"
	PathLogStream   = "/v1/hooks/auth0-log-stream"
)

// Package tenant installs signupsync's side of an Auth0 tenant through the
// Management API, reports it and removes it: the package behind
// `signupsync auth0 install | status | uninstall`.
//
// What it installs, each under a name built from [Config.Prefix] (default
// "signupsync"), the names being how it recognises its own:
//
//   - the Actions <prefix>-post-login and <prefix>-post-user-registration,
//     the code of deploy/auth0 (post-login.js, post-user-registration.js),
//     runtime node22, for the trigger's CURRENT version as GET
//     /api/v2/actions/triggers lists it (post-login v3 and
//     post-user-registration v2 today), with the secrets the code reads:
//     SIGNUPSYNC_URL (ingest's base URL), SIGNUPSYNC_SECRET (the Standard
//     Webhooks secret ingest verifies with, SIGNUPSYNC_ACTION_SECRETS) and,
//     when set, SIGNUPSYNC_BUDGET_MS. Each is built, deployed, then bound
//     last in its trigger's flow;
//   - the event stream <prefix>-events: a webhook to
//     <ingest>/v1/hooks/auth0-event-stream with a bearer token
//     (SIGNUPSYNC_EVENT_STREAM_TOKEN), subscribed to [EventTypes];
//   - the log stream <prefix>-logs: a custom webhook (type http) to
//     <ingest>/v1/hooks/auth0-log-stream, [LogContentFormat], with an
//     Authorization value (SIGNUPSYNC_LOG_STREAM_TOKEN), filtered to
//     [LogCategories].
//
// # Idempotence
//
// [Installer.Install] reads the tenant, compares, and writes only what
// differs; a second run writes nothing, and [Installer.Plan] is that
// comparison without the writes (the dry run). An Action is deployed only
// when it was created or changed, or its draft is not live. Bindings are
// compared as a list: the tenant's other bindings stay, in their order, and
// ours is put (back) last; Auth0's PATCH of a trigger's bindings replaces
// the whole list, so the list is read afresh right before it is written.
//
// Auth0 returns no secret values, so a changed secret is found out as far
// as Auth0 allows:
//
//   - Actions: the code installed ends with a line of digests of its
//     secrets (see desiredCode); a supplied ActionSecret matching the
//     digest is not rewritten, a different one is, and so is a changed
//     IngestURL or ActionBudget. An ActionSecret not supplied is generated
//     on a first install only.
//   - Log Streams: Auth0 returns httpAuthorization, so it is compared
//     directly, and kept when LogStreamToken is not supplied.
//   - Event Streams: Auth0 never returns the token. A supplied
//     EventStreamToken is assumed installed (status says so); one not
//     supplied is generated on a first install only.
//
// A re-install not given a secret that is installed and that Auth0 cannot
// show is refused ([ErrSecretsNotSupplied]), plan included, and writes
// nothing: generating a new one would rotate it under a running ingest.
// Config.RewriteSecrets rotates on purpose: the supplied values, or new
// ones, are written.
//
// The secrets to configure ingest with come back in [Result.Secrets],
// written by [Secrets.WriteEnvFile] with mode 0600; they appear in no log,
// plan or error.
//
// # Auth0 behaviour relied on
//
//   - A created or updated Action is "pending", then "building", then
//     "built" (or "failed"); deploying before "built" is refused with 400
//     "A draft must be in the 'built' state before it can be deployed."
//     (alexkappa/terraform-provider-auth0#470, auth0/auth0-deploy-cli#395),
//     so the installer polls GET /api/v2/actions/actions/{id} with backoff
//     before deploying. The deploy answers the new version with "deployed":
//     false (go-auth0's recorded TestActionManager_Deploy), so it polls
//     again until deployed_version is that version before binding.
//   - PATCH /api/v2/actions/triggers/{trigger}/bindings sets the trigger's
//     bindings to the list sent, in execution order
//     (https://auth0.com/docs/api/management/v2/actions/patch-bindings).
//   - An Action must be unbound before it is deleted
//     (https://auth0.com/docs/api/management/v2/actions/delete-action), so
//     [Installer.Uninstall] unbinds first.
//   - Event streams: POST/PATCH /api/v2/event-streams with destination
//     {"type":"webhook","configuration":{"webhook_endpoint","webhook_authorization":{"method":"bearer","token"}}};
//     answers show only the method
//     (https://auth0.com/docs/api/management/v2/event-streams/post-event-streams).
//   - Log streams: type "http" with sink httpEndpoint, httpContentType,
//     httpContentFormat (JSONARRAY, JSONLINES, JSONOBJECT) and
//     httpAuthorization, returned as set; filters of {"type":"category",
//     "name"} (https://auth0.com/docs/customize/log-streams/event-filters).
//   - 429 answers carry X-RateLimit-Limit, X-RateLimit-Remaining and
//     X-RateLimit-Reset
//     (https://auth0.com/docs/troubleshoot/customer-support/operational-policies/rate-limit-policy);
//     see client.go for the retry policy.
package tenant

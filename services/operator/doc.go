// Package operator holds the operators' tools: over the dead-letter stream
// (select dead letters, replay them into SIGNUPS once their cause is fixed,
// and purge them; replay and purge act only on an explicit selection), the
// cutover report with its verification pass against Firebase, and the
// check for deletions no webhook reported. It also writes them out for the
// signupsync dlq and report commands: [WriteDeadLetters], [Report.WriteText],
// [Report.WriteJSON] and [Report.WriteCSVs].
//
// # Deletions no webhook reported
//
// Auth0 reports a deletion through Event Streams (user.deleted) and Log
// Streams (sdu, du); ingest publishes both and the importer deletes the
// account. One that neither delivered (a webhook outage longer than Auth0's
// retries, a stream paused or not configured yet, a deletion before
// signupsync ran) leaves a Firebase account for a person Auth0 no longer
// has. [FindDeletedInAuth0] finds them by asking the Management API for
// every user the ledger holds as imported, and lists the ones it answers
// 404 for.
//
// It asks for each user rather than searching Auth0's logs for sdu entries
// (GET /api/v2/logs?q=type:sdu in a window, checkpointed) because the
// question before cutover is "does Firebase hold anyone Auth0 deleted", and
// only the per-user check answers it whole: Auth0 keeps logs for 1 day
// (free), 5 (Essentials), 10 (Professional) or 30 days (Enterprise)
// (auth0.com/docs/deploy-monitor/logs/log-data-retention), so a log search misses every deletion older than
// the retention (a backfill's users deleted before the sweep first ran, a
// sweep down for longer than the retention), while a missing user is
// missing however long ago it went. It costs one request per imported user
// at the rate it is given (about 14 hours per 100,000 users at the free
// tier's 2 requests per second, minutes on paid tiers), which suits a
// check run before cutover and now and then until it, not every few
// minutes; the webhooks remain the fast path. It needs no NATS permission
// to publish and changes nothing: the list goes to the operator.
package operator

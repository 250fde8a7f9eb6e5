// Package reconciler finds the signups no webhook reported and publishes
// them, and fetches Auth0's users-export file for the backfill. A
// [Reconciler] runs in one of two modes, each round over a window of time
// kept by a checkpoint in the state bucket.
//
// # Sweep
//
// A sweep ([Reconciler.Sweep]) lists the users created in a window from the
// Auth0 Management API and publishes every user the importer's ledger does
// not know as a signup from source reconcile.
//
// Without gaps. Once a checkpoint exists it wins over Config.Since, however
// old it is, so an outage of reconcile longer than --since is swept in full
// when it ends. Every sweep starts Config.Lookback (10 minutes) before the
// checkpoint, because Auth0's search index lags: a user created just before
// the last window ended may have been indexed only after that window was
// listed. Re-listing is cheap (a ledger read per user the importer has
// recorded, a duplicate acknowledgement within SIGNUPS's duplicate window)
// and never imports twice. A sweep lists by a created_at cursor rather than
// by page number: each request asks for created_at:[cursor TO until}
// sorted by created_at, page 0, and the cursor moves to the last created_at
// seen, skipping the users at that millisecond it already handled. A user
// deleted while a sweep pages therefore shifts nothing past a page boundary,
// a query never reaches past Auth0's 1,000-result cap, and a window of any
// size needs no splitting. Only when a whole page shares one millisecond
// does the sweep page through that millisecond by number (up to the cap;
// users beyond 1,000 in one millisecond are reported as a dense window, for
// an export and a backfill).
//
// # Failed Event Streams deliveries
//
// Auth0 retries an Event Streams delivery a few times within seconds, then
// keeps it as failed; an ingest or NATS outage longer than that loses the
// user.created events. [Reconciler.RecoverDeliveries] (reconcile
// deliveries --stream-id est_…) lists the failed user.created deliveries of
// the stream in the window (paged by Auth0's next token, rate-limited,
// retried like the sweep) and publishes each event itself, normalised as
// ingest's receiver normalises it ([events.EventStreamSignup]: trigger
// user.created, the profile of the event) with the same Nats-Msg-Id. The
// subject is the reconciler's own, signups.v1.reconcile (source reconcile):
// it is what found the signup, and the one subject the reconcile role may
// publish on; the Msg-Id, not the subject, is what de-duplicates, so a
// delivery that reached ingest after all is a duplicate, not a second
// signup. It does not ask Auth0 to redeliver (the API can: auth0api's
// Redeliver and RedeliverMany) because redelivery goes through the very
// path that failed: while ingest, its load balancer or its token is what is
// broken, a redelivery fails again, and Auth0 only schedules it, with no
// answer to check. Publishing straight to JetStream needs only NATS and is
// acknowledged before the checkpoint moves. Events that fail the Event
// Streams schema are counted as invalid and skipped, as
// ingest would have refused them.
//
// # Checkpoints
//
// The end of a round's window is kept in the state bucket ([CheckpointKey]
// for the sweep, [DeliveriesCheckpointKey] per event stream), written only
// once the whole window is done: a round that fails or is interrupted is
// repeated from the same start. Repeating is safe. A user already in
// SIGNUPS within the duplicate window is acknowledged as a duplicate (the
// Nats-Msg-Id is derived from the user id), and beyond it the importer's
// ledger turns a second copy into already_present.
//
// # Reporting
//
// Every round ends with a [Result] handed to Deps.OnSweep: [Metrics]
// counts it for Prometheus, and [Result.WriteText] or [Result.WriteJSON]
// print its one line.
//
// [Export] runs a users-export job and writes its file; the backfill
// publishes the users in it.
package reconciler

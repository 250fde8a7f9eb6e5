// Package events is signupsync's messaging contract: the normalised signup
// event (a CloudEvents 1.0 structured JSON envelope), the subjects it is
// published on, the JetStream stream, consumer and key-value topology, the
// message headers, the Nats-Msg-Id rule that makes one signup one message,
// the ledger entry and the outcome vocabulary.
//
// Every service package imports events, and so do the internal packages
// that speak the contract: the Auth0 Management API client and export
// reader (internal/auth0api, internal/auth0export), the test harness
// (internal/testenv) and the benchmark (internal/bench). events itself
// imports only the standard library and the NATS client (nats.go and its
// jetstream package): not schemas, whose JSON Schemas its tests validate
// the golden files against, and not OpenTelemetry, whose propagators read
// and write trace context through [HeaderCarrier] without events naming
// them. Nothing in this package performs I/O except [Ensure].
//
// # Deduplication
//
// A signup is identified by its Auth0 user_id. [EventID] derives the event id
// from it, and the same value is sent as Nats-Msg-Id, so the same signup
// reported by the Action, by Event Streams and by Log Streams, or retried by
// any of them, is stored once while it falls inside the stream's duplicate
// window ([DefaultDuplicateWindow], 10 minutes). Ten minutes covers the spread
// between the three Auth0 sources for one signup (the Action fires within the
// login, Event Streams within seconds, Log Streams batch for up to a few
// minutes) and Auth0's own retry schedule for a failing webhook, while keeping
// the server's dedupe index small (about 600,000 ids at 1,000 signups/s).
// Beyond the window the importer's ledger and its Firebase look-ups make the
// second copy an already_present outcome instead of a second account.
//
// # Exactly once against production Firebase
//
// Production ImportUsers replaces an existing uid and stores a duplicate
// email as a second account, so look-ups are not enough when two importers
// look up at once. The claims of [ClaimKeys] (bucket [BucketClaims]) make
// one attempt, in any process, the only one that may create a given uid,
// provider identity or email; their lifecycle is documented there. None of
// the three look-ups per candidate (uid, provider identity, email) is made
// redundant by the claims or the ledger: both know only accounts signupsync
// created, and the look-ups exist for the accounts it did not (the one-time
// export, users who already signed in to the new app). What the claims do
// save is the per-process lock the importer had: batches of every worker and
// replica now look up and import side by side.
//
// # Delivery
//
// The importer's consumer has an unlimited server-side MaxDeliver; the
// importer enforces [Delivery.MaxDeliver] itself, so a signup whose last
// delivery could not be dead-lettered is delivered again rather than left
// without an outcome (see [Delivery.ConsumerConfig]). A decided ledger
// outcome is never downgraded ([Outcome.SupersededBy]).
//
// # Identity
//
// The user_id of a signup with a social primary identity (the only kind
// imported) is that identity's provider|user_id.
// [NewMsg] refuses a signup that contradicts it ([CheckPrimaryIdentity]),
// and the importer dead-letters one that reaches it anyway: the ledger is
// keyed by the user_id while Firebase is searched by the identity, so a
// mismatched pair would record another person's account. Email ownership,
// for linking to an existing account, is proven only by a provider that
// hosts the mailbox ([EmailAuthoritative]).
//
// # Entries kept by ingest
//
// SIGNUPS_DLQ also holds what ingest kept instead of refusing a batch: a
// signup entry of an Auth0 Log Streams batch that fails its schema or its
// identity check is published, exactly as Auth0 sent it, on
// dlq.signups.v1.log_stream with reason [ReasonInvalidEntry], the failing
// field in [HeaderDLQError] and no original subject or sequence. Refusing
// the batch would make Auth0 retry every other entry with it, and pause the
// stream after days of failures, so one bad entry would cost the signups
// beside it. Such a dead letter is not a signup event: dlq replay decodes
// the entry again with the receiver's current rules and publishes the
// signup it makes now, under its usual Msg-Id, or refuses the whole
// selection while any of its entries is still refused.
//
// # Lifecycle: deletions and profile changes until cutover
//
// Auth0 Event Streams user.updated and user.deleted, and the Log Streams
// user deletions (sdu, and the older du), are [Lifecycle] events on
// users.v1.<kind>.<source> in a stream of their own, [StreamLifecycle],
// consumed by the importer's second durable consumer, [ConsumerLifecycle].
// A stream of their own rather than more subjects in SIGNUPS, because
// everything that reads SIGNUPS reads it as signups: the importer's
// consumer filters signups.v1.>, but the operator's report, dlq replay,
// the backstop's message reads and the tests' drain check (the consumer's
// ack floor reaching the stream's last sequence) take any message of
// SIGNUPS for a signup, and a filtered consumer's ack floor need not move
// past messages outside its filter. The lifecycle stream also carries no
// personal data (a user id and a time), so its retention can be decided
// apart from the signups'.
//
// The Msg-Id rule ([LifecycleEventID]): a deletion is identified by the
// user id alone, so Event Streams and Log Streams reporting one deletion
// with different times, and their retries, are one message within the
// duplicate window; an update by the user id and Auth0's updated_at, so
// each distinct state is one message. Every event carries that time
// (LifecycleData.At): the importer never applies an update not newer than
// the last it applied ([LifecycleState].UpdatedAt), and a deletion ends
// the user's story: [OutcomeDeleted] is never superseded, so a signup that
// arrives after its user's deletion, from any source or replay, is skipped
// with reason deleted_in_auth0. The consumers are not ordered against each
// other; the ledger's compare-and-set is what orders a deletion and an
// import that cross, and the import that loses deletes the account it
// created. A lifecycle event that cannot be decoded is dead-lettered to
// SIGNUPS_DLQ (subject dlq.signups.v1.unknown, the original subject in
// [HeaderDLQSubject]).
//
// # Anonymous account merges
//
// The session bridge asks the app to merge a guest's Firebase anonymous
// account into the migrated account with an [AccountMerge] request on
// accounts.v1.merge.<anonymous key>, in a stream of its own,
// [StreamAccounts]; the app's worker answers with an acknowledgement on
// accounts.v1.merged.<anonymous key>. The request is published
// create-if-absent on its subject, so it is also the record that keeps a
// guest to one permanent account; accounts.go says why the stream, not a
// bucket, and why it keeps requests without an age limit.
package events

package importer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
)

// ledger reads and writes events.LedgerEntry values in the SIGNUPS_LEDGER
// bucket with optimistic concurrency, so importer replicas never lose each
// other's updates. It is safe for concurrent use.
type ledger struct {
	kv jetstream.KeyValue
}

// get returns the entry of an Auth0 user; found is false when there is none.
// Errors are transient: the bucket is part of the broker.
func (l *ledger) get(ctx context.Context, userID string) (events.LedgerEntry, bool, error) {
	e, _, found, err := l.getRev(ctx, userID)
	return e, found, err
}

func (l *ledger) getRev(ctx context.Context, userID string) (events.LedgerEntry, uint64, bool, error) {
	kve, err := l.kv.Get(ctx, events.LedgerKey(userID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return events.LedgerEntry{}, 0, false, nil
	}
	if err != nil {
		return events.LedgerEntry{}, 0, false, transient(fmt.Errorf("ledger get %s: %w", userID, err), 0)
	}
	e, err := events.UnmarshalLedger(kve.Value())
	if err != nil {
		// A corrupt entry is overwritten by the next record.
		return events.LedgerEntry{}, kve.Revision(), true, nil
	}
	return e, kve.Revision(), true, nil
}

// ledgerRead is an entry as read, with the revision to update it by.
type ledgerRead struct {
	entry events.LedgerEntry
	rev   uint64
	found bool
}

// ledgerUpdate is what one settled signup adds to its user's entry.
type ledgerUpdate struct {
	// read, when set, is the entry as the importer read it earlier in the
	// batch: the first compare-and-set uses it instead of reading again.
	read *ledgerRead

	userID      string
	outcome     events.Outcome
	reason      string
	detail      string
	firebaseUID string
	sources     []events.Source
	deliveries  int
	traceID     string
	at          time.Time
}

// merge folds u into e. A decided outcome is never downgraded (see
// events.Outcome.SupersededBy): a later copy that does not supersede it is
// recorded as seen only.
func merge(e events.LedgerEntry, found bool, u ledgerUpdate) events.LedgerEntry {
	if !found {
		e = events.LedgerEntry{Auth0UserID: u.userID, FirstSeen: u.at}
	}
	for _, s := range u.sources {
		e.AddSource(s)
	}
	if e.Sources == nil {
		e.Sources = []events.Source{}
	}
	e.Deliveries += u.deliveries
	e.LastSeen = u.at
	if !found || e.SupersededBy(u.outcome, u.reason) {
		e.Outcome, e.Reason, e.Detail = u.outcome, u.reason, u.detail
		if u.firebaseUID != "" || !u.outcome.Final() {
			e.FirebaseUID = u.firebaseUID
		}
		if u.traceID != "" {
			e.TraceID = u.traceID
		}
	}
	return e
}

// record merges u into the stored entry, retrying on concurrent writers.
func (l *ledger) record(ctx context.Context, u ledgerUpdate) (events.LedgerEntry, error) {
	key := events.LedgerKey(u.userID)
	for attempt := 0; ; attempt++ {
		var cur events.LedgerEntry
		var rev uint64
		var found bool
		var err error
		if attempt == 0 && u.read != nil {
			cur, rev, found = u.read.entry, u.read.rev, u.read.found
		} else if cur, rev, found, err = l.getRev(ctx, u.userID); err != nil {
			return events.LedgerEntry{}, err
		}
		next := merge(cur, found, u)
		b, err := events.MarshalLedger(next)
		if err != nil {
			return events.LedgerEntry{}, err
		}
		if found {
			_, err = l.kv.Update(ctx, key, b, rev)
		} else {
			_, err = l.kv.Create(ctx, key, b)
		}
		if err == nil {
			return next, nil
		}
		conflict := errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err)
		if !conflict || attempt >= 8 {
			return events.LedgerEntry{}, transient(fmt.Errorf("ledger write %s: %w", u.userID, err), 0)
		}
	}
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

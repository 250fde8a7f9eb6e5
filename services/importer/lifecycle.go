package importer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/signupsync/signupsync/events"
)

// Until cutover Firebase follows Auth0 for the accounts signupsync created.
// A second durable consumer (events.ConsumerLifecycle on
// SIGNUPS_LIFECYCLE) takes Auth0's deletions and profile changes:
//
//   - a deletion deletes the Firebase account when the ledger says
//     signupsync created it (outcome imported), many at once with one
//     DeleteUsers call, and leaves in the ledger outcome deleted with times
//     only. A deletion that arrives before the signup is recorded, and the
//     signup is then skipped (deleted_in_auth0). Any other user (skipped,
//     conflict, dead_lettered, an account signupsync did not create) is
//     recorded; Firebase is not touched;
//   - an update re-reads the profile from the Management API (never the
//     webhook body) and applies email, verification, name and picture to
//     the account signupsync created. A new email that belongs to another
//     Firebase account is recorded as email_conflict and the account is
//     left untouched. An identity linked in Auth0 since is linked to the
//     account only under the link policy's proof rules, else recorded as
//     identity_conflict or identity_unproven (lifecycle_identity.go).
//     An update not newer than the last one applied (Auth0's updated_at)
//     is ignored. An update of a user whose signup is not settled yet is
//     recorded and checked again once after AckWait: the signup then
//     either re-reads the profile or has landed and is updated.
//
// Every event is acknowledged only after its user's ledger entry is
// written; Firebase calls go through the signup path's breaker and rate
// limiter, DeleteUsers also through its own limiter (production allows one
// request per second).

// AccountDeleter is the part of the Firebase Auth client the lifecycle
// consumer adds to [Accounts]. *auth.Client satisfies it.
type AccountDeleter interface {
	DeleteUser(ctx context.Context, uid string) error
	DeleteUsers(ctx context.Context, uids []string) (*auth.DeleteUsersResult, error)
}

// LifecycleConfig configures the lifecycle consumer.
type LifecycleConfig struct {
	// Enabled starts the lifecycle consumer with the importer.
	Enabled bool
	// BatchSize is the most lifecycle events fetched at once, and so the
	// most accounts deleted in one DeleteUsers call (≤ 1000).
	BatchSize int
	// DeleteUsersRPS limits DeleteUsers calls per second (production: 1);
	// 0 means unlimited. Single deletes share the importer's FirebaseRPS.
	DeleteUsersRPS float64
}

// DefaultLifecycleConfig is enabled, 1000 events per batch, one
// DeleteUsers call per second.
func DefaultLifecycleConfig() LifecycleConfig {
	return LifecycleConfig{Enabled: true, BatchSize: 1000, DeleteUsersRPS: 1}
}

// Validate reports an unusable lifecycle configuration.
func (c LifecycleConfig) Validate() error {
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > 1000 {
		errs = append(errs, fmt.Errorf("lifecycle batch size %d: must be 1 to 1000", c.BatchSize))
	}
	if c.DeleteUsersRPS < 0 {
		errs = append(errs, errors.New("lifecycle DeleteUsers rate must not be negative"))
	}
	return errors.Join(errs...)
}

// lifecycle is the importer's lifecycle consumer state.
type lifecycle struct {
	cons    jetstream.Consumer
	deleter AccountDeleter
	bulk    *rate.Limiter
	total   *prometheus.CounterVec
}

// setupLifecycle creates the lifecycle consumer when enabled. The deleter
// is deps.Deleter, else deps.Accounts when it can delete; without one the
// consumer is not started and a warning says so.
func (im *Importer) setupLifecycle(ctx context.Context, deps Deps) error {
	if !im.cfg.Lifecycle.Enabled {
		return nil
	}
	del := deps.Deleter
	if del == nil {
		del, _ = deps.Accounts.(AccountDeleter)
	}
	if del == nil {
		im.log.WarnContext(ctx, "lifecycle consumer off: the Firebase client cannot delete accounts")
		return nil
	}
	cons, err := deps.JetStream.CreateOrUpdateConsumer(ctx, events.StreamLifecycle, im.cfg.Delivery.LifecycleConsumerConfig())
	if err != nil {
		return fmt.Errorf("lifecycle consumer: %w", err)
	}
	limit := rate.Inf
	if r := im.cfg.Lifecycle.DeleteUsersRPS; r > 0 {
		limit = rate.Limit(r)
	}
	total := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "signupsync", Subsystem: "importer", Name: "lifecycle_total",
		Help: "Settled lifecycle events (Auth0 deletions and profile changes) by kind and result.",
	}, []string{"kind", "result"})
	if reg := im.metrics.reg; reg != nil {
		if err := reg.Register(total); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("register lifecycle metrics: %w", err)
			}
			total = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	im.lc = &lifecycle{cons: cons, deleter: del, bulk: rate.NewLimiter(limit, 1), total: total}
	return nil
}

// runLifecycle starts one lifecycle worker on wg when the consumer exists.
// Lifecycle events are few next to signups; more replicas add workers.
func (im *Importer) runLifecycle(ctx context.Context, wg *sync.WaitGroup) {
	if im.lc == nil {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		im.fetchLoop(ctx, "lifecycle", im.lc.cons, im.cfg.Lifecycle.BatchSize, max(im.cfg.BatchWindow, 100*time.Millisecond), im.processLifecycle)
	}()
}

// lcItem is one lifecycle message.
type lcItem struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
	ev   events.Lifecycle
	ctx  context.Context
	span trace.Span
}

// lcUser is the work of one user in a batch: its events, oldest first,
// its ledger entry and the decision.
type lcUser struct {
	id    string
	items []*lcItem
	read  *ledgerRead

	deleteUID string    // the Firebase account to delete, if any
	deleteAt  time.Time // Auth0's deletion time
	deleted   bool      // deleteUID is gone
	newest    time.Time // the newest update
	result    string
	detail    string
	synced    bool // Firebase was written for an update
	write     bool // the ledger entry changes
	recheck   bool // redeliver once after recheckIn: the signup may be importing
	recheckIn time.Duration
	err       error
	dead      bool // err is permanent
}

// processLifecycle settles one batch of lifecycle messages.
func (im *Importer) processLifecycle(ctx context.Context, msgs []jetstream.Msg) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), im.cfg.Delivery.AckWait*4/5)
	defer cancel()
	by := map[string]*lcUser{}
	var users []*lcUser
	for _, m := range msgs {
		it := im.openLifecycle(bctx, m)
		if it == nil {
			continue
		}
		u, ok := by[it.ev.Subject]
		if !ok {
			u = &lcUser{id: it.ev.Subject}
			by[it.ev.Subject] = u
			users = append(users, u)
		}
		u.items = append(u.items, it)
	}
	var mu sync.Mutex
	var toDelete []*lcUser
	parallelDo(users, im.cfg.Concurrency, func(u *lcUser) {
		slices.SortFunc(u.items, func(a, b *lcItem) int { return a.ev.Data.At.Compare(b.ev.Data.At) })
		im.decideLifecycle(bctx, u)
		if u.deleteUID != "" && u.err == nil {
			mu.Lock()
			toDelete = append(toDelete, u)
			mu.Unlock()
		}
	})
	im.deleteAccounts(bctx, im.skipGone(bctx, toDelete))
	parallelDo(users, im.cfg.Concurrency, func(u *lcUser) { im.settleLifecycle(bctx, u) })
}

// skipGone returns the users whose account is still to be deleted. A
// redelivered deletion may have been applied by a process that died before
// recording it: its account is looked up first (100 uids a call) and, when
// gone, counted deleted without a second delete call.
func (im *Importer) skipGone(ctx context.Context, users []*lcUser) []*lcUser {
	var again []*lcUser
	for _, u := range users {
		if slices.ContainsFunc(u.items, func(it *lcItem) bool { return deliveriesOf(it.meta) > 1 }) {
			again = append(again, u)
		}
	}
	if len(again) == 0 {
		return users
	}
	gone := map[*lcUser]bool{}
	for chunk := range slices.Chunk(again, 100) {
		ids := make([]auth.UserIdentifier, len(chunk))
		for i, u := range chunk {
			ids[i] = auth.UIDIdentifier{UID: u.deleteUID}
		}
		var res *auth.GetUsersResult
		err := im.firebase(ctx, "GetUsers", func(ctx context.Context) error {
			r, err := im.accounts.GetUsers(ctx, ids)
			res = r
			return classifyFirebase("GetUsers", err)
		})
		if err != nil {
			continue // delete as planned: deleting a missing account is harmless
		}
		present := map[string]bool{}
		for _, rec := range res.Users {
			present[rec.UID] = true
		}
		for _, u := range chunk {
			if !present[u.deleteUID] {
				gone[u], u.deleted = true, true
			}
		}
	}
	return slices.DeleteFunc(users, func(u *lcUser) bool { return gone[u] })
}

// openLifecycle decodes a message and starts its consumer span. A message
// that is not a lifecycle event is dead-lettered here and nil returned.
func (im *Importer) openLifecycle(bctx context.Context, m jetstream.Msg) *lcItem {
	it := &lcItem{msg: m}
	var err error
	it.ctx, it.span, it.meta, err = im.consume(bctx, nil, m)
	if err == nil {
		it.ev, err = events.DecodeLifecycle(m.Data())
	}
	if err != nil {
		im.deadLetterLifecycle(bctx, it, events.ReasonMalformedEvent, err)
		return nil
	}
	it.span.SetAttributes(attribute.String("signupsync.event_id", it.ev.ID), attribute.String("signupsync.lifecycle", string(it.ev.Data.Kind)))
	return it
}

// decideLifecycle reads the user's ledger entry and decides what the
// batch's events of the user mean. Updates are applied here; deletions
// are collected for one bulk call.
func (im *Importer) decideLifecycle(ctx context.Context, u *lcUser) {
	e, rev, found, err := im.ledger.getRev(ctx, u.id)
	if err != nil {
		u.err = err
		return
	}
	u.read = &ledgerRead{entry: e, rev: rev, found: found}
	var lc events.LifecycleState
	if e.Lifecycle != nil {
		lc = *e.Lifecycle
	}
	for _, it := range u.items {
		switch it.ev.Data.Kind {
		case events.LifecycleDeleted:
			if u.deleteAt.IsZero() {
				u.deleteAt = it.ev.Data.At
			}
		case events.LifecycleUpdated:
			if it.ev.Data.At.After(u.newest) {
				u.newest = it.ev.Data.At
			}
		}
	}
	switch {
	case found && e.Outcome == events.OutcomeDeleted:
		u.result = events.LifecycleAfterDeletion
		switch {
		case lc.OrphanUID != "":
			// An import that landed after the deletion, not deleted yet.
			u.deleteUID, u.result, u.write = lc.OrphanUID, events.LifecycleFirebaseDeleted, true
		case lc.Result == events.LifecycleDeletedBeforeImport && !u.deleteAt.IsZero():
			// Deleted before any import was recorded; an import that got
			// no answer may have landed since (see the recheck below).
			// Only a deletion event looks, so that an update redelivered
			// meanwhile does not delete the same account a second time.
			im.findLandedImport(ctx, u, e)
		}
	case !u.deleteAt.IsZero():
		u.write = true
		switch {
		case !found || e.Outcome == "":
			u.result = events.LifecycleDeletedBeforeImport
			// Signups settled from now on are skipped, but an import sent
			// before now that got no answer may still land, up to
			// AmbiguousWait after it was sent and recorded nowhere: look
			// for it once more after that (findLandedImport).
			u.recheck = slices.ContainsFunc(u.items, func(it *lcItem) bool { return deliveriesOf(it.meta) == 1 })
			u.recheckIn = im.cfg.AmbiguousWait + im.cfg.DeferDelay
		case e.Outcome == events.OutcomeImported:
			u.deleteUID, u.result = im.firebaseUID(e), events.LifecycleFirebaseDeleted
		default:
			u.result = events.LifecycleNotOurs
		}
	case !found || e.Outcome == "":
		// No signup of the user is settled yet, but one may be on its way:
		// signups and lifecycle events are consumed independently. The
		// update is recorded, so a signup settled later re-reads the
		// profile (rereadReason), and redelivered once after AckWait, so
		// an import in flight now is updated when it has landed.
		u.result, u.write = events.LifecycleUnknownUser, true
		// Checked again every AckWait until a signup is settled or
		// MaxDeliver is reached: an import can take several attempts (a
		// claim held by a process that died, an outage), and an update
		// acknowledged before its import is applied would be lost if the
		// import then finds an account an earlier attempt left with the
		// old profile.
		u.recheck = slices.ContainsFunc(u.items, func(it *lcItem) bool { return int(deliveriesOf(it.meta)) < im.cfg.Delivery.MaxDeliver })
		u.recheckIn = im.cfg.Delivery.AckWait
	case e.Outcome != events.OutcomeImported:
		u.result, u.write = events.LifecycleNotOurs, u.newest.After(lc.UpdatedAt)
	case !u.newest.After(lc.UpdatedAt) && lc.Result != events.LifecycleUnknownUser:
		// (An update recorded before the import was applied to nothing.)
		u.result = events.LifecycleStale
	case im.enricher == nil:
		u.result, u.write = events.LifecycleNoManagementAPI, true
	default:
		u.write = true
		im.applyUpdate(ctx, u, im.firebaseUID(e))
	}
}

// findLandedImport looks for an account of u that an import which got no
// answer created after u was recorded deleted: at the policy uid, carrying
// signupsync's claim for u. Found, it is deleted like an orphan.
func (im *Importer) findLandedImport(ctx context.Context, u *lcUser, e events.LedgerEntry) {
	uid := e.FirebaseUID
	if uid == "" {
		uid = im.cfg.UIDPolicy.FirebaseUID(u.id)
	}
	var res *auth.GetUsersResult
	err := im.firebase(ctx, "GetUsers", func(ctx context.Context) error {
		r, err := im.accounts.GetUsers(ctx, []auth.UserIdentifier{auth.UIDIdentifier{UID: uid}})
		res = r
		return classifyFirebase("GetUsers", err)
	})
	if err != nil {
		u.err, u.dead = err, !IsTransient(err)
		return
	}
	for _, rec := range res.Users {
		if rec.UID == uid && ours(rec, u.id) {
			u.deleteUID, u.result, u.write = uid, events.LifecycleFirebaseDeleted, true
		}
	}
}

// firebaseUID is the account signupsync created for the entry's user.
func (im *Importer) firebaseUID(e events.LedgerEntry) string {
	if e.FirebaseUID != "" {
		return e.FirebaseUID
	}
	return im.cfg.UIDPolicy.FirebaseUID(e.Auth0UserID)
}

// applyUpdate re-reads u's profile from the Management API and applies
// it to the account uid. A user Auth0 no longer has is deleted instead.
func (im *Importer) applyUpdate(ctx context.Context, u *lcUser, uid string) {
	ctx, span := im.tracer.Start(ctx, "auth0 get user", trace.WithSpanKind(trace.SpanKindClient))
	d, err := im.enricher.GetUser(ctx, u.id)
	span.End()
	switch {
	case errors.Is(err, ErrUserGone):
		// Deleted in Auth0 since. Its deletion event, which Auth0 sends
		// for every deletion, deletes the account; applied from here at
		// the same time too, the account would be deleted twice. So the
		// update waits one AckWait and deletes only if no deletion was
		// recorded meanwhile (a lost deletion event).
		if slices.ContainsFunc(u.items, func(it *lcItem) bool { return deliveriesOf(it.meta) == 1 }) {
			u.result, u.write, u.recheck, u.recheckIn = events.LifecycleUnknownUser, false, true, im.cfg.Delivery.AckWait
			return
		}
		u.deleteUID, u.deleteAt, u.result = uid, u.newest, events.LifecycleFirebaseDeleted
		return
	case err != nil:
		u.err, u.dead = fmt.Errorf("re-read %s: %w", u.id, err), !IsTransient(err)
		return
	}
	ids := []auth.UserIdentifier{auth.UIDIdentifier{UID: uid}}
	if d.Email != "" && validEmail(d.Email) {
		ids = append(ids, auth.EmailIdentifier{Email: d.Email})
	}
	var res *auth.GetUsersResult
	err = im.firebase(ctx, "GetUsers", func(ctx context.Context) error {
		r, err := im.accounts.GetUsers(ctx, ids)
		res = r
		return classifyFirebase("GetUsers", err)
	})
	if err != nil {
		u.err, u.dead = err, !IsTransient(err)
		return
	}
	var cur *auth.UserRecord
	for _, r := range res.Users {
		if r.UID == uid {
			cur = r
		}
	}
	if cur == nil {
		u.result = events.LifecycleAccountMissing
		return
	}
	for _, r := range res.Users {
		if r.UID != uid && d.Email != "" && strings.EqualFold(r.Email, d.Email) {
			u.result, u.detail = events.LifecycleEmailConflict, "the new email belongs to firebase uid "+r.UID
			return
		}
	}
	// Identities linked in Auth0 since (lifecycle_identity.go), decided
	// on the account as it is before this update.
	plan, err := im.planIdentities(ctx, uid, cur, d)
	if err != nil {
		u.err, u.dead = err, !IsTransient(err)
		return
	}
	base := events.LifecycleUnchanged
	if upd, changed := profileUpdate(cur, d); changed {
		err = im.firebase(ctx, "UpdateUser", func(ctx context.Context) error {
			_, err := im.accounts.UpdateUser(ctx, uid, upd)
			switch {
			case auth.IsEmailAlreadyExists(err):
				return errEmailTaken
			case auth.IsUserNotFound(err):
				return errAccountMissing
			}
			return classifyFirebase("UpdateUser", err)
		})
		switch {
		case errors.Is(err, errEmailTaken):
			u.result, u.detail = events.LifecycleEmailConflict, "the new email belongs to another firebase account"
			return
		case errors.Is(err, errAccountMissing):
			u.result = events.LifecycleAccountMissing
			return
		case err != nil:
			u.err, u.dead = err, !IsTransient(err)
			return
		}
		base, u.synced = events.LifecycleProfileUpdated, true
	}
	switch err := im.linkIdentities(ctx, uid, d, &plan); {
	case errors.Is(err, errAccountMissing):
		u.result = events.LifecycleAccountMissing
		return
	case err != nil:
		u.err, u.dead = err, !IsTransient(err)
		return
	}
	u.synced = u.synced || plan.linked
	u.result, u.detail = plan.result(base)
}

var (
	errEmailTaken     = errors.New("email already exists")
	errAccountMissing = errors.New("firebase account does not exist")
	// errLedgerMoved: the entry changed between the decision and its
	// write (a signup settled meanwhile); the events are decided again.
	errLedgerMoved = errors.New("ledger entry changed; deciding again")
)

// profileUpdate is what changes on cur to match the Auth0 profile d:
// email and its verification, display name, photo.
func profileUpdate(cur *auth.UserRecord, d events.SignupData) (*auth.UserToUpdate, bool) {
	upd := &auth.UserToUpdate{}
	changed := false
	emailChanged := d.Email != "" && !strings.EqualFold(d.Email, cur.Email)
	if emailChanged {
		upd.Email(d.Email)
		changed = true
	}
	// Firebase resets email_verified when the email changes: send it with
	// every new email, not only when it differs from the account's.
	if emailChanged || d.EmailVerified != cur.EmailVerified {
		upd.EmailVerified(d.EmailVerified)
		changed = true
	}
	if d.Name != "" && d.Name != cur.DisplayName {
		upd.DisplayName(d.Name)
		changed = true
	}
	if d.Picture != "" && d.Picture != cur.PhotoURL {
		upd.PhotoURL(d.Picture)
		changed = true
	}
	return upd, changed
}

// deleteAccounts deletes the accounts of users: one DeleteUser for a
// single account, DeleteUsers (behind its own limiter) for several. An
// account already gone counts as deleted.
func (im *Importer) deleteAccounts(ctx context.Context, users []*lcUser) {
	if len(users) == 1 {
		u := users[0]
		err := im.firebase(ctx, "DeleteUser", func(ctx context.Context) error {
			err := im.lc.deleter.DeleteUser(ctx, u.deleteUID)
			if auth.IsUserNotFound(err) {
				return nil
			}
			return classifyFirebase("DeleteUser", err)
		})
		u.deleted, u.err, u.dead = err == nil, err, err != nil && !IsTransient(err)
		return
	}
	for chunk := range slices.Chunk(users, 1000) {
		uids := make([]string, len(chunk))
		for i, u := range chunk {
			uids[i] = u.deleteUID
		}
		if err := im.lc.bulk.Wait(ctx); err != nil {
			for _, u := range chunk {
				u.err = transient(err, 0)
			}
			continue
		}
		var res *auth.DeleteUsersResult
		err := im.firebase(ctx, "DeleteUsers", func(ctx context.Context) error {
			r, err := im.lc.deleter.DeleteUsers(ctx, uids)
			res = r
			return classifyFirebase("DeleteUsers", err)
		})
		failed := map[int]string{}
		if err == nil {
			for _, e := range res.Errors {
				failed[e.Index] = e.Reason
			}
		}
		for i, u := range chunk {
			switch reason, bad := failed[i]; {
			case err != nil:
				u.err, u.dead = err, !IsTransient(err)
			case bad:
				u.err, u.dead = fmt.Errorf("firebase refused to delete %s: %s", u.deleteUID, reason), true
			default:
				u.deleted = true
			}
		}
	}
}

// settleLifecycle writes u's ledger entry and settles its messages: ack
// when the entry is durable, nak (or dead-letter at MaxDeliver) on a
// transient failure, dead-letter on a permanent one.
func (im *Importer) settleLifecycle(ctx context.Context, u *lcUser) {
	defer func() {
		for _, it := range u.items {
			it.span.End()
		}
	}()
	if u.err == nil && u.write {
		_, u.err = im.ledger.update(ctx, u.id, u.read, func(e events.LedgerEntry, found bool) (events.LedgerEntry, error) {
			if found != u.read.found || e.Outcome != u.read.entry.Outcome {
				return e, transient(errLedgerMoved, im.cfg.DeferDelay)
			}
			return lifecycleMerge(e, found, u, im.now()), nil
		})
	}
	if u.err != nil {
		for _, it := range u.items {
			recordError(it.span, u.err)
			switch {
			case u.dead:
				im.deadLetterLifecycle(ctx, it, events.ReasonPermanentError, u.err)
			case it.meta != nil && int(it.meta.NumDelivered) >= im.cfg.Delivery.MaxDeliver:
				im.deadLetterLifecycle(ctx, it, events.ReasonMaxDeliveries, u.err)
			default:
				im.metrics.nak("transient")
				_ = it.msg.NakWithDelay(max(im.cfg.Delivery.Delay(deliveriesOf(it.meta)), retryAfter(u.err)))
			}
		}
		im.log.WarnContext(ctx, "lifecycle event not settled", "auth0_user_id", u.id, "err", u.err)
		return
	}
	if u.recheck {
		for _, it := range u.items {
			im.metrics.nak("deferred")
			_ = it.msg.NakWithDelay(u.recheckIn)
		}
		im.log.InfoContext(ctx, "lifecycle event of a user without a settled signup; checking again later", "auth0_user_id", u.id, "in", u.recheckIn.String())
		return
	}
	for i, it := range u.items {
		result := u.result
		// Older updates of the user in the batch were folded into the
		// newest: they are stale, the newest carries the result.
		if it.ev.Data.Kind == events.LifecycleUpdated && u.deleteAt.IsZero() && i < len(u.items)-1 && it.ev.Data.At.Before(u.newest) {
			result = events.LifecycleStale
		}
		it.span.SetAttributes(attribute.String("signupsync.lifecycle.result", result))
		if err := it.msg.Ack(); err != nil {
			im.log.WarnContext(it.ctx, "lifecycle ack failed; a redelivery is settled from the ledger", "err", err)
		}
		im.lc.total.WithLabelValues(string(it.ev.Data.Kind), result).Inc()
	}
	im.log.InfoContext(ctx, "lifecycle settled", "auth0_user_id", u.id, "result", u.result, "events", len(u.items))
}

// lifecycleMerge folds u's decision into the user's entry e (as read
// again on a concurrent write).
func lifecycleMerge(e events.LedgerEntry, found bool, u *lcUser, now time.Time) events.LedgerEntry {
	if !found {
		e = events.LedgerEntry{Auth0UserID: u.id, FirstSeen: now, Sources: []events.Source{}}
	}
	var lc events.LifecycleState
	if e.Lifecycle != nil {
		lc = *e.Lifecycle
	}
	lc.Events += len(u.items)
	lc.Result, lc.Detail = u.result, u.detail
	e.LastSeen = now
	if u.newest.After(lc.UpdatedAt) {
		lc.UpdatedAt = u.newest
	}
	if u.synced {
		lc.SyncedAt = now
	}
	if !u.deleteAt.IsZero() && lc.DeletedAt.IsZero() {
		lc.DeletedAt = u.deleteAt
	}
	if u.deleted {
		lc.FirebaseDeletedAt = now
		if lc.OrphanUID == u.deleteUID {
			lc.OrphanUID = ""
		}
	}
	// A deletion ends the user's story, except for an account signupsync
	// did not create (already_present), whose outcome stays.
	if !u.deleteAt.IsZero() && e.Outcome != events.OutcomeDeleted && e.Outcome != events.OutcomeAlreadyPresent {
		lc.OutcomeBefore = e.Outcome
		e.Outcome, e.Reason, e.Detail = events.OutcomeDeleted, events.ReasonDeletedInAuth0, ""
	}
	e.Lifecycle = &lc
	return e
}

// deadLetterLifecycle copies a lifecycle message to SIGNUPS_DLQ (its
// original subject in the headers) and terminates it; if the copy cannot
// be written it naks.
func (im *Importer) deadLetterLifecycle(ctx context.Context, it *lcItem, reason string, cause error) {
	defer func() {
		if it.ev.ID == "" {
			it.span.End()
		}
	}()
	if err := deadLetter(ctx, im.js, it.msg, it.meta, reason, cause, im.now()); err != nil {
		im.log.ErrorContext(it.ctx, "lifecycle dead letter not written; retrying later", "err", err)
		_ = it.msg.NakWithDelay(im.cfg.Delivery.Delay(deliveriesOf(it.meta)))
		return
	}
	im.metrics.deadLettered(reason)
	recordError(it.span, cause)
	if err := it.msg.Term(); err != nil {
		im.log.WarnContext(it.ctx, "term failed", "err", err)
	}
	kind := string(it.ev.Data.Kind)
	if kind == "" {
		kind = "unknown"
	}
	if im.lc != nil {
		im.lc.total.WithLabelValues(kind, string(events.OutcomeDeadLettered)).Inc()
	}
}

func deliveriesOf(meta *jetstream.MsgMetadata) uint64 {
	if meta == nil {
		return 1
	}
	return meta.NumDelivered
}

// parallelDo runs fn over xs with at most n at once.
func parallelDo[T any](xs []T, n int, fn func(T)) {
	sem := make(chan struct{}, max(1, n))
	var wg sync.WaitGroup
	for _, x := range xs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(x)
		}()
	}
	wg.Wait()
}

// undoLateImport deletes an account the signup path imported after its
// user was recorded deleted (the signup and the deletion crossed: entry is
// what the signup's ledger write found). It reports whether the signup may
// be acknowledged: false when the account could not be deleted, which is
// then recorded as the entry's OrphanUID for the next attempt.
func (im *Importer) undoLateImport(ctx context.Context, userID, uid string, read *ledgerRead) bool {
	if im.lc == nil {
		return true
	}
	err := im.firebase(ctx, "DeleteUser", func(ctx context.Context) error {
		err := im.lc.deleter.DeleteUser(ctx, uid)
		if auth.IsUserNotFound(err) {
			return nil
		}
		return classifyFirebase("DeleteUser", err)
	})
	_, werr := im.ledger.update(ctx, userID, read, func(e events.LedgerEntry, found bool) (events.LedgerEntry, error) {
		if e.Lifecycle == nil {
			e.Lifecycle = &events.LifecycleState{}
		}
		lc := *e.Lifecycle
		if err == nil {
			lc.FirebaseDeletedAt, lc.OrphanUID, lc.Result = im.now(), "", events.LifecycleFirebaseDeleted
		} else {
			lc.OrphanUID = uid
		}
		e.Lifecycle = &lc
		return e, nil
	})
	if err != nil || werr != nil {
		im.log.WarnContext(ctx, "account imported after its user was deleted is not deleted yet", "auth0_user_id", userID, "err", errors.Join(err, werr))
		return false
	}
	im.lc.total.WithLabelValues(string(events.LifecycleDeleted), events.LifecycleFirebaseDeleted).Inc()
	return true
}

// update applies fn to the stored entry of userID with compare-and-set,
// starting from read when given, retrying on concurrent writers. An error
// of fn stops it and is returned.
func (l *ledger) update(ctx context.Context, userID string, read *ledgerRead, fn func(events.LedgerEntry, bool) (events.LedgerEntry, error)) (events.LedgerEntry, error) {
	key := events.LedgerKey(userID)
	for attempt := 0; ; attempt++ {
		var cur events.LedgerEntry
		var rev uint64
		var found bool
		var err error
		if attempt == 0 && read != nil {
			cur, rev, found = read.entry, read.rev, read.found
		} else if cur, rev, found, err = l.getRev(ctx, userID); err != nil {
			return events.LedgerEntry{}, err
		}
		next, err := fn(cur, found)
		if err != nil {
			return events.LedgerEntry{}, err
		}
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
			return events.LedgerEntry{}, transient(fmt.Errorf("ledger write %s: %w", userID, err), 0)
		}
	}
}

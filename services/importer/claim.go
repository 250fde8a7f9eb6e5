package importer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
)

// errClaimBusy marks a signup that waits for another attempt holding one of
// its claims (another copy of the same user, or another user with the same
// email, being imported elsewhere). Waiting is not a failure: it never
// counts towards the importer's own MaxDeliver.
var errClaimBusy = errors.New("another import holds this uid, provider identity or email")

// heldClaim is a claim key this attempt holds, with the revision that
// releases it.
type heldClaim struct {
	key string
	rev uint64
}

// claim takes every claim key of a candidate in SIGNUPS_CLAIMS (the
// lifecycle is documented with events.ClaimKeys). It leaves the item
// undecided when all are held; otherwise it decides it: already_present
// when another copy of the same user has been imported meanwhile, a wait
// (errClaimBusy) while another attempt may still be importing, a transient
// retry when the bucket fails.
func (im *Importer) claim(ctx context.Context, it *item) {
	holder := events.ClaimHolder(it.meta.Stream, it.meta.Sequence.Stream)
	val, err := events.MarshalClaim(events.Claim{Auth0UserID: it.ev.Subject, FirebaseUID: it.uid, Holder: holder, At: im.now()})
	if err != nil {
		it.retry(err, 0)
		return
	}
	for _, k := range events.ClaimKeys(it.uid, it.elig.FirebaseProvider, it.elig.Identity.UserID, it.data.Email) {
		if !im.claimKey(ctx, it, k, holder, val) {
			return
		}
	}
}

// claimKey takes one key; it reports whether the item holds it (else the
// item is decided).
func (im *Importer) claimKey(ctx context.Context, it *item, k events.ClaimKey, holder string, val []byte) bool {
	for range 4 {
		rev, err := im.claims.Create(ctx, k.Key, val)
		if err == nil {
			it.claims = append(it.claims, heldClaim{k.Key, rev})
			return true
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			it.retry(transient(fmt.Errorf("claim %s: %w", k.Kind, err), 0), 0)
			return false
		}
		e, err := im.claims.Get(ctx, k.Key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // expired or released meanwhile: create again
		}
		if err != nil {
			it.retry(transient(fmt.Errorf("read claim %s: %w", k.Kind, err), 0), 0)
			return false
		}
		cur, derr := events.UnmarshalClaim(e.Value())
		if derr == nil && cur.Holder != holder {
			le, found, err := im.ledger.get(ctx, cur.Auth0UserID)
			if err != nil {
				it.retry(err, 0)
				return false
			}
			if !found || !le.Outcome.Final() {
				// The holder may still be importing; never import past it.
				wait := max(im.cfg.DeferDelay, min(time.Until(e.Created().Add(im.claimTTL)), im.cfg.Delivery.Delay(deliveries(it))))
				it.retry(fmt.Errorf("%w (%s)", errClaimBusy, k.Kind), wait)
				return false
			}
			if cur.Auth0UserID == it.ev.Subject {
				// Another copy of this user was imported meanwhile.
				it.settle(events.OutcomeAlreadyPresent, events.ReasonLedger, le.FirebaseUID, "")
				return false
			}
			// The holder's import is over and in the ledger: its account is
			// visible to the look-up that follows, so the key can change hands.
		}
		// Taken over with a compare-and-set: from a finished holder, from an
		// earlier delivery of this very message, or from an unreadable value.
		rev, err = im.claims.Update(ctx, k.Key, val, e.Revision())
		if err == nil {
			it.claims = append(it.claims, heldClaim{k.Key, rev})
			return true
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			it.retry(transient(fmt.Errorf("take over claim %s: %w", k.Kind, err), 0), 0)
			return false
		}
		// Someone else changed the key meanwhile: look again.
	}
	it.retry(fmt.Errorf("%w (%s, contended)", errClaimBusy, k.Kind), im.cfg.DeferDelay)
	return false
}

// releaseClaims deletes the claims of an attempt whose outcome leaves no
// account, so the next claimant need not wait for them to expire. A failed
// delete is harmless: the claim expires.
func (im *Importer) releaseClaims(ctx context.Context, it *item) {
	for _, c := range it.claims {
		if err := im.claims.Delete(ctx, c.key, jetstream.LastRevision(c.rev)); err != nil {
			im.log.DebugContext(it.ctx, "claim not released; it expires", "err", err)
		}
	}
	it.claims = nil
}

package importer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go"
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
	kind events.ClaimKind
	key  string
	rev  uint64
}

// claimSubjectPrefix is the subject of a claim key in the bucket's stream.
const claimSubjectPrefix = "$KV." + events.BucketClaims + "."

// claimAll takes every claim key of the candidates in SIGNUPS_CLAIMS (the
// lifecycle is documented with events.ClaimKeys). The common case, a key
// nobody holds, is one pipelined create-if-absent publish per key (expected
// last subject sequence 0); keys that are held, or whose publish failed, go
// through claimKey. A candidate left undecided holds all its keys;
// otherwise it is decided: already_present when another copy of the same
// user has been imported meanwhile, a wait (errClaimBusy) while another
// attempt may still be importing, a transient retry when the bucket fails.
func (im *Importer) claimAll(ctx context.Context, cands []*item) {
	type pending struct {
		it  *item
		k   events.ClaimKey
		fut jetstream.PubAckFuture
	}
	var ps []pending
	for _, it := range cands {
		it.claim = events.Claim{Auth0UserID: it.ev.Subject, FirebaseUID: it.uid, Holder: events.ClaimHolder(it.meta.Stream, it.meta.Sequence.Stream, attemptID()), At: im.now()}
		val, err := events.MarshalClaim(it.claim)
		if err != nil {
			it.retry(err, 0)
			continue
		}
		it.claimVal = val
		for _, k := range events.ClaimKeys(it.uid, it.elig.FirebaseProvider, it.elig.Identity.UserID, it.data.Email) {
			m := nats.NewMsg(claimSubjectPrefix + k.Key)
			m.Data = val
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
			fut, err := im.js.PublishMsgAsync(m)
			if err != nil {
				fut = nil // the slow path tries again
			}
			ps = append(ps, pending{it, k, fut})
		}
	}
	slow := map[*item][]events.ClaimKey{}
	var order []*item
	for _, p := range ps {
		held := false
		if p.fut != nil {
			select {
			case ack := <-p.fut.Ok():
				p.it.claims = append(p.it.claims, heldClaim{p.k.Kind, p.k.Key, ack.Sequence})
				held = true
			case <-p.fut.Err():
			case <-ctx.Done():
			}
		}
		if !held && p.it.decision == undecided {
			if _, ok := slow[p.it]; !ok {
				order = append(order, p.it)
			}
			slow[p.it] = append(slow[p.it], p.k)
		}
	}
	im.parallel(order, func(it *item) {
		for _, k := range slow[it] {
			if !im.claimKey(ctx, it, k) {
				return
			}
		}
	})
}

// claimKey takes one key; it reports whether the item holds it (else the
// item is decided).
func (im *Importer) claimKey(ctx context.Context, it *item, k events.ClaimKey) bool {
	val := it.claimVal
	for range 4 {
		rev, err := im.claims.Create(ctx, k.Key, val)
		if err == nil {
			it.claims = append(it.claims, heldClaim{k.Kind, k.Key, rev})
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
		now := im.now()
		switch {
		case derr == nil && cur.Holder == it.claim.Holder:
			// Ours: a pipelined create that was stored but not confirmed.
			it.claims = append(it.claims, heldClaim{k.Kind, k.Key, e.Revision()})
			return true
		case derr != nil:
			// Unreadable: taken over; the look-up decides.
		case cur.AmbiguousUntil.After(now):
			// An earlier import of this uid may still land: wait it out.
			it.retry(fmt.Errorf("%w (%s, an earlier import may still land)", errClaimBusy, k.Kind), max(im.cfg.DeferDelay, cur.AmbiguousUntil.Sub(now)))
			return false
		case !cur.AmbiguousUntil.IsZero():
			// The holder gave up without an answer and its horizon passed:
			// whatever it sent has landed, and the look-up sees it.
		default:
			le, found, err := im.ledger.get(ctx, cur.Auth0UserID)
			if err != nil {
				it.retry(err, 0)
				return false
			}
			age := now.Sub(e.Created())
			switch {
			case found && le.Outcome.Final() && cur.Auth0UserID == it.ev.Subject:
				// Another copy of this user was imported meanwhile.
				it.settle(events.OutcomeAlreadyPresent, events.ReasonLedger, le.FirebaseUID, "")
				return false
			case found && le.Outcome.Final():
				// The holder's import is over and in the ledger: its account
				// is visible to the look-up that follows.
			case age > im.cfg.Delivery.AckWait:
				// The batch that wrote it has ended (each ends within 80 %
				// of AckWait), in this process or a dead one.
			default:
				// The holder may still be importing; never import past it.
				wait := max(im.cfg.DeferDelay, min(im.cfg.Delivery.AckWait-age, im.cfg.Delivery.Delay(deliveries(it))))
				it.retry(fmt.Errorf("%w (%s)", errClaimBusy, k.Kind), wait)
				return false
			}
		}
		// Taken over with a compare-and-set: the holder is certainly over.
		rev, err = im.claims.Update(ctx, k.Key, val, e.Revision())
		if err == nil {
			it.claims = append(it.claims, heldClaim{k.Kind, k.Key, rev})
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

// markAmbiguous records on the uid claim that this attempt's import failed
// without an answer, so no attempt imports the uid again before the horizon
// passes. If the write fails, the message's nak delay still keeps this
// attempt away; only a crash in between leaves it unrecorded.
func (im *Importer) markAmbiguous(ctx context.Context, it *item) {
	i := slices.IndexFunc(it.claims, func(h heldClaim) bool { return h.kind == events.ClaimUID })
	if i < 0 {
		return
	}
	c := it.claim
	c.At = im.now()
	c.AmbiguousUntil = c.At.Add(im.cfg.AmbiguousWait)
	val, err := events.MarshalClaim(c)
	if err == nil {
		var rev uint64
		if rev, err = im.claims.Update(ctx, it.claims[i].key, val, it.claims[i].rev); err == nil {
			it.claims[i].rev = rev
			return
		}
	}
	im.log.WarnContext(it.ctx, "ambiguous import not recorded on its claim", "err", err)
}

// attemptID is unique to one attempt to import a message.
func attemptID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// releaseAll removes the claims of the items marked for release (their
// outcome is recorded, or they failed without an ambiguous import): each is
// purged only if it is still this attempt's revision, so a successor's claim
// is never touched, and the purge marker expires after
// events.ClaimMarkerTTL. The purges are pipelined. A failed purge is
// harmless: the claim is taken over once older than AckWait, and expires.
func (im *Importer) releaseAll(ctx context.Context, items []*item) {
	var futs []jetstream.PubAckFuture
	for _, it := range items {
		if !it.release {
			continue
		}
		for _, c := range it.claims {
			m := nats.NewMsg(claimSubjectPrefix + c.key)
			m.Header.Set(kvOperation, "PURGE")
			m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(c.rev, 10))
			fut, err := im.js.PublishMsgAsync(m, jetstream.WithMsgTTL(events.ClaimMarkerTTL))
			if err != nil {
				im.log.DebugContext(ctx, "claim not released; it expires", "err", err)
				continue
			}
			futs = append(futs, fut)
		}
		it.claims, it.release = nil, false
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			im.log.DebugContext(ctx, "claim not released; it expires", "err", err)
		case <-ctx.Done():
			return
		}
	}
}

// kvOperation is the header that marks a key-value delete or purge.
const kvOperation = "KV-Operation"

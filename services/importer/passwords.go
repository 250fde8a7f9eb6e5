package importer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"firebase.google.com/go/v4/auth"
	"firebase.google.com/go/v4/auth/hash"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/signupsync/signupsync/events"
)

// The password-hash export (events/passwords.go): a second durable consumer
// on PASSWORDS whose batches go through the signup pipeline's stages
// (ledger, enrichment, claims, look-ups, settle, release) with three
// differences: the candidate is a database user, identified in Firebase by
// uid and email only; an existing uid is never imported over (production
// ImportUsers would replace it whole); and the import carries the bcrypt
// hash with the BCRYPT hash configuration. The hash lives in the item only:
// it is never logged, put in a span attribute or in a dead letter.

// passwordItem is what a password message adds to an item.
type passwordItem struct {
	hash string
}

// passwordProvider is the Firebase provider id of email and password.
const passwordProvider = "password"

// source is the ledger source of an item.
func (it *item) source() events.Source {
	if it.pw != nil {
		return events.SourceHashExport
	}
	return it.ev.EventSource()
}

// startPasswordWorkers runs the password consumer's fetch loops beside the
// signup workers, under the same breaker.
func (im *Importer) startPasswordWorkers(ctx context.Context, wg *sync.WaitGroup) {
	for range im.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			im.passwordWorker(ctx)
		}()
	}
}

func (im *Importer) passwordWorker(ctx context.Context) {
	im.fetchLoop(ctx, "passwords", im.pwCons, im.cfg.BatchSize, max(im.cfg.BatchWindow, 250*time.Millisecond), im.processPasswords)
}

// processPasswords is process for a batch of password messages.
func (im *Importer) processPasswords(ctx context.Context, msgs []jetstream.Msg) {
	im.metrics.batch(len(msgs))
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), im.cfg.Delivery.AckWait*4/5)
	defer cancel()
	bctx, bspan := im.tracer.Start(bctx, "import password batch", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.Int("signupsync.batch.size", len(msgs))))
	defer bspan.End()

	items := make([]*item, 0, len(msgs))
	var early []*item
	for _, m := range msgs {
		it := im.openPassword(bctx, bspan, m)
		items = append(items, it)
		if it.decision != undecided {
			early = append(early, it)
		}
	}
	primaries := im.group(items)
	t0 := time.Now()
	im.checkLedger(bctx, primaries)
	im.enrich(primaries)
	var cands []*item
	for _, it := range primaries {
		if it.decision == undecided && im.classifyPassword(it) {
			cands = append(cands, it)
		}
	}
	im.claimAll(bctx, cands)
	toImport := im.resolvePasswords(bctx, cands)
	t1 := time.Now()
	im.importPasswords(bctx, toImport)
	tImport := time.Since(t1)
	counts := map[events.Outcome]int{}
	var mu sync.Mutex
	im.parallel(primaries, func(it *item) {
		im.finish(bctx, it)
		mu.Lock()
		counts[it.outcome]++
		mu.Unlock()
	})
	for _, it := range early {
		im.finish(bctx, it)
	}
	im.releaseAll(bctx, primaries)
	attrs := []any{"messages", len(msgs), "users", len(primaries), "import_ms", tImport.Milliseconds(), "total_ms", time.Since(t0).Milliseconds()}
	for _, o := range events.Outcomes() {
		if counts[o] > 0 {
			attrs = append(attrs, string(o), counts[o])
		}
	}
	im.log.InfoContext(bctx, "password batch settled", attrs...)
}

// openPassword decodes a password message into an item whose ev is a
// synthetic envelope (id, subject, data) so the shared stages key on the
// user id. The item is marked as a password item before anything can fail,
// so even an undecodable message is dead-lettered without its body.
func (im *Importer) openPassword(bctx context.Context, bspan trace.Span, m jetstream.Msg) *item {
	it := &item{msg: m, pw: &passwordItem{}}
	var err error
	it.ctx, it.span, it.meta, err = im.consume(bctx, bspan, m)
	if err != nil {
		it.deadLetter(events.ReasonMalformedEvent, err)
		return it
	}
	p, err := events.DecodePasswordImport(m.Data())
	if err != nil {
		it.deadLetter(events.ReasonMalformedEvent, err)
		return it
	}
	it.pw.hash = p.PasswordHash
	it.data = p.User
	it.ev = events.Signup{ID: events.PasswordMsgID(p.User.UserID), Subject: p.User.UserID, Data: p.User}
	it.span.SetAttributes(attribute.String("signupsync.event_id", it.ev.ID))
	return it
}

// classifyPassword decides a password item that is not a database user
// with an email; otherwise it sets its uid, claim identity and look-up
// identifiers and reports true.
func (im *Importer) classifyPassword(it *item) bool {
	el := events.Classify(it.data, im.providers)
	if el.OK || el.Reason != events.ReasonDatabaseConnection {
		reason := el.Reason
		if el.OK {
			reason = events.ReasonNotDatabaseUser
		}
		it.settle(events.OutcomeSkipped, reason, "", "")
		return false
	}
	email := events.NormaliseEmail(it.data.Email)
	if email == "" || !validEmail(email) {
		it.settle(events.OutcomeSkipped, events.ReasonNoEmail, "", "")
		return false
	}
	it.uid = im.cfg.UIDPolicy.FirebaseUID(it.data.UserID)
	// The claim on ("password", email) and on the email keep this import
	// apart from any other attempt for the same address.
	it.elig = events.Eligibility{OK: true, FirebaseProvider: passwordProvider, Identity: events.Identity{Provider: passwordProvider, UserID: email}}
	it.ids = []auth.UserIdentifier{auth.UIDIdentifier{UID: it.uid}, auth.EmailIdentifier{Email: email}}
	return true
}

// hasPassword reports whether rec is signupsync's account of auth0UserID
// and signs in with a password.
func hasPassword(rec *auth.UserRecord, auth0UserID string) bool {
	if rec.CustomClaims[ClaimAuth0ID] != auth0UserID {
		return false
	}
	for _, p := range rec.ProviderUserInfo {
		if p.ProviderID == passwordProvider {
			return true
		}
	}
	return false
}

// decideExisting decides a candidate whose uid or email Firebase already
// holds; it reports false when nothing does. An existing uid is never
// imported over: production ImportUsers would replace the account whole.
func (im *Importer) decideExisting(c *item, x *index) bool {
	if rec, ok := x.byUID[c.uid]; ok {
		if hasPassword(rec, c.ev.Subject) {
			c.settle(events.OutcomeAlreadyPresent, events.ReasonPasswordSet, rec.UID, "")
		} else {
			c.settle(events.OutcomeConflict, events.ReasonAccountExists, rec.UID, "uid exists; never imported over")
		}
		return true
	}
	if rec, ok := x.byEmail[events.NormaliseEmail(c.data.Email)]; ok {
		if im.cfg.EmailPolicy == EmailSkip {
			c.settle(events.OutcomeSkipped, events.ReasonEmailInUse, rec.UID, "")
		} else {
			// Never linked: a password proves nothing about the other
			// account.
			c.settle(events.OutcomeConflict, events.ReasonEmailInUse, rec.UID, "")
		}
		return true
	}
	return false
}

// resolvePasswords looks the candidates holding their claims up by uid and
// email and returns those Firebase does not know.
func (im *Importer) resolvePasswords(ctx context.Context, cands []*item) []*item {
	held := undecidedOf(cands)
	if len(held) == 0 {
		return nil
	}
	x := im.lookup(ctx, held)
	var out []*item
	for _, c := range held {
		if c.decision == undecided && !im.decideExisting(c, x) {
			out = append(out, c)
		}
	}
	return out
}

// toImportPassword maps a database user and its hash to a Firebase user.
// Firebase derives the password provider from the email and the hash.
func toImportPassword(c *item) *auth.UserToImport {
	d := c.data
	u := (&auth.UserToImport{}).UID(c.uid).CustomClaims(map[string]interface{}{ClaimAuth0ID: d.UserID}).
		Email(events.NormaliseEmail(d.Email)).EmailVerified(d.EmailVerified).PasswordHash([]byte(c.pw.hash))
	if d.Name != "" {
		u.DisplayName(d.Name)
	}
	if d.Picture != "" {
		u.PhotoURL(d.Picture)
	}
	if t, err := time.Parse(time.RFC3339Nano, d.CreatedAt); err == nil {
		u.Metadata(&auth.UserMetadata{CreationTimestamp: t.UnixMilli()})
	}
	return u
}

// importPasswords imports password users with their hashes: the signup
// import (importBatch) with the BCRYPT configuration.
func (im *Importer) importPasswords(ctx context.Context, cands []*item) {
	im.importBatch(ctx, cands, importOp{
		build:   toImportPassword,
		opts:    []auth.UserImportOption{auth.WithHash(hash.Bcrypt{})},
		reason:  events.ReasonPasswordHash,
		recheck: im.recheckPasswords,
	})
}

// recheckPasswords decides password users Firebase refused: a refusal
// because the uid or email now exists is decided as the look-up would
// have; anything else is a dead letter.
func (im *Importer) recheckPasswords(ctx context.Context, rejected []*item) {
	reasons := make(map[*item]error, len(rejected))
	for _, c := range rejected {
		reasons[c] = c.err
	}
	x := im.lookup(ctx, rejected)
	for _, c := range rejected {
		if c.decision == undecided && !im.decideExisting(c, x) {
			c.deadLetter(events.ReasonFirebaseRejected, fmt.Errorf("firebase refused user: %w", reasons[c]))
		}
	}
}

// redact removes a secret from a text that may quote it.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

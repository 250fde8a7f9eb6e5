package importer

import (
	"context"
	"sync"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/signupsync/signupsync/events"
)

// A fetched batch: every message is opened, grouped by user, checked
// against the ledger and taken to exactly one decision.

// decision is what becomes of one message.
type decision int

const (
	undecided decision = iota
	settle             // ack, with an outcome
	retry              // nak with a delay
	dead               // dead-letter, then term
)

// item is one fetched message on its way to a decision.
type item struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
	ev   events.Signup
	ctx  context.Context
	span trace.Span
	data events.SignupData
	// enriched says data was read from the Management API, not taken from
	// the message.
	enriched bool
	elig     events.Eligibility
	uid      string
	// ids are the Firebase look-up identifiers, computed once.
	ids  []auth.UserIdentifier
	dups []*item
	// claims are the claim keys this attempt holds (claim.go), with the
	// value written; ambiguous says its import failed without an answer.
	claims    []heldClaim
	claim     events.Claim
	claimVal  []byte
	ambiguous bool
	// release marks claims to remove once the batch is settled.
	release bool
	// read is the user's ledger entry as read at the start of the batch.
	read *ledgerRead
	// pw is set on a message of the password-hash export (passwords.go).
	pw *passwordItem

	decision decision
	outcome  events.Outcome
	reason   string
	detail   string
	fbUID    string
	err      error
	delay    time.Duration
}

func (it *item) settle(o events.Outcome, reason, fbUID, detail string) {
	it.decision, it.outcome, it.reason, it.fbUID, it.detail = settle, o, reason, fbUID, detail
}

func (it *item) retry(err error, delay time.Duration) {
	it.decision, it.err, it.delay = retry, err, delay
}

func (it *item) deadLetter(reason string, err error) {
	it.decision, it.reason, it.err = dead, reason, err
}

// process takes one fetched batch to a decision per message and settles
// every message. It runs under a deadline of 80% of AckWait from now,
// detached from ctx so a shutdown lets the batch finish.
func (im *Importer) process(ctx context.Context, msgs []jetstream.Msg) {
	im.metrics.batch(len(msgs))
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), im.cfg.Delivery.AckWait*4/5)
	defer cancel()

	// The batch span is a root of its own, linked to every member's span
	// (and each member links back): one Firebase call serves up to 1000
	// signups from 1000 traces, and a span has one parent, so parenting the
	// batch under one signup would misattribute it to that trace and hide it
	// from the 999 others. Links keep every signup's trace complete.
	bctx, bspan := im.tracer.Start(bctx, "import batch", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.Int("signupsync.batch.size", len(msgs))))
	defer bspan.End()

	items := make([]*item, 0, len(msgs))
	var early []*item // undecodable: settled alone, not grouped
	for _, m := range msgs {
		it := im.open(bctx, bspan, m)
		items = append(items, it)
		if it.decision != undecided {
			early = append(early, it)
		}
	}
	primaries := im.group(items)
	t0 := time.Now()
	im.checkLedger(bctx, primaries)
	tLedger := time.Since(t0)
	im.enrich(primaries)
	var cands []*item
	for _, it := range primaries {
		if it.decision != undecided {
			continue
		}
		it.elig = events.Classify(it.data, im.providers)
		if !it.elig.OK {
			it.settle(events.OutcomeSkipped, it.elig.Reason, "", "")
			continue
		}
		it.uid = im.cfg.UIDPolicy.FirebaseUID(it.data.UserID)
		cands = append(cands, it)
	}
	// Claims before look-ups: production Firebase would store a second
	// account for an email (or replace a uid) that two importers, in any
	// process, both found free. With every key claimed, batches of all
	// workers and replicas look up and import side by side.
	t1 := time.Now()
	im.claimAll(bctx, cands)
	tClaim := time.Since(t1)
	t1 = time.Now()
	toImport := im.resolve(bctx, cands)
	tLookup := time.Since(t1)
	t2 := time.Now()
	im.importUsers(bctx, toImport)
	tImport := time.Since(t2)
	t3 := time.Now()

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
	attrs := []any{"messages", len(msgs), "users", len(primaries), "ledger_ms", tLedger.Milliseconds(),
		"claim_ms", tClaim.Milliseconds(), "lookup_ms", tLookup.Milliseconds(), "import_ms", tImport.Milliseconds(), "settle_ms", time.Since(t3).Milliseconds()}
	for _, o := range events.Outcomes() {
		if counts[o] > 0 {
			attrs = append(attrs, string(o), counts[o])
		}
	}
	im.log.InfoContext(bctx, "batch settled", attrs...)
}

// open decodes a message and starts its consumer span, continuing the trace
// context the producer put in the headers.
func (im *Importer) open(bctx context.Context, bspan trace.Span, m jetstream.Msg) *item {
	it := &item{msg: m}
	var err error
	it.ctx, it.span, it.meta, err = im.consume(bctx, bspan, m)
	if err != nil {
		it.deadLetter(events.ReasonMalformedEvent, err)
		return it
	}
	ev, err := events.Decode(m.Data())
	if err != nil {
		it.deadLetter(events.ReasonMalformedEvent, err)
		return it
	}
	it.ev, it.data = ev, ev.Data
	it.span.SetAttributes(attribute.String("signupsync.event_id", ev.ID))
	// Publishers refuse such a signup (events.NewMsg); one that is in the
	// stream anyway was not written by them.
	if err := events.CheckPrimaryIdentity(ev.Data); err != nil {
		it.deadLetter(events.ReasonInvalidIdentity, err)
	}
	return it
}

// undecidedOf returns the items still undecided, in order.
func undecidedOf(items []*item) []*item {
	var out []*item
	for _, it := range items {
		if it.decision == undecided {
			out = append(out, it)
		}
	}
	return out
}

// group returns one item per Auth0 user; later copies of the same user in
// the batch ride along as dups and share the first one's fate. This also
// guarantees one uid appears at most once in an ImportUsers call.
func (im *Importer) group(items []*item) []*item {
	by := map[string]*item{}
	var out []*item
	for _, it := range items {
		if it.decision != undecided {
			continue
		}
		if p, ok := by[it.ev.Subject]; ok {
			p.dups = append(p.dups, it)
			continue
		}
		by[it.ev.Subject] = it
		out = append(out, it)
	}
	return out
}

// checkLedger settles users the ledger already knows to be in Firebase.
func (im *Importer) checkLedger(ctx context.Context, items []*item) {
	im.parallel(items, func(it *item) {
		e, rev, found, err := im.ledger.getRev(ctx, it.ev.Subject)
		if err == nil {
			it.read = &ledgerRead{entry: e, rev: rev, found: found}
		}
		switch {
		case err != nil:
			it.retry(err, 0)
		case found && e.Outcome.Final():
			it.settle(events.OutcomeAlreadyPresent, events.ReasonLedger, e.FirebaseUID, "")
		case found && e.Outcome == events.OutcomeDeleted:
			// Deleted in Auth0 before this copy arrived (lifecycle.go):
			// never created afterwards.
			it.settle(events.OutcomeSkipped, events.ReasonDeletedInAuth0, "", "")
		}
	})
}

// parallel runs fn over items with at most Concurrency at once.
func (im *Importer) parallel(items []*item, fn func(*item)) {
	sem := make(chan struct{}, im.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(it)
		}()
	}
	wg.Wait()
}

func recordError(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}

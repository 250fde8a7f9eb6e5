package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/signupsync/signupsync/events"
)

// Accounts is the part of the Firebase Auth client the importer uses.
// *auth.Client satisfies it.
type Accounts interface {
	GetUsers(ctx context.Context, ids []auth.UserIdentifier) (*auth.GetUsersResult, error)
	ImportUsers(ctx context.Context, users []*auth.UserToImport, opts ...auth.UserImportOption) (*auth.UserImportResult, error)
	UpdateUser(ctx context.Context, uid string, user *auth.UserToUpdate) (*auth.UserRecord, error)
}

// Enricher reads the authoritative profile of an Auth0 user. GetUser returns
// an error matching ErrUserGone when the user no longer exists (permanent)
// and a transient error (IsTransient) when a retry may succeed.
type Enricher interface {
	GetUser(ctx context.Context, auth0UserID string) (events.SignupData, error)
}

// ErrUserGone is matched by enricher errors for users deleted in Auth0.
var ErrUserGone = errors.New("auth0 user does not exist")

// Deps are the importer's collaborators. JetStream, Accounts and Logger are
// required; Enricher may be nil (enrichment off: partial signups are mapped
// from what they carry) except with the link email policy, which decides
// on the profile it reads.
type Deps struct {
	JetStream jetstream.JetStream
	Accounts  Accounts
	Enricher  Enricher
	Logger    *slog.Logger
	// Metrics records outcomes; nil records nothing. Registerer, when set,
	// also gets the consumer-lag collector.
	Metrics    *Metrics
	Registerer prometheus.Registerer
	Tracer     trace.TracerProvider
	Propagator propagation.TextMapPropagator
	// Providers maps Auth0 social strategies to Firebase provider ids; nil
	// means events.SocialProviders().
	Providers map[string]string
	Now       func() time.Time
	// Deleter deletes Firebase accounts for the lifecycle consumer
	// (lifecycle.go); nil means Accounts when it can (*auth.Client does).
	Deleter AccountDeleter
}

// Importer is the importer role. Run it once; it is safe to run several
// Importers (processes or goroutines) on the same durable consumer.
type Importer struct {
	cfg       Config
	js        jetstream.JetStream
	cons      jetstream.Consumer
	pwCons    jetstream.Consumer // PASSWORDS (passwords.go)
	ledger    *ledger
	claims    jetstream.KeyValue
	accounts  Accounts
	enricher  Enricher
	log       *slog.Logger
	metrics   *Metrics
	guard     *guard
	tracer    trace.Tracer
	prop      propagation.TextMapPropagator
	providers map[string]string
	now       func() time.Time
	probing   sync.Mutex
	// lc is the lifecycle consumer (lifecycle.go); nil when off.
	lc *lifecycle
}

// New checks cfg, creates or updates the durable consumer and opens the
// ledger bucket (created by events.Ensure).
func New(ctx context.Context, cfg Config, deps Deps) (*Importer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("importer config: %w", err)
	}
	if deps.JetStream == nil || deps.Accounts == nil || deps.Logger == nil {
		return nil, errors.New("importer: JetStream, Accounts and Logger are required")
	}
	if cfg.EmailPolicy == EmailLink && deps.Enricher == nil {
		return nil, errors.New("importer: --email-policy link needs the Auth0 Management API (an Enricher): links are decided on the profile read from Auth0, never on the message")
	}
	im := &Importer{
		cfg: cfg, js: deps.JetStream, accounts: deps.Accounts, enricher: deps.Enricher,
		log: deps.Logger, metrics: deps.Metrics, prop: deps.Propagator, providers: deps.Providers, now: deps.Now,
	}
	if im.metrics == nil {
		im.metrics = NewMetrics(nil)
	}
	tp := deps.Tracer
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	im.tracer = tp.Tracer("github.com/signupsync/signupsync/services/importer")
	if im.prop == nil {
		im.prop = propagation.TraceContext{}
	}
	if im.providers == nil {
		im.providers = events.SocialProviders()
	}
	if im.now == nil {
		im.now = time.Now
	}
	cons, err := deps.JetStream.CreateOrUpdateConsumer(ctx, events.StreamSignups, cfg.Delivery.ConsumerConfig())
	if err != nil {
		return nil, fmt.Errorf("importer consumer: %w", err)
	}
	kv, err := deps.JetStream.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		return nil, fmt.Errorf("ledger bucket: %w", err)
	}
	claims, err := deps.JetStream.KeyValue(ctx, events.BucketClaims)
	if err != nil {
		return nil, fmt.Errorf("claims bucket: %w", err)
	}
	st, err := claims.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("claims bucket: %w", err)
	}
	if st.TTL() <= cfg.Delivery.AckWait+cfg.AmbiguousWait {
		return nil, fmt.Errorf("claims bucket %s: its TTL %s must exceed --ack-wait %s plus --ambiguous-import-wait %s (a live or ambiguous import must never lose its claim)",
			events.BucketClaims, st.TTL(), cfg.Delivery.AckWait, cfg.AmbiguousWait)
	}
	im.cons, im.ledger, im.claims = cons, &ledger{kv: kv}, claims
	if im.pwCons, err = deps.JetStream.CreateOrUpdateConsumer(ctx, events.StreamPasswords, cfg.Delivery.PasswordConsumerConfig()); err != nil {
		return nil, fmt.Errorf("importer password consumer: %w", err)
	}
	im.guard = newGuard(cfg, deps.Logger, im.metrics)
	if err := im.setupLifecycle(ctx, deps); err != nil {
		return nil, err
	}
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(newLagCollector(deps.JetStream, cons)); err != nil {
			return nil, fmt.Errorf("register lag collector: %w", err)
		}
	}
	return im, nil
}

// Run fetches and imports until ctx is cancelled, then lets the batches in
// flight finish (they run under their own deadline, shorter than AckWait)
// and returns. It returns nil on a clean stop.
func (im *Importer) Run(ctx context.Context) error {
	im.log.InfoContext(ctx, "importer running", "workers", im.cfg.Workers, "batch_size", im.cfg.BatchSize, "batch_window", im.cfg.BatchWindow)
	sub, err := im.startBackstop(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	var wg sync.WaitGroup
	for range im.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			im.worker(ctx)
		}()
	}
	im.startPasswordWorkers(ctx, &wg) // passwords.go
	im.runLifecycle(ctx, &wg)
	wg.Wait()
	im.log.InfoContext(ctx, "importer stopped")
	return nil
}

func (im *Importer) worker(ctx context.Context) {
	for ctx.Err() == nil {
		if !im.awaitBreaker(ctx) {
			return
		}
		batch, err := im.cons.Fetch(im.cfg.BatchSize, jetstream.FetchMaxWait(im.cfg.BatchWindow))
		if err != nil {
			im.log.DebugContext(ctx, "fetch failed", "err", err)
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			if err := batch.Error(); err != nil {
				im.log.DebugContext(ctx, "fetch ended", "err", err)
				sleep(ctx, 100*time.Millisecond)
			}
			continue
		}
		im.process(ctx, msgs)
	}
}

// awaitBreaker blocks while the breaker is open, so an outage burns no
// deliveries. Once the open period passes it sends one probe (a cheap
// look-up) instead of a batch; success closes the breaker. It returns false
// when ctx ends.
func (im *Importer) awaitBreaker(ctx context.Context) bool {
	for {
		switch im.guard.state() {
		case gobreaker.StateClosed:
			return true
		case gobreaker.StateHalfOpen:
			// One worker probes; the others keep waiting.
			if im.probing.TryLock() {
				err := im.guard.do(ctx, "probe", func(ctx context.Context) error {
					_, err := im.accounts.GetUsers(ctx, []auth.UserIdentifier{auth.UIDIdentifier{UID: "signupsync-breaker-probe"}})
					return classifyFirebase("probe", err)
				})
				im.probing.Unlock()
				if !errors.Is(err, ErrBreakerOpen) {
					im.metrics.probe(err == nil)
				}
				if err == nil {
					im.log.InfoContext(ctx, "firebase reachable again; resuming")
					return true
				}
			}
		}
		if !sleep(ctx, min(im.cfg.BreakerOpenFor/5, 250*time.Millisecond)) {
			return false
		}
	}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

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
	pctx := im.prop.Extract(bctx, events.HeaderCarrier(m.Headers()))
	// Keep the batch deadline but the producer's trace as parent.
	it.ctx, it.span = im.tracer.Start(trace.ContextWithRemoteSpanContext(bctx, trace.SpanContextFromContext(pctx)), "process "+m.Subject(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(trace.Link{SpanContext: bspan.SpanContext()}),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", m.Subject()),
			attribute.String("messaging.operation.type", "process")))
	bspan.AddLink(trace.Link{SpanContext: it.span.SpanContext()})
	meta, err := m.Metadata()
	if err != nil {
		it.deadLetter(events.ReasonMalformedEvent, fmt.Errorf("message metadata: %w", err))
		return it
	}
	it.meta = meta
	it.span.SetAttributes(attribute.Int64("messaging.nats.stream_sequence", int64(meta.Sequence.Stream)), attribute.Int64("messaging.nats.delivered", int64(meta.NumDelivered)))
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

// enrich reads from Auth0 the signups whose data cannot be trusted as it
// is: partial ones, old ones (backfill, replay, older than FreshAfter: see
// [Importer.rereadReason]), or all with EnrichAll.
func (im *Importer) enrich(items []*item) {
	if im.enricher == nil {
		return
	}
	var todo []*item
	now := im.now()
	for _, it := range items {
		if it.decision != undecided {
			continue
		}
		if why := im.rereadReason(it, now); why != "" {
			it.span.SetAttributes(attribute.String("signupsync.reread", why))
			todo = append(todo, it)
		}
	}
	im.parallel(todo, func(it *item) {
		if d, ok := im.readProfile(it.ctx, it); ok {
			it.data, it.enriched = d, true
		}
	})
}

// readProfile reads it's user from the Management API. When it returns
// false it has decided it: skipped (deleted in Auth0), retry (transient) or
// dead letter.
func (im *Importer) readProfile(ctx context.Context, it *item) (events.SignupData, bool) {
	ctx, span := im.tracer.Start(ctx, "auth0 get user", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	d, err := im.enricher.GetUser(ctx, it.ev.Subject)
	switch {
	case errors.Is(err, ErrUserGone):
		it.settle(events.OutcomeSkipped, events.ReasonDeletedInAuth0, "", "")
		return events.SignupData{}, false
	case err != nil && IsTransient(err):
		recordError(span, err)
		it.retry(err, retryAfter(err))
		return events.SignupData{}, false
	case err != nil:
		recordError(span, err)
		it.deadLetter(events.ReasonPermanentError, fmt.Errorf("enrich %s: %w", it.ev.Subject, err))
		return events.SignupData{}, false
	}
	d.Tenant = it.data.Tenant
	d.Trigger = it.data.Trigger
	d.Partial = false
	return d, true
}

// lookupKey joins a provider id and the provider's user id.
func lookupKey(provider, rawID string) string { return provider + "\x00" + rawID }

// index holds what Firebase returned for a batch's look-ups.
type index struct {
	byUID      map[string]*auth.UserRecord
	byEmail    map[string]*auth.UserRecord
	byProvider map[string]string
}

func (x *index) add(recs []*auth.UserRecord) {
	for _, r := range recs {
		x.byUID[r.UID] = r
		if r.Email != "" {
			x.byEmail[strings.ToLower(r.Email)] = r
		}
		for _, p := range r.ProviderUserInfo {
			x.byProvider[lookupKey(p.ProviderID, p.UID)] = r.UID
		}
	}
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

func identifiers(it *item) []auth.UserIdentifier {
	ids := []auth.UserIdentifier{
		auth.UIDIdentifier{UID: it.uid},
		auth.ProviderIdentifier{ProviderID: it.elig.FirebaseProvider, ProviderUID: it.elig.Identity.UserID},
	}
	if e := strings.ToLower(it.data.Email); e != "" && validEmail(e) {
		ids = append(ids, auth.EmailIdentifier{Email: e})
	}
	return ids
}

// lookup fetches the Firebase accounts matching the candidates' uid,
// provider id and email, 100 identifiers per GetUsers call. Candidates
// whose look-up failed get their decision here.
func (im *Importer) lookup(ctx context.Context, cands []*item) *index {
	x := &index{byUID: map[string]*auth.UserRecord{}, byEmail: map[string]*auth.UserRecord{}, byProvider: map[string]string{}}
	var chunks [][]*item
	var cur []*item
	n := 0
	for _, c := range cands {
		if c.ids == nil {
			c.ids = identifiers(c)
		}
		k := len(c.ids)
		if n+k > 100 {
			chunks = append(chunks, cur)
			cur, n = nil, 0
		}
		cur = append(cur, c)
		n += k
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	var mu sync.Mutex
	var get func(chunk []*item)
	get = func(chunk []*item) {
		var ids []auth.UserIdentifier
		for _, c := range chunk {
			ids = append(ids, c.ids...)
		}
		var res *auth.GetUsersResult
		err := im.firebase(ctx, "GetUsers", func(ctx context.Context) error {
			r, err := im.accounts.GetUsers(ctx, ids)
			res = r
			return classifyFirebase("GetUsers", err)
		})
		switch {
		case err == nil:
			mu.Lock()
			x.add(res.Users)
			mu.Unlock()
		case IsTransient(err):
			for _, c := range chunk {
				c.retry(err, retryAfter(err))
			}
		case len(chunk) > 1:
			// One bad identifier fails the whole call: look up one by one to
			// isolate it.
			for _, c := range chunk {
				get([]*item{c})
			}
		default:
			chunk[0].deadLetter(events.ReasonPermanentError, err)
		}
	}
	sem := make(chan struct{}, min(4, im.cfg.Concurrency))
	var wg sync.WaitGroup
	for _, ch := range chunks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			get(ch)
		}()
	}
	wg.Wait()
	return x
}

// resolve looks up the candidates that hold their claims, decides every
// one that Firebase already knows about and returns those to import.
func (im *Importer) resolve(ctx context.Context, cands []*item) []*item {
	var held []*item
	for _, c := range cands {
		if c.decision == undecided {
			held = append(held, c)
		}
	}
	if len(held) == 0 {
		return nil
	}
	x := im.lookup(ctx, held)
	var out, byEmail []*item
	owners := map[*item]*auth.UserRecord{}
	for _, c := range held {
		if c.decision != undecided {
			continue
		}
		fp, raw := c.elig.FirebaseProvider, c.elig.Identity.UserID
		email := strings.ToLower(c.data.Email)
		if rec, ok := x.byUID[c.uid]; ok {
			if x.byProvider[lookupKey(fp, raw)] == rec.UID {
				c.settle(sameUIDAndProvider(rec, c.data.UserID))
			} else {
				c.settle(events.OutcomeConflict, events.ReasonUIDTaken, rec.UID, "uid exists without this provider identity")
			}
			continue
		}
		if uid, ok := x.byProvider[lookupKey(fp, raw)]; ok {
			c.settle(events.OutcomeAlreadyPresent, events.ReasonProviderElsewhere, uid, "")
			continue
		}
		if rec, ok := x.byEmail[email]; ok && email != "" {
			byEmail, owners[c] = append(byEmail, c), rec
			continue
		}
		// Its claims make this importer the only one that may create the
		// account: no other attempt holds its uid, provider identity or
		// email, in this batch or anywhere else.
		out = append(out, c)
	}
	// The link policy may read the Management API and write to Firebase
	// for each of these: side by side.
	im.parallel(byEmail, func(c *item) { im.applyEmailPolicy(ctx, c, owners[c]) })
	return out
}

// applyEmailPolicy handles a candidate whose email belongs to rec.
func (im *Importer) applyEmailPolicy(ctx context.Context, c *item, rec *auth.UserRecord) {
	switch im.cfg.EmailPolicy {
	case EmailSkip:
		c.settle(events.OutcomeSkipped, events.ReasonEmailInUse, rec.UID, "")
	case EmailLink:
		im.link(ctx, c, rec)
	default:
		c.settle(events.OutcomeConflict, events.ReasonEmailInUse, rec.UID, "")
	}
}

// importUsers imports cands in one call and decides each from the per-user
// result. A permanent failure of the whole call is split into single-user
// calls so one bad user never fails the others.
func (im *Importer) importUsers(ctx context.Context, cands []*item) {
	im.importBatch(ctx, cands, importOp{
		build:   func(c *item) *auth.UserToImport { return toImport(c.uid, c.data, c.elig) },
		recheck: im.recheck,
	})
}

// importOp is what differs between importing signups and password users:
// how a user is built, the call's options, the reason recorded with
// imported, and how refused users are decided.
type importOp struct {
	build   func(*item) *auth.UserToImport
	opts    []auth.UserImportOption
	reason  string
	recheck func(context.Context, []*item)
}

// importBatch is one ImportUsers call for cands: transient failures are
// retried (ambiguous ones marked on the uid claim), a permanent failure of
// the call is split into single users, users Firebase refused go to
// op.recheck.
func (im *Importer) importBatch(ctx context.Context, cands []*item, op importOp) {
	if len(cands) == 0 {
		return
	}
	users := make([]*auth.UserToImport, len(cands))
	for i, c := range cands {
		users[i] = op.build(c)
	}
	var res *auth.UserImportResult
	err := im.firebase(ctx, "ImportUsers", func(ctx context.Context) error {
		r, err := im.accounts.ImportUsers(ctx, users, op.opts...)
		res = r
		return classifyFirebase("ImportUsers", err)
	})
	switch {
	case err != nil && IsTransient(err):
		amb := ambiguous(err)
		for _, c := range cands {
			c.retry(err, retryAfter(err))
			if amb {
				c.ambiguous, c.delay = true, max(c.delay, im.cfg.AmbiguousWait)
			}
		}
		return
	case err != nil && len(cands) > 1:
		for _, c := range cands {
			im.importBatch(ctx, []*item{c}, op)
		}
		return
	case err != nil:
		cands[0].deadLetter(events.ReasonFirebaseRejected, err)
		return
	}
	failed := map[int]string{}
	for _, e := range res.Errors {
		failed[e.Index] = e.Reason
	}
	var rejected []*item
	for i, c := range cands {
		if reason, bad := failed[i]; bad {
			c.err = errors.New(reason)
			rejected = append(rejected, c)
			continue
		}
		c.settle(events.OutcomeImported, op.reason, c.uid, "")
	}
	if len(rejected) > 0 {
		op.recheck(ctx, rejected)
	}
}

// recheck decides users Firebase refused one by one. A refusal because the
// account now exists (another replica, or a production Firebase race) is
// already_present when it carries this identity; anything else is a dead
// letter with Firebase's reason.
func (im *Importer) recheck(ctx context.Context, rejected []*item) {
	if len(rejected) == 0 {
		return
	}
	reasons := make(map[*item]error, len(rejected))
	for _, c := range rejected {
		reasons[c] = c.err
	}
	x := im.lookup(ctx, rejected)
	for _, c := range rejected {
		if c.decision != undecided {
			continue
		}
		if rec, ok := x.byUID[c.uid]; ok && x.byProvider[lookupKey(c.elig.FirebaseProvider, c.elig.Identity.UserID)] == rec.UID {
			c.settle(sameUIDAndProvider(rec, c.data.UserID))
			continue
		}
		// Another account took the email meanwhile (another replica): the
		// email policy decides, as if the look-up had seen it.
		if rec, ok := x.byEmail[strings.ToLower(c.data.Email)]; ok && c.data.Email != "" && rec.UID != c.uid {
			im.applyEmailPolicy(ctx, c, rec)
			continue
		}
		c.deadLetter(events.ReasonFirebaseRejected, fmt.Errorf("firebase refused user: %w", reasons[c]))
	}
}

// firebase runs one Firebase call in a client span, through the guard.
func (im *Importer) firebase(ctx context.Context, op string, fn func(context.Context) error) error {
	ctx, span := im.tracer.Start(ctx, "firebase "+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("rpc.system", "firebase-auth"), attribute.String("rpc.method", op)))
	defer span.End()
	err := im.guard.do(ctx, op, fn)
	if err != nil {
		recordError(span, err)
	}
	return err
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

// sameUIDAndProvider is the outcome of a look-up that finds the user's
// account at its uid with its identity: imported (reason import_landed) when
// the account carries signupsync's claim for this user — an earlier attempt
// whose ImportUsers got no answer, or whose process died before the ledger
// write, landed — else already_present. The distinction matters after the
// import: lifecycle events (deletions, profile changes) act only on accounts
// the ledger says signupsync created.
func sameUIDAndProvider(rec *auth.UserRecord, auth0UserID string) (events.Outcome, string, string, string) {
	if ours(rec, auth0UserID) {
		return events.OutcomeImported, events.ReasonImportLanded, rec.UID, ""
	}
	return events.OutcomeAlreadyPresent, events.ReasonSameUIDAndProvider, rec.UID, ""
}

// ours reports whether rec carries signupsync's auth0_user_id claim for
// auth0UserID (set by every import, see mapping.go).
func ours(rec *auth.UserRecord, auth0UserID string) bool {
	if rec == nil || rec.CustomClaims == nil {
		return false
	}
	v, _ := rec.CustomClaims[ClaimAuth0ID].(string)
	return v == auth0UserID && v != ""
}

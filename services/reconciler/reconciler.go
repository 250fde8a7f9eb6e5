package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/schemas"
)

// CheckpointKey is the key of the sweep checkpoint in [events.BucketState].
const CheckpointKey = "reconcile.checkpoint"

// DeliveriesCheckpointKey is the key of the checkpoint of the recovery of
// an event stream's failed deliveries in [events.BucketState].
func DeliveriesCheckpointKey(streamID string) string {
	return "reconcile.deliveries." + streamID
}

// Trigger is the trigger recorded in the events a sweep publishes.
const Trigger = "reconcile"

// ErrGaveUp is wrapped, together with the last failure, when a request
// still failed transiently after Config.MaxAttempts tries.
var ErrGaveUp = errors.New("gave up retrying")

// ErrNoCheckpoint is returned by [ReadCheckpoint] when no round has
// finished yet.
var ErrNoCheckpoint = errors.New("no reconcile checkpoint")

// ErrBadCheckpoint is returned by [ReadCheckpoint] for a value that is not
// a checkpoint. A round with Config.IgnoreCheckpoint replaces it.
var ErrBadCheckpoint = errors.New("undecodable reconcile checkpoint")

// Lister lists the users created in [from, to), oldest first, and reports
// how many match (at most [auth0api.SearchLimit]). *auth0api.Client
// satisfies it; its errors are classified with [auth0api.IsTransient] and
// [auth0api.RetryAfter].
type Lister interface {
	ListUsersCreated(ctx context.Context, from, to time.Time, page, perPage int) ([]events.SignupData, int, error)
}

// DeliveryLister lists one page of an event stream's deliveries and
// returns the next page's token ("" or an empty page at the end).
// *auth0api.Client satisfies it; its errors are classified as [Lister]'s.
type DeliveryLister interface {
	ListDeliveries(ctx context.Context, streamID string, f auth0api.DeliveryFilter, token string, take int) ([]auth0api.Delivery, string, error)
}

// Deps are the collaborators of a [Reconciler]. JetStream and Logger are
// required, and Users for a sweep or Deliveries for [ModeDeliveries].
type Deps struct {
	Users      Lister
	Deliveries DeliveryLister
	// JetStream publishes signups and holds the ledger and state buckets,
	// which must exist ([events.Ensure]).
	JetStream jetstream.JetStream
	// Schemas checks recovered Event Streams events; nil means
	// [schemas.Compile].
	Schemas    *schemas.Set
	Logger     *slog.Logger
	Tracer     trace.TracerProvider
	Propagator propagation.TextMapPropagator
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends, returning ctx's error then; nil
	// means a timer. It paces retries and the pause between rounds.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnSweep, when set, is called by [Reconciler.Run] after every round,
	// e.g. to feed [Metrics.Observe] and print [Result.WriteText].
	OnSweep func(Result, error)
}

// Counts are what a round did.
type Counts struct {
	// Listed users (or failed deliveries) were returned by Auth0.
	Listed int `json:"listed"`
	// Known users have a ledger entry: the importer has seen them.
	Known int `json:"known"`
	// Missing users have none; outside a dry run each was published.
	Missing int `json:"missing"`
	// Published signups were new to SIGNUPS.
	Published int `json:"published"`
	// Duplicates were already in SIGNUPS (within the duplicate window).
	Duplicates int `json:"duplicates"`
	// Ignored deliveries were not signups (test deliveries).
	Ignored int `json:"ignored,omitempty"`
	// Invalid deliveries carried an event that is not a valid Event
	// Streams user.created event, and invalid users a profile no publisher
	// may store (events.ErrInvalidUser); ingest would have refused them too.
	Invalid int `json:"invalid,omitempty"`
	// Dense counts milliseconds holding 1,000 users or more: users beyond
	// the first 1,000 of each were not listed.
	Dense int `json:"dense_windows"`
	// Requests to the Management API, and Retries after transient
	// failures (Auth0 or NATS).
	Requests int `json:"requests"`
	Retries  int `json:"retries"`
}

func (c *Counts) add(o Counts) {
	c.Listed += o.Listed
	c.Known += o.Known
	c.Missing += o.Missing
	c.Published += o.Published
	c.Duplicates += o.Duplicates
	c.Ignored += o.Ignored
	c.Invalid += o.Invalid
	c.Dense += o.Dense
	c.Requests += o.Requests
	c.Retries += o.Retries
}

// Result is one round: the window [From, Until) and its counts. UpToDate
// means there was nothing new to list yet (From is then the checkpoint).
type Result struct {
	Mode     Mode      `json:"mode,omitempty"`
	StreamID string    `json:"stream_id,omitempty"`
	From     time.Time `json:"from"`
	Until    time.Time `json:"until"`
	UpToDate bool      `json:"up_to_date,omitempty"`
	DryRun   bool      `json:"dry_run,omitempty"`
	Counts
}

// String is a one-line summary.
func (r Result) String() string {
	mode := "reconcile"
	if r.Mode == ModeDeliveries {
		mode = "reconcile deliveries of " + r.StreamID
	}
	if r.UpToDate {
		return fmt.Sprintf("%s: up to date (checkpoint %s, window ends %s)", mode, events.FormatTime(r.From), events.FormatTime(r.Until))
	}
	if r.DryRun {
		mode += " (dry run)"
	}
	s := fmt.Sprintf("%s [%s, %s): listed %d, known %d, missing %d, published %d, duplicates %d, requests %d, retries %d",
		mode, events.FormatTime(r.From), events.FormatTime(r.Until), r.Listed, r.Known, r.Missing, r.Published, r.Duplicates, r.Requests, r.Retries)
	if r.Ignored > 0 || r.Invalid > 0 {
		s += fmt.Sprintf(", ignored %d, invalid %d", r.Ignored, r.Invalid)
	}
	if r.Dense > 0 {
		s += fmt.Sprintf(", DENSE WINDOWS %d (users beyond 1000 per millisecond not listed: use export and backfill)", r.Dense)
	}
	return s
}

// Checkpoint is the JSON value under [CheckpointKey] (or
// [DeliveriesCheckpointKey]): the last finished round. The next round
// starts at Until, less Config.Lookback.
type Checkpoint struct {
	From       time.Time `json:"from"`
	Until      time.Time `json:"until"`
	FinishedAt time.Time `json:"finished_at"`
	Counts     Counts    `json:"counts"`
}

// ReadCheckpoint reads the sweep checkpoint from the state bucket and its
// revision. It returns [ErrNoCheckpoint] when there is none, and
// [ErrBadCheckpoint] (with the revision) when the value does not decode.
func ReadCheckpoint(ctx context.Context, state jetstream.KeyValue) (Checkpoint, uint64, error) {
	return ReadCheckpointAt(ctx, state, CheckpointKey)
}

// ReadCheckpointAt reads the checkpoint under key, as [ReadCheckpoint].
func ReadCheckpointAt(ctx context.Context, state jetstream.KeyValue, key string) (Checkpoint, uint64, error) {
	e, err := state.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Checkpoint{}, 0, ErrNoCheckpoint
	}
	if err != nil {
		return Checkpoint{}, 0, fmt.Errorf("read %s: %w", key, err)
	}
	var cp Checkpoint
	if err := json.Unmarshal(e.Value(), &cp); err != nil {
		return Checkpoint{}, e.Revision(), fmt.Errorf("%w: %s: %w", ErrBadCheckpoint, key, err)
	}
	return cp, e.Revision(), nil
}

// Reconciler sweeps the Management API for signups, or recovers an event
// stream's failed deliveries. It is safe for concurrent use; rounds of one
// Reconciler run one at a time.
type Reconciler struct {
	cfg        Config
	users      Lister
	deliveries DeliveryLister
	schemas    *schemas.Set
	js         jetstream.JetStream
	ledger     jetstream.KeyValue
	state      jetstream.KeyValue
	log        *slog.Logger
	tracer     trace.Tracer
	prop       propagation.TextMapPropagator
	now        func() time.Time
	sleep      func(context.Context, time.Duration) error
	onSweep    func(Result, error)
	limiter    *rate.Limiter

	mu sync.Mutex
}

// New checks cfg and deps and opens the ledger and state buckets.
func New(ctx context.Context, cfg Config, deps Deps) (*Reconciler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("reconcile config: %w", err)
	}
	if deps.JetStream == nil || deps.Logger == nil {
		return nil, errors.New("reconciler: JetStream and Logger are required")
	}
	if cfg.Mode == ModeSweep && deps.Users == nil {
		return nil, errors.New("reconciler: a sweep needs Users")
	}
	if cfg.Mode == ModeDeliveries && deps.Deliveries == nil {
		return nil, errors.New("reconciler: recovering deliveries needs Deliveries")
	}
	r := &Reconciler{
		cfg: cfg, users: deps.Users, deliveries: deps.Deliveries, schemas: deps.Schemas,
		js: deps.JetStream, log: deps.Logger.With("role", "reconcile"),
		prop: deps.Propagator, now: deps.Now, sleep: deps.Sleep, onSweep: deps.OnSweep,
		limiter: newLimiter(cfg.RPS),
	}
	if cfg.Mode == ModeDeliveries {
		r.log = r.log.With("mode", string(ModeDeliveries), "event_stream", cfg.StreamID)
		if r.schemas == nil {
			var err error
			if r.schemas, err = schemas.Compile(); err != nil {
				return nil, fmt.Errorf("reconciler: %w", err)
			}
		}
	}
	tp := deps.Tracer
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	r.tracer = tp.Tracer("github.com/signupsync/signupsync/services/reconciler")
	if r.prop == nil {
		r.prop = propagation.TraceContext{}
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.sleep == nil {
		r.sleep = sleep
	}
	var err error
	if r.ledger, err = deps.JetStream.KeyValue(ctx, events.BucketLedger); err != nil {
		return nil, fmt.Errorf("reconciler: ledger bucket %s: %w", events.BucketLedger, err)
	}
	if r.state, err = deps.JetStream.KeyValue(ctx, events.BucketState); err != nil {
		return nil, fmt.Errorf("reconciler: state bucket %s: %w", events.BucketState, err)
	}
	return r, nil
}

// Run does a round of the configured mode ([Reconciler.Sweep] or
// [Reconciler.RecoverDeliveries]), then pauses Config.Every and does
// another, until ctx ends; then it returns nil. A failed round is logged
// and tried again at the next one. With Every 0 it does one round and
// returns that round's error.
func (r *Reconciler) Run(ctx context.Context) error {
	round := r.Sweep
	if r.cfg.Mode == ModeDeliveries {
		round = r.RecoverDeliveries
	}
	for {
		res, err := round(ctx)
		if r.cfg.Every == 0 {
			if r.onSweep != nil {
				r.onSweep(res, err)
			}
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if r.onSweep != nil {
			r.onSweep(res, err)
		}
		if err != nil {
			r.log.ErrorContext(ctx, "reconcile round failed, trying again at the next one", "err", err, "in", r.cfg.Every.String())
		}
		if r.sleep(ctx, r.cfg.Every) != nil {
			return nil
		}
	}
}

// roundSpec is what differs between a sweep and a recovery of deliveries.
type roundSpec struct {
	name string // of the span and the logs
	key  string // of the checkpoint
	// align rounds a bound to what the API can query (milliseconds for
	// users, seconds for deliveries); it never moves a bound before the
	// checkpoint it came from.
	align func(time.Time) time.Time
	body  func(context.Context, *Result) error
}

// round does one pass over [checkpoint − Lookback (or Since), Until) and
// writes the checkpoint when the whole window is done. It returns what it
// did so far and an error when a request failed permanently, still failed
// after Config.MaxAttempts tries ([ErrGaveUp]), or ctx ended; the
// checkpoint is then left where it was.
func (r *Reconciler) round(ctx context.Context, spec roundSpec) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	until := r.cfg.Until
	if until.IsZero() {
		until = r.now().Add(-r.cfg.SettleLag)
	}
	res := Result{Mode: r.cfg.Mode, StreamID: r.cfg.StreamID, From: spec.align(r.cfg.Since), Until: spec.align(until), DryRun: r.cfg.DryRun}
	var prev uint64
	var cp Checkpoint
	found := false
	err := r.retry(ctx, &res.Counts, "read checkpoint", natsTransient, func(ctx context.Context) error {
		var err error
		cp, prev, err = ReadCheckpointAt(ctx, r.state, spec.key)
		switch {
		case errors.Is(err, ErrNoCheckpoint):
			return nil
		case errors.Is(err, ErrBadCheckpoint) && r.cfg.IgnoreCheckpoint:
			r.log.WarnContext(ctx, "replacing an undecodable checkpoint", "err", err)
			return nil
		case errors.Is(err, ErrBadCheckpoint):
			return fmt.Errorf("%w (set IgnoreCheckpoint to replace it)", err)
		}
		found = err == nil
		return err
	})
	if err != nil {
		return res, err
	}
	if found && !r.cfg.IgnoreCheckpoint {
		// The checkpoint wins over Since, however far back it is: a
		// reconcile outage longer than --since leaves no gap.
		if !cp.Until.Before(res.Until) {
			res.From, res.UpToDate = cp.Until, true
			r.log.DebugContext(ctx, "reconcile up to date", "checkpoint", cp.Until, "until", res.Until)
			return res, nil
		}
		res.From = spec.align(cp.Until.Add(-r.cfg.Lookback))
	}
	if !res.From.Before(res.Until) {
		res.UpToDate = true
		r.log.DebugContext(ctx, "reconcile up to date", "from", res.From, "until", res.Until)
		return res, nil
	}

	ctx, span := r.tracer.Start(ctx, spec.name, trace.WithAttributes(
		attribute.String("signupsync.reconcile.from", events.FormatTime(res.From)),
		attribute.String("signupsync.reconcile.until", events.FormatTime(res.Until)),
	))
	defer span.End()
	r.log.InfoContext(ctx, spec.name, "from", res.From, "until", res.Until, "dry_run", r.cfg.DryRun)
	if err := spec.body(ctx, &res); err != nil {
		err = fmt.Errorf("%s [%s, %s): %w", spec.name, events.FormatTime(res.From), events.FormatTime(res.Until), err)
		span.RecordError(err)
		span.SetStatus(codes.Error, "round failed")
		return res, err
	}
	switch {
	case r.cfg.DryRun:
	case found && cp.Until.After(res.Until):
		// A re-sweep of an older range never moves the checkpoint back.
		r.log.InfoContext(ctx, "checkpoint is further than this round; kept", "checkpoint", cp.Until)
	default:
		if err := r.saveCheckpoint(ctx, spec.key, &res, prev); err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "checkpoint failed")
			return res, err
		}
	}
	r.log.InfoContext(ctx, spec.name+" done", "from", res.From, "until", res.Until,
		"listed", res.Listed, "known", res.Known, "missing", res.Missing, "published", res.Published,
		"duplicates", res.Duplicates, "ignored", res.Ignored, "invalid", res.Invalid, "dense_windows", res.Dense,
		"requests", res.Requests, "retries", res.Retries)
	return res, nil
}

// page handles signups from src, Config.Concurrency at a time. It returns
// the first failure, after the signups already started finished.
func (r *Reconciler) page(ctx context.Context, res *Result, src events.Source, signups []events.SignupData) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Concurrency)
	var mu sync.Mutex
	for _, d := range signups {
		g.Go(func() error {
			var c Counts
			err := r.user(gctx, &c, src, d)
			mu.Lock()
			res.add(c)
			mu.Unlock()
			return err
		})
	}
	return g.Wait()
}

// user publishes one listed signup from src unless the ledger knows it.
func (r *Reconciler) user(ctx context.Context, res *Counts, src events.Source, d events.SignupData) error {
	res.Listed++
	known := false
	err := r.retry(ctx, res, "ledger get", natsTransient, func(ctx context.Context) error {
		_, err := r.ledger.Get(ctx, events.LedgerKey(d.UserID))
		switch {
		case err == nil:
			known = true
		case errors.Is(err, jetstream.ErrKeyNotFound):
			known = false
		default:
			return fmt.Errorf("ledger get %s: %w", d.UserID, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if known {
		res.Known++
		return nil
	}
	res.Missing++
	if r.cfg.DryRun {
		r.log.DebugContext(ctx, "missing signup (dry run)", "user_id", d.UserID)
		return nil
	}
	dup, err := r.publish(ctx, res, src, d)
	if errors.Is(err, events.ErrInvalidUser) {
		// No publisher may store it (events.NewMsg refuses it), and no
		// retry changes it: counted and skipped, so that one bad profile
		// does not hold the checkpoint back for ever.
		res.Invalid++
		r.log.WarnContext(ctx, "listed user that cannot be a signup, skipped", "user_id", d.UserID, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	if dup {
		res.Duplicates++
	} else {
		res.Published++
	}
	r.log.DebugContext(ctx, "published missing signup", "user_id", d.UserID, "duplicate", dup)
	return nil
}

// publish makes the signup durable and reports whether SIGNUPS already
// held it.
func (r *Reconciler) publish(ctx context.Context, res *Counts, src events.Source, d events.SignupData) (bool, error) {
	msg, ev, err := events.NewMsg(src, d, r.now())
	if err != nil {
		return false, err
	}
	ctx, span := r.tracer.Start(ctx, "publish "+msg.Subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", msg.Subject),
			attribute.String("messaging.message.id", ev.ID),
		))
	defer span.End()
	r.prop.Inject(ctx, events.HeaderCarrier(msg.Header))
	var ack *jetstream.PubAck
	err = r.retry(ctx, res, "publish", natsTransient, func(ctx context.Context) error {
		pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
		defer cancel()
		var err error
		ack, err = r.js.PublishMsg(pctx, msg, jetstream.WithExpectStream(events.StreamSignups))
		return err
	})
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
		return false, fmt.Errorf("publish signup %s: %w", ev.ID, err)
	}
	return ack.Duplicate, nil
}

// saveCheckpoint records the finished round under key. When another
// reconciler wrote the checkpoint meanwhile, the later of the two ends is
// kept.
func (r *Reconciler) saveCheckpoint(ctx context.Context, key string, res *Result, prev uint64) error {
	cp := Checkpoint{From: res.From, Until: res.Until, FinishedAt: r.now().UTC(), Counts: res.Counts}
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	return r.retry(ctx, &res.Counts, "write checkpoint", natsTransient, func(ctx context.Context) error {
		for range 3 {
			if prev == 0 {
				_, err = r.state.Create(ctx, key, b)
			} else {
				_, err = r.state.Update(ctx, key, b, prev)
			}
			if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				break
			}
			other, rev, rerr := ReadCheckpointAt(ctx, r.state, key)
			if rerr != nil {
				return rerr
			}
			if !other.Until.Before(cp.Until) {
				r.log.InfoContext(ctx, "another sweep advanced the checkpoint further; keeping it", "until", other.Until)
				return nil
			}
			prev = rev
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", key, err)
		}
		return nil
	})
}

// retry runs fn until it succeeds, fails for good, or has failed
// transiently MaxAttempts times. Between tries it waits the delay the
// failure asked for ([auth0api.RetryAfter], e.g. from X-RateLimit-Reset)
// or else the next step of events.DefaultBackOff.
func (r *Reconciler) retry(ctx context.Context, res *Counts, op string, transient func(error) bool, fn func(context.Context) error) error {
	return retry(ctx, retrier{
		max: r.cfg.MaxAttempts, sleep: r.sleep, log: r.log,
		onRetry: func() { res.Retries++ },
	}, op, transient, fn)
}

// natsTransient reports whether a JetStream failure may pass: everything
// but a 4xx answer from the JetStream API.
func natsTransient(err error) bool {
	if errors.Is(err, ErrBadCheckpoint) || errors.Is(err, jetstream.ErrInvalidKey) {
		return false
	}
	var ae *jetstream.APIError
	return !errors.As(err, &ae) || ae.Code < 400 || ae.Code >= 500
}

// ceilMilli rounds up to Auth0's millisecond resolution, as the client
// does, so a stored bound is exactly the bound that was queried.
func ceilMilli(t time.Time) time.Time {
	if r := t.Truncate(time.Millisecond); r.Before(t) {
		t = r.Add(time.Millisecond)
	}
	return t.UTC()
}

// Package reconciler finds the signups no webhook reported and publishes
// them, and fetches Auth0's users-export file for the backfill.
//
// A sweep ([Reconciler.Sweep]) lists the users created in a window of time
// from the Auth0 Management API, oldest first, and publishes every user the
// importer's ledger does not know as a signup from source reconcile. Auth0
// lets a client page through at most 1,000 results of one query, so a
// window whose query reports 1,000 is halved until each part holds fewer
// (down to one millisecond, Auth0's resolution). The end of the swept window
// is kept as a checkpoint in the state bucket, written only once the whole
// window is done: a sweep that fails or is interrupted is repeated from the
// same start. Repeating is safe. A user already in SIGNUPS within the
// duplicate window is acknowledged as a duplicate (the Nats-Msg-Id is
// derived from the user id), and beyond it the importer's ledger turns a
// second copy into already_present.
//
// [Export] runs a users-export job and writes its file; the backfill
// publishes the users in it.
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
)

// CheckpointKey is the key of the sweep checkpoint in [events.BucketState].
const CheckpointKey = "reconcile.checkpoint"

// Trigger is the trigger recorded in the events a sweep publishes.
const Trigger = "reconcile"

// ErrGaveUp is wrapped, together with the last failure, when a request
// still failed transiently after Config.MaxAttempts tries.
var ErrGaveUp = errors.New("gave up retrying")

// ErrNoCheckpoint is returned by [ReadCheckpoint] when no sweep has
// finished yet.
var ErrNoCheckpoint = errors.New("no reconcile checkpoint")

// ErrBadCheckpoint is returned by [ReadCheckpoint] for a value that is not
// a checkpoint. A sweep with Config.IgnoreCheckpoint replaces it.
var ErrBadCheckpoint = errors.New("undecodable reconcile checkpoint")

// Lister lists the users created in [from, to), oldest first, and reports
// how many match (at most [auth0api.SearchLimit]). *auth0api.Client
// satisfies it; its errors are classified with [auth0api.IsTransient] and
// [auth0api.RetryAfter].
type Lister interface {
	ListUsersCreated(ctx context.Context, from, to time.Time, page, perPage int) ([]events.SignupData, int, error)
}

// Deps are the collaborators of a [Reconciler]. Users, JetStream and Logger
// are required.
type Deps struct {
	Users Lister
	// JetStream publishes signups and holds the ledger and state buckets,
	// which must exist ([events.Ensure]).
	JetStream  jetstream.JetStream
	Logger     *slog.Logger
	Tracer     trace.TracerProvider
	Propagator propagation.TextMapPropagator
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends, returning ctx's error then; nil
	// means a timer. It paces retries and the pause between sweeps.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnSweep, when set, is called by [Reconciler.Run] after every sweep.
	OnSweep func(Result, error)
}

// Counts are what a sweep did.
type Counts struct {
	// Listed users were returned by Auth0.
	Listed int `json:"listed"`
	// Known users have a ledger entry: the importer has seen them.
	Known int `json:"known"`
	// Missing users have none; outside a dry run each was published.
	Missing int `json:"missing"`
	// Published signups were new to SIGNUPS.
	Published int `json:"published"`
	// Duplicates were already in SIGNUPS (within the duplicate window).
	Duplicates int `json:"duplicates"`
	// Split counts full windows that were halved.
	Split int `json:"windows_split"`
	// Dense counts windows of the minimum width still holding 1,000 users
	// or more: users beyond the first 1,000 of each were not listed.
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
	c.Split += o.Split
	c.Dense += o.Dense
	c.Requests += o.Requests
	c.Retries += o.Retries
}

// Result is one sweep: the window [From, Until) and its counts. UpToDate
// means there was nothing to sweep yet.
type Result struct {
	From     time.Time `json:"from"`
	Until    time.Time `json:"until"`
	UpToDate bool      `json:"up_to_date,omitempty"`
	DryRun   bool      `json:"dry_run,omitempty"`
	Counts
}

// String is a one-line summary.
func (r Result) String() string {
	if r.UpToDate {
		return fmt.Sprintf("reconcile: up to date (checkpoint %s, window ends %s)", events.FormatTime(r.From), events.FormatTime(r.Until))
	}
	mode := "reconcile"
	if r.DryRun {
		mode = "reconcile (dry run)"
	}
	s := fmt.Sprintf("%s [%s, %s): listed %d, known %d, missing %d, published %d, duplicates %d, windows split %d, requests %d, retries %d",
		mode, events.FormatTime(r.From), events.FormatTime(r.Until), r.Listed, r.Known, r.Missing, r.Published, r.Duplicates, r.Split, r.Requests, r.Retries)
	if r.Dense > 0 {
		s += fmt.Sprintf(", DENSE WINDOWS %d (users beyond 1000 per millisecond not listed: use export and backfill)", r.Dense)
	}
	return s
}

// Checkpoint is the JSON value under [CheckpointKey]: the last finished
// sweep. The next sweep starts at Until.
type Checkpoint struct {
	From       time.Time `json:"from"`
	Until      time.Time `json:"until"`
	FinishedAt time.Time `json:"finished_at"`
	Counts     Counts    `json:"counts"`
}

// ReadCheckpoint reads the checkpoint from the state bucket and its
// revision. It returns [ErrNoCheckpoint] when there is none, and
// [ErrBadCheckpoint] (with the revision) when the value does not decode.
func ReadCheckpoint(ctx context.Context, state jetstream.KeyValue) (Checkpoint, uint64, error) {
	e, err := state.Get(ctx, CheckpointKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Checkpoint{}, 0, ErrNoCheckpoint
	}
	if err != nil {
		return Checkpoint{}, 0, fmt.Errorf("read %s: %w", CheckpointKey, err)
	}
	var cp Checkpoint
	if err := json.Unmarshal(e.Value(), &cp); err != nil {
		return Checkpoint{}, e.Revision(), fmt.Errorf("%w: %s: %w", ErrBadCheckpoint, CheckpointKey, err)
	}
	return cp, e.Revision(), nil
}

// Reconciler sweeps the Management API for signups. It is safe for
// concurrent use; sweeps of one Reconciler run one at a time.
type Reconciler struct {
	cfg     Config
	users   Lister
	js      jetstream.JetStream
	ledger  jetstream.KeyValue
	state   jetstream.KeyValue
	log     *slog.Logger
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	now     func() time.Time
	sleep   func(context.Context, time.Duration) error
	onSweep func(Result, error)
	limiter *rate.Limiter

	mu sync.Mutex
}

// New checks cfg and deps and opens the ledger and state buckets.
func New(ctx context.Context, cfg Config, deps Deps) (*Reconciler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("reconcile config: %w", err)
	}
	if deps.Users == nil || deps.JetStream == nil || deps.Logger == nil {
		return nil, errors.New("reconciler: Users, JetStream and Logger are required")
	}
	r := &Reconciler{
		cfg: cfg, users: deps.Users, js: deps.JetStream, log: deps.Logger.With("role", "reconcile"),
		prop: deps.Propagator, now: deps.Now, sleep: deps.Sleep, onSweep: deps.OnSweep,
		limiter: newLimiter(cfg.RPS),
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

// Run sweeps, then pauses Config.Every and sweeps again, until ctx ends;
// then it returns nil. A failed sweep is logged and tried again at the next
// one. With Every 0 it sweeps once and returns that sweep's error.
func (r *Reconciler) Run(ctx context.Context) error {
	for {
		res, err := r.Sweep(ctx)
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
			r.log.ErrorContext(ctx, "reconcile sweep failed, trying again at the next sweep", "err", err, "in", r.cfg.Every.String())
		}
		if r.sleep(ctx, r.cfg.Every) != nil {
			return nil
		}
	}
}

// Sweep does one pass over [checkpoint (or Since), Until) and writes the
// checkpoint when the whole window is done. It returns what it did so far
// and an error when a request failed permanently, still failed after
// Config.MaxAttempts tries ([ErrGaveUp]), or ctx ended; the checkpoint is
// then left where it was.
func (r *Reconciler) Sweep(ctx context.Context) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	until := r.cfg.Until
	if until.IsZero() {
		until = r.now().Add(-r.cfg.SettleLag)
	}
	res := Result{From: ceilMilli(r.cfg.Since), Until: ceilMilli(until), DryRun: r.cfg.DryRun}
	var prev uint64
	var cp Checkpoint
	found := false
	err := r.retry(ctx, &res.Counts, "read checkpoint", natsTransient, func(ctx context.Context) error {
		var err error
		cp, prev, err = ReadCheckpoint(ctx, r.state)
		switch {
		case errors.Is(err, ErrNoCheckpoint):
			return nil
		case errors.Is(err, ErrBadCheckpoint) && r.cfg.IgnoreCheckpoint:
			r.log.WarnContext(ctx, "replacing an undecodable checkpoint", "err", err)
			return nil
		case errors.Is(err, ErrBadCheckpoint):
			return fmt.Errorf("%w (sweep with --ignore-checkpoint to replace it)", err)
		}
		found = err == nil
		return err
	})
	if err != nil {
		return res, err
	}
	if found && !r.cfg.IgnoreCheckpoint && cp.Until.After(res.From) {
		res.From = cp.Until
	}
	if !res.From.Before(res.Until) {
		res.UpToDate = true
		r.log.DebugContext(ctx, "reconcile up to date", "from", res.From, "until", res.Until)
		return res, nil
	}

	ctx, span := r.tracer.Start(ctx, "reconcile sweep", trace.WithAttributes(
		attribute.String("signupsync.reconcile.from", events.FormatTime(res.From)),
		attribute.String("signupsync.reconcile.until", events.FormatTime(res.Until)),
	))
	defer span.End()
	r.log.InfoContext(ctx, "reconcile sweep", "from", res.From, "until", res.Until, "dry_run", r.cfg.DryRun)
	if err := r.window(ctx, &res, res.From, res.Until); err != nil {
		err = fmt.Errorf("reconcile sweep [%s, %s): %w", events.FormatTime(res.From), events.FormatTime(res.Until), err)
		span.RecordError(err)
		span.SetStatus(codes.Error, "sweep failed")
		return res, err
	}
	switch {
	case r.cfg.DryRun:
	case found && cp.Until.After(res.Until):
		// A re-sweep of an older range never moves the checkpoint back.
		r.log.InfoContext(ctx, "checkpoint is further than this sweep; kept", "checkpoint", cp.Until)
	default:
		if err := r.saveCheckpoint(ctx, &res, prev); err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "checkpoint failed")
			return res, err
		}
	}
	r.log.InfoContext(ctx, "reconcile sweep done", "from", res.From, "until", res.Until,
		"listed", res.Listed, "known", res.Known, "missing", res.Missing, "published", res.Published,
		"duplicates", res.Duplicates, "windows_split", res.Split, "dense_windows", res.Dense,
		"requests", res.Requests, "retries", res.Retries)
	return res, nil
}

// window sweeps [from, to), halving it while Auth0 reports a full result.
func (r *Reconciler) window(ctx context.Context, res *Result, from, to time.Time) error {
	users, total, err := r.list(ctx, res, from, to, 0)
	if err != nil {
		return err
	}
	if total >= auth0api.SearchLimit {
		if half := (to.Sub(from) / 2).Truncate(time.Millisecond); half >= r.cfg.WindowMin {
			res.Split++
			mid := from.Add(half)
			r.log.DebugContext(ctx, "window full, splitting", "from", from, "mid", mid, "until", to)
			if err := r.window(ctx, res, from, mid); err != nil {
				return err
			}
			return r.window(ctx, res, mid, to)
		}
		res.Dense++
		r.log.WarnContext(ctx, "window at the minimum width still holds 1000 users or more: the rest are not listed; run an export and a backfill",
			"from", from, "until", to, "min_window", r.cfg.WindowMin)
	}
	per := r.cfg.PageSize
	for page := 0; ; page++ {
		if page > 0 {
			if users, total, err = r.list(ctx, res, from, to, page); err != nil {
				return err
			}
		}
		if err := r.page(ctx, res, users); err != nil {
			return err
		}
		if len(users) < per || (page+1)*per >= total || (page+2)*per > auth0api.SearchLimit {
			return nil
		}
	}
}

// list reads one page, waiting for the rate limiter and retrying
// transient failures.
func (r *Reconciler) list(ctx context.Context, res *Result, from, to time.Time, page int) ([]events.SignupData, int, error) {
	var users []events.SignupData
	var total int
	err := r.retry(ctx, &res.Counts, "list users", auth0api.IsTransient, func(ctx context.Context) error {
		if err := r.limiter.Wait(ctx); err != nil {
			return fmt.Errorf("rate limiter: %w", err)
		}
		res.Requests++
		var err error
		users, total, err = r.users.ListUsersCreated(ctx, from, to, page, r.cfg.PageSize)
		return err
	})
	return users, total, err
}

// page handles the users of one page, Config.Concurrency at a time. It
// returns the first failure, after the users already started finished.
func (r *Reconciler) page(ctx context.Context, res *Result, users []events.SignupData) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Concurrency)
	var mu sync.Mutex
	for _, u := range users {
		g.Go(func() error {
			var c Counts
			err := r.user(gctx, &c, u)
			mu.Lock()
			res.add(c)
			mu.Unlock()
			return err
		})
	}
	return g.Wait()
}

// user publishes one listed user unless the ledger knows it.
func (r *Reconciler) user(ctx context.Context, res *Counts, d events.SignupData) error {
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
	dup, err := r.publish(ctx, res, d)
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
func (r *Reconciler) publish(ctx context.Context, res *Counts, d events.SignupData) (bool, error) {
	d.Tenant, d.Trigger, d.Partial = r.cfg.Tenant, Trigger, false
	if d.ConnectionStrategy == "" && len(d.Identities) == 1 {
		d.ConnectionStrategy = d.Identities[0].Provider
	}
	msg, ev, err := events.NewMsg(events.SourceReconcile, d, r.now())
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

// saveCheckpoint records the finished sweep. When another reconciler wrote
// the checkpoint meanwhile, the later of the two ends is kept.
func (r *Reconciler) saveCheckpoint(ctx context.Context, res *Result, prev uint64) error {
	cp := Checkpoint{From: res.From, Until: res.Until, FinishedAt: r.now().UTC(), Counts: res.Counts}
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	return r.retry(ctx, &res.Counts, "write checkpoint", natsTransient, func(ctx context.Context) error {
		for range 3 {
			if prev == 0 {
				_, err = r.state.Create(ctx, CheckpointKey, b)
			} else {
				_, err = r.state.Update(ctx, CheckpointKey, b, prev)
			}
			if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				break
			}
			other, rev, rerr := ReadCheckpoint(ctx, r.state)
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
			return fmt.Errorf("write %s: %w", CheckpointKey, err)
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

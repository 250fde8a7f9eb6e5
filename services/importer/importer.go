package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
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
		return nil, errors.New("importer: EmailPolicy link needs the Auth0 Management API (Deps.Enricher): links are decided on the profile read from Auth0, never on the message")
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
		return nil, fmt.Errorf("claims bucket %s: its TTL %s must exceed Delivery.AckWait %s plus AmbiguousWait %s (a live or ambiguous import must never lose its claim)",
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

// Package ingest receives Auth0 signup notifications over HTTP (Actions,
// Event Streams, Log Streams), verifies and validates them, normalises them
// into version 1 signup events and makes them durable in JetStream. A
// receiver answers 2xx only after JetStream acknowledged every signup the
// request carried.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/schemas"
)

// Endpoint paths (the contract's, events.Path*).
const (
	PathAction      = events.PathAction
	PathEventStream = events.PathEventStream
	PathLogStream   = events.PathLogStream
)

// Config configures the ingest role. Start from [DefaultConfig].
type Config struct {
	Addr string
	// AdminAddr is the listen address of [Service.AdminHandler] (/metrics,
	// /healthz, /readyz), which must not face the internet; empty: none.
	AdminAddr string
	// BodyLimit is the largest body the Action and Event Streams receivers
	// accept, in bytes.
	BodyLimit int64
	// LogStreamBodyLimit is the largest Log Streams batch accepted, in
	// bytes. Auth0 does not document its batch size; the body is read entry
	// by entry (each entry at most 64 KiB, a batch at most 10,000 entries),
	// so memory stays bounded whatever the limit.
	LogStreamBodyLimit int64
	// ActionSecrets are the Standard Webhooks secrets of the Auth0 Actions;
	// several may be valid at once during rotation.
	ActionSecrets []string
	// EventStreamTokens are bearer tokens and EventStreamBasic "user:pass"
	// pairs accepted from Auth0 Event Streams.
	EventStreamTokens []string
	EventStreamBasic  []string
	// LogStreamTokens are Authorization header values accepted from Auth0
	// Log Streams, compared whole (include "Bearer " if Auth0 sends it)
	// except that a Bearer or Basic scheme matches in any case.
	LogStreamTokens []string
	// Tenant names the Auth0 tenant for bodies that do not carry it.
	Tenant string
	// Tolerance bounds webhook-timestamp skew.
	Tolerance time.Duration
	// PublishTimeout bounds the wait for JetStream's acknowledgement; past
	// it the request gets 503 and Retry-After.
	PublishTimeout time.Duration
	RetryAfter     time.Duration

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
}

// DefaultConfig returns production defaults without credentials.
func DefaultConfig() Config {
	return Config{
		Addr:               "127.0.0.1:8080",
		AdminAddr:          "127.0.0.1:9466",
		BodyLimit:          64 << 10,
		LogStreamBodyLimit: 8 << 20,
		Tenant:             "default",
		Tolerance:          DefaultTolerance,
		PublishTimeout:     2 * time.Second,
		RetryAfter:         5 * time.Second,
		ReadHeaderTimeout:  5 * time.Second,
		ReadTimeout:        15 * time.Second,
		WriteTimeout:       15 * time.Second,
		IdleTimeout:        120 * time.Second,
		ShutdownTimeout:    20 * time.Second,
	}
}

// Validate reports every problem at once, naming each field as Config
// spells it (the command line tells them as its flags).
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("ingest: Addr is empty"))
	}
	if c.AdminAddr != "" && c.AdminAddr == c.Addr {
		errs = append(errs, errors.New("ingest: AdminAddr must differ from Addr: /metrics and /readyz stay off the public port"))
	}
	if c.BodyLimit < 1024 {
		errs = append(errs, fmt.Errorf("ingest: BodyLimit %d: must be at least 1024 bytes", c.BodyLimit))
	}
	if c.LogStreamBodyLimit < maxLogEntry || c.LogStreamBodyLimit > maxLogStreamBodyLimit {
		errs = append(errs, fmt.Errorf("ingest: LogStreamBodyLimit %d: must be between %d (one entry) and %d bytes", c.LogStreamBodyLimit, maxLogEntry, maxLogStreamBodyLimit))
	}
	if len(c.ActionSecrets) == 0 && len(c.EventStreamTokens) == 0 && len(c.EventStreamBasic) == 0 && len(c.LogStreamTokens) == 0 {
		errs = append(errs, errors.New("ingest: no receiver has credentials: set ActionSecrets, EventStreamTokens, EventStreamBasic or LogStreamTokens"))
	}
	for i, s := range c.ActionSecrets {
		if _, err := DecodeWebhookSecret(s); err != nil {
			errs = append(errs, fmt.Errorf("ingest: ActionSecrets entry %d: %w", i+1, err))
		}
	}
	for _, b := range c.EventStreamBasic {
		if !strings.Contains(b, ":") {
			errs = append(errs, errors.New("ingest: EventStreamBasic: entries must be user:password"))
		}
	}
	if c.Tolerance <= 0 || c.Tolerance > time.Hour {
		errs = append(errs, fmt.Errorf("ingest: Tolerance %s: must be in (0, 1h]", c.Tolerance))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, errors.New("ingest: PublishTimeout must be positive"))
	}
	if c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 {
		errs = append(errs, errors.New("HTTP read-header, read and write timeouts must be positive"))
	}
	return errors.Join(errs...)
}

// Publisher makes one message durable and reports whether JetStream
// recognised it as a duplicate. jetstream.JetStream satisfies it.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Deps are the collaborators of the ingest role. Publisher, Schemas and
// Logger are required.
type Deps struct {
	Publisher Publisher
	Schemas   *schemas.Set
	Logger    *slog.Logger
	// Metrics records request and publish counts; nil records nothing.
	Metrics *Metrics
	// Ready reports whether the broker can take writes (for the admin
	// handler's /readyz); nil means always ready.
	Ready func(context.Context) error
	// MetricsHandler serves the admin handler's /metrics; nil serves 404.
	MetricsHandler http.Handler
	Tracer         trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	Now            func() time.Time
}

// Service is the ingest HTTP handler set. It is safe for concurrent use.
type Service struct {
	cfg        Config
	pub        Publisher
	schemas    *schemas.Set
	log        *slog.Logger
	metrics    *Metrics
	ready      func(context.Context) error
	metricsH   http.Handler
	tracerProv trace.TracerProvider
	tracer     trace.Tracer
	prop       propagation.TextMapPropagator
	now        func() time.Time
	action     *WebhookVerifier
	eventAuth  *headerAuth
	logAuth    *headerAuth
}

// New checks cfg and deps and builds the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ingest config: %w", err)
	}
	if deps.Publisher == nil || deps.Schemas == nil || deps.Logger == nil {
		return nil, errors.New("ingest: Publisher, Schemas and Logger are required")
	}
	s := &Service{
		cfg: cfg, pub: deps.Publisher, schemas: deps.Schemas, log: deps.Logger,
		metrics: deps.Metrics, ready: deps.Ready, metricsH: deps.MetricsHandler,
		tracerProv: deps.Tracer, prop: deps.Propagator, now: deps.Now,
		eventAuth: eventStreamAuth(cfg.EventStreamTokens, cfg.EventStreamBasic),
		logAuth:   newHeaderAuth(cfg.LogStreamTokens),
	}
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	if s.tracerProv == nil {
		s.tracerProv = noop.NewTracerProvider()
	}
	s.tracer = s.tracerProv.Tracer("github.com/signupsync/signupsync/services/ingest")
	if s.prop == nil {
		s.prop = propagation.TraceContext{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ready == nil {
		s.ready = func(context.Context) error { return nil }
	}
	if len(cfg.ActionSecrets) > 0 {
		v, err := NewWebhookVerifier(cfg.ActionSecrets, cfg.Tolerance, s.now)
		if err != nil {
			return nil, err
		}
		s.action = v
	}
	return s, nil
}

// errBrokerUnavailable marks a publish JetStream did not acknowledge.
var errBrokerUnavailable = errors.New("broker did not acknowledge the write")

// publish makes one signup durable. It returns the event id and whether
// JetStream already held it.
func (s *Service) publish(ctx context.Context, src events.Source, d events.SignupData) (string, bool, error) {
	msg, ev, err := events.NewMsg(src, d, s.now())
	if err != nil {
		return "", false, err
	}
	ctx, span := s.tracer.Start(ctx, "publish "+msg.Subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(messagingAttrs(msg.Subject, ev.ID)...))
	defer span.End()
	s.prop.Inject(ctx, events.HeaderCarrier(msg.Header))

	pctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	ack, err := s.pub.PublishMsg(pctx, msg, jetstream.WithExpectStream(events.StreamSignups))
	if err != nil {
		recordSpanError(span, err)
		s.metrics.publishFailed(src)
		return "", false, fmt.Errorf("%w: publish signup %s: %w", errBrokerUnavailable, ev.ID, err)
	}
	s.metrics.published(src, ack.Duplicate)
	return ev.ID, ack.Duplicate, nil
}

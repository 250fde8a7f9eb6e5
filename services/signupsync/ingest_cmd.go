package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signupsync/signupsync/internal/telemetry"
	"github.com/signupsync/signupsync/schemas"
	"github.com/signupsync/signupsync/services/ingest"
)

// ingestFlags registers the ingest settings and returns a builder for the
// Config once the flags are parsed.
func ingestFlags(f *flags) func() ingest.Config {
	d := ingest.DefaultConfig()
	addr := f.String("http-addr", "SIGNUPSYNC_HTTP_ADDR", d.Addr, "listen address of the webhook receivers")
	limit := f.Int("body-limit", "SIGNUPSYNC_BODY_LIMIT", int(d.BodyLimit), "largest accepted body in bytes (Action and Event Streams receivers)")
	logLimit := f.Int("log-stream-body-limit", "SIGNUPSYNC_LOG_STREAM_BODY_LIMIT", int(d.LogStreamBodyLimit), "largest accepted Log Streams batch in bytes (read entry by entry, each at most 64 KiB)")
	secrets := f.SecretList("action-secrets", "SIGNUPSYNC_ACTION_SECRETS", "Standard Webhooks secrets (whsec_...) of the Auth0 Actions, comma-separated for rotation")
	esTokens := f.SecretList("event-stream-token", "SIGNUPSYNC_EVENT_STREAM_TOKEN", "bearer token(s) Auth0 Event Streams send, comma-separated")
	esBasic := f.SecretList("event-stream-basic", "SIGNUPSYNC_EVENT_STREAM_BASIC", "user:password pair(s) for Event Streams basic auth, comma-separated")
	lsTokens := f.SecretList("log-stream-token", "SIGNUPSYNC_LOG_STREAM_TOKEN", "Authorization header value(s) Auth0 Log Streams send, comma-separated")
	tenant := f.String("tenant", "SIGNUPSYNC_AUTH0_TENANT", d.Tenant, "Auth0 tenant name for bodies that do not carry it")
	tol := f.Duration("signature-tolerance", "SIGNUPSYNC_SIGNATURE_TOLERANCE", d.Tolerance, "allowed webhook-timestamp skew")
	pubTimeout := f.Duration("publish-timeout", "SIGNUPSYNC_PUBLISH_TIMEOUT", d.PublishTimeout, "wait for JetStream's acknowledgement before answering 503")
	return func() ingest.Config {
		c := d
		c.Addr, c.BodyLimit, c.LogStreamBodyLimit, c.Tenant = *addr, int64(*limit), int64(*logLimit), *tenant
		c.ActionSecrets, c.EventStreamTokens, c.EventStreamBasic, c.LogStreamTokens = secrets.items, esTokens.items, esBasic.items, lsTokens.items
		c.Tolerance, c.PublishTimeout = *tol, *pubTimeout
		// The admin listener (/metrics, /healthz, /readyz) is on
		// --metrics-addr, the flag every role with one has. It is not
		// registered here because dev registers it through the importer's
		// flags: `ingest` registers its own (addIngestAdminFlag), and in dev
		// the one process serves its admin endpoints there.
		if fl := f.fs.Lookup(metricsAddrFlag); fl != nil {
			c.AdminAddr = fl.Value.String()
		}
		return c
	}
}

// metricsAddrFlag names the admin listener's flag (SIGNUPSYNC_METRICS_ADDR)
// of ingest, importer, exchange and reconcile.
const metricsAddrFlag = "metrics-addr"

// addIngestAdminFlag registers --metrics-addr for the ingest role.
func addIngestAdminFlag(f *flags) {
	f.String(metricsAddrFlag, "SIGNUPSYNC_METRICS_ADDR", ingest.DefaultConfig().AdminAddr, "listen address of /metrics, /healthz and /readyz (keep it off the internet; the webhook port serves neither /metrics nor /readyz)")
}

// Inbox prefixes of the internet-facing roles: their NATS users may
// subscribe only to their own replies (deploy/nats/permissions.conf), not
// to _INBOX.>, where the importer's pulled signups arrive.
const (
	ingestInboxPrefix   = "_INBOX_ingest"
	exchangeInboxPrefix = "_INBOX_exchange"
)

func runIngest(ctx context.Context, args []string, e env) error {
	f := newFlags("ingest", e.getenv, e.stderr)
	com := addCommon(f)
	build := ingestFlags(f)
	addIngestAdminFlag(f)
	if err := f.parse(args); err != nil {
		return usageError{err}
	}
	cfg := build()
	cfg.ShutdownTimeout = *com.drainPeriod
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	log, err := com.logger(e)
	if err != nil {
		return err
	}
	tracing, err := telemetry.SetupTracing(ctx, "ingest", version, e.getenv)
	if err != nil {
		return usageError{err}
	}
	// Publishing while disconnected must fail at once (503), not sit in the
	// reconnect buffer: ReconnectBufSize(-1).
	nc, js, err := connectNATS(*com.natsURL, *com.natsCreds, "signupsync-ingest", log, nats.ReconnectBufSize(-1), nats.CustomInboxPrefix(ingestInboxPrefix))
	if err != nil {
		return err
	}
	// Ingest faces the internet, so its NATS user may not create or change
	// streams: the importer (or reconcile, backfill) creates the topology.
	// Until SIGNUPS exists /readyz says 503 and the receivers answer 503.
	reg, metricsH := registry()
	serveErr := serveIngest(ctx, cfg, js, reg, metricsH, tracing, log)
	return errors.Join(serveErr, drainNATS(nc, *com.drainPeriod), tracing.Shutdown(context.WithoutCancel(ctx)))
}

// serveIngest runs the ingest HTTP server, and the admin server when
// cfg.AdminAddr is set, until ctx ends or either fails.
func serveIngest(ctx context.Context, cfg ingest.Config, js jetstream.JetStream, reg prometheus.Registerer, metricsH http.Handler, tracing telemetry.Tracing, log *slog.Logger) error {
	set, err := schemas.Compile()
	if err != nil {
		return fmt.Errorf("schemas: %w", err)
	}
	svc, err := ingest.New(cfg, ingest.Deps{
		Publisher:      js,
		Schemas:        set,
		Logger:         log.With("role", "ingest"),
		Metrics:        ingest.NewMetrics(reg),
		Ready:          streamReady(js),
		MetricsHandler: metricsH,
		Tracer:         tracing.Provider,
		Propagator:     telemetry.Propagator(),
	})
	if err != nil {
		return err
	}
	ln, err := ingest.Listen(ctx, cfg.Addr)
	if err != nil {
		return err
	}
	if cfg.AdminAddr == "" {
		return svc.Serve(ctx, ln)
	}
	adminLn, err := ingest.Listen(ctx, cfg.AdminAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("admin: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	adminErr := make(chan error, 1)
	go func() {
		err := svc.ServeAdmin(ctx, adminLn)
		cancel() // a failed admin server stops the role: its probes would fail anyway
		adminErr <- err
	}()
	err = svc.Serve(ctx, ln)
	cancel()
	return errors.Join(err, <-adminErr)
}

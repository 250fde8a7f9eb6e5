package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/telemetry"
	"github.com/signupsync/signupsync/services/importer"
)

// importerSettings is everything the importer role needs besides NATS.
type importerSettings struct {
	cfg          importer.Config
	project      string
	credentials  string
	emulatorHost string
	auth0        auth0api.Config
	metricsAddr  string
}

// importerFlags registers the importer settings; the returned builder
// validates them once the flags are parsed.
func importerFlags(f *flags) func() (importerSettings, error) {
	d := importer.DefaultConfig()
	batch := f.Int("batch-size", "SIGNUPSYNC_BATCH_SIZE", d.BatchSize, "most users per ImportUsers call (1-1000)")
	window := f.Duration("batch-window", "SIGNUPSYNC_BATCH_WINDOW", d.BatchWindow, "how long a fetch waits to fill a batch")
	workers := f.Int("importer-workers", "SIGNUPSYNC_IMPORTER_WORKERS", d.Workers, "concurrent fetch-and-import loops per process")
	uidPolicy := f.String("uid-policy", "SIGNUPSYNC_UID_POLICY", string(d.UIDPolicy), "Firebase uid of an imported user: auth0_id or hash")
	emailPolicy := f.String("email-policy", "SIGNUPSYNC_EMAIL_POLICY", string(d.EmailPolicy), "when the email belongs to another Firebase account: conflict, link (only when Auth0 proves the email; needs --auth0-domain) or skip")
	rps := f.Int("firebase-rps", "SIGNUPSYNC_FIREBASE_RPS", -1, "Firebase calls per second, 0 = unlimited (default 10, or unlimited against the emulator)")
	brFail := f.Int("breaker-failures", "SIGNUPSYNC_BREAKER_FAILURES", int(d.BreakerFailures), "consecutive transient Firebase failures that open the breaker")
	brOpen := f.Duration("breaker-open-for", "SIGNUPSYNC_BREAKER_OPEN_FOR", d.BreakerOpenFor, "how long the breaker stays open before a probe")
	fbTimeout := f.Duration("firebase-timeout", "SIGNUPSYNC_FIREBASE_TIMEOUT", d.FirebaseTimeout, "deadline of one Firebase call")
	ackWait := f.Duration("ack-wait", "SIGNUPSYNC_ACK_WAIT", d.Delivery.AckWait, "consumer AckWait")
	maxDeliver := f.Int("max-deliver", "SIGNUPSYNC_MAX_DELIVER", d.Delivery.MaxDeliver, "deliveries before a failing signup is dead-lettered")
	ambWait := f.Duration("ambiguous-import-wait", "SIGNUPSYNC_AMBIGUOUS_IMPORT_WAIT", d.AmbiguousWait, "how long an import that got no answer may still be applied by Firebase; the user is not imported again before")
	freshAfter := f.Duration("fresh-after", "SIGNUPSYNC_FRESH_AFTER", d.FreshAfter, "re-read from the Auth0 Management API a signup older than this (and every backfill or replayed signup) before import, so a user deleted or changed since is not imported from old data; 0 = only backfill and replay (needs --auth0-domain)")
	enrichAll := f.Bool("enrich-all", "SIGNUPSYNC_ENRICH_ALL", false, "read every signup from the Auth0 Management API, not only partial ones")
	project := f.String("firebase-project", "SIGNUPSYNC_FIREBASE_PROJECT", f.getenv("GOOGLE_CLOUD_PROJECT"), "Firebase project id (falls back to GOOGLE_CLOUD_PROJECT)")
	creds := f.String("firebase-credentials", "GOOGLE_APPLICATION_CREDENTIALS", "", "service account JSON file (not needed with FIREBASE_AUTH_EMULATOR_HOST)")
	domain := f.String("auth0-domain", "SIGNUPSYNC_AUTH0_DOMAIN", "", "Auth0 tenant domain for the Management API (enrichment off when empty)")
	clientID := f.String("auth0-client-id", "SIGNUPSYNC_AUTH0_CLIENT_ID", "", "Management API client id (client credentials)")
	clientSecret := f.Secret("auth0-client-secret", "SIGNUPSYNC_AUTH0_CLIENT_SECRET", "Management API client secret")
	token := f.Secret("auth0-token", "SIGNUPSYNC_AUTH0_TOKEN", "static Management API token (instead of client credentials)")
	metricsAddr := f.String("metrics-addr", "SIGNUPSYNC_METRICS_ADDR", "127.0.0.1:9464", "listen address of /metrics, /healthz and /readyz")
	return func() (importerSettings, error) {
		s := importerSettings{cfg: d, project: *project, credentials: *creds, emulatorHost: f.getenv("FIREBASE_AUTH_EMULATOR_HOST"), metricsAddr: *metricsAddr}
		c := &s.cfg
		c.BatchSize, c.BatchWindow, c.Workers = *batch, *window, *workers
		c.UIDPolicy, c.EmailPolicy = events.UIDPolicy(*uidPolicy), importer.EmailPolicy(*emailPolicy)
		switch {
		case *rps >= 0:
			c.FirebaseRPS = float64(*rps)
		case s.emulatorHost != "":
			c.FirebaseRPS = 0
		}
		c.BreakerFailures, c.BreakerOpenFor, c.FirebaseTimeout = uint32(max(*brFail, 0)), *brOpen, *fbTimeout
		c.Delivery.AckWait, c.Delivery.MaxDeliver, c.AmbiguousWait = *ackWait, *maxDeliver, *ambWait
		c.EnrichAll, c.FreshAfter = *enrichAll, *freshAfter
		s.auth0 = auth0api.Config{Domain: *domain, ClientID: *clientID, ClientSecret: *clientSecret, Token: *token, Timeout: 10 * time.Second}
		var errs []error
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
		}
		if s.project == "" {
			errs = append(errs, errors.New("--firebase-project (SIGNUPSYNC_FIREBASE_PROJECT or GOOGLE_CLOUD_PROJECT) is required"))
		}
		if s.auth0.Domain != "" {
			if err := s.auth0.Validate(); err != nil {
				errs = append(errs, err)
			}
		}
		if c.EnrichAll && !s.auth0.Enabled() {
			errs = append(errs, errors.New("--enrich-all (SIGNUPSYNC_ENRICH_ALL) needs --auth0-domain and credentials"))
		}
		if c.EmailPolicy == importer.EmailLink && !s.auth0.Enabled() {
			errs = append(errs, errors.New("--email-policy link (SIGNUPSYNC_EMAIL_POLICY) needs --auth0-domain and credentials: a link is decided on the profile read from the Management API, never on the webhook body"))
		}
		return s, errors.Join(errs...)
	}
}

func runImporter(ctx context.Context, args []string, e env) error {
	f := newFlags("importer", e.getenv, e.stderr)
	com := addCommon(f)
	build := importerFlags(f)
	if err := f.parse(args); err != nil {
		return usageError{err}
	}
	s, err := build()
	if err != nil {
		return usageError{err}
	}
	log, err := com.logger(e)
	if err != nil {
		return err
	}
	tracing, err := telemetry.SetupTracing(ctx, "importer", version, e.getenv)
	if err != nil {
		return usageError{err}
	}
	nc, js, err := connectNATS(*com.natsURL, *com.natsCreds, "signupsync-importer", log)
	if err != nil {
		return err
	}
	// Serve /healthz at once; /readyz says 503 until the stream exists.
	reg, metricsH := registry()
	stopMetrics, err := metricsServer(ctx, s.metricsAddr, metricsH, streamReady(js), log)
	if err != nil {
		nc.Close()
		return err
	}
	runErr := ensureTopology(ctx, js, com.topology(), log)
	if runErr == nil {
		runErr = runImporterRole(ctx, s, js, reg, tracing, log)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), *com.drainPeriod)
	defer cancel()
	return errors.Join(runErr, stopMetrics(sctx), drainNATS(nc, *com.drainPeriod), tracing.Shutdown(sctx))
}

// runImporterRole wires Firebase, the optional Auth0 enricher and the
// importer, and runs it until ctx ends.
func runImporterRole(ctx context.Context, s importerSettings, js jetstream.JetStream, reg prometheus.Registerer, tracing telemetry.Tracing, log *slog.Logger) error {
	log = log.With("role", "importer")
	fb, err := firebaseAuth(ctx, s)
	if err != nil {
		return err
	}
	var enricher importer.Enricher
	if s.auth0.Enabled() {
		c, err := auth0api.New(ctx, s.auth0)
		if err != nil {
			return err
		}
		enricher = importer.Auth0Enricher(c)
		log.Info("enrichment on", "auth0_domain", s.auth0.Domain, "enrich_all", s.cfg.EnrichAll, "fresh_after", s.cfg.FreshAfter)
	} else {
		log.Warn("enrichment off: partial signups (Log Streams) are mapped from what they carry, and backfill, replayed and old signups are imported without re-reading Auth0 (a user deleted since may be imported)")
	}
	im, err := importer.New(ctx, s.cfg, importer.Deps{
		JetStream:  js,
		Accounts:   fb,
		Enricher:   enricher,
		Logger:     log,
		Metrics:    importer.NewMetrics(reg),
		Registerer: reg,
		Tracer:     tracing.Provider,
		Propagator: telemetry.Propagator(),
	})
	if err != nil {
		return err
	}
	if s.emulatorHost != "" {
		log.Info("using the Firebase Auth emulator", "host", s.emulatorHost, "project", s.project)
	}
	return im.Run(ctx)
}

// firebaseAuth builds the importer's Firebase client.
func firebaseAuth(ctx context.Context, s importerSettings) (*auth.Client, error) {
	return firebaseClient(ctx, s.project, s.credentials, s.emulatorHost)
}

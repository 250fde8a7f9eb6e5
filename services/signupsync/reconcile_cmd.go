package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"time"

	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/telemetry"
	"github.com/signupsync/signupsync/services/reconciler"
)

// auth0Flags registers the Management API flags of the commands that need
// the API (reconcile, export); the returned builder checks that they are
// set and consistent.
func auth0Flags(f *flags) func() (auth0api.Config, error) {
	domain := f.String("auth0-domain", "SIGNUPSYNC_AUTH0_DOMAIN", "", "Auth0 tenant domain for the Management API (required)")
	clientID := f.String("auth0-client-id", "SIGNUPSYNC_AUTH0_CLIENT_ID", "", "Management API client id (client credentials, needs read:users)")
	clientSecret := f.Secret("auth0-client-secret", "SIGNUPSYNC_AUTH0_CLIENT_SECRET", "Management API client secret")
	token := f.Secret("auth0-token", "SIGNUPSYNC_AUTH0_TOKEN", "static Management API token (instead of client credentials)")
	timeout := f.Duration("auth0-timeout", "SIGNUPSYNC_AUTH0_TIMEOUT", auth0api.DefaultTimeout, "deadline of one Management API call")
	return func() (auth0api.Config, error) {
		c := auth0api.Config{Domain: *domain, ClientID: *clientID, ClientSecret: *clientSecret, Token: *token, Timeout: *timeout}
		if err := c.Validate(); err != nil {
			return c, err
		}
		if !c.Enabled() {
			return c, errors.New("--auth0-domain (SIGNUPSYNC_AUTH0_DOMAIN) with --auth0-token (SIGNUPSYNC_AUTH0_TOKEN) or --auth0-client-id and --auth0-client-secret (SIGNUPSYNC_AUTH0_CLIENT_ID, SIGNUPSYNC_AUTH0_CLIENT_SECRET) are required")
		}
		return c, nil
	}
}

// runReconcile sweeps the Auth0 Management API for users created since
// --since that no webhook reported, publishes them, and keeps a checkpoint
// so the next sweep starts where this one ended (less --lookback). With
// --every it keeps sweeping until stopped. It prints one line per sweep.
//
// "reconcile deliveries --stream-id est_…" recovers the failed user.created
// deliveries of an Auth0 event stream instead, with the same window,
// checkpoint (one per stream), pacing and output.
func runReconcile(ctx context.Context, args []string, e env) error {
	mode, name := reconciler.ModeSweep, "reconcile"
	if len(args) > 0 && args[0] == string(reconciler.ModeDeliveries) {
		mode, name, args = reconciler.ModeDeliveries, "reconcile deliveries", args[1:]
	}
	f := newFlags(name, e.getenv, e.stderr)
	com := addCommon(f)
	d := reconciler.DefaultConfig()
	since := f.String("since", "SIGNUPSYNC_RECONCILE_SINCE", "", "start of the first round: users created (deliveries sent) since this RFC 3339 time, date (2006-01-02) or duration before now (24h); once a checkpoint exists, rounds start at it (less --lookback), however old it is")
	until := f.String("until", "SIGNUPSYNC_RECONCILE_UNTIL", "", "end of the round, exclusive, same forms as --since (default: now minus --settle; not with --every)")
	settle := f.Duration("settle", "SIGNUPSYNC_RECONCILE_SETTLE", d.SettleLag, "how far behind now a round ends: recent signups are still being reported by webhooks")
	lookback := f.Duration("lookback", "SIGNUPSYNC_RECONCILE_LOOKBACK", d.Lookback, "how far before the checkpoint each round starts again, for users Auth0's search index listed late and deliveries that failed late (0 = none)")
	every := f.Duration("every", "SIGNUPSYNC_RECONCILE_EVERY", 0, "run as a service: do another round after this pause until stopped (0 = one round)")
	var streamID *string
	if mode == reconciler.ModeDeliveries {
		streamID = f.String("stream-id", "SIGNUPSYNC_RECONCILE_STREAM_ID", "", "the Auth0 event stream (est_…) whose failed user.created deliveries are recovered (required; needs read:event_streams and read:event_deliveries)")
	}
	metricsAddr := f.String("metrics-addr", "SIGNUPSYNC_METRICS_ADDR", "127.0.0.1:9465", "with --every: listen address of /metrics, /healthz and /readyz")
	rps := f.Int("rps", "SIGNUPSYNC_RECONCILE_RPS", int(d.RPS), "Management API requests per second, 0 = unlimited")
	tenant := f.String("tenant", "SIGNUPSYNC_AUTH0_TENANT", d.Tenant, "Auth0 tenant name recorded in the events")
	ignoreCP := f.Bool("ignore-checkpoint", "", false, "start at --since even when an earlier round got further (re-sweep)")
	dry := f.Bool("dry-run", "", false, "list and count the missing signups without publishing or moving the checkpoint")
	asJSON := f.Bool("json", "", false, "print each round's result as a JSON line")
	buildAuth0 := auth0Flags(f)
	if err := f.parse(args); err != nil {
		return usageError{err}
	}
	if f.fs.NArg() > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q (the one mode is \"reconcile deliveries\")", name, f.fs.Args())}
	}
	now := time.Now()
	cfg := d
	cfg.Mode, cfg.SettleLag, cfg.Lookback, cfg.Every, cfg.RPS, cfg.Tenant = mode, *settle, *lookback, *every, float64(*rps), *tenant
	if streamID != nil {
		cfg.StreamID = *streamID
	}
	cfg.IgnoreCheckpoint, cfg.DryRun = *ignoreCP, *dry
	var errs []error
	if *since != "" {
		t, err := reconciler.ParseTime(*since, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("--since (SIGNUPSYNC_RECONCILE_SINCE): %w", err))
			t = time.Unix(1, 0).UTC() // reported above; a placeholder lets Validate check the rest
		}
		cfg.Since = t
	}
	if *until != "" {
		t, err := reconciler.ParseTime(*until, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("--until (SIGNUPSYNC_RECONCILE_UNTIL): %w", err))
		}
		cfg.Until = t
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	a0, err := buildAuth0()
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}

	log, err := com.logger(e)
	if err != nil {
		return err
	}
	tracing, err := telemetry.SetupTracing(ctx, "reconcile", version, e.getenv)
	if err != nil {
		return usageError{err}
	}
	api, err := auth0api.New(ctx, a0)
	if err != nil {
		return err
	}
	nc, js, err := connectNATS(*com.natsURL, *com.natsCreds, "signupsync-reconcile", log)
	if err != nil {
		return err
	}
	stopMetrics := func(context.Context) error { return nil }
	sweeps := newSweepMetrics()
	if cfg.Every > 0 {
		reg, metricsH := registry()
		sweeps.register(reg)
		if stopMetrics, err = metricsServer(ctx, *metricsAddr, metricsH, streamReady(js), log); err != nil {
			nc.Close()
			return err
		}
	}
	runErr := func() error {
		if err := ensureTopology(ctx, js, com.topology(), log); err != nil {
			return err
		}
		rec, err := reconciler.New(ctx, cfg, reconciler.Deps{
			Users: api, Deliveries: api, JetStream: js, Logger: log, Tracer: tracing.Provider, Propagator: telemetry.Propagator(),
			OnSweep: func(res reconciler.Result, err error) {
				sweeps.observe(res, err)
				printSweep(e, res, err, *asJSON)
			},
		})
		if err != nil {
			return err
		}
		return rec.Run(ctx)
	}()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), *com.drainPeriod)
	defer cancel()
	return errors.Join(runErr, stopMetrics(sctx), drainNATS(nc, *com.drainPeriod), tracing.Shutdown(sctx))
}

// sweepMetrics exposes reconcile progress when it runs as a service.
type sweepMetrics struct {
	sweeps    *prometheus.CounterVec
	published prometheus.Counter
	listed    prometheus.Counter
	until     prometheus.Gauge
}

func newSweepMetrics() *sweepMetrics {
	return &sweepMetrics{
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "signupsync", Subsystem: "reconcile", Name: "sweeps_total",
			Help: "Reconcile sweeps by result (ok, failed)."}, []string{"result"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "signupsync", Subsystem: "reconcile", Name: "published_total",
			Help: "Signups no webhook reported, published by reconcile."}),
		listed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "signupsync", Subsystem: "reconcile", Name: "listed_total",
			Help: "Users listed from the Management API."}),
		until: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "signupsync", Subsystem: "reconcile", Name: "checkpoint_timestamp_seconds",
			Help: "End of the last completed sweep window (unix seconds)."}),
	}
}

func (m *sweepMetrics) register(reg prometheus.Registerer) {
	reg.MustRegister(m.sweeps, m.published, m.listed, m.until)
}

func (m *sweepMetrics) observe(res reconciler.Result, err error) {
	if err != nil {
		m.sweeps.WithLabelValues("failed").Inc()
		return
	}
	m.sweeps.WithLabelValues("ok").Inc()
	m.published.Add(float64(res.Counts.Published))
	m.listed.Add(float64(res.Counts.Listed))
	if !res.DryRun && !res.Until.IsZero() {
		m.until.Set(float64(res.Until.Unix()))
	}
}

// printSweep writes the one line of a sweep to stdout.
func printSweep(e env, res reconciler.Result, err error, asJSON bool) {
	if asJSON {
		v := struct {
			reconciler.Result
			Error string `json:"error,omitempty"`
		}{Result: res}
		if err != nil {
			v.Error = err.Error()
		}
		b, _ := json.Marshal(v)
		fmt.Fprintln(e.stdout, string(b))
		return
	}
	if err != nil {
		fmt.Fprintf(e.stdout, "%s; FAILED, checkpoint not moved\n", res)
		return
	}
	fmt.Fprintln(e.stdout, res)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/httpserve"
	"github.com/signupsync/signupsync/internal/telemetry"
	"github.com/signupsync/signupsync/services/exchange"
)

// exchangeFlags registers the settings of the session exchange itself and
// returns a builder for its Config. It registers none of the flags the
// importer also has (uid policy, tenant, Auth0 Management API), so dev can
// use it next to importerFlags and ingestFlags; the caller fills
// UIDPolicy, Tenant and Management and calls Validate.
func exchangeFlags(f *flags) func() exchange.Config {
	d := exchange.DefaultConfig()
	addr := f.String("exchange-addr", "SIGNUPSYNC_EXCHANGE_ADDR", d.Addr, "listen address of the session exchange (POST "+exchange.PathExchange+")")
	issuer := f.String("auth0-issuer", "SIGNUPSYNC_AUTH0_ISSUER", "", "Auth0 token issuer exactly as in iss, e.g. https://tenant.auth0.com/ (its /.well-known/jwks.json has the keys)")
	audience := f.String("auth0-audience", "SIGNUPSYNC_AUTH0_AUDIENCE", "", "audience the Auth0 tokens must carry (the API identifier)")
	maxAge := f.Duration("max-token-age", "SIGNUPSYNC_MAX_TOKEN_AGE", d.MaxTokenAge, "oldest accepted sign-in: now minus auth_time, or iat when absent")
	skew := f.Duration("clock-skew", "SIGNUPSYNC_CLOCK_SKEW", d.ClockSkew, "clock skew allowed on exp, nbf, iat and the token age")
	refresh := f.Duration("jwks-refresh-interval", "SIGNUPSYNC_JWKS_REFRESH_INTERVAL", d.JWKSRefreshInterval, "least time between JWKS fetches caused by an unknown kid")
	jwksAge := f.Duration("jwks-max-age", "SIGNUPSYNC_JWKS_MAX_AGE", d.JWKSMaxAge, "how long fetched signing keys are used before they are fetched again")
	wait := f.Duration("exchange-import-wait", "SIGNUPSYNC_EXCHANGE_IMPORT_WAIT", d.ImportWait, "how long an exchange waits for the importer to import a person on the spot before 503")
	subRate := f.Int("exchange-subject-rate", "SIGNUPSYNC_EXCHANGE_SUBJECT_RATE", int(d.SubjectRate), "exchanges per minute per Auth0 user")
	subBurst := f.Int("exchange-subject-burst", "SIGNUPSYNC_EXCHANGE_SUBJECT_BURST", d.SubjectBurst, "burst of exchanges per Auth0 user")
	ipRate := f.Int("exchange-ip-rate", "SIGNUPSYNC_EXCHANGE_IP_RATE", int(d.IPRate), "requests per minute per client address (IPv6: per /64)")
	ipBurst := f.Int("exchange-ip-burst", "SIGNUPSYNC_EXCHANGE_IP_BURST", d.IPBurst, "burst of requests per client address")
	ipHeader := f.String("exchange-client-ip-header", "SIGNUPSYNC_EXCHANGE_CLIENT_IP_HEADER", "", "header a trusted proxy sets to the client address (e.g. X-Forwarded-For; last value used); empty: the connection's address")
	deleteMerged := f.Bool("delete-merged-anonymous", "SIGNUPSYNC_DELETE_MERGED_ANONYMOUS", false, "consume the app's merge acknowledgements (accounts.v1.merged.>) and delete each merged anonymous Firebase account that is still anonymous")
	p := d.Password
	pwOn := f.Bool("password-fallback", "SIGNUPSYNC_PASSWORD_FALLBACK", false, "serve POST "+exchange.PathPassword+" (migration on next login: email and password checked with Auth0, Firebase account created with them); off answers 404")
	pwConn := f.String("password-connection", "SIGNUPSYNC_PASSWORD_CONNECTION", "", "Auth0 database connection (realm) the password fallback checks passwords against")
	pwClientID := f.String("password-client-id", "SIGNUPSYNC_PASSWORD_CLIENT_ID", "", "client id of the confidential Auth0 application with the Password grant and Trust Token Endpoint IP Header enabled")
	pwClientSecret := f.Secret("password-client-secret", "SIGNUPSYNC_PASSWORD_CLIENT_SECRET", "client secret of that application")
	pwEmailRate := f.Int("password-email-rate", "SIGNUPSYNC_PASSWORD_EMAIL_RATE", int(p.EmailRate), "password fallback attempts per minute per email")
	pwEmailBurst := f.Int("password-email-burst", "SIGNUPSYNC_PASSWORD_EMAIL_BURST", p.EmailBurst, "burst of password fallback attempts per email")
	pwIPRate := f.Int("password-ip-rate", "SIGNUPSYNC_PASSWORD_IP_RATE", int(p.IPRate), "password fallback requests per minute per client address (IPv6: per /64)")
	pwIPBurst := f.Int("password-ip-burst", "SIGNUPSYNC_PASSWORD_IP_BURST", p.IPBurst, "burst of password fallback requests per client address")
	return func() exchange.Config {
		c := d
		c.Addr, c.Issuer, c.Audience = *addr, *issuer, *audience
		c.MaxTokenAge, c.ClockSkew, c.JWKSRefreshInterval, c.JWKSMaxAge, c.ImportWait = *maxAge, *skew, *refresh, *jwksAge, *wait
		c.SubjectRate, c.SubjectBurst, c.IPRate, c.IPBurst = float64(*subRate), *subBurst, float64(*ipRate), *ipBurst
		c.ClientIPHeader = *ipHeader
		c.Merge.DeleteAnonymous = *deleteMerged
		c.Password.Enabled, c.Password.Connection, c.Password.ClientID, c.Password.ClientSecret = *pwOn, *pwConn, *pwClientID, *pwClientSecret
		c.Password.EmailRate, c.Password.EmailBurst = float64(*pwEmailRate), *pwEmailBurst
		c.Password.IPRate, c.Password.IPBurst = float64(*pwIPRate), *pwIPBurst
		return c
	}
}

// runExchange runs the session exchange role: `signupsync exchange`.
func runExchange(ctx context.Context, args []string, e env) error {
	f := newFlags("exchange", e.getenv, e.stderr)
	com := addCommon(f)
	build := exchangeFlags(f)
	tenant := f.String("tenant", "SIGNUPSYNC_AUTH0_TENANT", "default", "Auth0 tenant name recorded in the signups the exchange publishes")
	uidPolicy := f.String("uid-policy", "SIGNUPSYNC_UID_POLICY", string(events.UIDAuth0ID), "Firebase uid policy, as the importer's: auth0_id or hash")
	project := f.String("firebase-project", "SIGNUPSYNC_FIREBASE_PROJECT", e.getenv("GOOGLE_CLOUD_PROJECT"), "Firebase project id (falls back to GOOGLE_CLOUD_PROJECT)")
	creds := f.String("firebase-credentials", "GOOGLE_APPLICATION_CREDENTIALS", "", "service account JSON file, which signs the custom tokens (not needed with FIREBASE_AUTH_EMULATOR_HOST)")
	domain := f.String("auth0-domain", "SIGNUPSYNC_AUTH0_DOMAIN", "", "Auth0 tenant domain for the Management API (required)")
	clientID := f.String("auth0-client-id", "SIGNUPSYNC_AUTH0_CLIENT_ID", "", "Management API client id (client credentials)")
	clientSecret := f.Secret("auth0-client-secret", "SIGNUPSYNC_AUTH0_CLIENT_SECRET", "Management API client secret")
	token := f.Secret("auth0-token", "SIGNUPSYNC_AUTH0_TOKEN", "static Management API token (instead of client credentials)")
	metricsAddr := f.String("metrics-addr", "SIGNUPSYNC_METRICS_ADDR", "127.0.0.1:9465", "listen address of /metrics, /healthz and /readyz")
	if err := f.parse(args); err != nil {
		return usageError{err}
	}
	cfg := build()
	cfg.Tenant, cfg.UIDPolicy = *tenant, events.UIDPolicy(*uidPolicy)
	cfg.Merge.Project = *project
	cfg.Management = auth0api.Config{Domain: *domain, ClientID: *clientID, ClientSecret: *clientSecret, Token: *token, Timeout: 10 * time.Second}
	cfg.ShutdownTimeout = *com.drainPeriod
	err := cfg.Validate()
	if *project == "" {
		err = errors.Join(err, errors.New("--firebase-project (SIGNUPSYNC_FIREBASE_PROJECT or GOOGLE_CLOUD_PROJECT) is required"))
	}
	if err != nil {
		return usageError{err}
	}
	log, err := com.logger(e)
	if err != nil {
		return err
	}
	tracing, err := telemetry.SetupTracing(ctx, "exchange", version, e.getenv)
	if err != nil {
		return usageError{err}
	}
	// Publishing while disconnected must fail at once (503), not sit in the
	// reconnect buffer.
	nc, js, err := connectNATS(*com.natsURL, *com.natsCreds, "signupsync-exchange", log, nats.ReconnectBufSize(-1), nats.CustomInboxPrefix(exchangeInboxPrefix))
	if err != nil {
		return err
	}
	emulatorHost := e.getenv("FIREBASE_AUTH_EMULATOR_HOST")
	fb, err := firebaseClient(ctx, *project, *creds, emulatorHost)
	if err != nil {
		nc.Close()
		return err
	}
	if emulatorHost != "" {
		log.Info("using the Firebase Auth emulator", "host", emulatorHost, "project", *project)
	}
	// The admin listener serves /healthz at once and /readyz 503 until the
	// exchange runs. The exchange faces the internet, so its NATS user may
	// not create streams: it waits for the ledger bucket the importer
	// creates, then listens.
	reg, metricsH := registry()
	var running atomic.Pointer[exchange.Service]
	ready := func(ctx context.Context) error {
		if svc := running.Load(); svc != nil {
			return svc.Ready(ctx)
		}
		return errors.New("waiting for the ledger bucket")
	}
	stopAdmin, err := startAdmin(ctx, *metricsAddr, exchange.AdminHandler(metricsH, ready, log), log)
	if err != nil {
		nc.Close()
		return err
	}
	serveErr := awaitLedger(ctx, js, log)
	if serveErr == nil {
		var svc *exchange.Service
		if svc, serveErr = newExchange(ctx, cfg, js, fb, reg, tracing, log); serveErr == nil {
			running.Store(svc)
			serveErr = listenExchange(ctx, cfg, svc)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), *com.drainPeriod)
	defer cancel()
	return errors.Join(serveErr, stopAdmin(sctx), drainNATS(nc, *com.drainPeriod), tracing.Shutdown(sctx))
}

// awaitLedger waits, retrying with backoff, until the ledger bucket exists
// or ctx ends.
func awaitLedger(ctx context.Context, js jetstream.JetStream, log *slog.Logger) error {
	delay := 250 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.KeyValue(actx, events.BucketLedger)
		cancel()
		if err == nil {
			return nil
		}
		log.Warn("waiting for the ledger bucket (the importer creates it)", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("ledger bucket %s: %w", events.BucketLedger, errors.Join(err, ctx.Err()))
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// startAdmin serves h, the admin endpoints, on addr until stop is called.
func startAdmin(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (stop func(context.Context) error, err error) {
	ln, err := httpserve.Listen(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	log.Info("admin listening", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server", "err", err)
		}
	}()
	return srv.Shutdown, nil
}

// serveExchange runs the session exchange HTTP server on cfg.Addr until ctx
// ends. cfg must be complete (Validate passes): the Auth0 Management API
// client is built from cfg.Management, and fb signs the custom tokens. The
// topology must exist (ensureTopology). `dev` calls it.
func serveExchange(ctx context.Context, cfg exchange.Config, js jetstream.JetStream, fb *auth.Client, reg prometheus.Registerer, tracing telemetry.Tracing, log *slog.Logger) error {
	svc, err := newExchange(ctx, cfg, js, fb, reg, tracing, log)
	if err != nil {
		return err
	}
	return listenExchange(ctx, cfg, svc)
}

// newExchange builds the exchange service; the ledger bucket must exist.
func newExchange(ctx context.Context, cfg exchange.Config, js jetstream.JetStream, fb *auth.Client, reg prometheus.Registerer, tracing telemetry.Tracing, log *slog.Logger) (*exchange.Service, error) {
	if fb == nil {
		return nil, errors.New("exchange: no Firebase client")
	}
	users, err := auth0api.New(ctx, cfg.Management)
	if err != nil {
		return nil, err
	}
	metrics, err := exchange.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	return exchange.New(ctx, cfg, exchange.Deps{
		JetStream:  js,
		Firebase:   fb,
		Users:      users,
		Logger:     log.With("role", "exchange"),
		Metrics:    metrics,
		Ready:      streamReady(js),
		Tracer:     tracing.Provider,
		Propagator: telemetry.Propagator(),
	})
}

// listenExchange serves svc on cfg.Addr until ctx ends.
func listenExchange(ctx context.Context, cfg exchange.Config, svc *exchange.Service) error {
	ln, err := exchange.Listen(ctx, cfg.Addr)
	if err != nil {
		return fmt.Errorf("exchange: %w", err)
	}
	return svc.Serve(ctx, ln)
}

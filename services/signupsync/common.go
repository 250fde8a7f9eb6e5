package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/telemetry"
)

// common holds the flags every NATS-using command shares.
type common struct {
	natsURL     *string
	natsCreds   *string
	logLevel    *string
	replicas    *int
	dupWindow   *time.Duration
	maxAge      *time.Duration
	drainPeriod *time.Duration
}

func addCommon(f *flags) *common {
	return &common{
		natsURL:     f.URL("nats-url", "SIGNUPSYNC_NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated"),
		natsCreds:   f.String("nats-creds", "SIGNUPSYNC_NATS_CREDS", "", "NATS credentials file"),
		logLevel:    f.String("log-level", "SIGNUPSYNC_LOG_LEVEL", "info", "log level: debug, info, warn, error"),
		replicas:    f.Int("stream-replicas", "SIGNUPSYNC_STREAM_REPLICAS", 1, "replicas of the SIGNUPS and SIGNUPS_DLQ streams and the buckets"),
		dupWindow:   f.Duration("duplicate-window", "SIGNUPSYNC_DUPLICATE_WINDOW", events.DefaultDuplicateWindow, "how long SIGNUPS remembers a Nats-Msg-Id"),
		maxAge:      f.Duration("signup-max-age", "SIGNUPSYNC_SIGNUP_MAX_AGE", events.DefaultSignupMaxAge, "how long an accepted signup is kept in SIGNUPS"),
		drainPeriod: f.Duration("shutdown-timeout", "SIGNUPSYNC_SHUTDOWN_TIMEOUT", 20*time.Second, "deadline for draining on shutdown"),
	}
}

func (c *common) topology() events.Topology {
	t := events.DefaultTopology()
	t.Replicas = *c.replicas
	t.DuplicateWindow = *c.dupWindow
	t.SignupMaxAge = *c.maxAge
	return t
}

func (c *common) logger(e env) (*slog.Logger, error) {
	lvl, err := telemetry.ParseLevel(*c.logLevel)
	if err != nil {
		return nil, usageError{fmt.Errorf("--log-level (SIGNUPSYNC_LOG_LEVEL): %w", err)}
	}
	return telemetry.NewLogger(e.stderr, lvl), nil
}

// connectNATS connects with unbounded reconnects, logging connection state
// changes. A server that is down at start is retried in the background.
func connectNATS(url, creds, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", redactURLs(nc.ConnectedUrl())) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Warn("nats async error", "err", err) }),
	}
	if creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	opts = append(opts, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect nats %s: %w", redactURLs(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// ensureTopology creates the streams and buckets, retrying with backoff
// while the broker is unreachable, until ctx ends.
func ensureTopology(ctx context.Context, js jetstream.JetStream, topo events.Topology, log *slog.Logger) error {
	delay := 250 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := events.Ensure(actx, js, topo)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("ensure topology: %w", errors.Join(err, ctx.Err()))
		}
		// Jitter, so roles that start together on a cluster stop creating
		// the same replicated stream at the same moment.
		wait := delay + time.Duration(mrand.Int64N(int64(delay)))
		log.Warn("jetstream not ready, retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("ensure topology: %w", ctx.Err())
		case <-time.After(wait):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// streamReady reports whether SIGNUPS answers, for /readyz.
func streamReady(js jetstream.JetStream) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := js.Stream(ctx, events.StreamSignups); err != nil {
			return fmt.Errorf("stream %s: %w", events.StreamSignups, err)
		}
		return nil
	}
}

// drainNATS drains the connection (flushing publishes and acks) within the
// deadline.
func drainNATS(nc *nats.Conn, timeout time.Duration) error {
	if nc.IsClosed() {
		return nil
	}
	if err := nc.Drain(); err != nil {
		nc.Close()
		return fmt.Errorf("drain nats: %w", err)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !nc.IsClosed() {
		select {
		case <-deadline.C:
			nc.Close()
			return errors.New("drain nats: deadline passed")
		case <-tick.C:
		}
	}
	return nil
}

// metricsServer serves /metrics, /healthz and /readyz for roles without an
// HTTP API of their own.
func metricsServer(ctx context.Context, addr string, metrics http.Handler, ready func(context.Context) error, log *slog.Logger) (stop func(context.Context) error, err error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(r.Context()); err != nil {
			// The reason goes to the log, never to the caller.
			log.WarnContext(r.Context(), "not ready", "err", err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"unavailable"}` + "\n"))
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	log.Info("metrics listening", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	return srv.Shutdown, nil
}

// registry builds the Prometheus registry of a process.
func registry() (*prometheus.Registry, http.Handler) { return telemetry.NewRegistry() }

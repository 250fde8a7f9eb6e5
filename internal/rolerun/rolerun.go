// Package rolerun is the one lifecycle of every long-running signupsync
// role (ingest, importer, exchange, reconcile, dev), written once:
//
//  1. set up tracing (the standard OTEL_* variables);
//  2. connect to NATS (a server that is down is retried in the background);
//  3. serve the admin endpoints (/healthz at once; /readyz 503 until the
//     role runs, and again from the moment it stops);
//  4. create or check the topology ([Role.Prepare]), retried until it
//     succeeds;
//  5. build the role ([Role.Start]) and run its units in one group: the
//     first that fails stops the others;
//  6. when ctx ends (or every unit returned, or one failed, or the admin
//     server failed), one shutdown deadline starts: the units stop their
//     intake and drain their consumers, then every NATS connection is
//     drained and closed, then the admin server stops and the traces are
//     flushed. Every error on the way is returned, joined.
//
// Commands that run once and exit (backfill, status, dlq, …) use
// [Connect], [Await] and [Conn.Drain] alone.
package rolerun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/signupsync/signupsync/internal/httpserve"
	"github.com/signupsync/signupsync/internal/telemetry"
)

// ErrSetup marks a configuration [Run] refused before connecting (the
// OTEL_* tracing variables): the command line's fault, not the broker's.
var ErrSetup = errors.New("setup")

// Role is one long-running role for [Run].
type Role struct {
	// Name names the role in traces (service signupsync-<Name>) and logs.
	Name    string
	Version string
	Logger  *slog.Logger
	// Getenv reads the OTEL_* variables; nil reads none (no tracing).
	Getenv func(string) string

	// NATS is where the role connects; Env.JS has one JetStream context
	// per connection, in order.
	NATS NATS
	// Prepare creates or checks the topology on the first connection
	// before Start (retried, see [Await]); nil: nothing to wait for, the
	// role starts at once (ingest answers 503 until the stream exists).
	Prepare Step

	// AdminAddr is the listen address of the admin endpoints; empty: none.
	AdminAddr string
	// AdminName prefixes the "<name> admin listening" log line; empty:
	// Name.
	AdminName string

	// ShutdownTimeout is the one deadline of everything done to stop.
	ShutdownTimeout time.Duration

	// Start builds the role once the topology is ready and returns what
	// runs. Its units must return when their ctx ends, having stopped
	// their intake and drained their consumers.
	Start func(ctx context.Context, env Env) (Running, error)
}

// NATS is the broker of a role.
type NATS struct {
	// URLs are comma-separated; Creds is a credentials file or empty.
	URLs, Creds string
	// Connections are opened in order to URLs; at least one.
	Connections []Connection
}

// Connection names one connection of a role and its options (see
// [Connect]).
type Connection struct {
	Name    string
	Options []nats.Option
}

// Env is what [Role.Start] gets to build the role.
type Env struct {
	// JS has one JetStream context per [NATS.Connections] entry.
	JS       []jetstream.JetStream
	Registry prometheus.Registerer
	Tracer   trace.TracerProvider
	Logger   *slog.Logger
}

// Running is a started role.
type Running struct {
	Units []Unit
	// Ready reports whether the role can serve, for /readyz; nil: the
	// SIGNUPS stream answers on the first connection.
	Ready func(context.Context) error
}

// Unit is one server or consumer loop of a role.
type Unit struct {
	Name string
	Run  func(ctx context.Context) error
}

// Lifecycle states, for /readyz.
const (
	starting int32 = iota
	running
	stopping
)

// Run runs r until ctx ends or the role stops on its own (see the package
// comment). A clean stop returns nil; a ctx that ends while the topology
// is awaited is a clean stop too.
func Run(ctx context.Context, r Role) error {
	if r.Start == nil || r.Logger == nil || len(r.NATS.Connections) == 0 || r.ShutdownTimeout <= 0 {
		return errors.New("rolerun: Start, Logger, a NATS connection and a positive ShutdownTimeout are required")
	}
	getenv := r.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	tracing, err := telemetry.SetupTracing(ctx, r.Name, r.Version, getenv)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSetup, err)
	}
	l := &lifecycle{role: r, log: r.Logger, tracing: tracing}
	runErr := l.run(ctx)
	return errors.Join(runErr, l.stop(ctx))
}

// lifecycle holds what Run started, for stop.
type lifecycle struct {
	role    Role
	log     *slog.Logger
	tracing telemetry.Tracing
	conns   []*Conn
	admin   *httpserve.Server
	state   atomic.Int32
	ready   atomic.Pointer[func(context.Context) error]

	// deadline is the shutdown context, made once when stopping begins.
	deadline context.Context
	cancel   context.CancelFunc
}

// shutdownCtx returns the one shutdown deadline, starting it on first use.
func (l *lifecycle) shutdownCtx(ctx context.Context) context.Context {
	if l.deadline == nil {
		l.state.Store(stopping)
		l.log.Info(l.role.Name+" stopping", "timeout", l.role.ShutdownTimeout.String())
		l.deadline, l.cancel = context.WithTimeout(context.WithoutCancel(ctx), l.role.ShutdownTimeout)
	}
	return l.deadline
}

func (l *lifecycle) run(ctx context.Context) error {
	r := l.role
	for _, c := range r.NATS.Connections {
		conn, err := Connect(r.NATS.URLs, r.NATS.Creds, c.Name, l.log, c.Options...)
		if err != nil {
			return err
		}
		l.conns = append(l.conns, conn)
	}
	reg, metrics := telemetry.NewRegistry()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.AdminAddr != "" {
		ln, err := httpserve.Listen(ctx, r.AdminAddr)
		if err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		l.admin = httpserve.Start(httpserve.NewAdminServer(httpserve.Admin(metrics, l.readyz, l.log)), ln)
		name := r.AdminName
		if name == "" {
			name = r.Name
		}
		l.log.Info(name+" admin listening", "addr", l.admin.Addr())
		// A failed admin server stops the role: its probes fail anyway.
		go func() {
			select {
			case <-l.admin.Done():
				cancel()
			case <-runCtx.Done():
			}
		}()
	}
	js := make([]jetstream.JetStream, len(l.conns))
	for i, c := range l.conns {
		js[i] = c.JS
	}
	if r.Prepare != nil {
		if err := Await(runCtx, js[0], r.Prepare, l.log); err != nil {
			if runCtx.Err() != nil && ctx.Err() != nil {
				return nil // stopped while waiting
			}
			return err
		}
	}
	started, err := r.Start(runCtx, Env{JS: js, Registry: reg, Tracer: l.tracing.Provider, Logger: l.log})
	if err != nil {
		return err
	}
	ready := started.Ready
	if ready == nil {
		ready = StreamReady(js[0])
	}
	l.ready.Store(&ready)
	l.state.Store(running)

	g, gctx := errgroup.WithContext(runCtx)
	for _, u := range started.Units {
		g.Go(func() error {
			if err := u.Run(gctx); err != nil {
				return fmt.Errorf("%s: %w", u.Name, err)
			}
			return nil
		})
	}
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err := <-done:
		return err
	case <-gctx.Done(): // ctx ended, a unit or the admin server failed
	}
	sctx := l.shutdownCtx(ctx)
	select {
	case err := <-done:
		return err
	case <-sctx.Done():
		return fmt.Errorf("%s did not stop within the shutdown timeout (%s)", r.Name, r.ShutdownTimeout)
	}
}

// readyz is the admin server's readiness: the role runs and is ready.
func (l *lifecycle) readyz(ctx context.Context) error {
	switch l.state.Load() {
	case starting:
		return errors.New("starting: the topology is not ready yet")
	case stopping:
		return errors.New("stopping")
	}
	return (*l.ready.Load())(ctx)
}

// stop drains the connections, stops the admin server and flushes the
// traces, in that order, under the shutdown deadline.
func (l *lifecycle) stop(ctx context.Context) error {
	sctx := l.shutdownCtx(ctx)
	defer l.cancel()
	var errs []error
	for i := len(l.conns) - 1; i >= 0; i-- {
		errs = append(errs, l.conns[i].Drain(sctx))
	}
	if l.admin != nil {
		errs = append(errs, l.admin.Shutdown(sctx))
	}
	if err := l.tracing.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("flush traces: %w", err))
	}
	return errors.Join(errs...)
}

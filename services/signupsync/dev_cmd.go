package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/signupsync/signupsync/internal/natsembed"
	"github.com/signupsync/signupsync/internal/telemetry"
)

// runDev runs an embedded JetStream server, ingest and (unless
// --importer=false) the importer in one process: the zero-setup local mode.
func runDev(ctx context.Context, args []string, e env) error {
	f := newFlags("dev", e.getenv, e.stderr)
	com := addCommon(f)
	buildIngest := ingestFlags(f)
	buildImporter := importerFlags(f)
	buildExchange := exchangeFlags(f)
	dataDir := f.String("data-dir", "SIGNUPSYNC_DATA_DIR", ".data", "directory of the embedded JetStream store")
	natsAddr := f.String("dev-nats-addr", "SIGNUPSYNC_DEV_NATS_ADDR", "127.0.0.1:4222", "client address of the embedded NATS server (port -1 picks a free one)")
	withImporter := f.Bool("importer", "SIGNUPSYNC_DEV_IMPORTER", true, "run the importer too (needs Firebase: FIREBASE_AUTH_EMULATOR_HOST or credentials)")
	if err := f.parse(args); err != nil {
		return usageError{err}
	}
	icfg := buildIngest()
	icfg.ShutdownTimeout = *com.drainPeriod
	if err := icfg.Validate(); err != nil {
		return usageError{err}
	}
	impCfg, err := buildImporter()
	if err != nil && *withImporter {
		return usageError{err}
	}
	// The session exchange runs in dev when an Auth0 issuer is configured.
	xcfg := buildExchange()
	if xcfg.Issuer != "" {
		xcfg.Tenant, xcfg.UIDPolicy, xcfg.Management = icfg.Tenant, impCfg.cfg.UIDPolicy, impCfg.auth0
		xcfg.ShutdownTimeout = *com.drainPeriod
		if err := xcfg.Validate(); err != nil {
			return usageError{err}
		}
	}
	host, portStr, err := net.SplitHostPort(*natsAddr)
	if err != nil {
		return usageError{fmt.Errorf("--dev-nats-addr (SIGNUPSYNC_DEV_NATS_ADDR) %q: %w", *natsAddr, err)}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return usageError{fmt.Errorf("--dev-nats-addr (SIGNUPSYNC_DEV_NATS_ADDR) port %q: %w", portStr, err)}
	}
	log, err := com.logger(e)
	if err != nil {
		return err
	}
	tracing, err := telemetry.SetupTracing(ctx, "dev", version, e.getenv)
	if err != nil {
		return usageError{err}
	}

	ns, err := natsembed.Start(natsembed.Options{Host: host, Port: port, StoreDir: filepath.Join(*dataDir, "jetstream"), ServerName: "signupsync-dev"})
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	url := ns.ClientURL()
	log.Info("embedded nats listening", "url", url, "store", filepath.Join(*dataDir, "jetstream"))

	nc, js, err := connectNATS(url, "", "signupsync-dev", log, nats.ReconnectBufSize(-1))
	if err != nil {
		return err
	}
	topo := com.topology()
	if err := ensureTopology(ctx, js, topo, log); err != nil {
		nc.Close()
		return err
	}
	reg, metricsH := registry()

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
				cancel() // one role failing stops the others
			}
		}()
	}
	start("ingest", func(ctx context.Context) error {
		return serveIngest(ctx, icfg, js, reg, metricsH, tracing, log)
	})
	if xcfg.Issuer != "" {
		start("exchange", func(ctx context.Context) error {
			fb, err := firebaseAuth(ctx, impCfg)
			if err != nil {
				return err
			}
			return serveExchange(ctx, xcfg, js, fb, reg, tracing, log)
		})
	}
	if *withImporter {
		impNC, impJS, err := connectNATS(url, "", "signupsync-dev-importer", log)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		start("importer", func(ctx context.Context) error {
			err := runImporterRole(ctx, impCfg, impJS, reg, tracing, log)
			return errors.Join(err, drainNATS(impNC, *com.drainPeriod))
		})
	}
	wg.Wait()
	errs = append(errs, drainNATS(nc, *com.drainPeriod), tracing.Shutdown(context.WithoutCancel(ctx)))
	return errors.Join(errs...)
}

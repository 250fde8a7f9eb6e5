package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/signupsync/signupsync/internal/natsembed"
	"github.com/signupsync/signupsync/internal/rolerun"
)

// devFlags are dev's own settings.
type devFlags struct {
	DataDir  string `name:"data-dir" envvar:"SIGNUPSYNC_DATA_DIR" default:".data" help:"Directory of the embedded JetStream store."`
	NATSAddr string `name:"dev-nats-addr" envvar:"SIGNUPSYNC_DEV_NATS_ADDR" default:"127.0.0.1:4222" cfg:"dev.NATSAddr" help:"Client address of the embedded NATS server (port -1 picks a free one)."`
	Importer bool   `name:"importer" envvar:"SIGNUPSYNC_DEV_IMPORTER" default:"true" negatable:"" help:"Run the importer too (needs Firebase: FIREBASE_AUTH_EMULATOR_HOST or credentials)."`
}

// devCmd is `signupsync dev`: an embedded JetStream server, ingest, the
// importer (unless --no-importer) and, when --auth0-issuer is set, the
// session exchange, in one process: the zero-setup local mode.
type devCmd struct {
	devFlags      `embed:"" group:"dev"`
	ingestFlags   `embed:"" group:"ingest"`
	tenantFlag    `embed:"" group:"ingest"`
	importerFlags `embed:"" group:"importer"`
	uidPolicyFlag `embed:"" group:"importer"`
	exchangeFlags `embed:"" group:"exchange"`
	passwordFlags `embed:"" group:"password"`
	firebaseFlags `embed:"" group:"firebase"`
	auth0Flags    `embed:"" group:"auth0"`
	topologyFlags `embed:"" group:"topology"`
	logFlags      `embed:"" group:"process"`
	shutdownFlags `embed:"" group:"process"`
	adminFlags    `embed:"" group:"process" set:"metrics_addr=127.0.0.1:9464"`
}

func (c *devCmd) Run(ctx context.Context, e env) error {
	icfg := c.ingestFlags.config(c.Tenant, c.ShutdownTimeout, c.MetricsAddr)
	errs := []error{e.fields.explain(icfg.Validate(), "ingest")}
	imp, a0, err := importerSettings(e, c.importerFlags, c.UIDPolicy, c.firebaseFlags, c.auth0Flags)
	if c.Importer {
		errs = append(errs, err)
	}
	xcfg := c.exchangeFlags.config(c.passwordFlags, c.Tenant, c.UIDPolicy, c.Project, a0, c.ShutdownTimeout)
	withExchange := c.Issuer != ""
	if withExchange {
		errs = append(errs, e.fields.explain(xcfg.Validate(), "exchange", "auth0"))
	}
	host, portStr, err := net.SplitHostPort(c.NATSAddr)
	if err != nil {
		errs = append(errs, e.fields.explain(fmt.Errorf("dev: NATSAddr %q: %w", c.NATSAddr, err), "dev"))
	}
	port, err := strconv.Atoi(portStr)
	if err != nil && portStr != "" {
		errs = append(errs, e.fields.explain(fmt.Errorf("dev: NATSAddr port %q: %w", portStr, err), "dev"))
	}
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}
	topo, err := c.topology()
	if err != nil {
		return err
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}

	store := filepath.Join(c.DataDir, "jetstream")
	ns, err := natsembed.Start(natsembed.Options{Host: host, Port: port, StoreDir: store, ServerName: "signupsync-dev"})
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	log.Info("embedded nats listening", "url", ns.ClientURL(), "store", store)

	// Ingest (and the exchange) publish on a connection that fails at once
	// while disconnected; the importer has its own.
	conns := []rolerun.Connection{{Name: "signupsync-dev", Options: []nats.Option{nats.ReconnectBufSize(-1)}}}
	if c.Importer {
		conns = append(conns, rolerun.Connection{Name: "signupsync-dev-importer"})
	}
	r := rolerun.Role{
		Name: "dev", Version: version, Logger: log, Getenv: e.getenv,
		NATS:    rolerun.NATS{URLs: ns.ClientURL(), Connections: conns},
		Prepare: rolerun.EnsureTopology(topo),
		// The admin listener is the one `ingest --metrics-addr` has, and
		// logged as such (deploy/auth0/testlib finds it by that line).
		AdminAddr: c.MetricsAddr, AdminName: "ingest",
		ShutdownTimeout: c.ShutdownTimeout,
	}
	r.Start = func(ctx context.Context, env rolerun.Env) (rolerun.Running, error) {
		var units []rolerun.Unit
		u, err := ingestUnit(ctx, icfg, env.JS[0], env)
		if err != nil {
			return rolerun.Running{}, err
		}
		units = append(units, u)
		if withExchange {
			fb, err := c.firebaseFlags.client(ctx, e, log)
			if err != nil {
				return rolerun.Running{}, err
			}
			u, _, err := exchangeUnit(ctx, xcfg, env.JS[0], fb, env)
			if err != nil {
				return rolerun.Running{}, err
			}
			units = append(units, u)
		}
		if c.Importer {
			u, err := importerUnit(ctx, e, imp, a0, c.firebaseFlags, env.JS[1], env)
			if err != nil {
				return rolerun.Running{}, err
			}
			units = append(units, u)
		}
		return rolerun.Running{Units: units}, nil
	}
	return runRole(ctx, e, r, "ingest", "importer", "exchange", "auth0")
}

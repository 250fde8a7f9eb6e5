package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/alecthomas/kong"

	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/rolerun"
	"github.com/signupsync/signupsync/internal/telemetry"
	"github.com/signupsync/signupsync/services/reconciler"
)

// reconcileCmd is `signupsync reconcile [sweep|deliveries]`. Each round
// publishes what it finds and moves a checkpoint, so the next round starts
// where this one ended (less --lookback); with --every it keeps going until
// stopped, a role with admin endpoints. It prints one line per round.
type reconcileCmd struct {
	Sweep      reconcileSweepCmd      `cmd:"" default:"withargs" group:"subcommands" help:"Sweep the Management API for users created in the window that no webhook reported (the default)."`
	Deliveries reconcileDeliveriesCmd `cmd:"" group:"subcommands" help:"Recover the failed user.created deliveries of an Auth0 event stream (needs read:event_streams and read:event_deliveries)."`
}

// reconcileFlags are the flags of both modes.
type reconcileFlags struct {
	tenantFlag    `embed:""`
	outputFlags   `embed:""`
	auth0Flags    `embed:"" group:"auth0"`
	topologyFlags `embed:"" group:"topology"`
	roleFlags     `embed:"" set:"metrics_addr=127.0.0.1:9465"`

	Since            string        `name:"since" envvar:"SIGNUPSYNC_RECONCILE_SINCE" cfg:"reconcile.Since" help:"Start of the first round: users created (deliveries sent) since this RFC 3339 time, date (2006-01-02) or duration before now (24h); once a checkpoint exists, rounds start at it (less --lookback), however old it is."`
	Until            string        `name:"until" envvar:"SIGNUPSYNC_RECONCILE_UNTIL" cfg:"reconcile.Until" help:"End of the round, exclusive, same forms as --since (default: now minus --settle; not with --every)."`
	Settle           time.Duration `name:"settle" envvar:"SIGNUPSYNC_RECONCILE_SETTLE" default:"${reconcile_settle}" cfg:"reconcile.SettleLag" help:"How far behind now a round ends: recent signups are still being reported by webhooks."`
	Lookback         time.Duration `name:"lookback" envvar:"SIGNUPSYNC_RECONCILE_LOOKBACK" default:"${reconcile_lookback}" cfg:"reconcile.Lookback" help:"How far before the checkpoint each round starts again, for users the search index listed late and deliveries that failed late (0 = none)."`
	Every            time.Duration `name:"every" envvar:"SIGNUPSYNC_RECONCILE_EVERY" cfg:"reconcile.Every" help:"Run as a service: another round after this pause until stopped, with the admin endpoints on --metrics-addr (0 = one round)."`
	Rate             int           `name:"rate" aliases:"rps" envvar:"SIGNUPSYNC_RECONCILE_RPS" default:"${reconcile_rate}" cfg:"reconcile.RPS" help:"Management API requests per second, 0 = unlimited."`
	IgnoreCheckpoint bool          `name:"ignore-checkpoint" cfg:"reconcile.IgnoreCheckpoint" help:"Start at --since even when an earlier round got further (re-sweep)."`
	DryRun           bool          `name:"dry-run" cfg:"reconcile.DryRun" help:"List and count the missing signups without publishing or moving the checkpoint."`
}

type reconcileSweepCmd struct {
	reconcileFlags
}

type reconcileDeliveriesCmd struct {
	reconcileFlags
	StreamID string `name:"stream-id" envvar:"SIGNUPSYNC_RECONCILE_STREAM_ID" cfg:"reconcile.StreamID" help:"The Auth0 event stream (est_…) whose failed user.created deliveries are recovered (required)."`
}

func reconcileVars() kong.Vars {
	d := reconciler.DefaultConfig()
	return kong.Vars{"reconcile_settle": d.SettleLag.String(), "reconcile_lookback": d.Lookback.String(), "reconcile_rate": strconv.Itoa(int(d.RPS))}
}

func (c *reconcileSweepCmd) Run(ctx context.Context, e env) error {
	return c.run(ctx, e, reconciler.ModeSweep, "")
}

func (c *reconcileDeliveriesCmd) Run(ctx context.Context, e env) error {
	return c.run(ctx, e, reconciler.ModeDeliveries, c.StreamID)
}

func (c *reconcileFlags) run(ctx context.Context, e env, mode reconciler.Mode, streamID string) error {
	cfg, a0, err := c.config(e, mode, streamID)
	if err != nil {
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
	r := c.role(e, "reconcile", log, rolerun.Connection{Name: "signupsync-reconcile"})
	if cfg.Every == 0 {
		r.AdminAddr = "" // one round: nothing to probe or scrape
	}
	r.Prepare = rolerun.EnsureTopology(topo)
	write := reconciler.Result.WriteText // one line per round
	if c.json() {
		write = reconciler.Result.WriteJSON
	}
	r.Start = func(ctx context.Context, env rolerun.Env) (rolerun.Running, error) {
		api, err := auth0api.New(ctx, a0)
		if err != nil {
			return rolerun.Running{}, err
		}
		metrics := reconciler.NewMetrics(env.Registry)
		rec, err := reconciler.New(ctx, cfg, reconciler.Deps{
			Users: api, Deliveries: api, JetStream: env.JS[0], Logger: env.Logger, Tracer: env.Tracer, Propagator: telemetry.Propagator(),
			OnSweep: func(res reconciler.Result, err error) {
				metrics.Observe(res, err)
				_ = write(res, e.stdout, err) // stdout failing does not stop the role
			},
		})
		if err != nil {
			return rolerun.Running{}, err
		}
		return rolerun.Running{Units: []rolerun.Unit{{Name: "reconcile", Run: rec.Run}}}, nil
	}
	return runRole(ctx, e, r, "reconcile", "auth0")
}

// config is the reconciler's Config and Management API, checked; the
// errors name flags.
func (c *reconcileFlags) config(e env, mode reconciler.Mode, streamID string) (reconciler.Config, auth0api.Config, error) {
	now := time.Now()
	cfg := reconciler.DefaultConfig()
	cfg.Mode, cfg.StreamID, cfg.SettleLag, cfg.Lookback, cfg.Every, cfg.RPS, cfg.Tenant = mode, streamID, c.Settle, c.Lookback, c.Every, float64(c.Rate), c.Tenant
	cfg.IgnoreCheckpoint, cfg.DryRun = c.IgnoreCheckpoint, c.DryRun
	var errs []error
	if c.Since != "" {
		t, err := reconciler.ParseTime(c.Since, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile: Since: %w", err))
			t = time.Unix(1, 0).UTC() // reported above; a placeholder lets Validate check the rest
		}
		cfg.Since = t
	}
	if c.Until != "" {
		t, err := reconciler.ParseTime(c.Until, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile: Until: %w", err))
		}
		cfg.Until = t
	}
	errs = append(errs, cfg.Validate())
	a0, err := c.required()
	return cfg, a0, errors.Join(e.fields.explain(errors.Join(errs...), "reconcile"), e.fields.explain(err, "auth0"))
}

package main

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/alecthomas/kong"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/rolerun"
	"github.com/signupsync/signupsync/internal/telemetry"
	"github.com/signupsync/signupsync/services/importer"
)

// importerFlags are the importer's settings (importer and dev).
type importerFlags struct {
	BatchSize       int           `name:"batch-size" envvar:"SIGNUPSYNC_BATCH_SIZE" default:"${batch_size}" cfg:"importer.BatchSize" help:"Most users per ImportUsers call (1 to 1000)."`
	BatchWindow     time.Duration `name:"batch-window" envvar:"SIGNUPSYNC_BATCH_WINDOW" default:"${batch_window}" cfg:"importer.BatchWindow" help:"How long a fetch waits to fill a batch."`
	Workers         int           `name:"importer-workers" envvar:"SIGNUPSYNC_IMPORTER_WORKERS" default:"${importer_workers}" cfg:"importer.Workers" help:"Concurrent fetch-and-import loops per process."`
	EmailPolicy     string        `name:"email-policy" envvar:"SIGNUPSYNC_EMAIL_POLICY" default:"${email_policy}" cfg:"importer.EmailPolicy" help:"When the email belongs to another Firebase account: conflict, link (only when Auth0 proves the email; needs the Management API) or skip."`
	FirebaseRate    int           `name:"firebase-rate" aliases:"firebase-rps" envvar:"SIGNUPSYNC_FIREBASE_RPS" default:"-1" cfg:"importer.FirebaseRPS" help:"Firebase calls per second, 0 = unlimited; -1: 10, or unlimited against the emulator."`
	BreakerFailures int           `name:"breaker-failures" envvar:"SIGNUPSYNC_BREAKER_FAILURES" default:"${breaker_failures}" cfg:"importer.BreakerFailures" help:"Consecutive transient Firebase failures that open the breaker."`
	BreakerOpenFor  time.Duration `name:"breaker-open-for" envvar:"SIGNUPSYNC_BREAKER_OPEN_FOR" default:"${breaker_open_for}" cfg:"importer.BreakerOpenFor" help:"How long the breaker stays open before a probe."`
	FirebaseTimeout time.Duration `name:"firebase-timeout" envvar:"SIGNUPSYNC_FIREBASE_TIMEOUT" default:"${firebase_timeout}" cfg:"importer.FirebaseTimeout" help:"Deadline of one Firebase call."`
	AckWait         time.Duration `name:"ack-wait" envvar:"SIGNUPSYNC_ACK_WAIT" default:"${ack_wait}" cfg:"importer.Delivery.AckWait" help:"Consumer AckWait."`
	MaxDeliver      int           `name:"max-deliver" envvar:"SIGNUPSYNC_MAX_DELIVER" default:"${max_deliver}" cfg:"importer.Delivery.MaxDeliver" help:"Deliveries before a failing signup is dead-lettered."`
	AmbiguousWait   time.Duration `name:"ambiguous-import-wait" envvar:"SIGNUPSYNC_AMBIGUOUS_IMPORT_WAIT" default:"${ambiguous_import_wait}" cfg:"importer.AmbiguousWait" help:"How long an import that got no answer may still be applied by Firebase; the user is not imported again before."`
	FreshAfter      time.Duration `name:"fresh-after" envvar:"SIGNUPSYNC_FRESH_AFTER" default:"${fresh_after}" cfg:"importer.FreshAfter" help:"Re-read from the Management API a signup older than this (and every backfill or replayed signup) before import, so a user deleted or changed since is not imported from old data; 0 = only backfill and replay."`
	EnrichAll       bool          `name:"enrich-all" envvar:"SIGNUPSYNC_ENRICH_ALL" cfg:"importer.EnrichAll" help:"Read every signup from the Management API, not only partial ones."`
}

func importerVars() kong.Vars {
	d := importer.DefaultConfig()
	return kong.Vars{
		"batch_size": strconv.Itoa(d.BatchSize), "batch_window": d.BatchWindow.String(), "importer_workers": strconv.Itoa(d.Workers),
		"email_policy": string(d.EmailPolicy), "breaker_failures": strconv.Itoa(int(d.BreakerFailures)),
		"breaker_open_for": d.BreakerOpenFor.String(), "firebase_timeout": d.FirebaseTimeout.String(),
		"ack_wait": d.Delivery.AckWait.String(), "max_deliver": strconv.Itoa(d.Delivery.MaxDeliver),
		"ambiguous_import_wait": d.AmbiguousWait.String(), "fresh_after": d.FreshAfter.String(),
	}
}

// importerSettings are the importer's Config and Management API, checked;
// the errors name flags.
func importerSettings(e env, f importerFlags, uid string, fb firebaseFlags, a0 auth0Flags) (importer.Config, auth0api.Config, error) {
	c := importer.DefaultConfig()
	c.BatchSize, c.BatchWindow, c.Workers = f.BatchSize, f.BatchWindow, f.Workers
	c.UIDPolicy, c.EmailPolicy = events.UIDPolicy(uid), importer.EmailPolicy(f.EmailPolicy)
	switch {
	case f.FirebaseRate >= 0:
		c.FirebaseRPS = float64(f.FirebaseRate)
	case e.getenv("FIREBASE_AUTH_EMULATOR_HOST") != "":
		c.FirebaseRPS = 0
	}
	c.BreakerFailures, c.BreakerOpenFor, c.FirebaseTimeout = uint32(max(f.BreakerFailures, 0)), f.BreakerOpenFor, f.FirebaseTimeout
	c.Delivery.AckWait, c.Delivery.MaxDeliver, c.AmbiguousWait = f.AckWait, f.MaxDeliver, f.AmbiguousWait
	c.EnrichAll, c.FreshAfter = f.EnrichAll, f.FreshAfter
	a := a0.config()
	errs := []error{e.fields.explain(c.Validate(), "importer"), fb.check(e)}
	if a.Domain != "" {
		errs = append(errs, e.fields.explain(a.Validate(), "auth0"))
	}
	if c.EnrichAll && !a.Enabled() {
		errs = append(errs, e.fields.explain(errors.New("importer: EnrichAll needs Domain and credentials"), "importer", "auth0"))
	}
	if c.EmailPolicy == importer.EmailLink && !a.Enabled() {
		errs = append(errs, e.fields.explain(errors.New("importer: EmailPolicy link needs Domain and credentials: a link is decided on the profile read from the Management API, never on the webhook body"), "importer", "auth0"))
	}
	return c, a, errors.Join(errs...)
}

// importerCmd is `signupsync importer`. It creates the topology.
type importerCmd struct {
	importerFlags `embed:"" group:"importer"`
	uidPolicyFlag `embed:"" group:"importer"`
	firebaseFlags `embed:"" group:"firebase"`
	auth0Flags    `embed:"" group:"auth0"`
	topologyFlags `embed:"" group:"topology"`
	roleFlags     `embed:"" set:"metrics_addr=127.0.0.1:9464"`
}

// Help is the detail of `importer --help`.
func (importerCmd) Help() string {
	return "Without the Management API (--auth0-domain) enrichment is off: partial signups (Log Streams) are mapped from what they carry, and backfill, replayed and old signups are imported without re-reading Auth0."
}

func (c *importerCmd) Run(ctx context.Context, e env) error {
	cfg, a0, err := importerSettings(e, c.importerFlags, c.UIDPolicy, c.firebaseFlags, c.auth0Flags)
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
	r := c.role(e, "importer", log, rolerun.Connection{Name: "signupsync-importer"})
	r.Prepare = rolerun.EnsureTopology(topo)
	r.Start = func(ctx context.Context, env rolerun.Env) (rolerun.Running, error) {
		u, err := importerUnit(ctx, e, cfg, a0, c.firebaseFlags, env.JS[0], env)
		return rolerun.Running{Units: []rolerun.Unit{u}}, err
	}
	return runRole(ctx, e, r, "importer", "auth0")
}

// importerUnit wires Firebase, the optional Auth0 enricher and the
// importer on js.
func importerUnit(ctx context.Context, e env, cfg importer.Config, a0 auth0api.Config, fb firebaseFlags, js jetstream.JetStream, env rolerun.Env) (rolerun.Unit, error) {
	log := env.Logger.With("role", "importer")
	accounts, err := fb.client(ctx, e, log)
	if err != nil {
		return rolerun.Unit{}, err
	}
	var enricher importer.Enricher
	if a0.Enabled() {
		c, err := auth0api.New(ctx, a0)
		if err != nil {
			return rolerun.Unit{}, err
		}
		enricher = importer.Auth0Enricher(c)
		log.Info("enrichment on", "auth0_domain", a0.Domain, "enrich_all", cfg.EnrichAll, "fresh_after", cfg.FreshAfter)
	} else {
		log.Warn("enrichment off: partial signups (Log Streams) are mapped from what they carry, and backfill, replayed and old signups are imported without re-reading Auth0 (a user deleted since may be imported)")
	}
	im, err := importer.New(ctx, cfg, importer.Deps{
		JetStream:  js,
		Accounts:   accounts,
		Enricher:   enricher,
		Logger:     log,
		Metrics:    importer.NewMetrics(env.Registry),
		Registerer: env.Registry,
		Tracer:     env.Tracer,
		Propagator: telemetry.Propagator(),
	})
	if err != nil {
		return rolerun.Unit{}, err
	}
	return rolerun.Unit{Name: "importer", Run: im.Run}, nil
}

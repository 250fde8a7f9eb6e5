package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/alecthomas/kong"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/internal/rolerun"
	"github.com/signupsync/signupsync/internal/telemetry"
	"github.com/signupsync/signupsync/schemas"
	"github.com/signupsync/signupsync/services/ingest"
)

// ingestFlags are the webhook receivers' settings (ingest and dev).
type ingestFlags struct {
	Addr               string        `name:"http-addr" envvar:"SIGNUPSYNC_HTTP_ADDR" default:"${http_addr}" cfg:"ingest.Addr" help:"Listen address of the webhook receivers."`
	BodyLimit          int           `name:"body-limit" envvar:"SIGNUPSYNC_BODY_LIMIT" default:"${body_limit}" cfg:"ingest.BodyLimit" help:"Largest accepted body in bytes (Action and Event Streams receivers)."`
	LogStreamBodyLimit int           `name:"log-stream-body-limit" envvar:"SIGNUPSYNC_LOG_STREAM_BODY_LIMIT" default:"${log_stream_body_limit}" cfg:"ingest.LogStreamBodyLimit" help:"Largest accepted Log Streams batch in bytes (read entry by entry, each at most 64 KiB)."`
	ActionSecrets      secretList    `name:"action-secrets" envvar:"SIGNUPSYNC_ACTION_SECRETS" cfg:"ingest.ActionSecrets" help:"Standard Webhooks secrets (whsec_...) of the Auth0 Actions, comma-separated for rotation."`
	EventStreamTokens  secretList    `name:"event-stream-token" envvar:"SIGNUPSYNC_EVENT_STREAM_TOKEN" cfg:"ingest.EventStreamTokens" help:"Bearer token(s) Auth0 Event Streams send, comma-separated."`
	EventStreamBasic   secretList    `name:"event-stream-basic" envvar:"SIGNUPSYNC_EVENT_STREAM_BASIC" cfg:"ingest.EventStreamBasic" help:"user:password pair(s) for Event Streams basic auth, comma-separated."`
	LogStreamTokens    secretList    `name:"log-stream-token" envvar:"SIGNUPSYNC_LOG_STREAM_TOKEN" cfg:"ingest.LogStreamTokens" help:"Authorization header value(s) Auth0 Log Streams send, comma-separated."`
	Tolerance          time.Duration `name:"signature-tolerance" envvar:"SIGNUPSYNC_SIGNATURE_TOLERANCE" default:"${signature_tolerance}" cfg:"ingest.Tolerance" help:"Allowed webhook-timestamp skew."`
	PublishTimeout     time.Duration `name:"publish-timeout" envvar:"SIGNUPSYNC_PUBLISH_TIMEOUT" default:"${publish_timeout}" cfg:"ingest.PublishTimeout" help:"Wait for JetStream's acknowledgement before answering 503."`
}

func ingestVars() kong.Vars {
	d := ingest.DefaultConfig()
	return kong.Vars{
		"http_addr": d.Addr, "ingest_admin_addr": d.AdminAddr,
		"body_limit": strconv.FormatInt(d.BodyLimit, 10), "log_stream_body_limit": strconv.FormatInt(d.LogStreamBodyLimit, 10),
		"signature_tolerance": d.Tolerance.String(), "publish_timeout": d.PublishTimeout.String(),
	}
}

// config is the ingest Config of these flags. adminAddr is only checked
// against Addr: the lifecycle serves the admin endpoints.
func (f ingestFlags) config(tenant string, shutdown time.Duration, adminAddr string) ingest.Config {
	c := ingest.DefaultConfig()
	c.Addr, c.AdminAddr, c.BodyLimit, c.LogStreamBodyLimit = f.Addr, adminAddr, int64(f.BodyLimit), int64(f.LogStreamBodyLimit)
	c.ActionSecrets, c.EventStreamTokens, c.EventStreamBasic, c.LogStreamTokens = f.ActionSecrets.list, f.EventStreamTokens.list, f.EventStreamBasic.list, f.LogStreamTokens.list
	c.Tenant, c.Tolerance, c.PublishTimeout, c.ShutdownTimeout = tenant, f.Tolerance, f.PublishTimeout, shutdown
	return c
}

// ingestCmd is `signupsync ingest`. It faces the internet, so its NATS user
// may not create streams: until SIGNUPS exists (the importer, reconcile or
// backfill creates it) /readyz and the receivers answer 503.
type ingestCmd struct {
	ingestFlags `embed:"" group:"ingest"`
	tenantFlag  `embed:"" group:"ingest"`
	roleFlags   `embed:"" set:"metrics_addr=${ingest_admin_addr}"`
}

// Inbox prefixes of the internet-facing roles: their NATS users may
// subscribe only to their own replies (deploy/nats/permissions.conf), not
// to _INBOX.>, where the importer's pulled signups arrive.
const (
	ingestInboxPrefix   = "_INBOX_ingest"
	exchangeInboxPrefix = "_INBOX_exchange"
)

func (c *ingestCmd) Run(ctx context.Context, e env) error {
	cfg := c.config(c.Tenant, c.ShutdownTimeout, c.MetricsAddr)
	if err := cfg.Validate(); err != nil {
		return e.usage(err, "ingest")
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	// Publishing while disconnected must fail at once (503), not sit in the
	// reconnect buffer: ReconnectBufSize(-1).
	r := c.role(e, "ingest", log, rolerun.Connection{Name: "signupsync-ingest",
		Options: []nats.Option{nats.ReconnectBufSize(-1), nats.CustomInboxPrefix(ingestInboxPrefix)}})
	r.Start = func(ctx context.Context, env rolerun.Env) (rolerun.Running, error) {
		u, err := ingestUnit(ctx, cfg, env.JS[0], env)
		return rolerun.Running{Units: []rolerun.Unit{u}}, err
	}
	return runRole(ctx, e, r, "ingest")
}

// ingestUnit builds the webhook receivers on js and opens their listener.
func ingestUnit(ctx context.Context, cfg ingest.Config, js jetstream.JetStream, env rolerun.Env) (rolerun.Unit, error) {
	set, err := schemas.Compile()
	if err != nil {
		return rolerun.Unit{}, fmt.Errorf("schemas: %w", err)
	}
	svc, err := ingest.New(cfg, ingest.Deps{
		Publisher:  js,
		Schemas:    set,
		Logger:     env.Logger.With("role", "ingest"),
		Metrics:    ingest.NewMetrics(env.Registry),
		Tracer:     env.Tracer,
		Propagator: telemetry.Propagator(),
	})
	if err != nil {
		return rolerun.Unit{}, err
	}
	ln, err := ingest.Listen(ctx, cfg.Addr)
	if err != nil {
		return rolerun.Unit{}, err
	}
	return rolerun.Unit{Name: "ingest", Run: func(ctx context.Context) error { return svc.Serve(ctx, ln) }}, nil
}

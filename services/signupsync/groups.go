package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"
	"github.com/alecthomas/kong"
	"google.golang.org/api/option"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/rolerun"
	"github.com/signupsync/signupsync/internal/telemetry"
)

// The flag groups commands share. A command embeds each it uses with
// embed:"" and the group's key (helpGroups).

// natsFlags is the connection of every command that uses the broker.
type natsFlags struct {
	URL   urls   `name:"nats-url" envvar:"SIGNUPSYNC_NATS_URL" default:"nats://127.0.0.1:4222" help:"NATS server URL(s), comma-separated."`
	Creds string `name:"nats-creds" envvar:"SIGNUPSYNC_NATS_CREDS" help:"NATS credentials file."`
}

// connect connects a command that runs once.
func (n natsFlags) connect(name string, log *slog.Logger) (*rolerun.Conn, error) {
	return rolerun.Connect(string(n.URL), n.Creds, name, log)
}

// topologyFlags size the streams and buckets, for the commands that create
// them.
type topologyFlags struct {
	Replicas        int           `name:"stream-replicas" envvar:"SIGNUPSYNC_STREAM_REPLICAS" default:"1" help:"Replicas of the SIGNUPS and SIGNUPS_DLQ streams and the buckets."`
	DuplicateWindow time.Duration `name:"duplicate-window" envvar:"SIGNUPSYNC_DUPLICATE_WINDOW" default:"${duplicate_window}" help:"How long SIGNUPS remembers a Nats-Msg-Id."`
	SignupMaxAge    time.Duration `name:"signup-max-age" envvar:"SIGNUPSYNC_SIGNUP_MAX_AGE" default:"${signup_max_age}" help:"How long an accepted signup is kept in SIGNUPS."`
}

// topology returns the topology, or a usage error when it is unusable.
func (t topologyFlags) topology() (events.Topology, error) {
	topo := events.DefaultTopology()
	topo.Replicas, topo.DuplicateWindow, topo.SignupMaxAge = t.Replicas, t.DuplicateWindow, t.SignupMaxAge
	if err := topo.Validate(); err != nil {
		return topo, usageError{fmt.Errorf("topology (--stream-replicas, --duplicate-window, --signup-max-age): %w", err)}
	}
	return topo, nil
}

// logFlags configure the logs, on stderr.
type logFlags struct {
	LogLevel string `name:"log-level" envvar:"SIGNUPSYNC_LOG_LEVEL" default:"info" cfg:"process.LogLevel" help:"Log level: debug, info, warn or error."`
}

func (l logFlags) logger(e env) (*slog.Logger, error) {
	lvl, err := telemetry.ParseLevel(l.LogLevel)
	if err != nil {
		return nil, e.usage(fmt.Errorf("logs: LogLevel: %w", err), "process")
	}
	return telemetry.NewLogger(e.stderr, lvl), nil
}

// shutdownFlags bound how long a command takes to stop.
type shutdownFlags struct {
	ShutdownTimeout time.Duration `name:"shutdown-timeout" envvar:"SIGNUPSYNC_SHUTDOWN_TIMEOUT" default:"20s" cfg:"process.ShutdownTimeout,ingest.ShutdownTimeout,exchange.ShutdownTimeout" help:"Deadline of everything done to stop: intake, consumers, NATS drain, trace flush."`
}

// adminFlags are the admin endpoints of a role. The embedding command
// sets the default, metrics_addr.
type adminFlags struct {
	MetricsAddr string `name:"metrics-addr" envvar:"SIGNUPSYNC_METRICS_ADDR" default:"${metrics_addr}" cfg:"ingest.AdminAddr" help:"Listen address of /metrics, /healthz and /readyz; keep it off the internet."`
}

// roleFlags are the flags of every long-running role but dev.
type roleFlags struct {
	natsFlags     `embed:"" group:"nats"`
	logFlags      `embed:"" group:"process"`
	shutdownFlags `embed:"" group:"process"`
	adminFlags    `embed:"" group:"process"`
}

// role returns the lifecycle of role name with these flags: its NATS
// connections, admin endpoints and shutdown deadline.
func (r roleFlags) role(e env, name string, log *slog.Logger, conns ...rolerun.Connection) rolerun.Role {
	return rolerun.Role{
		Name: name, Version: version, Logger: log, Getenv: e.getenv,
		NATS:      rolerun.NATS{URLs: string(r.URL), Creds: r.Creds, Connections: conns},
		AdminAddr: r.MetricsAddr, ShutdownTimeout: r.ShutdownTimeout,
	}
}

// runRole runs r through the one lifecycle; errors name flags, not
// fields (scopes as for explain).
func runRole(ctx context.Context, e env, r rolerun.Role, scopes ...string) error {
	if r.ShutdownTimeout <= 0 {
		return e.usage(errors.New("shutdown: ShutdownTimeout must be positive"), "process")
	}
	err := rolerun.Run(ctx, r)
	if errors.Is(err, rolerun.ErrSetup) {
		return usageError{err}
	}
	return e.fields.explain(err, scopes...)
}

// firebaseFlags select the Firebase project.
type firebaseFlags struct {
	Project     string `name:"firebase-project" envvar:"SIGNUPSYNC_FIREBASE_PROJECT,GOOGLE_CLOUD_PROJECT" cfg:"firebase.Project" help:"Firebase project id."`
	Credentials string `name:"firebase-credentials" envvar:"GOOGLE_APPLICATION_CREDENTIALS" help:"Service account JSON file (not needed with FIREBASE_AUTH_EMULATOR_HOST)."`
}

// check reports a missing project.
func (f firebaseFlags) check(e env) error {
	if f.Project == "" {
		return e.fields.explain(errors.New("firebase: Project is required"), "firebase")
	}
	return nil
}

// client builds an Admin SDK Auth client; against the emulator
// (FIREBASE_AUTH_EMULATOR_HOST) it needs no credentials.
func (f firebaseFlags) client(ctx context.Context, e env, log *slog.Logger) (*auth.Client, error) {
	emulator := e.getenv("FIREBASE_AUTH_EMULATOR_HOST")
	var opts []option.ClientOption
	if f.Credentials != "" && emulator == "" {
		opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, f.Credentials))
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: f.Project}, opts...)
	if err != nil {
		return nil, fmt.Errorf("firebase app: %w", err)
	}
	c, err := app.Auth(ctx)
	if err != nil {
		return nil, fmt.Errorf("firebase auth: %w", err)
	}
	if emulator != "" && log != nil {
		log.Info("using the Firebase Auth emulator", "host", emulator, "project", f.Project)
	}
	return c, nil
}

// auth0Flags reach the Auth0 Management API.
type auth0Flags struct {
	Domain       string        `name:"auth0-domain" envvar:"SIGNUPSYNC_AUTH0_DOMAIN" cfg:"auth0.Domain,tenant.Domain" help:"Auth0 tenant domain of the Management API, e.g. example.eu.auth0.com."`
	ClientID     string        `name:"auth0-client-id" envvar:"SIGNUPSYNC_AUTH0_CLIENT_ID" cfg:"auth0.ClientID,tenant.ClientID" help:"Management API client id (client credentials)."`
	ClientSecret secret        `name:"auth0-client-secret" envvar:"SIGNUPSYNC_AUTH0_CLIENT_SECRET" cfg:"auth0.ClientSecret,tenant.ClientSecret" help:"Management API client secret."`
	Token        secret        `name:"auth0-token" envvar:"SIGNUPSYNC_AUTH0_TOKEN" cfg:"auth0.Token,tenant.Token" help:"Static Management API token (instead of client credentials)."`
	Timeout      time.Duration `name:"auth0-timeout" envvar:"SIGNUPSYNC_AUTH0_TIMEOUT" default:"${auth0_timeout}" cfg:"auth0.Timeout,tenant.Timeout" help:"Deadline of one Management API call."`
}

func (a auth0Flags) config() auth0api.Config {
	return auth0api.Config{Domain: a.Domain, ClientID: a.ClientID, ClientSecret: string(a.ClientSecret), Token: string(a.Token), Timeout: a.Timeout}
}

// required returns the configuration of a command that cannot work
// without the Management API, or what is missing (in field terms: explain
// with scope auth0).
func (a auth0Flags) required() (auth0api.Config, error) {
	c := a.config()
	if err := c.Validate(); err != nil {
		return c, err
	}
	if !c.Enabled() {
		return c, errors.New("auth0: Domain with Token, or with ClientID and ClientSecret, is required")
	}
	return c, nil
}

// tenantFlag names the Auth0 tenant for sources that do not carry it.
type tenantFlag struct {
	Tenant string `name:"tenant" envvar:"SIGNUPSYNC_AUTH0_TENANT" default:"${tenant}" cfg:"ingest.Tenant,exchange.Tenant,reconcile.Tenant,backfill.Tenant,passwords.Tenant" help:"Auth0 tenant name recorded in the events whose source does not carry one."`
}

// uidPolicyFlag derives Firebase uids; the importer's, the exchange's and
// the report's must agree.
type uidPolicyFlag struct {
	UIDPolicy string `name:"uid-policy" envvar:"SIGNUPSYNC_UID_POLICY" default:"${uid_policy}" cfg:"importer.UIDPolicy,exchange.UIDPolicy,report.UIDPolicy" help:"Firebase uid of an imported user: auth0_id or hash (the same for importer, exchange and report)."`
}

// outputFlags choose the output of operator commands.
type outputFlags struct {
	Format string `name:"format" enum:"text,json" default:"text" help:"Output: text or json."`
	JSON   bool   `name:"json" hidden:"" help:"Deprecated: --format json."`
}

func (o outputFlags) json() bool { return o.JSON || o.Format == "json" }

// processVars are the defaults of the shared groups.
func processVars() kong.Vars {
	return kong.Vars{
		"duplicate_window": events.DefaultDuplicateWindow.String(),
		"signup_max_age":   events.DefaultSignupMaxAge.String(),
		"auth0_timeout":    auth0api.DefaultTimeout.String(),
		"tenant":           "default",
		"uid_policy":       string(events.UIDAuth0ID),
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alecthomas/kong"

	"github.com/signupsync/signupsync/services/tenant"
)

// auth0Cmd is `signupsync auth0`: signupsync's side of the Auth0 tenant
// (the two Actions, the event stream and the log stream, services/tenant),
// installed, reported and removed through the Management API.
type auth0Cmd struct {
	Install   auth0InstallCmd   `cmd:"" group:"subcommands" help:"Create or update the Actions and the streams, and write the secrets ingest needs to --secrets-file (re-runnable: a second run writes nothing)."`
	Status    auth0StatusCmd    `cmd:"" group:"subcommands" help:"Show what is installed and whether it matches; exit status 3 when it does not."`
	Uninstall auth0UninstallCmd `cmd:"" group:"subcommands" help:"Remove exactly what install created."`
}

// tenantFlags are the flags of every auth0 subcommand.
type tenantFlags struct {
	IngestURL   string `name:"ingest-url" envvar:"SIGNUPSYNC_INGEST_URL" cfg:"tenant.IngestURL" help:"Public https base URL of ingest, e.g. https://signupsync.example.com; the Actions and streams send to its /v1/hooks/… paths."`
	Prefix      string `name:"prefix" envvar:"SIGNUPSYNC_AUTH0_PREFIX" default:"${tenant_prefix}" cfg:"tenant.Prefix" help:"Start of the names of everything installed; another environment in the same tenant takes another prefix."`
	Actions     bool   `name:"actions" default:"true" negatable:"" cfg:"tenant.Actions" help:"The post-login and post-user-registration Actions."`
	EventStream bool   `name:"event-stream" default:"true" negatable:"" cfg:"tenant.EventStream" help:"The event stream (user.created, user.updated, user.deleted)."`
	LogStream   bool   `name:"log-stream" default:"true" negatable:"" cfg:"tenant.LogStream" help:"The log stream (signups, logins, deletions)."`
	auth0Flags  `embed:"" group:"auth0"`
}

func tenantVars() kong.Vars {
	d := tenant.DefaultConfig()
	return kong.Vars{"tenant_prefix": d.Prefix, "tenant_build_timeout": d.BuildTimeout.String()}
}

// installer checks the configuration and builds the installer; the errors
// name flags.
func (f tenantFlags) installer(ctx context.Context, e env, edit func(*tenant.Config)) (*tenant.Installer, error) {
	c := tenant.DefaultConfig()
	c.Domain, c.ClientID, c.ClientSecret, c.Token, c.Timeout = f.Domain, f.ClientID, string(f.ClientSecret), string(f.Token), f.Timeout
	c.IngestURL, c.Prefix, c.Actions, c.EventStream, c.LogStream = f.IngestURL, f.Prefix, f.Actions, f.EventStream, f.LogStream
	if edit != nil {
		edit(&c)
	}
	if err := c.Validate(); err != nil {
		return nil, e.usage(err, "tenant")
	}
	return tenant.New(ctx, c, tenant.Deps{HTTPClient: e.auth0HTTP})
}

// auth0InstallCmd is `signupsync auth0 install`. The secrets default to
// the ones ingest reads, so that a re-run keeps what ingest accepts.
type auth0InstallCmd struct {
	DryRun           bool          `name:"dry-run" help:"Print what would be created or changed, as a diff; change nothing."`
	SecretsFile      string        `name:"secrets-file" default:"ingest-secrets.env" help:"Where the secrets ingest needs go (KEY=value lines, mode 0600)."`
	ActionSecrets    secretList    `name:"action-secrets" envvar:"SIGNUPSYNC_ACTION_SECRETS" cfg:"tenant.ActionSecret" help:"The Actions' Standard Webhooks secret, ingest's (the first is used); empty: generated on a first install, refused once installed (Auth0 never shows it) unless --rewrite-secrets."`
	EventStreamToken secretList    `name:"event-stream-token" envvar:"SIGNUPSYNC_EVENT_STREAM_TOKEN" cfg:"tenant.EventStreamToken" help:"The event stream's bearer token, ingest's (the first is used); empty: as --action-secrets."`
	LogStreamToken   secretList    `name:"log-stream-token" envvar:"SIGNUPSYNC_LOG_STREAM_TOKEN" cfg:"tenant.LogStreamToken" help:"The log stream's Authorization value, ingest's (the first is used); empty: the installed one, or generated."`
	RewriteSecrets   bool          `name:"rewrite-secrets" cfg:"tenant.RewriteSecrets" help:"Rotate: write every secret, the ones given or new ones, even where Auth0 shows no difference; configure ingest with the new ones first (it takes several, comma-separated)."`
	ActionBudget     time.Duration `name:"action-budget" envvar:"SIGNUPSYNC_ACTION_BUDGET" cfg:"tenant.ActionBudget" help:"The Actions' time budget for the call to ingest, 250ms to 10s; 0: the Actions' default (5s)."`
	BuildTimeout     time.Duration `name:"build-timeout" default:"${tenant_build_timeout}" cfg:"tenant.BuildTimeout" help:"Longest wait for one Action to build, and again to deploy."`
	tenantFlags      `embed:""`
}

func first(l list) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

func (c *auth0InstallCmd) Run(ctx context.Context, e env) error {
	inst, err := c.installer(ctx, e, func(t *tenant.Config) {
		t.ActionSecret, t.EventStreamToken, t.LogStreamToken = first(c.ActionSecrets.list), first(c.EventStreamToken.list), first(c.LogStreamToken.list)
		t.RewriteSecrets, t.ActionBudget, t.BuildTimeout = c.RewriteSecrets, c.ActionBudget, c.BuildTimeout
	})
	if err != nil {
		return err
	}
	if c.DryRun {
		plan, err := inst.Plan(ctx)
		if err != nil {
			return e.fields.explain(err, "tenant")
		}
		return plan.Render(e.stdout)
	}
	res, err := inst.Install(ctx, e.stdout)
	// Whatever got installed, ingest must accept: the secrets are written
	// even when the install failed part way.
	if res.Secrets != (tenant.Secrets{}) {
		if werr := res.Secrets.WriteEnvFile(c.SecretsFile); werr != nil {
			return errors.Join(err, werr)
		}
		fmt.Fprintf(e.stdout, "wrote %s to %s (mode 0600): configure ingest with them\n", res.Secrets, c.SecretsFile)
	}
	return e.fields.explain(err, "tenant")
}

// auth0StatusCmd is `signupsync auth0 status`.
type auth0StatusCmd struct {
	tenantFlags `embed:""`
}

func (c *auth0StatusCmd) Run(ctx context.Context, e env) error {
	inst, err := c.installer(ctx, e, nil)
	if err != nil {
		return err
	}
	st, err := inst.Status(ctx)
	if err != nil {
		return e.fields.explain(err, "tenant")
	}
	if err := st.Render(e.stdout); err != nil {
		return err
	}
	if !st.Matches() {
		return exitError{code: 3, err: errors.New("the tenant does not match what signupsync needs: run auth0 install")}
	}
	return nil
}

// auth0UninstallCmd is `signupsync auth0 uninstall`.
type auth0UninstallCmd struct {
	DryRun      bool `name:"dry-run" help:"Print what would be removed; remove nothing."`
	tenantFlags `embed:""`
}

func (c *auth0UninstallCmd) Run(ctx context.Context, e env) error {
	inst, err := c.installer(ctx, e, nil)
	if err != nil {
		return err
	}
	plan, err := inst.Uninstall(ctx, c.DryRun, e.stdout)
	if c.DryRun && err == nil {
		return plan.Render(e.stdout)
	}
	return e.fields.explain(err, "tenant")
}

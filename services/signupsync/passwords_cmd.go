package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/services/passwords"
)

// passwordsCmd is `signupsync passwords`: it publishes the database users
// of an Auth0 password-hash export, joined to their Auth0 users, for the
// importer to import with their bcrypt hash. It connects as the reconcile
// user (see deploy/nats/permissions.conf), also for a dry run, which reads
// the ledger but publishes nothing and writes no checkpoint.
type passwordsCmd struct {
	File       string `name:"file" envvar:"SIGNUPSYNC_PASSWORDS_FILE" cfg:"passwords.File" help:"Auth0 password-hash export (NDJSON from Auth0 support), gzipped or not."`
	Users      string `name:"users" envvar:"SIGNUPSYNC_PASSWORDS_USERS" cfg:"passwords.UsersFile" help:"Auth0 users export to join the lines to (else the ledger joins them)."`
	JoinAuth0  bool   `name:"join-auth0" envvar:"SIGNUPSYNC_PASSWORDS_JOIN_AUTH0" cfg:"passwords.JoinAuth0" help:"Publish lines neither --users nor the ledger knows, for the importer to read from the Management API (importers need --auth0-domain)."`
	Rate       int    `name:"rate" envvar:"SIGNUPSYNC_PASSWORDS_RATE" default:"0" cfg:"passwords.Rate" help:"Users published per second, 0 = unlimited."`
	batchFlags `embed:""`
}

func (c *passwordsCmd) Run(ctx context.Context, e env) (err error) {
	cfg := passwords.DefaultConfig()
	cfg.File, cfg.UsersFile, cfg.Tenant, cfg.DryRun, cfg.Rate, cfg.CheckpointEvery, cfg.Restart = c.File, c.Users, c.Tenant, c.DryRun, float64(c.Rate), c.CheckpointEvery, c.Restart
	cfg.JoinAuth0 = c.JoinAuth0
	if err := cfg.Validate(); err != nil {
		return e.usage(err, "passwords")
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	conn, js, state, err := c.publisher(ctx, "signupsync-passwords", cfg.DryRun, log)
	if conn != nil {
		defer func() { err = errors.Join(err, c.drain(ctx, conn)) }()
	}
	if err != nil {
		return err
	}
	deps := passwords.Deps{Logger: log.With("role", "passwords"), Progress: e.stderr}
	if !cfg.DryRun {
		deps.Publisher, deps.State = js, state
	}
	if deps.Ledger, err = js.KeyValue(ctx, events.BucketLedger); err != nil {
		return fmt.Errorf("ledger bucket: %w", err)
	}
	counts, err := passwords.Run(ctx, cfg, deps)
	c.printCounts(e.stdout, counts, "passwords", counts.Summary(),
		[2]any{"malformed lines", counts.MalformedLines}, [2]any{"unjoined lines", counts.UnjoinedLines})
	if errors.Is(err, passwords.ErrAlreadyComplete) {
		fmt.Fprintln(e.stdout, e.fields.explain(err, "passwords"))
		return nil
	}
	return err
}

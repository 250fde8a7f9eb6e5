package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/services/passwords"
)

// runPasswords publishes the database users of an Auth0 password-hash
// export, joined to their Auth0 users, for the importer to import with
// their bcrypt hash. It connects as the reconcile user (see
// deploy/nats/permissions.conf), also for a dry run, which reads the
// ledger but publishes nothing and writes no checkpoint.
func runPasswords(ctx context.Context, args []string, e env) error {
	f := newFlags("passwords", e.getenv, e.stderr)
	com := addCommon(f)
	d := passwords.DefaultConfig()
	file := f.String("file", "SIGNUPSYNC_PASSWORDS_FILE", "", "Auth0 password-hash export (NDJSON from Auth0 support), gzipped or not")
	users := f.String("users", "SIGNUPSYNC_PASSWORDS_USERS", "", "Auth0 users export to join the lines to (else the ledger joins them)")
	tenant := f.String("tenant", "SIGNUPSYNC_AUTH0_TENANT", d.Tenant, "Auth0 tenant name for lines that do not carry one")
	dry := f.Bool("dry-run", "", false, "validate and join, count, publish nothing")
	rateFlag := f.Int("rate", "SIGNUPSYNC_PASSWORDS_RATE", 0, "users published per second, 0 = unlimited")
	every := f.Int("checkpoint-every", "", d.CheckpointEvery, "lines between checkpoints")
	restart := f.Bool("restart", "", false, "ignore the checkpoint and start from the first line")
	joinAuth0 := f.Bool("join-auth0", "SIGNUPSYNC_PASSWORDS_JOIN_AUTH0", false, "publish lines neither --users nor the ledger knows, for the importer to read from the Management API (importers need --auth0-domain)")
	asJSON := f.Bool("json", "", false, "print the final counts as JSON")
	if err := f.parse(args); err != nil {
		return usageError{err}
	}
	cfg := d
	cfg.File, cfg.UsersFile, cfg.Tenant, cfg.DryRun, cfg.Rate, cfg.CheckpointEvery, cfg.Restart = *file, *users, *tenant, *dry, float64(*rateFlag), *every, *restart
	cfg.JoinAuth0 = *joinAuth0
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	log, err := com.logger(e)
	if err != nil {
		return err
	}
	deps := passwords.Deps{Logger: log.With("role", "passwords"), Progress: e.stderr}
	nc, _, err := connectNATS(*com.natsURL, *com.natsCreds, "signupsync-passwords", log)
	if err != nil {
		return err
	}
	defer func() { _ = drainNATS(nc, *com.drainPeriod) }()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return err
	}
	if !cfg.DryRun {
		if err := ensureTopology(ctx, js, com.topology(), log); err != nil {
			return err
		}
		state, err := js.KeyValue(ctx, events.BucketState)
		if err != nil {
			return fmt.Errorf("state bucket: %w", err)
		}
		deps.Publisher, deps.State = js, state
	}
	ledger, err := js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		return fmt.Errorf("ledger bucket: %w", err)
	}
	deps.Ledger = ledger
	counts, err := passwords.Run(ctx, cfg, deps)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(counts)
	} else {
		mode := "passwords"
		if cfg.DryRun {
			mode = "dry run"
		}
		fmt.Fprintf(e.stdout, "%s: %s\n", mode, counts.Summary())
		if len(counts.MalformedLines) > 0 {
			fmt.Fprintf(e.stdout, "malformed lines: %v\n", counts.MalformedLines)
		}
		if len(counts.UnjoinedLines) > 0 {
			fmt.Fprintf(e.stdout, "unjoined lines: %v\n", counts.UnjoinedLines)
		}
	}
	if errors.Is(err, passwords.ErrAlreadyComplete) {
		fmt.Fprintln(e.stdout, err)
		return nil
	}
	return err
}

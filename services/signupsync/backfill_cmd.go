package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/services/backfill"
)

// backfillFreshNote tells the operator that the export's data is not what
// gets imported (importer.Config.FreshAfter and its rule for backfill).
const backfillFreshNote = "signups from this file are re-read from Auth0 by the importer before import; users deleted since are skipped"

// runBackfill publishes every user of an Auth0 export file as a signup.
func runBackfill(ctx context.Context, args []string, e env) error {
	f := newFlags("backfill", e.getenv, e.stderr)
	com := addCommon(f)
	d := backfill.DefaultConfig()
	file := f.String("file", "SIGNUPSYNC_BACKFILL_FILE", "", "Auth0 users export: NDJSON, gzipped or not")
	tenant := f.String("tenant", "SIGNUPSYNC_AUTH0_TENANT", d.Tenant, "Auth0 tenant name recorded in the events")
	dry := f.Bool("dry-run", "", false, "count what would happen (eligible, skipped by reason, malformed) without publishing")
	rateFlag := f.Int("rate", "SIGNUPSYNC_BACKFILL_RATE", 0, "signups published per second, 0 = unlimited")
	every := f.Int("checkpoint-every", "", d.CheckpointEvery, "lines between checkpoints")
	restart := f.Bool("restart", "", false, "ignore the checkpoint and start from the first line")
	asJSON := f.Bool("json", "", false, "print the final counts as JSON")
	if err := f.parse(args); err != nil {
		return usageError{err}
	}
	cfg := d
	cfg.File, cfg.Tenant, cfg.DryRun, cfg.Rate, cfg.CheckpointEvery, cfg.Restart = *file, *tenant, *dry, float64(*rateFlag), *every, *restart
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	log, err := com.logger(e)
	if err != nil {
		return err
	}
	deps := backfill.Deps{Logger: log.With("role", "backfill"), Progress: e.stderr, Terminal: isTerminal(e.stderr)}
	if !cfg.DryRun {
		nc, _, err := connectNATS(*com.natsURL, *com.natsCreds, "signupsync-backfill", log)
		if err != nil {
			return err
		}
		defer func() { _ = drainNATS(nc, *com.drainPeriod) }()
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
		if err != nil {
			return err
		}
		if err := ensureTopology(ctx, js, com.topology(), log); err != nil {
			return err
		}
		state, err := js.KeyValue(ctx, events.BucketState)
		if err != nil {
			return fmt.Errorf("state bucket: %w", err)
		}
		deps.Publisher, deps.State = js, state
	}
	counts, err := backfill.Run(ctx, cfg, deps)
	// The note goes where it does not break --json's output.
	note := e.stdout
	if *asJSON {
		note = e.stderr
	}
	fmt.Fprintln(note, backfillFreshNote)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(counts)
	} else {
		mode := "backfill"
		if cfg.DryRun {
			mode = "dry run"
		}
		fmt.Fprintf(e.stdout, "%s: %s\n", mode, counts.Summary())
		if len(counts.MalformedLines) > 0 {
			fmt.Fprintf(e.stdout, "malformed lines: %v\n", counts.MalformedLines)
		}
	}
	if errors.Is(err, backfill.ErrAlreadyComplete) {
		fmt.Fprintln(e.stdout, err)
		return nil
	}
	return err
}

// isTerminal reports whether w is a character device (a progress bar is
// drawn only there).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

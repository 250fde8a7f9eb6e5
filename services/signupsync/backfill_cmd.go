package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/signupsync/signupsync/services/backfill"
)

// backfillFreshNote tells the operator that the export's data is not what
// gets imported (importer.Config.FreshAfter and its rule for backfill).
const backfillFreshNote = "signups from this file are re-read from Auth0 by the importer before import; users deleted since are skipped"

// backfillCmd is `signupsync backfill`: it publishes every user of an Auth0
// export file as a signup, resumably. A dry run needs no broker.
type backfillCmd struct {
	File       string `name:"file" envvar:"SIGNUPSYNC_BACKFILL_FILE" cfg:"backfill.File" help:"Auth0 users export: NDJSON, gzipped or not."`
	Rate       int    `name:"rate" envvar:"SIGNUPSYNC_BACKFILL_RATE" default:"0" cfg:"backfill.Rate" help:"Signups published per second, 0 = unlimited."`
	batchFlags `embed:""`
}

func (c *backfillCmd) Run(ctx context.Context, e env) (err error) {
	cfg := backfill.DefaultConfig()
	cfg.File, cfg.Tenant, cfg.DryRun, cfg.Rate, cfg.CheckpointEvery, cfg.Restart = c.File, c.Tenant, c.DryRun, float64(c.Rate), c.CheckpointEvery, c.Restart
	if err := cfg.Validate(); err != nil {
		return e.usage(err, "backfill")
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	deps := backfill.Deps{Logger: log.With("role", "backfill"), Progress: e.stderr, Terminal: isTerminal(e.stderr)}
	if !cfg.DryRun {
		conn, js, state, err := c.publisher(ctx, "signupsync-backfill", false, log)
		if conn != nil {
			defer func() { err = errors.Join(err, c.drain(ctx, conn)) }()
		}
		if err != nil {
			return err
		}
		deps.Publisher, deps.State = js, state
	}
	counts, err := backfill.Run(ctx, cfg, deps)
	// The note goes where it does not break --format json.
	note := e.stdout
	if c.json() {
		note = e.stderr
	}
	fmt.Fprintln(note, backfillFreshNote)
	c.printCounts(e.stdout, counts, "backfill", counts.Summary(), [2]any{"malformed lines", counts.MalformedLines})
	if errors.Is(err, backfill.ErrAlreadyComplete) {
		fmt.Fprintln(e.stdout, e.fields.explain(err, "backfill"))
		return nil
	}
	return err
}

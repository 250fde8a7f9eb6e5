package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/alecthomas/kong"

	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/services/reconciler"
)

// exportCmd is `signupsync export`: it creates an Auth0 users-export job
// with the fields the importer needs, waits for it, downloads the file at
// once and writes it to --out, gunzipped unless --gzip, and prints one line
// saying what it wrote.
type exportCmd struct {
	Out         string        `name:"out" envvar:"SIGNUPSYNC_EXPORT_OUT" cfg:"export.Out" help:"File to write: NDJSON, one user per line (required)."`
	Gzip        bool          `name:"gzip" envvar:"SIGNUPSYNC_EXPORT_GZIP" help:"Keep the file gzipped as Auth0 serves it."`
	Force       bool          `name:"force" cfg:"export.Force" help:"Replace --out when it exists."`
	Rate        int           `name:"rate" aliases:"rps" envvar:"SIGNUPSYNC_EXPORT_RPS" default:"${export_rate}" cfg:"export.RPS" help:"Management API requests per second, 0 = unlimited."`
	PollMax     time.Duration `name:"poll-max" envvar:"SIGNUPSYNC_EXPORT_POLL_MAX" default:"${export_poll_max}" cfg:"export.PollMax" help:"Longest pause between reads of the job's status (the first is 1s, then doubling)."`
	Timeout     time.Duration `name:"timeout" envvar:"SIGNUPSYNC_EXPORT_TIMEOUT" default:"${export_timeout}" cfg:"export.Timeout" help:"Give up when the export has not been written after this long (0 = never)."`
	outputFlags `embed:""`
	auth0Flags  `embed:"" group:"auth0"`
	logFlags    `embed:"" group:"process"`
}

func exportVars() kong.Vars {
	d := reconciler.DefaultExportConfig()
	return kong.Vars{"export_rate": strconv.Itoa(int(d.RPS)), "export_poll_max": d.PollMax.String(), "export_timeout": d.Timeout.String()}
}

func (c *exportCmd) Run(ctx context.Context, e env) error {
	cfg := reconciler.DefaultExportConfig()
	cfg.Out, cfg.Gzip, cfg.Force, cfg.RPS, cfg.PollMax, cfg.Timeout = c.Out, c.Gzip, c.Force, float64(c.Rate), c.PollMax, c.Timeout
	a0, aerr := c.required()
	if err := errors.Join(e.fields.explain(cfg.Validate(), "export"), e.fields.explain(aerr, "auth0")); err != nil {
		return usageError{err}
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	api, err := auth0api.New(ctx, a0)
	if err != nil {
		return err
	}
	res, err := reconciler.Export(ctx, cfg, reconciler.ExportDeps{Auth0: api, Logger: log})
	if err != nil {
		return e.fields.explain(err, "export")
	}
	if c.json() {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintln(e.stdout, res)
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/telemetry"
	"github.com/signupsync/signupsync/services/reconciler"
)

// runExport creates an Auth0 users-export job with the fields the importer
// needs, waits for it, downloads the file at once and writes it to --out,
// gunzipped unless --gzip. It prints one line saying what it wrote.
func runExport(ctx context.Context, args []string, e env) error {
	f := newFlags("export", e.getenv, e.stderr)
	d := reconciler.DefaultExportConfig()
	out := f.String("out", "SIGNUPSYNC_EXPORT_OUT", "", "file to write: NDJSON, one user per line (required)")
	gz := f.Bool("gzip", "SIGNUPSYNC_EXPORT_GZIP", false, "keep the file gzipped as Auth0 serves it")
	force := f.Bool("force", "", false, "replace --out when it exists")
	rps := f.Int("rps", "SIGNUPSYNC_EXPORT_RPS", int(d.RPS), "Management API requests per second, 0 = unlimited")
	pollMax := f.Duration("poll-max", "SIGNUPSYNC_EXPORT_POLL_MAX", d.PollMax, "longest pause between reads of the job's status (the first is 1s, then doubling)")
	timeout := f.Duration("timeout", "SIGNUPSYNC_EXPORT_TIMEOUT", d.Timeout, "give up when the export has not been written after this long (0 = never)")
	logLevel := f.String("log-level", "SIGNUPSYNC_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	asJSON := f.Bool("json", "", false, "print the result as JSON")
	buildAuth0 := auth0Flags(f)
	if err := f.parse(args); err != nil {
		return usageError{err}
	}
	if f.fs.NArg() > 0 {
		return usageError{fmt.Errorf("export takes no arguments, got %q (use --out FILE)", f.fs.Args())}
	}
	cfg := d
	cfg.Out, cfg.Gzip, cfg.Force, cfg.RPS, cfg.PollMax, cfg.Timeout = *out, *gz, *force, float64(*rps), *pollMax, *timeout
	a0, aerr := buildAuth0()
	lvl, lerr := telemetry.ParseLevel(*logLevel)
	if lerr != nil {
		lerr = fmt.Errorf("--log-level (SIGNUPSYNC_LOG_LEVEL): %w", lerr)
	}
	if err := errors.Join(cfg.Validate(), aerr, lerr); err != nil {
		return usageError{err}
	}
	log := telemetry.NewLogger(e.stderr, lvl)
	api, err := auth0api.New(ctx, a0)
	if err != nil {
		return err
	}
	res, err := reconciler.Export(ctx, cfg, reconciler.ExportDeps{Auth0: api, Logger: log})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintln(e.stdout, res)
	return nil
}

package main

import (
	"context"
	"io"

	"github.com/signupsync/signupsync/internal/clidoc"
)

// docsCmd is hidden: documentation generated from the command structs.
type docsCmd struct {
	Configuration docsConfigurationCmd `cmd:"" group:"subcommands" help:"Write the configuration reference, docs/configuration.md, to stdout."`
}

type docsConfigurationCmd struct{}

func (docsConfigurationCmd) Run(_ context.Context, e env) error {
	ref, err := configurationReference()
	if err != nil {
		return err
	}
	_, err = io.WriteString(e.stdout, ref)
	return err
}

// regenerate is how docs/configuration.md is made.
const regenerate = "go run ./services/signupsync docs configuration > docs/configuration.md"

// configurationReference renders every command's flags, grouped as in
// help, with their variables and defaults (internal/clidoc). It reads no
// environment, so no value set there can reach it.
func configurationReference() (string, error) {
	p, err := newParser(func(string) string { return "" }, io.Discard, io.Discard)
	if err != nil {
		return "", err
	}
	return clidoc.Markdown(p.k.Model.Node, clidoc.Options{
		Title: "Configuration reference",
		Preamble: "<!-- Generated from the command structs of services/signupsync; do not edit. Regenerate: " + regenerate + " (make docs). -->\n\n" +
			"Every flag that names a variable can be set either way; the flag wins, and an empty variable counts as unset. " +
			"Durations are Go durations (`90s`, `10m`, `24h`), booleans `true`/`false`/`1`/`0`, lists comma-separated. " +
			"Credentials have no default, and help says of their variables only whether they are set.\n\n" +
			"Not flags: `FIREBASE_AUTH_EMULATOR_HOST` points the Firebase Admin SDK at the Auth emulator (no credentials needed, unlimited Firebase rate by default); " +
			"the standard `OTEL_*` variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_PROTOCOL`, …) configure tracing.",
		Groups:   helpGroups,
		EnvNames: envNames,
		Renamed:  []string{"`--json` of status, export, backfill, passwords, reconcile and dlq → `--format json`"},
	}), nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
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
// help, with their variables and defaults. It reads no environment, so no
// value set there can reach it.
func configurationReference() (string, error) {
	p, err := newParser(func(string) string { return "" }, io.Discard, io.Discard)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Configuration reference\n\n<!-- Generated from the command structs of services/signupsync; do not edit. Regenerate: %s (make docs). -->\n\n", regenerate)
	b.WriteString("Every flag that names a variable can be set either way; the flag wins, and an empty variable counts as unset. " +
		"Durations are Go durations (`90s`, `10m`, `24h`), booleans `true`/`false`/`1`/`0`, lists comma-separated. " +
		"Credentials have no default, and help says of their variables only whether they are set.\n\n" +
		"Not flags: `FIREBASE_AUTH_EMULATOR_HOST` points the Firebase Admin SDK at the Auth emulator (no credentials needed, unlimited Firebase rate by default); " +
		"the standard `OTEL_*` variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_PROTOCOL`, …) configure tracing.\n\n")
	b.WriteString("| Command | |\n|---|---|\n")
	nodes := slices.DeleteFunc(commandNodes(p.k.Model.Node), hidden)
	for _, n := range nodes {
		fmt.Fprintf(&b, "| [`%s`](#%s) | %s |\n", n.Path(), anchor(n), cell(n.Help))
	}
	var renamed []string
	for _, n := range nodes {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n", n.Path(), n.Help)
		if n.Detail != "" {
			fmt.Fprintf(&b, "\n%s\n", n.Detail)
		}
		if len(n.Children) > 0 {
			b.WriteString("\nSubcommands:")
			for _, c := range n.Children {
				fmt.Fprintf(&b, " [`%s`](#%s)", c.Name, anchor(c))
				if n.DefaultCmd == c {
					b.WriteString(" (the default)")
				}
			}
			b.WriteString(".\n")
			continue
		}
		for _, a := range n.Positional {
			fmt.Fprintf(&b, "\nArgument `<%s>`: %s\n", a.Name, cell(a.Help))
		}
		for _, g := range flagGroups(n) {
			fmt.Fprintf(&b, "\n### %s\n\n", strings.TrimSuffix(g.title, ":"))
			if g.description != "" {
				fmt.Fprintf(&b, "%s\n\n", g.description)
			}
			b.WriteString("| Flag | Variable | Default | |\n|---|---|---|---|\n")
			for _, f := range g.flags {
				name := "`--" + f.Name + "`"
				if f.Tag.Negatable != "" {
					name = "`--[no-]" + f.Name + "`"
				}
				for _, a := range f.Aliases {
					name += " (was `--" + a + "`)"
					renamed = append(renamed, fmt.Sprintf("`%s --%s` → `--%s`", n.Path(), a, f.Name))
				}
				var envs []string
				for _, v := range envNames(f) {
					envs = append(envs, "`"+v+"`")
				}
				def := ""
				if f.HasDefault && f.Default != "" {
					def = "`" + f.Default + "`"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, strings.Join(envs, ", "), def, cell(f.Help))
			}
		}
	}
	slices.Sort(renamed)
	b.WriteString("\n## Renamed flags\n\nThe old names still work, hidden from help; the variables did not change.\n\n")
	for _, r := range slices.Compact(renamed) {
		fmt.Fprintf(&b, "- %s\n", r)
	}
	b.WriteString("- `--json` of status, export, backfill, passwords, reconcile and dlq → `--format json`\n")
	return b.String(), nil
}

type flagGroup struct {
	title, description string
	flags              []*kong.Flag
}

// flagGroups are the visible flags of n and its parents (not --help), the
// ungrouped first, then in the order of helpGroups.
func flagGroups(n *kong.Node) []flagGroup {
	groups := []flagGroup{{title: "Flags"}}
	for _, g := range helpGroups {
		groups = append(groups, flagGroup{title: g.Title, description: g.Description})
	}
	for _, level := range n.AllFlags(true) {
		for _, f := range level {
			if f.Name == "help" {
				continue
			}
			i := 0
			if f.Group != nil {
				i = 1 + slices.IndexFunc(helpGroups, func(g kong.Group) bool { return g.Key == f.Group.Key })
			}
			groups[i].flags = append(groups[i].flags, f)
		}
	}
	return slices.DeleteFunc(groups, func(g flagGroup) bool { return len(g.flags) == 0 })
}

// hidden reports whether n or a parent is hidden from help.
func hidden(n *kong.Node) bool {
	for ; n != nil; n = n.Parent {
		if n.Hidden {
			return true
		}
	}
	return false
}

// anchor is the GitHub heading anchor of a command's section.
func anchor(n *kong.Node) string { return strings.ReplaceAll(n.Path(), " ", "-") }

// cell makes text fit a table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

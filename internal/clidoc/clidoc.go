// Package clidoc renders the reference of a kong command line as Markdown:
// a table of the visible commands, then per command its arguments and its
// flags (its own and its parents'), grouped as help groups them, each with
// its variables and its default. Defaults are taken from the model as
// declared, so a value set in the environment never reaches the page.
package clidoc

import (
	"fmt"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// Options shape the reference.
type Options struct {
	// Title is the page's heading; Preamble the text under it (Markdown).
	Title, Preamble string
	// Groups are the help groups, in the order their flags are listed;
	// flags of no group come first, under "Flags".
	Groups []kong.Group
	// EnvNames returns the variables that set a flag.
	EnvNames func(*kong.Flag) []string
	// Renamed are extra lines for the "Renamed flags" section, after the
	// hidden aliases, which are listed there by themselves.
	Renamed []string
}

// Markdown returns the reference of app, the root of a kong model.
func Markdown(app *kong.Node, opts Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n%s\n\n", opts.Title, strings.TrimSpace(opts.Preamble))
	b.WriteString("| Command | |\n|---|---|\n")
	nodes := slices.DeleteFunc(Commands(app), hidden)
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
		for _, g := range flagGroups(n, opts.Groups) {
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
				for _, v := range opts.EnvNames(f) {
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
	if len(renamed)+len(opts.Renamed) > 0 {
		b.WriteString("\n## Renamed flags\n\nThe old names still work, hidden from help; the variables did not change.\n\n")
		for _, r := range append(slices.Compact(renamed), opts.Renamed...) {
			fmt.Fprintf(&b, "- %s\n", r)
		}
	}
	return b.String()
}

// Commands are every command under n, depth first, hidden ones included.
func Commands(n *kong.Node) []*kong.Node {
	var out []*kong.Node
	for _, c := range n.Children {
		if c.Type == kong.CommandNode {
			out = append(out, c)
			out = append(out, Commands(c)...)
		}
	}
	return out
}

type flagGroup struct {
	title, description string
	flags              []*kong.Flag
}

// flagGroups are the visible flags of n and its parents (not --help), the
// ungrouped first, then in the order of helpGroups.
func flagGroups(n *kong.Node, helpGroups []kong.Group) []flagGroup {
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

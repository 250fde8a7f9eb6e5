package clidoc_test

import (
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/signupsync/signupsync/internal/clidoc"
)

type serveCmd struct {
	Addr    string `name:"addr" envvar:"APP_ADDR" default:"127.0.0.1:8080" help:"Listen | address."`
	Token   string `name:"token" envvar:"APP_TOKEN" group:"secrets" help:"Bearer token."`
	Verbose bool   `name:"verbose" negatable:"" default:"true" help:"Log more."`
	Rate    int    `name:"rate" aliases:"rps" default:"5" help:"Requests per second."`
}

type app struct {
	Serve serveCmd `cmd:"" help:"Serve the thing."`
	Admin struct {
		Purge struct {
			Yes bool `name:"yes" help:"Really."`
		} `cmd:"" help:"Purge it."`
	} `cmd:"" help:"Administer."`
	Secret struct{} `cmd:"" hidden:"" help:"Not listed."`
}

func TestMarkdownListsVisibleCommandsFlagsGroupsAndRenames(t *testing.T) {
	k, err := kong.New(&app{}, kong.ExplicitGroups([]kong.Group{{Key: "secrets", Title: "Secrets:", Description: "Never shown."}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("APP_ADDR", "10.0.0.1:1") // the environment never reaches the page
	out := clidoc.Markdown(k.Model.Node, clidoc.Options{
		Title: "Reference", Preamble: "Intro.",
		Groups: []kong.Group{{Key: "secrets", Title: "Secrets:", Description: "Never shown."}},
		EnvNames: func(f *kong.Flag) []string {
			if v := f.Tag.Get("envvar"); v != "" {
				return []string{v}
			}
			return nil
		},
		Renamed: []string{"extra line"},
	})
	for _, want := range []string{
		"# Reference\n\nIntro.\n",
		"| [`serve`](#serve) | Serve the thing. |",
		"| [`admin purge`](#admin-purge) | Purge it. |",
		"\n## admin\n\nAdminister.\n\nSubcommands: [`purge`](#admin-purge).\n",
		"| `--addr` | `APP_ADDR` | `127.0.0.1:8080` | Listen \\| address. |",
		"| `--[no-]verbose` |  | `true` | Log more. |",
		"| `--rate` (was `--rps`) |  | `5` | Requests per second. |",
		"### Secrets\n\nNever shown.\n\n| Flag | Variable | Default | |\n|---|---|---|---|\n| `--token` | `APP_TOKEN` |  | Bearer token. |",
		"- `serve --rps` → `--rate`\n- extra line\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("reference lacks %q:\n%s", want, out)
		}
	}
	for _, never := range []string{"secret", "10.0.0.1", "--help"} {
		if strings.Contains(out, never) {
			t.Errorf("reference shows %q:\n%s", never, out)
		}
	}
}

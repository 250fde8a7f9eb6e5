package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/internal/clidoc"
	"github.com/signupsync/signupsync/internal/testenv"
)

// secretMark is in every credential below: it must appear in no output.
const secretMark = "s3cr3t"

// secretEnv gives every variable that holds a credential a distinctive
// value.
var secretEnv = map[string]string{
	"SIGNUPSYNC_ACTION_SECRETS":         "whsec_s3cr3t-SIGNUPSYNC_ACTION_SECRETS",
	"SIGNUPSYNC_EVENT_STREAM_TOKEN":     "s3cr3t-SIGNUPSYNC_EVENT_STREAM_TOKEN",
	"SIGNUPSYNC_EVENT_STREAM_BASIC":     "auth0:s3cr3t-SIGNUPSYNC_EVENT_STREAM_BASIC",
	"SIGNUPSYNC_LOG_STREAM_TOKEN":       "Bearer s3cr3t-SIGNUPSYNC_LOG_STREAM_TOKEN",
	"SIGNUPSYNC_AUTH0_CLIENT_SECRET":    "s3cr3t-SIGNUPSYNC_AUTH0_CLIENT_SECRET",
	"SIGNUPSYNC_AUTH0_TOKEN":            "s3cr3t-SIGNUPSYNC_AUTH0_TOKEN",
	"SIGNUPSYNC_PASSWORD_CLIENT_SECRET": "s3cr3t-SIGNUPSYNC_PASSWORD_CLIENT_SECRET",
}

// secretURLEnv are URL variables whose userinfo is a credential (a password,
// or a token in the user part), with what help must show instead.
var secretURLEnv = map[string]struct{ value, shown string }{
	"SIGNUPSYNC_NATS_URL": {
		"nats://svc:s3cr3t-SIGNUPSYNC_NATS_URL@nats-a.example:4222,nats://s3cr3t-SIGNUPSYNC_NATS_URL-token@nats-b.example:4222",
		"nats://xxxxx@nats-a.example:4222,nats://xxxxx@nats-b.example:4222",
	},
	"SIGNUPSYNC_SAMPLE_URL": {"https://ops:s3cr3t-SIGNUPSYNC_SAMPLE_URL@ingest.example", "https://xxxxx@ingest.example"},
}

// TestHelpAndUsageErrorsShowSecretsAsSetNeverTheirValues runs every command
// of the command line (the hidden ones and those with subcommands too) with
// -h and with an unknown flag, with every credential variable set: no value
// may reach stdout, stderr or the error main prints, and the help still
// says that each credential is set (URLs: shown with xxxxx for the
// userinfo).
func TestHelpAndUsageErrorsShowSecretsAsSetNeverTheirValues(t *testing.T) {
	vars := map[string]string{}
	for k, v := range secretEnv {
		vars[k] = v
	}
	for k, u := range secretURLEnv {
		vars[k] = u.value
	}
	p, err := newParser(envFrom(nil), &testenv.Buffer{}, &testenv.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var prefixes [][]string
	for _, n := range clidoc.Commands(p.k.Model.Node) {
		prefixes = append(prefixes, strings.Fields(n.Path()))
		// Every credential flag is covered below and has no default.
		for _, f := range n.Flags {
			if typ := f.Target.Type(); typ != secretType && typ != secretListType {
				continue
			}
			if f.HasDefault {
				t.Errorf("%s --%s: a credential with a default", n.Path(), f.Name)
			}
			for _, v := range envNames(f) {
				if _, ok := secretEnv[v]; !ok {
					t.Errorf("%s --%s: its variable %s is not in secretEnv", n.Path(), f.Name, v)
				}
			}
		}
	}
	if len(prefixes) < 20 {
		t.Fatalf("%d commands walked, want every command and subcommand", len(prefixes))
	}
	shown := map[string]bool{} // variables whose help some command printed
	for _, prefix := range prefixes {
		for _, last := range []string{"-h", "--no-such-flag"} {
			args := append(slices.Clone(prefix), last)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				out := &testenv.Buffer{}
				err := run(context.Background(), args, envFrom(vars), out, out)
				text := out.String()
				if err != nil {
					text += "\nsignupsync: " + err.Error() // what main prints
				}
				flat := strings.Join(strings.Fields(text), " ") // help wraps lines
				for _, line := range strings.Split(text, "\n") {
					if strings.Contains(line, secretMark) {
						t.Errorf("a credential is printed: %q", line)
					}
				}
				for v := range secretEnv {
					if !strings.Contains(flat, "(env "+v) {
						continue
					}
					shown[v] = true
					if want := "(env " + v + "; set, value hidden)"; !strings.Contains(flat, want) {
						t.Errorf("help mentions %s but not %q:\n%s", v, want, text)
					}
				}
				for v, u := range secretURLEnv {
					if !strings.Contains(flat, "(env "+v) {
						continue
					}
					shown[v] = true
					if !strings.Contains(flat, `set: "`+u.shown+`"`) {
						t.Errorf("help mentions %s without its redacted value %q:\n%s", v, u.shown, text)
					}
				}
			})
		}
	}
	for v := range vars {
		if !shown[v] {
			t.Errorf("no command's help mentions %s: the test no longer covers it", v)
		}
	}
}

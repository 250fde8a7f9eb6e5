package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/internal/testenv"
)

// secretMark is in every credential below: it must appear in no output.
const secretMark = "s3cr3t"

// secretEnv gives every variable that holds a credential a distinctive
// value.
var secretEnv = map[string]string{
	"SIGNUPSYNC_ACTION_SECRETS":      "whsec_s3cr3t-SIGNUPSYNC_ACTION_SECRETS",
	"SIGNUPSYNC_EVENT_STREAM_TOKEN":  "s3cr3t-SIGNUPSYNC_EVENT_STREAM_TOKEN",
	"SIGNUPSYNC_EVENT_STREAM_BASIC":  "auth0:s3cr3t-SIGNUPSYNC_EVENT_STREAM_BASIC",
	"SIGNUPSYNC_LOG_STREAM_TOKEN":    "Bearer s3cr3t-SIGNUPSYNC_LOG_STREAM_TOKEN",
	"SIGNUPSYNC_AUTH0_CLIENT_SECRET": "s3cr3t-SIGNUPSYNC_AUTH0_CLIENT_SECRET",
	"SIGNUPSYNC_AUTH0_TOKEN":         "s3cr3t-SIGNUPSYNC_AUTH0_TOKEN",
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
// of the command table (and every action of those that take one) with -h
// and with an unknown flag, with every credential variable set: no value
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
	shown := map[string]bool{} // variables whose help some command printed
	for _, c := range commands {
		prefixes := [][]string{{c.name}}
		for _, a := range c.actions {
			prefixes = append(prefixes, []string{c.name, a})
		}
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
					for _, line := range strings.Split(text, "\n") {
						if strings.Contains(line, secretMark) {
							t.Errorf("a credential is printed: %q", line)
						}
					}
					for v := range secretEnv {
						if !strings.Contains(text, "(env "+v) {
							continue
						}
						shown[v] = true
						if want := "(env " + v + "; set, value hidden)"; !strings.Contains(text, want) {
							t.Errorf("help mentions %s but not %q:\n%s", v, want, text)
						}
					}
					for v, u := range secretURLEnv {
						if !strings.Contains(text, "(env "+v) {
							continue
						}
						shown[v] = true
						if !strings.Contains(text, `(default "`+u.shown+`")`) {
							t.Errorf("help mentions %s without its redacted default %q:\n%s", v, u.shown, text)
						}
					}
				})
			}
		}
	}
	for v := range vars {
		if !shown[v] {
			t.Errorf("no command's help mentions %s: the test no longer covers it", v)
		}
	}
}

// TestRedactURLsHidesEveryUserinfo: whatever sits between the scheme and
// the last '@' of each URL is replaced, even when the password holds a
// separator, and URLs without userinfo are kept.
func TestRedactURLsHidesEveryUserinfo(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"no userinfo", "nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"user and password", "nats://u:pw@h:4222", "nats://xxxxx@h:4222"},
		{"token as the user", "nats://tok@h:4222", "nats://xxxxx@h:4222"},
		{"password with @ and /", "nats://u:p@s/s?w@h:4222", "nats://xxxxx@h:4222"},
		{"no scheme", "u:pw@h:4222", "xxxxx@h:4222"},
		{"list, one with userinfo", "nats://a:4222, nats://u:pw@b:4222", "nats://a:4222, nats://xxxxx@b:4222"},
		{"comma in the password", "nats://u:p,w@a:4222,nats://b:4222", "nats://xxxxx@a:4222,nats://b:4222"},
		{"list without schemes", "u:p@a:4222,v:q@b:4222", "xxxxx@b:4222"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redactURLs(tt.in); got != tt.want {
				t.Fatalf("redactURLs(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

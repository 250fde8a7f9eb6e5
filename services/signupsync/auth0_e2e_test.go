package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/internal/auth0fake"
)

// tenantCLI runs `signupsync auth0 …` against the Auth0 fake.
type tenantCLI struct {
	t    *testing.T
	fake *auth0fake.Server
	env  map[string]string
}

func (c tenantCLI) run(args ...string) (stdout string, err error) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	err = runWith(c.t.Context(), append([]string{"auth0"}, args...), envFrom(c.env), &out, &errOut, c.fake.Client())
	return out.String() + errOut.String(), err
}

// readEnvFile reads the KEY=value lines install wrote.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}

// TestAuth0InstallThroughTheCommand drives `signupsync auth0` through run,
// against the Auth0 fake holding the operator's own Actions and streams:
// dry run, install, install again, an operator's binding change, a
// re-install without the secrets, status and uninstall.
func TestAuth0InstallThroughTheCommand(t *testing.T) {
	fake := auth0fake.New(t)
	fake.AddAction(auth0fake.ActionState{Name: "their-mfa", Code: "// mfa"})
	fake.AddAction(auth0fake.ActionState{Name: "their-claims", Code: "// claims"})
	fake.AddAction(auth0fake.ActionState{Name: "their-welcome", Trigger: "post-user-registration", Code: "// welcome"})
	fake.SetBindings("post-login", "their-mfa", "their-claims")
	fake.SetBindings("post-user-registration", "their-welcome")
	fake.CreateEventStream(auth0fake.EventStreamState{Name: "their-crm", EventTypes: []string{"user.created"}, Endpoint: "https://crm.example.com", AuthMethod: "bearer", Token: "crm"})
	fake.CreateLogStream(auth0fake.LogStreamState{Name: "their-siem", Sink: map[string]any{"httpEndpoint": "https://siem.example.com", "httpContentFormat": "JSONARRAY"}})

	secretsFile := filepath.Join(t.TempDir(), "ingest.env")
	cli := tenantCLI{t: t, fake: fake, env: map[string]string{
		"SIGNUPSYNC_AUTH0_DOMAIN": fake.Domain(),
		"SIGNUPSYNC_AUTH0_TOKEN":  fake.Token(),
		"SIGNUPSYNC_INGEST_URL":   "https://signupsync.example.com",
	}}

	// The dry run shows the plan and writes nothing.
	out, err := cli.run("install", "--dry-run", "--secrets-file", secretsFile)
	if err != nil {
		t.Fatalf("install --dry-run: %v\n%s", err, out)
	}
	for _, want := range []string{"+ create action signupsync-post-login", "+ create action signupsync-post-user-registration", "+ create event stream signupsync-events", "+ create log stream signupsync-logs"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if n := fake.WriteRequests(); n != 0 {
		t.Fatalf("the dry run wrote %d requests", n)
	}
	if _, err := os.Stat(secretsFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dry run wrote the secrets file: %v", err)
	}

	// Install: everything created, deployed, bound last; secrets in a 0600 file.
	out, err = cli.run("install", "--secrets-file", secretsFile)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	fi, err := os.Stat(secretsFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets file: %v, mode %v", err, fi.Mode().Perm())
	}
	secrets := readEnvFile(t, secretsFile)
	for _, k := range []string{"SIGNUPSYNC_ACTION_SECRETS", "SIGNUPSYNC_EVENT_STREAM_TOKEN", "SIGNUPSYNC_LOG_STREAM_TOKEN"} {
		if secrets[k] == "" {
			t.Fatalf("secrets file lacks %s: %v", k, secrets)
		}
		if strings.Contains(out, secrets[k]) {
			t.Fatalf("the command printed the value of %s", k)
		}
	}
	login, ok := fake.Action("signupsync-post-login")
	if !ok || login.DeployedVersion == 0 || login.DeployedSecrets["SIGNUPSYNC_SECRET"] != secrets["SIGNUPSYNC_ACTION_SECRETS"] {
		t.Fatalf("post-login action not deployed with the written secret: %+v", login)
	}
	if got := fake.Bindings("post-login"); !slices.Equal(got, []string{"their-mfa", "their-claims", "signupsync-post-login"}) {
		t.Fatalf("post-login bindings %v", got)
	}
	if got := fake.Bindings("post-user-registration"); !slices.Equal(got, []string{"their-welcome", "signupsync-post-user-registration"}) {
		t.Fatalf("post-user-registration bindings %v", got)
	}
	streams := fake.EventStreams()
	if len(streams) != 2 || streams[1].Name != "signupsync-events" || streams[1].Token != secrets["SIGNUPSYNC_EVENT_STREAM_TOKEN"] ||
		streams[1].Endpoint != "https://signupsync.example.com/v1/hooks/auth0-event-stream" {
		t.Fatalf("event streams %+v", streams)
	}

	// ingest's environment now holds the secrets: status matches and a
	// second install writes nothing.
	for k, v := range secrets {
		cli.env[k] = v
	}
	if out, err := cli.run("status"); err != nil {
		t.Fatalf("status after install: %v\n%s", err, out)
	}
	writes := fake.WriteRequests()
	if out, err := cli.run("install", "--secrets-file", secretsFile); err != nil {
		t.Fatalf("install again: %v\n%s", err, out)
	}
	if n := fake.WriteRequests() - writes; n != 0 {
		t.Fatalf("install again wrote %d requests", n)
	}

	// An operator reorders the flow and drops ours: status says so (exit
	// status 3), install puts ours back last and keeps theirs in order.
	fake.SetBindings("post-login", "their-claims", "their-mfa")
	out, err = cli.run("status")
	if exitCode(err) != 3 || !strings.Contains(out, "signupsync-post-login") {
		t.Fatalf("status after the binding change: exit %d, %v\n%s", exitCode(err), err, out)
	}
	if out, err := cli.run("install", "--secrets-file", secretsFile); err != nil {
		t.Fatalf("install after the binding change: %v\n%s", err, out)
	}
	if got := fake.Bindings("post-login"); !slices.Equal(got, []string{"their-claims", "their-mfa", "signupsync-post-login"}) {
		t.Fatalf("post-login bindings after restore %v", got)
	}

	// A re-install without the installed secrets would rotate them under
	// ingest: refused, naming the flags, nothing written.
	bare := tenantCLI{t: t, fake: fake, env: map[string]string{
		"SIGNUPSYNC_AUTH0_DOMAIN": fake.Domain(), "SIGNUPSYNC_AUTH0_TOKEN": fake.Token(), "SIGNUPSYNC_INGEST_URL": "https://signupsync.example.com",
	}}
	writes = fake.WriteRequests()
	out, err = bare.run("install", "--secrets-file", filepath.Join(t.TempDir(), "other.env"))
	if err == nil || !strings.Contains(err.Error(), "--action-secrets") || !strings.Contains(err.Error(), "--event-stream-token") {
		t.Fatalf("install without the secrets: %v\n%s", err, out)
	}
	if n := fake.WriteRequests() - writes; n != 0 {
		t.Fatalf("a refused install wrote %d requests", n)
	}

	// Uninstall: the dry run removes nothing; then exactly ours go.
	writes = fake.WriteRequests()
	if out, err := cli.run("uninstall", "--dry-run"); err != nil || !strings.Contains(out, "signupsync-post-login") {
		t.Fatalf("uninstall --dry-run: %v\n%s", err, out)
	}
	if n := fake.WriteRequests() - writes; n != 0 {
		t.Fatalf("the uninstall dry run wrote %d requests", n)
	}
	if out, err := cli.run("uninstall"); err != nil {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	for _, name := range []string{"signupsync-post-login", "signupsync-post-user-registration"} {
		if _, ok := fake.Action(name); ok {
			t.Errorf("%s still exists", name)
		}
	}
	for _, name := range []string{"their-mfa", "their-claims", "their-welcome"} {
		if _, ok := fake.Action(name); !ok {
			t.Errorf("uninstall removed the operator's %s", name)
		}
	}
	if got := fake.Bindings("post-login"); !slices.Equal(got, []string{"their-claims", "their-mfa"}) {
		t.Errorf("post-login bindings after uninstall %v", got)
	}
	if got := fake.Bindings("post-user-registration"); !slices.Equal(got, []string{"their-welcome"}) {
		t.Errorf("post-user-registration bindings after uninstall %v", got)
	}
	if es := fake.EventStreams(); len(es) != 1 || es[0].Name != "their-crm" {
		t.Errorf("event streams after uninstall %+v", es)
	}
	if ls := fake.LogStreams(); len(ls) != 1 || ls[0].Name != "their-siem" {
		t.Errorf("log streams after uninstall %+v", ls)
	}
	if out, err := cli.run("status"); exitCode(err) != 3 {
		t.Errorf("status after uninstall: exit %d, %v\n%s", exitCode(err), err, out)
	}
}

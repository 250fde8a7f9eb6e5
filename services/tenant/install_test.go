package tenant_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	auth0actions "github.com/signupsync/signupsync/deploy/auth0"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/services/tenant"
)

const ingestURL = "https://ingest.example.com"

// sleeps records the waits the installer asks for and returns at once.
type sleeps struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waits = append(s.waits, d)
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.waits)
}

func config(srv *auth0fake.Server, mutate ...func(*tenant.Config)) tenant.Config {
	cfg := tenant.DefaultConfig()
	cfg.Domain, cfg.Token, cfg.IngestURL = srv.Domain(), srv.Token(), ingestURL
	for _, m := range mutate {
		m(&cfg)
	}
	return cfg
}

func newInstaller(t *testing.T, srv *auth0fake.Server, mutate ...func(*tenant.Config)) (*tenant.Installer, *sleeps) {
	t.Helper()
	sl := &sleeps{}
	inst, err := tenant.New(t.Context(), config(srv, mutate...), tenant.Deps{HTTPClient: srv.Client(), Sleep: sl.sleep})
	if err != nil {
		t.Fatal(err)
	}
	return inst, sl
}

// withSecrets supplies the secrets of an earlier install, as the command
// does from ingest's environment.
func withSecrets(s tenant.Secrets) func(*tenant.Config) {
	return func(c *tenant.Config) {
		c.ActionSecret, c.EventStreamToken, c.LogStreamToken = s.ActionSecret, s.EventStreamToken, s.LogStreamToken
	}
}

func install(t *testing.T, inst *tenant.Installer) tenant.Result {
	t.Helper()
	var progress bytes.Buffer
	res, err := inst.Install(t.Context(), &progress)
	if err != nil {
		t.Fatalf("install: %v\nprogress:\n%s", err, progress.String())
	}
	return res
}

func render(t *testing.T, p tenant.Plan) string {
	t.Helper()
	var b bytes.Buffer
	if err := p.Render(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// seedOthers gives the tenant the operator's own configuration: two
// post-login Actions and one post-user-registration Action, bound, an
// event stream and a log stream.
func seedOthers(srv *auth0fake.Server) {
	srv.AddAction(auth0fake.ActionState{Name: "their-mfa", Code: "// mfa"})
	srv.AddAction(auth0fake.ActionState{Name: "their-claims", Code: "// claims"})
	srv.AddAction(auth0fake.ActionState{Name: "their-welcome", Trigger: "post-user-registration", Code: "// welcome"})
	srv.SetBindings("post-login", "their-mfa", "their-claims")
	srv.SetBindings("post-user-registration", "their-welcome")
	srv.CreateEventStream(auth0fake.EventStreamState{Name: "their-crm", EventTypes: []string{"user.created"}, Endpoint: "https://crm.example.com", AuthMethod: "bearer", Token: "crm"})
	srv.CreateLogStream(auth0fake.LogStreamState{Name: "their-siem", Sink: map[string]any{"httpEndpoint": "https://siem.example.com", "httpContentFormat": "JSONARRAY"}})
}

func TestInstallOnAnEmptyTenantCreatesDeploysBindsAndStreams(t *testing.T) {
	srv := auth0fake.New(t)
	inst, _ := newInstaller(t, srv, func(c *tenant.Config) { c.ActionBudget = 3 * time.Second })
	res := install(t, inst)
	sec := res.Secrets

	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec.ActionSecret, "whsec_"))
	if !strings.HasPrefix(sec.ActionSecret, "whsec_") || err != nil || len(key) != 24 {
		t.Errorf("action secret %q is not whsec_ and 24 base64 bytes", sec.ActionSecret)
	}
	for _, tok := range []string{sec.EventStreamToken, sec.LogStreamToken} {
		if b, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(b) != 32 {
			t.Errorf("token %q is not 32 bytes of base64url", tok)
		}
	}

	for _, want := range []struct{ name, trigger, version, source string }{
		{"signupsync-post-login", "post-login", "v3", auth0actions.PostLogin()},
		{"signupsync-post-user-registration", "post-user-registration", "v2", auth0actions.PostUserRegistration()},
	} {
		a, ok := srv.Action(want.name)
		if !ok {
			t.Fatalf("no action %s", want.name)
		}
		secrets := map[string]string{"SIGNUPSYNC_URL": ingestURL, "SIGNUPSYNC_SECRET": sec.ActionSecret, "SIGNUPSYNC_BUDGET_MS": "3000"}
		if a.Trigger != want.trigger || a.TriggerVersion != want.version || a.Runtime != "node22" ||
			!strings.HasPrefix(a.Code, strings.TrimRight(want.source, "\n")) || !maps.Equal(a.Secrets, secrets) {
			t.Errorf("action %s: trigger %s %s, runtime %s, secrets %v", want.name, a.Trigger, a.TriggerVersion, a.Runtime, slices.Sorted(maps.Keys(a.Secrets)))
		}
		if a.DeployedVersion != 1 || a.DeployedCode != a.Code || !maps.Equal(a.DeployedSecrets, secrets) || !a.AllChangesDeployed {
			t.Errorf("action %s: deployed version %d, all changes deployed %v", want.name, a.DeployedVersion, a.AllChangesDeployed)
		}
		if strings.Contains(a.Code, sec.ActionSecret) {
			t.Errorf("action %s: the code holds the secret", want.name)
		}
		if got := srv.Bindings(want.trigger); !slices.Equal(got, []string{want.name}) {
			t.Errorf("bindings of %s: %v", want.trigger, got)
		}
	}
	// The fake refuses a deploy before the build: none was refused.
	if n := srv.Requests()[auth0fake.RouteDeployAction]; n != 2 {
		t.Errorf("%d deploy requests, want 2 (one per action, none refused)", n)
	}

	es := srv.EventStreams()
	if len(es) != 1 || es[0].Name != "signupsync-events" || es[0].Status != "enabled" ||
		es[0].Endpoint != ingestURL+"/v1/hooks/auth0-event-stream" || es[0].AuthMethod != "bearer" || es[0].Token != sec.EventStreamToken ||
		!slices.Equal(slices.Sorted(slices.Values(es[0].EventTypes)), []string{"user.created", "user.deleted", "user.updated"}) {
		t.Errorf("event streams %+v", es)
	}
	ls := srv.LogStreams()
	if len(ls) != 1 || ls[0].Name != "signupsync-logs" || ls[0].Type != "http" || ls[0].Status != "active" ||
		ls[0].Sink["httpEndpoint"] != ingestURL+"/v1/hooks/auth0-log-stream" || ls[0].Sink["httpContentFormat"] != "JSONLINES" ||
		ls[0].Sink["httpContentType"] != "application/json" || ls[0].Sink["httpAuthorization"] != sec.LogStreamToken ||
		!slices.Equal(slices.Sorted(slices.Values(ls[0].Filters)), []string{"auth.login.success", "auth.signup.success", "user.notification", "user.success"}) {
		t.Errorf("log streams %+v", ls)
	}

	out := render(t, res.Plan)
	for _, line := range []string{
		"+ create action signupsync-post-login (post-login v3, node22; secrets SIGNUPSYNC_BUDGET_MS, SIGNUPSYNC_SECRET, SIGNUPSYNC_URL <set>)",
		"~ bindings post-login: add signupsync-post-login (after 0 others)",
		"+ create event stream signupsync-events",
		"+ create log stream signupsync-logs",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("plan lacks %q:\n%s", line, out)
		}
	}
}

func TestInstallAgainWithTheSameSecretsWritesNothing(t *testing.T) {
	srv := auth0fake.New(t)
	seedOthers(srv)
	first, _ := newInstaller(t, srv)
	res := install(t, first)

	writes := srv.WriteRequests()
	again, _ := newInstaller(t, srv, withSecrets(res.Secrets))
	plan, err := again.Plan(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if plan.Writes() != 0 {
		t.Errorf("plan of a second install:\n%s", render(t, plan))
	}
	res2 := install(t, again)
	if n := srv.WriteRequests() - writes; n != 0 {
		t.Fatalf("a second install made %d write requests", n)
	}
	if res2.Secrets != res.Secrets {
		t.Error("a second install handed out other secrets")
	}
	out := render(t, res2.Plan)
	for _, line := range []string{
		"= action signupsync-post-login unchanged",
		"= bindings post-login unchanged (signupsync-post-login runs last, after 2 others)",
		"= event stream signupsync-events unchanged (bearer token assumed: Auth0 never returns it)",
		"= log stream signupsync-logs unchanged",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("plan lacks %q:\n%s", line, out)
		}
	}
}

func TestReinstallWithoutTheInstalledSecretsIsRefusedAndChangesNothing(t *testing.T) {
	srv := auth0fake.New(t)
	first, _ := newInstaller(t, srv)
	old := install(t, first).Secrets

	writes := srv.WriteRequests()
	again, _ := newInstaller(t, srv)
	if _, err := again.Plan(t.Context()); !errors.Is(err, tenant.ErrSecretsNotSupplied) {
		t.Fatalf("dry run: err = %v, want ErrSecretsNotSupplied", err)
	}
	_, err := again.Install(t.Context(), nil)
	if !errors.Is(err, tenant.ErrSecretsNotSupplied) {
		t.Fatalf("install: err = %v, want ErrSecretsNotSupplied", err)
	}
	for _, field := range []string{"ActionSecret", "EventStreamToken"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
	if n := srv.WriteRequests() - writes; n != 0 {
		t.Errorf("a refused install wrote %d requests", n)
	}
	a, _ := srv.Action("signupsync-post-login")
	if a.DeployedSecrets["SIGNUPSYNC_SECRET"] != old.ActionSecret {
		t.Error("the refused install changed the Action's secret")
	}
}

func TestRotatingWithoutSecretsReplacesWhatAuth0CannotShowAndKeepsTheLogToken(t *testing.T) {
	srv := auth0fake.New(t)
	first, _ := newInstaller(t, srv)
	old := install(t, first).Secrets

	again, _ := newInstaller(t, srv, func(c *tenant.Config) { c.RewriteSecrets = true })
	res := install(t, again)
	if res.Secrets.ActionSecret == old.ActionSecret || res.Secrets.EventStreamToken == old.EventStreamToken {
		t.Error("secrets Auth0 does not return were not replaced")
	}
	if res.Secrets.LogStreamToken != old.LogStreamToken {
		t.Error("the log stream's Authorization, which Auth0 returns, was not kept")
	}
	a, _ := srv.Action("signupsync-post-login")
	if a.DeployedSecrets["SIGNUPSYNC_SECRET"] != res.Secrets.ActionSecret || a.DeployedVersion != 2 {
		t.Errorf("action runs version %d without the new secret", a.DeployedVersion)
	}
	if es := srv.EventStreams(); es[0].Token != res.Secrets.EventStreamToken {
		t.Error("the event stream does not send the new token")
	}
	out := render(t, res.Plan)
	for _, s := range []string{old.ActionSecret, res.Secrets.ActionSecret, res.Secrets.EventStreamToken, res.Secrets.LogStreamToken} {
		if strings.Contains(out, s) {
			t.Fatal("the plan shows a secret")
		}
	}
}

func TestInstallRestoresOurBindingAndKeepsTheOperatorsInTheirOrder(t *testing.T) {
	srv := auth0fake.New(t)
	seedOthers(srv)
	first, _ := newInstaller(t, srv)
	res := install(t, first)
	if got := srv.Bindings("post-login"); !slices.Equal(got, []string{"their-mfa", "their-claims", "signupsync-post-login"}) {
		t.Fatalf("post-login after install: %v", got)
	}

	// The operator moves ours first, reorders theirs, adds one, and
	// unbinds ours from post-user-registration.
	srv.AddAction(auth0fake.ActionState{Name: "their-new"})
	srv.SetBindings("post-login", "signupsync-post-login", "their-claims", "their-new", "their-mfa")
	srv.SetBindings("post-user-registration", "their-welcome")

	writes := srv.WriteRequests()
	again, _ := newInstaller(t, srv, withSecrets(res.Secrets))
	res2 := install(t, again)
	if got := srv.Bindings("post-login"); !slices.Equal(got, []string{"their-claims", "their-new", "their-mfa", "signupsync-post-login"}) {
		t.Errorf("post-login: %v", got)
	}
	if got := srv.Bindings("post-user-registration"); !slices.Equal(got, []string{"their-welcome", "signupsync-post-user-registration"}) {
		t.Errorf("post-user-registration: %v", got)
	}
	if n := srv.WriteRequests() - writes; n != 2 {
		t.Errorf("%d write requests, want the 2 bindings updates", n)
	}
	out := render(t, res2.Plan)
	for _, line := range []string{
		"~ bindings post-login: move signupsync-post-login to the end (after 3 others, kept in their order)",
		"~ bindings post-user-registration: add signupsync-post-user-registration (after 1 other)",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("plan lacks %q:\n%s", line, out)
		}
	}
}

func TestDryRunWritesNothingAndShowsTheDiff(t *testing.T) {
	srv := auth0fake.New(t)
	seedOthers(srv)
	inst, _ := newInstaller(t, srv)
	plan, err := inst.Plan(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.WriteRequests(); n != 0 {
		t.Fatalf("a dry run made %d write requests", n)
	}
	out := render(t, plan)
	want := []string{
		"+ create action signupsync-post-login (post-login v3, node22; secrets SIGNUPSYNC_SECRET, SIGNUPSYNC_URL <set>)",
		"+ create action signupsync-post-user-registration (post-user-registration v2, node22; secrets SIGNUPSYNC_SECRET, SIGNUPSYNC_URL <set>)",
		"~ bindings post-login: add signupsync-post-login (after 2 others)",
		"~ bindings post-user-registration: add signupsync-post-user-registration (after 1 other)",
		"+ create event stream signupsync-events (webhook https://ingest.example.com/v1/hooks/auth0-event-stream; bearer token <set>; subscriptions user.created, user.deleted, user.updated)",
		"+ create log stream signupsync-logs (custom webhook https://ingest.example.com/v1/hooks/auth0-log-stream; JSONLINES; authorization <set>; filters auth.login.success, auth.signup.success, user.notification, user.success)",
	}
	if got := strings.Split(strings.TrimSpace(out), "\n"); !slices.Equal(got, want) {
		t.Errorf("plan:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	// The install that follows does what the dry run showed.
	res := install(t, inst)
	if render(t, res.Plan) != out {
		t.Errorf("install did\n%s\nthe dry run showed\n%s", render(t, res.Plan), out)
	}
}

func TestChangedIngestURLUpdatesAndRedeploysEverything(t *testing.T) {
	srv := auth0fake.New(t)
	first, _ := newInstaller(t, srv)
	res := install(t, first)

	moved := "https://signupsync.example.org/prod"
	again, _ := newInstaller(t, srv, withSecrets(res.Secrets), func(c *tenant.Config) { c.IngestURL = moved })
	res2 := install(t, again)
	out := render(t, res2.Plan)
	if !strings.Contains(out, "~ update action signupsync-post-login: secret SIGNUPSYNC_URL <changed>; then deployed") ||
		!strings.Contains(out, "~ update event stream signupsync-events: endpoint https://ingest.example.com/v1/hooks/auth0-event-stream → "+moved+"/v1/hooks/auth0-event-stream") {
		t.Errorf("plan:\n%s", out)
	}
	a, _ := srv.Action("signupsync-post-login")
	if a.DeployedVersion != 2 || a.DeployedSecrets["SIGNUPSYNC_URL"] != moved || a.DeployedSecrets["SIGNUPSYNC_SECRET"] != res.Secrets.ActionSecret {
		t.Errorf("action runs version %d with URL %q", a.DeployedVersion, a.DeployedSecrets["SIGNUPSYNC_URL"])
	}
	if es := srv.EventStreams()[0]; es.Endpoint != moved+"/v1/hooks/auth0-event-stream" || es.Token != res.Secrets.EventStreamToken {
		t.Errorf("event stream %+v", es)
	}
	if ls := srv.LogStreams()[0]; ls.Sink["httpEndpoint"] != moved+"/v1/hooks/auth0-log-stream" || ls.Sink["httpAuthorization"] != res.Secrets.LogStreamToken {
		t.Errorf("log stream %+v", ls)
	}
}

func TestUninstallRemovesExactlyOurs(t *testing.T) {
	srv := auth0fake.New(t)
	seedOthers(srv)
	inst, _ := newInstaller(t, srv)
	install(t, inst)

	writes := srv.WriteRequests()
	plan, err := inst.Uninstall(t.Context(), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.WriteRequests() - writes; n != 0 {
		t.Fatalf("a dry-run uninstall made %d write requests", n)
	}
	want := []string{
		"- bindings post-login: remove signupsync-post-login (2 others kept in order)",
		"- bindings post-user-registration: remove signupsync-post-user-registration (1 other kept in order)",
		"- delete action signupsync-post-login",
		"- delete action signupsync-post-user-registration",
		"- delete event stream signupsync-events",
		"- delete log stream signupsync-logs",
	}
	if got := strings.Split(strings.TrimSpace(render(t, plan)), "\n"); !slices.Equal(got, want) {
		t.Errorf("uninstall plan:\n%s", render(t, plan))
	}

	var progress bytes.Buffer
	if _, err := inst.Uninstall(t.Context(), false, &progress); err != nil {
		t.Fatalf("uninstall: %v\n%s", err, progress.String())
	}
	if got := srv.Bindings("post-login"); !slices.Equal(got, []string{"their-mfa", "their-claims"}) {
		t.Errorf("post-login: %v", got)
	}
	if got := srv.Bindings("post-user-registration"); !slices.Equal(got, []string{"their-welcome"}) {
		t.Errorf("post-user-registration: %v", got)
	}
	for _, name := range []string{"signupsync-post-login", "signupsync-post-user-registration"} {
		if _, ok := srv.Action(name); ok {
			t.Errorf("action %s remains", name)
		}
	}
	for _, name := range []string{"their-mfa", "their-claims", "their-welcome"} {
		if a, ok := srv.Action(name); !ok || a.DeployedVersion != 1 {
			t.Errorf("their action %s was touched", name)
		}
	}
	if es := srv.EventStreams(); len(es) != 1 || es[0].Name != "their-crm" || es[0].Token != "crm" {
		t.Errorf("event streams %+v", es)
	}
	if ls := srv.LogStreams(); len(ls) != 1 || ls[0].Name != "their-siem" {
		t.Errorf("log streams %+v", ls)
	}

	writes = srv.WriteRequests()
	plan, err = inst.Uninstall(t.Context(), false, nil)
	if err != nil || plan.Writes() != 0 || srv.WriteRequests() != writes {
		t.Errorf("a second uninstall: %v, %d writes planned", err, plan.Writes())
	}
}

func TestUninstallUnderAnotherPrefixLeavesTheFirstEnvironment(t *testing.T) {
	srv := auth0fake.New(t)
	prod, _ := newInstaller(t, srv)
	install(t, prod)
	staging, _ := newInstaller(t, srv, func(c *tenant.Config) { c.Prefix = "signupsync-staging" })
	install(t, staging)
	if got := srv.Bindings("post-login"); !slices.Equal(got, []string{"signupsync-post-login", "signupsync-staging-post-login"}) {
		t.Fatalf("post-login: %v", got)
	}
	if _, err := staging.Uninstall(t.Context(), false, nil); err != nil {
		t.Fatal(err)
	}
	if got := srv.Bindings("post-login"); !slices.Equal(got, []string{"signupsync-post-login"}) {
		t.Errorf("post-login: %v", got)
	}
	if es := srv.EventStreams(); len(es) != 1 || es[0].Name != "signupsync-events" {
		t.Errorf("event streams %+v", es)
	}
}

func TestStatusReportsMissingMatchingAndDiffering(t *testing.T) {
	srv := auth0fake.New(t)
	inst, _ := newInstaller(t, srv)
	st, err := inst.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Matches() || st.Items[0].State != tenant.StateMissing {
		t.Fatalf("status of an empty tenant: %+v", st)
	}
	res := install(t, inst)

	// Without the secrets, status cannot verify them but finds no
	// difference.
	blind, _ := newInstaller(t, srv)
	st, err = blind.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := st.Render(&b); err != nil {
		t.Fatal(err)
	}
	if !st.Matches() || !strings.Contains(b.String(), "installed  action signupsync-post-login (deployed version 1; secret SIGNUPSYNC_SECRET not verified: ActionSecret not supplied)") {
		t.Fatalf("status after install:\n%s", b.String())
	}
	if n := srv.WriteRequests(); n == 0 {
		t.Fatal("no writes counted at all")
	}

	writes := srv.WriteRequests()
	srv.SetBindings("post-user-registration")
	knowing, _ := newInstaller(t, srv, withSecrets(res.Secrets), func(c *tenant.Config) { c.LogStreamToken = "another-token" })
	st, err = knowing.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	_ = st.Render(&b)
	if st.Matches() || !strings.Contains(b.String(), "differs    bindings post-user-registration: add signupsync-post-user-registration (after 0 others)") ||
		!strings.Contains(b.String(), "differs    log stream signupsync-logs: authorization <changed>") {
		t.Errorf("status:\n%s", b.String())
	}
	if strings.Contains(b.String(), "another-token") || strings.Contains(b.String(), res.Secrets.LogStreamToken) {
		t.Error("status shows a token")
	}
	if srv.WriteRequests() != writes {
		t.Error("status wrote to the tenant")
	}
}

func TestRateLimitedRequestsAreRetriedAfterTheReset(t *testing.T) {
	srv := auth0fake.New(t)
	inst, sl := newInstaller(t, srv)
	srv.Fail(429, 3)
	install(t, inst)
	if _, ok := srv.Action("signupsync-post-login"); !ok {
		t.Fatal("nothing installed")
	}
	var limited []time.Duration
	for _, d := range sl.all() {
		if d > 5*time.Second { // the build polls wait 5 s at most
			limited = append(limited, d)
		}
	}
	// The fake's window resets within a minute: the installer waits for it,
	// capped at a minute.
	if len(limited) != 3 {
		t.Errorf("waits %v, want 3 rate-limit waits", sl.all())
	}
	for _, d := range limited {
		if d > time.Minute {
			t.Errorf("wait %v beyond the cap", d)
		}
	}
}

func TestRateLimitedWriteWaitsForTheWindowAndIsNotDuplicated(t *testing.T) {
	// One request a minute: the read takes the window, so the create is
	// refused with 429 and an X-RateLimit-Reset a minute ahead. The sleep
	// moves the fake's clock by what the installer asks to wait.
	srv := auth0fake.New(t, auth0fake.WithRateLimit(1, time.Minute))
	var waits []time.Duration
	sleep := func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		srv.Advance(d)
		return ctx.Err()
	}
	cfg := config(srv, func(c *tenant.Config) { c.Actions, c.LogStream = false, false })
	inst, err := tenant.New(t.Context(), cfg, tenant.Deps{HTTPClient: srv.Client(), Sleep: sleep, Now: srv.Now})
	if err != nil {
		t.Fatal(err)
	}
	install(t, inst)
	if n := len(srv.EventStreams()); n != 1 {
		t.Fatalf("%d event streams, want 1", n)
	}
	if n := srv.Requests()[auth0fake.RouteCreateEventStream]; n != 2 {
		t.Errorf("%d create requests, want the refused one and its retry", n)
	}
	if len(waits) != 1 || waits[0] < 55*time.Second || waits[0] > time.Minute {
		t.Errorf("waits %v, want one of about the minute left in the window", waits)
	}
}

func TestAFailedBuildIsAnErrorNamingTheAction(t *testing.T) {
	srv := auth0fake.New(t)
	srv.FailBuilds("signupsync-post-user-registration")
	inst, _ := newInstaller(t, srv)
	res, err := inst.Install(t.Context(), nil)
	if !errors.Is(err, tenant.ErrBuildFailed) || !strings.Contains(err.Error(), "signupsync-post-user-registration") {
		t.Fatalf("install: %v", err)
	}
	if res.Secrets.ActionSecret == "" {
		t.Error("a failed install does not hand out the secrets it may have installed")
	}
	// A later run rebuilds it (the operator fixed the cause).
	if a, _ := srv.Action("signupsync-post-user-registration"); a.Status != auth0fake.ActionFailed || a.DeployedVersion != 0 {
		t.Fatalf("action %+v", a)
	}
	plan, err := inst.Plan(t.Context())
	if err != nil || !strings.Contains(render(t, plan), "~ update action signupsync-post-user-registration: its last build failed") {
		t.Errorf("plan after a failed build: %v\n%s", err, render(t, plan))
	}
}

func TestAnActionOfOurNameForAnotherTriggerIsAConflict(t *testing.T) {
	srv := auth0fake.New(t)
	srv.AddAction(auth0fake.ActionState{Name: "signupsync-post-login", Trigger: "post-user-registration"})
	inst, _ := newInstaller(t, srv)
	if _, err := inst.Plan(t.Context()); !errors.Is(err, tenant.ErrConflict) {
		t.Fatalf("plan: %v", err)
	}
}

func TestSupplyingTheEventStreamTokenWithRewriteSecretsRotatesIt(t *testing.T) {
	srv := auth0fake.New(t)
	first, _ := newInstaller(t, srv, func(c *tenant.Config) { c.Actions, c.LogStream = false, false })
	install(t, first)
	rotate, _ := newInstaller(t, srv, func(c *tenant.Config) {
		c.Actions, c.LogStream, c.EventStreamToken, c.RewriteSecrets = false, false, "rotated-token-0123456789", true
	})
	res := install(t, rotate)
	if es := srv.EventStreams()[0]; es.Token != "rotated-token-0123456789" || res.Secrets.EventStreamToken != es.Token {
		t.Fatalf("event stream token %q", es.Token)
	}
	if res.Secrets.ActionSecret != "" || res.Secrets.LogStreamToken != "" {
		t.Error("secrets of parts not installed are handed out")
	}
}

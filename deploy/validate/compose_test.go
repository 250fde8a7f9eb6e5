package validate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"
)

// warningHook records what compose-go logs at warning level (obsolete
// attributes, ignored settings): the tests treat it as a failure.
type warningHook struct {
	mu   sync.Mutex
	msgs []string
}

func (h *warningHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (h *warningHook) Fire(e *logrus.Entry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, e.Message)
	return nil
}

var composeLog sync.Mutex // logrus is global: one load at a time

// loadCompose loads a compose file the way `docker compose config` does
// (compose-spec schema validation, interpolation, profiles, path resolution,
// consistency checks) with the repository root as the project directory.
// Only the given env files feed interpolation, not this process's
// environment, so the result does not depend on who runs the test.
func loadCompose(t *testing.T, file string, profiles []string, envFiles ...string) (*types.Project, error) {
	t.Helper()
	composeLog.Lock()
	defer composeLog.Unlock()
	hook := &warningHook{}
	logrus.AddHook(hook)
	defer logrus.StandardLogger().ReplaceHooks(logrus.LevelHooks{})

	opts := []cli.ProjectOptionsFn{
		cli.WithName("signupsync"),
		cli.WithWorkingDirectory(repoRoot(t)),
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
		cli.WithNormalization(true),
		cli.WithInterpolation(true),
	}
	if profiles != nil {
		opts = append(opts, cli.WithProfiles(profiles))
	} else {
		opts = append(opts, cli.WithDefaultProfiles()) // COMPOSE_PROFILES from the env files
	}
	po, err := cli.NewProjectOptions([]string{file}, opts...)
	if err != nil {
		return nil, err
	}
	p, err := po.LoadProject(context.Background())
	if err != nil {
		return nil, err
	}
	for _, m := range hook.msgs {
		t.Errorf("compose-go warned: %s", m)
	}
	return p, nil
}

var (
	composeDefault = []string{"nats", "firebase-auth-emulator", "ingest", "importer", "otel-collector", "jaeger", "prometheus", "grafana"}
	composeCluster = []string{"nats-1", "nats-2", "nats-3"}
	composeAuth0   = []string{"reconcile"}
	// The session exchange needs a real Auth0 tenant (issuer, audience,
	// Management API), so it has a profile of its own.
	composeExchange = []string{"exchange"}
	// composeRoles are the signupsync roles compose runs, each from the one
	// image with the role as its command.
	composeRoles = []string{"ingest", "importer", "reconcile", "exchange"}
	// composeAllProfiles enables every service.
	composeAllProfiles = []string{"cluster", "auth0", "exchange"}
)

// TestComposeLoads validates compose.yaml in each way README/deploy/README.md
// starts it and checks that the expected services are enabled.
func TestComposeLoads(t *testing.T) {
	file := path(t, "compose.yaml")
	tests := []struct {
		name     string
		profiles []string
		envFiles []string
		want     []string
	}{
		{"default", []string{}, nil, composeDefault},
		{"profile cluster", []string{"cluster"}, nil, concat(composeDefault, composeCluster)},
		{"profile auth0", []string{"auth0"}, nil, concat(composeDefault, composeAuth0)},
		{"cluster env file", nil, []string{path(t, "deploy", "compose.cluster.env")}, concat(composeDefault, composeCluster)},
		{"cluster env file and auth0", []string{"cluster", "auth0"}, []string{path(t, "deploy", "compose.cluster.env")}, concat(composeDefault, composeCluster, composeAuth0)},
		{"profile exchange", []string{"exchange"}, nil, concat(composeDefault, composeExchange)},
		{"cluster env file and exchange", []string{"cluster", "exchange"}, []string{path(t, "deploy", "compose.cluster.env")}, concat(composeDefault, composeCluster, composeExchange)},
		{"every profile", composeAllProfiles, []string{path(t, "deploy", "compose.cluster.env")}, concat(composeDefault, composeCluster, composeAuth0, composeExchange)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := loadCompose(t, file, tc.profiles, tc.envFiles...)
			if err != nil {
				t.Fatalf("load compose.yaml: %v", err)
			}
			got := p.ServiceNames()
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("enabled services %v, want %v", got, want)
			}
			checkComposeProject(t, p)
		})
	}
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func checkComposeProject(t *testing.T, p *types.Project) {
	t.Helper()
	documented, where := configVars(t)
	published := map[string]string{} // host ip:port -> service
	for name, s := range p.Services {
		// Build contexts and Dockerfiles exist (paths are resolved).
		if s.Build != nil {
			if fi, err := os.Stat(s.Build.Context); err != nil || !fi.IsDir() {
				t.Errorf("%s: build context %s: %v", name, s.Build.Context, err)
			}
			df := s.Build.Dockerfile
			if df == "" {
				df = "Dockerfile"
			}
			if !filepath.IsAbs(df) {
				df = filepath.Join(s.Build.Context, df)
			}
			if _, err := os.Stat(df); err != nil {
				t.Errorf("%s: Dockerfile: %v", name, err)
			}
		}
		// Bind mounts name files and folders of the repository.
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s: bind mount source: %v", name, err)
				}
				if !v.ReadOnly {
					t.Errorf("%s: bind mount %s is writable; mount configuration read-only", name, v.Source)
				}
			}
		}
		// Dependencies gated on health have a healthcheck to be gated on.
		for dep, d := range s.DependsOn {
			ds, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on %s, which is not enabled", name, dep)
				continue
			}
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if ds.HealthCheck == nil || ds.HealthCheck.Disable || len(ds.HealthCheck.Test) == 0 {
					t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			case types.ServiceConditionStarted:
			default:
				t.Errorf("%s depends on %s with condition %q; want service_healthy or service_started", name, dep, d.Condition)
			}
		}
		// Published ports stay on loopback, and no two services claim one.
		for _, port := range s.Ports {
			if port.Published != "" && port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s on %q; bind it to 127.0.0.1", name, port.Published, port.HostIP)
			}
			hp := port.HostIP + ":" + port.Published
			if other, ok := published[hp]; ok && port.Published != "" {
				t.Errorf("%s and %s both publish %s", name, other, hp)
			}
			published[hp] = name
		}
		// A service on the emulator or the single NATS node waits until it
		// is healthy.
		if e := s.Environment["FIREBASE_AUTH_EMULATOR_HOST"]; e != nil && strings.HasPrefix(*e, "firebase-auth-emulator:") {
			if d, ok := s.DependsOn["firebase-auth-emulator"]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s uses the emulator without depending on it being healthy", name)
			}
		}
		if e := s.Environment["SIGNUPSYNC_NATS_URL"]; e != nil && strings.Contains(*e, "nats://nats:4222") {
			if d, ok := s.DependsOn["nats"]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s uses nats without depending on it being healthy", name)
			}
		}
		// Only documented SIGNUPSYNC_* settings.
		for k := range s.Environment {
			if strings.HasPrefix(k, "SIGNUPSYNC_") && !documented[k] {
				t.Errorf("%s: %s is not among %s", name, k, where)
			}
		}
	}

	for _, role := range composeRoles {
		s, ok := p.Services[role]
		if !ok {
			continue
		}
		if len(s.Command) == 0 || s.Command[0] != role {
			t.Errorf("%s: command %v, want the %s subcommand", role, s.Command, role)
		}
		// The long-running roles take every setting from the environment
		// (SIGNUPSYNC_*): flag names may change, variable names do not.
		if role != "reconcile" && len(s.Command) != 1 {
			t.Errorf("%s: command %v: set the role's settings as SIGNUPSYNC_* variables, not flags", role, s.Command)
		}
		if s.Build == nil || filepath.Base(s.Build.Dockerfile) != "Dockerfile" || !strings.HasSuffix(filepath.ToSlash(s.Build.Dockerfile), "deploy/Dockerfile") {
			t.Errorf("%s: not built from deploy/Dockerfile: %+v", role, s.Build)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: want read_only and cap_drop ALL", role)
		}
		env := s.Environment
		wantEnv := map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318",
		}
		switch role {
		case "ingest":
			wantEnv["SIGNUPSYNC_HTTP_ADDR"] = "0.0.0.0:8080"
			wantEnv["SIGNUPSYNC_METRICS_ADDR"] = "0.0.0.0:9466"
			if v := env["SIGNUPSYNC_ACTION_SECRETS"]; v == nil || !strings.HasPrefix(*v, "whsec_") {
				t.Errorf("ingest: SIGNUPSYNC_ACTION_SECRETS %v, want a whsec_ default", v)
			}
		case "importer":
			wantEnv["SIGNUPSYNC_METRICS_ADDR"] = "0.0.0.0:9464"
			wantEnv["FIREBASE_AUTH_EMULATOR_HOST"] = "firebase-auth-emulator:9099"
			wantEnv["SIGNUPSYNC_FIREBASE_PROJECT"] = "demo-signupsync"
		case "reconcile":
			if !slices.Equal([]string(s.Command), []string{"reconcile", "--since", "24h", "--every", "10m"}) {
				t.Errorf("reconcile: command %v", s.Command)
			}
		case "exchange":
			wantEnv["SIGNUPSYNC_EXCHANGE_ADDR"] = "0.0.0.0:8081"
			wantEnv["SIGNUPSYNC_METRICS_ADDR"] = "0.0.0.0:9465"
			// The accounts the importer imports: the same Firebase.
			imp := p.Services["importer"]
			for _, k := range []string{"FIREBASE_AUTH_EMULATOR_HOST", "SIGNUPSYNC_FIREBASE_PROJECT"} {
				if v := imp.Environment[k]; v != nil {
					wantEnv[k] = *v
				} else {
					t.Errorf("importer: no %s to compare the exchange's with", k)
				}
			}
			// What its Config requires, passed through from the caller's
			// environment (empty by default: the profile is opt-in).
			for _, k := range []string{"SIGNUPSYNC_AUTH0_ISSUER", "SIGNUPSYNC_AUTH0_AUDIENCE", "SIGNUPSYNC_AUTH0_DOMAIN", "SIGNUPSYNC_AUTH0_CLIENT_ID", "SIGNUPSYNC_AUTH0_CLIENT_SECRET"} {
				if _, ok := env[k]; !ok {
					t.Errorf("exchange: no %s", k)
				}
			}
			if a, b := imp.Environment["SIGNUPSYNC_UID_POLICY"], env["SIGNUPSYNC_UID_POLICY"]; (a == nil) != (b == nil) || (a != nil && *a != *b) {
				t.Errorf("exchange: SIGNUPSYNC_UID_POLICY differs from the importer's")
			}
			if !slices.Contains(s.Profiles, "exchange") {
				t.Errorf("exchange: profiles %v; without a tenant it cannot start, keep it out of the default set", s.Profiles)
			}
		}
		// Every address the role listens on from the host is published on
		// the same port (ingest's webhooks, the exchange's endpoint, the
		// admin listeners); reconcile publishes nothing.
		if role != "reconcile" {
			for _, k := range []string{"SIGNUPSYNC_HTTP_ADDR", "SIGNUPSYNC_EXCHANGE_ADDR", "SIGNUPSYNC_METRICS_ADDR"} {
				v := env[k]
				if v == nil {
					continue
				}
				port := portOf(t, *v)
				found := false
				for _, pc := range s.Ports {
					found = found || (fmt.Sprint(pc.Target) == port && pc.Published == port)
				}
				if !found {
					t.Errorf("%s: %s=%s, but 127.0.0.1:%s:%s is not published", role, k, *v, port, port)
				}
			}
		}
		for k, want := range wantEnv {
			if v := env[k]; v == nil {
				t.Errorf("%s: %s unset, want %q", role, k, want)
			} else if *v != want {
				t.Errorf("%s: %s = %q, want %q", role, k, *v, want)
			}
		}
		url := env["SIGNUPSYNC_NATS_URL"]
		if url == nil {
			t.Errorf("%s: no SIGNUPSYNC_NATS_URL", role)
			continue
		}
		replicas := env["SIGNUPSYNC_STREAM_REPLICAS"]
		// With compose.cluster.env (three replicas) every role must be on
		// the cluster, as its own user: a role left on the single node
		// would have no data and all permissions.
		if p.Environment["SIGNUPSYNC_STREAM_REPLICAS"] == "3" && !strings.Contains(*url, "@nats-1:4222") {
			t.Errorf("%s: SIGNUPSYNC_NATS_URL %q in cluster mode; set %s_NATS_URL in deploy/compose.cluster.env", role, *url, strings.ToUpper(role))
		}
		if _, cluster := p.Services["nats-1"]; cluster && strings.Contains(*url, "nats-1") {
			// Cluster mode: every node, with this role's user, three replicas.
			for _, n := range natsNodes {
				if !strings.Contains(*url, "@"+n+":4222") {
					t.Errorf("%s: SIGNUPSYNC_NATS_URL lacks %s", role, n)
				}
			}
			if replicas == nil || *replicas != "3" {
				t.Errorf("%s: SIGNUPSYNC_STREAM_REPLICAS %v in cluster mode, want 3", role, replicas)
			}
			checkClusterPasswords(t, p, role, *url)
		} else if *url != "nats://nats:4222" {
			t.Errorf("%s: SIGNUPSYNC_NATS_URL %q, want nats://nats:4222", role, *url)
		}
	}
}

// roleNATSUser is the NATS user each long-running role logs in as
// (deploy/nats/permissions.conf); reconcile deliveries shares reconcile's.
var roleNATSUser = map[string]string{"ingest": "ingest", "importer": "importer", "reconcile": "reconcile", "exchange": "exchange"}

// checkClusterPasswords: the password in a role's URL is the one the NATS
// nodes get for that role's user.
func checkClusterPasswords(t *testing.T, p *types.Project, role, url string) {
	t.Helper()
	user := roleNATSUser[role]
	if user == "" {
		t.Errorf("%s: no NATS user for this role", role)
		return
	}
	node := p.Services["nats-1"]
	pw := node.Environment["NATS_"+strings.ToUpper(user)+"_PASSWORD"]
	if pw == nil || *pw == "" {
		t.Errorf("nats-1: no password for user %s", user)
		return
	}
	for _, part := range strings.Split(url, ",") {
		if !strings.HasPrefix(part, "nats://"+user+":"+*pw+"@") {
			t.Errorf("%s: %q does not log in as %s with the password nats-1 has", role, part, user)
		}
	}
}

// TestComposeRejectsUnknownKeys proves the loader is strict: a copy of
// compose.yaml with one misspelt service key must fail to load.
func TestComposeRejectsUnknownKeys(t *testing.T) {
	orig := readFile(t, "compose.yaml")
	bad := strings.Replace(string(orig), "    command: [\"ingest\"]\n", "    command: [\"ingest\"]\n    helthcheck: {disable: true}\n", 1)
	if bad == string(orig) {
		t.Fatal("compose.yaml: the ingest command line to mutate was not found")
	}
	// The copy lives outside the repository; the project directory stays
	// the repository root (loadCompose sets it).
	file := filepath.Join(t.TempDir(), "compose.yaml")
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadCompose(t, file, []string{})
	if err == nil || !strings.Contains(err.Error(), "helthcheck") {
		t.Fatalf("misspelt key: got %v, want an error naming it", err)
	}
	t.Logf("rejected as expected: %v", err)
}

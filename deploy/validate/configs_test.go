package validate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"
)

// decodeYAMLMap decodes one YAML document into a generic map; yaml.v3
// rejects duplicate keys.
func decodeYAMLMap(t *testing.T, elem ...string) map[string]any {
	t.Helper()
	var m map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, elem...)))
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", strings.Join(elem, "/"), err)
	}
	return m
}

// dig walks nested maps.
func dig(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func portOf(t *testing.T, hostport string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	return port
}

var componentID = regexp.MustCompile(`^([a-z][a-z0-9_]*)(/[A-Za-z0-9_.-]+)?$`)

// knownComponents: the component types used here, all in
// otel/opentelemetry-collector-contrib.
var knownComponents = map[string][]string{
	"receivers":  {"otlp"},
	"processors": {"memory_limiter", "batch"},
	"exporters":  {"otlp", "prometheus", "debug"},
	"extensions": {"health_check"},
}

// TestOTelCollectorConfig parses deploy/otel/collector.yaml and checks that
// its pipelines are wired (every referenced component defined and every
// defined one used) and that its ports are the ones compose.yaml and
// prometheus.yml use.
func TestOTelCollectorConfig(t *testing.T) {
	cfg := decodeYAMLMap(t, "deploy", "otel", "collector.yaml")
	for k := range cfg {
		if _, ok := knownComponents[k]; !ok && k != "service" && k != "connectors" {
			t.Errorf("unknown top-level key %q", k)
		}
	}
	used := map[string]map[string]bool{}
	for kind, types := range knownComponents {
		used[kind] = map[string]bool{}
		defs, _ := cfg[kind].(map[string]any)
		for id := range defs {
			m := componentID.FindStringSubmatch(id)
			if m == nil || !slices.Contains(types, m[1]) {
				t.Errorf("%s: %q is not a known component (%v)", kind, id, types)
			}
		}
	}
	pipelines, _ := dig(cfg, "service", "pipelines").(map[string]any)
	if len(pipelines) == 0 {
		t.Fatal("no service.pipelines")
	}
	for name, p := range pipelines {
		if !componentID.MatchString(name) || !slices.Contains([]string{"traces", "metrics", "logs"}, strings.SplitN(name, "/", 2)[0]) {
			t.Errorf("pipeline %q: want traces, metrics or logs[/name]", name)
		}
		pm, _ := p.(map[string]any)
		for _, kind := range []string{"receivers", "processors", "exporters"} {
			ids := strs(pm[kind])
			if kind != "processors" && len(ids) == 0 {
				t.Errorf("pipeline %s: no %s", name, kind)
			}
			for _, id := range ids {
				if dig(cfg, kind, id) == nil {
					if _, defined := cfg[kind].(map[string]any)[id]; !defined {
						t.Errorf("pipeline %s uses %s %q, which is not defined", name, kind, id)
					}
				}
				used[kind][id] = true
			}
			if kind == "processors" && len(ids) > 0 && ids[0] != "memory_limiter" {
				t.Errorf("pipeline %s: memory_limiter must come first, got %v", name, ids)
			}
		}
	}
	for _, id := range strs(dig(cfg, "service", "extensions")) {
		used["extensions"][id] = true
		if _, ok := cfg["extensions"].(map[string]any)[id]; !ok {
			t.Errorf("service.extensions uses %q, which is not defined", id)
		}
	}
	for kind := range knownComponents {
		defs, _ := cfg[kind].(map[string]any)
		for id := range defs {
			if !used[kind][id] {
				t.Errorf("%s %q is defined but unused", kind, id)
			}
		}
	}
	if ps, _ := dig(cfg, "service", "pipelines", "traces", "exporters").([]any); !slices.Contains(strs(ps), "otlp/jaeger") {
		t.Error("traces do not go to Jaeger")
	}

	// Ports: what the services send to, what Prometheus scrapes.
	if p := portOf(t, fmt.Sprint(dig(cfg, "receivers", "otlp", "protocols", "http", "endpoint"))); p != "4318" {
		t.Errorf("OTLP/HTTP receiver on %s; compose.yaml's OTEL_EXPORTER_OTLP_ENDPOINT uses 4318", p)
	}
	if ep := fmt.Sprint(dig(cfg, "exporters", "otlp/jaeger", "endpoint")); ep != "jaeger:4317" {
		t.Errorf("Jaeger exporter endpoint %q, want jaeger:4317 (the compose service's OTLP/gRPC port)", ep)
	}
	scraped := prometheusTargets(t)
	if p := portOf(t, fmt.Sprint(dig(cfg, "exporters", "prometheus", "endpoint"))); !scraped["otel-collector:"+p] {
		t.Errorf("the prometheus exporter's port %s is not scraped", p)
	}
	readers, _ := dig(cfg, "service", "telemetry", "metrics", "readers").([]any)
	if len(readers) != 1 {
		t.Fatalf("service.telemetry.metrics.readers: %v", readers)
	}
	r, _ := readers[0].(map[string]any)
	prom := dig(r, "pull", "exporter", "prometheus")
	if prom == nil || !scraped[fmt.Sprintf("otel-collector:%v", dig(r, "pull", "exporter", "prometheus", "port"))] {
		t.Errorf("the collector's own metrics (%v) are not scraped", prom)
	}

	p, err := loadCompose(t, path(t, "compose.yaml"), composeAllProfiles)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range composeRoles {
		if p.Services[svc].Name == "" {
			t.Errorf("no compose service %s", svc)
			continue
		}
		e := p.Services[svc].Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]
		u, err := url.Parse(*e)
		if err != nil || u.Hostname() != "otel-collector" || u.Port() != "4318" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %q", svc, *e)
		}
		if pr := p.Services[svc].Environment["OTEL_EXPORTER_OTLP_PROTOCOL"]; pr == nil || *pr != "http/protobuf" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_PROTOCOL %v, want http/protobuf for port 4318", svc, pr)
		}
	}
	if v := p.Services["jaeger"].Environment["COLLECTOR_OTLP_ENABLED"]; v == nil || *v != "true" {
		t.Error("jaeger: COLLECTOR_OTLP_ENABLED is not true")
	}
}

// prometheusConfig is the part of Prometheus's configuration this
// repository uses; decoding with KnownFields rejects any other key.
type prometheusConfig struct {
	Global struct {
		ScrapeInterval     string            `yaml:"scrape_interval"`
		EvaluationInterval string            `yaml:"evaluation_interval"`
		ExternalLabels     map[string]string `yaml:"external_labels"`
	} `yaml:"global"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		HonorLabels   bool   `yaml:"honor_labels"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func prometheusTargets(t *testing.T) map[string]bool {
	t.Helper()
	var cfg prometheusConfig
	decodeYAMLStrict(t, &cfg, "deploy", "prometheus", "prometheus.yml")
	out := map[string]bool{}
	jobs := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName == "" || jobs[sc.JobName] {
			t.Errorf("scrape job name %q empty or repeated", sc.JobName)
		}
		jobs[sc.JobName] = true
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %q; signupsync serves /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				out[tg] = true
			}
		}
	}
	for _, d := range []string{cfg.Global.ScrapeInterval, cfg.Global.EvaluationInterval} {
		if _, err := time.ParseDuration(d); err != nil {
			t.Errorf("prometheus.yml: interval %q: %v", d, err)
		}
	}
	return out
}

// TestPrometheusConfig: Prometheus scrapes ingest, importer and the
// exchange on the admin ports compose.yaml makes them listen on, never on
// their public ports, at service names compose defines (in any profile).
func TestPrometheusConfig(t *testing.T) {
	targets := prometheusTargets(t)
	p, err := loadCompose(t, path(t, "compose.yaml"), composeAllProfiles)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"ingest", "importer", "exchange"} {
		s, ok := p.Services[svc]
		if !ok {
			t.Errorf("no compose service %s", svc)
			continue
		}
		addr := s.Environment["SIGNUPSYNC_METRICS_ADDR"]
		if addr == nil {
			t.Errorf("%s: no SIGNUPSYNC_METRICS_ADDR", svc)
			continue
		}
		want := svc + ":" + portOf(t, *addr)
		if !targets[want] {
			t.Errorf("prometheus.yml does not scrape %s (from SIGNUPSYNC_METRICS_ADDR=%s); targets %v", want, *addr, keys(targets))
		}
		for _, v := range []string{"SIGNUPSYNC_HTTP_ADDR", "SIGNUPSYNC_EXCHANGE_ADDR"} {
			if a := s.Environment[v]; a != nil && targets[svc+":"+portOf(t, *a)] {
				t.Errorf("prometheus.yml scrapes %s:%s, the public port (%s): /metrics is on the admin port", svc, portOf(t, *a), v)
			}
		}
	}
	if !targets["ingest:9466"] || !targets["importer:9464"] || !targets["exchange:9465"] {
		t.Errorf("targets %v: want ingest:9466, importer:9464 and exchange:9465", keys(targets))
	}
	for tg := range targets {
		host, _, _ := net.SplitHostPort(tg)
		if _, ok := p.Services[host]; !ok {
			t.Errorf("target %s: no compose service %s", tg, host)
		}
	}
}

var natsVar = regexp.MustCompile(`^<<\s*\$([A-Z_][A-Z0-9_]*)\s*>>$`)

// TestNATSHelmValues checks deploy/k8s/nats-values.yaml against the 1.x chart's
// layout and renders its config.merge the way the chart does (values in
// << >> unquoted) into a server configuration that nats-server parses.
func TestNATSHelmValues(t *testing.T) {
	v := decodeYAMLMap(t, "deploy", "k8s", "nats-values.yaml")
	for k := range v {
		if !slices.Contains([]string{"config", "container", "podTemplate", "podDisruptionBudget", "natsBox", "promExporter", "statefulSet", "service", "reloader"}, k) {
			t.Errorf("top-level key %q is not a value of the nats chart this file uses", k)
		}
	}
	checks := map[string]any{
		"config.cluster.enabled":                 true,
		"config.cluster.replicas":                3,
		"config.jetstream.enabled":               true,
		"config.jetstream.fileStore.enabled":     true,
		"config.jetstream.fileStore.pvc.enabled": true,
		"podDisruptionBudget.enabled":            true,
	}
	for p, want := range checks {
		if got := dig(v, strings.Split(p, ".")...); got != want {
			t.Errorf("%s = %v, want %v", p, got, want)
		}
	}
	if dig(v, "config", "jetstream", "fileStore", "pvc", "size") == nil {
		t.Error("config.jetstream.fileStore.pvc.size unset")
	}

	// Every $VAR the merged config uses comes from a Secret in container.env.
	env, _ := dig(v, "container", "env").(map[string]any)
	merge, _ := dig(v, "config", "merge").(map[string]any)
	var walk func(any)
	var vars []string
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		case string:
			if m := natsVar.FindStringSubmatch(x); m != nil {
				vars = append(vars, m[1])
			} else if strings.Contains(x, "<<") {
				t.Errorf("malformed << >> value %q", x)
			}
		}
	}
	walk(merge)
	if len(vars) < 4 {
		t.Errorf("only %d password variables in config.merge", len(vars))
	}
	for _, name := range vars {
		if dig(env, name, "valueFrom", "secretKeyRef", "name") == nil {
			t.Errorf("config.merge uses $%s, but container.env.%s is not from a Secret", name, name)
		}
	}

	// Render: the chart's nats.conf is JSON with << >> values unquoted; the
	// cluster and JetStream blocks are reduced to what a lone server needs.
	jsMerge, _ := dig(v, "config", "jetstream", "merge").(map[string]any)
	conf := map[string]any{}
	for k, val := range merge {
		conf[k] = val
	}
	conf["server_name"] = "nats-0"
	conf["port"] = 4222
	js := map[string]any{"store_dir": filepath.ToSlash(t.TempDir())}
	for k, val := range jsMerge {
		js[k] = val
	}
	conf["jetstream"] = js
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(conf); err != nil {
		t.Fatal(err)
	}
	rendered := regexp.MustCompile(`"<<\s*(.*?)\s*>>"`).ReplaceAll(buf.Bytes(), []byte("$1"))
	file := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(file, rendered, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range vars {
		t.Setenv(name, "helm-"+strings.ToLower(name))
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigFile(file); err != nil {
		t.Fatalf("rendered config.merge is not a valid NATS configuration: %v\n%s", err, rendered)
	}
	if !opts.SyncAlways {
		t.Error("config.jetstream.merge: want sync_interval always, as deploy/nats/cluster.conf")
	}

	// Same accounts and users as the compose cluster, and the users the
	// Deployments log in as.
	helmUsers := map[string]string{}
	for _, u := range opts.Users {
		helmUsers[u.Username] = u.Account.Name
	}
	composeUsers := map[string]string{}
	for _, u := range loadNATS(t, "nats-1").Users {
		composeUsers[u.Username] = u.Account.Name
	}
	if fmt.Sprint(helmUsers) != fmt.Sprint(composeUsers) {
		t.Errorf("Helm users %v differ from deploy/nats users %v", helmUsers, composeUsers)
	}
	// The same permissions, user by user (deploy/nats/permissions.conf).
	composePerms := configuredPermissions(t)
	for _, u := range opts.Users {
		if u.Account == nil || u.Account.Name != "SIGNUPSYNC" {
			continue
		}
		if !reflect.DeepEqual(u.Permissions, composePerms[u.Username]) {
			t.Errorf("Helm user %s: permissions %s differ from deploy/nats/permissions.conf %s", u.Username, permString(u.Permissions), permString(composePerms[u.Username]))
		}
	}
	if opts.SystemAccount != server.DEFAULT_SYSTEM_ACCOUNT {
		t.Errorf("system_account %q", opts.SystemAccount)
	}
	_, applied, _ := k8sFiles(t)
	urls := 0
	for _, f := range applied {
		for _, line := range strings.Split(string(readFile(t, "deploy", "k8s", f)), "\n") {
			i := strings.Index(line, "value: nats://")
			if i < 0 {
				continue
			}
			urls++
			u, err := url.Parse(strings.TrimSpace(line[i+len("value: "):]))
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if helmUsers[u.User.Username()] != "SIGNUPSYNC" {
				t.Errorf("%s: NATS user %q is not in the SIGNUPSYNC account of nats-values.yaml", f, u.User.Username())
			}
			if u.Hostname() != "nats.nats.svc.cluster.local" || u.Port() != "4222" {
				t.Errorf("%s: NATS host %s: want the chart's client Service for release nats in namespace nats", f, u.Host)
			}
		}
	}
	if urls != len(k8sRoles) {
		t.Errorf("%d NATS URLs in the Deployments, want %d (one per role)", urls, len(k8sRoles))
	}
}

func permString(p *server.Permissions) string {
	if p == nil || p.Publish == nil || p.Subscribe == nil {
		return fmt.Sprintf("%+v", p)
	}
	return fmt.Sprintf("publish %v, subscribe %v", p.Publish.Allow, p.Subscribe.Allow)
}

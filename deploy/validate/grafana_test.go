package validate

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // collapsed rows
}

var (
	promMetric  = regexp.MustCompile(`\bsignupsync_[a-z0-9_]+`)
	promBy      = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
	histSuffix  = regexp.MustCompile(`_(bucket|sum|count)$`)
	labelsInAgg = regexp.MustCompile(`[a-z_][a-z0-9_]*`)
)

// requiredPanels are the metrics the dashboard must chart (issue 5).
var requiredPanels = []string{
	"signupsync_ingest_requests_total",
	"signupsync_ingest_request_duration_seconds",
	"signupsync_ingest_published_total",
	"signupsync_importer_outcomes_total",
	"signupsync_importer_batch_size",
	"signupsync_importer_firebase_call_seconds",
	"signupsync_importer_breaker_state",
	"signupsync_importer_breaker_transitions_total",
	"signupsync_importer_consumer_pending",
	"signupsync_importer_consumer_ack_pending",
	"signupsync_dead_letter_depth",
}

// TestGrafanaDashboard parses the dashboard and checks every query against
// the metrics docs/metrics.md documents: names, and the labels of `by (...)`
// (a metric listed without braces has none).
func TestGrafanaDashboard(t *testing.T) {
	documented, where := documentedMetrics(t)
	raw := readFile(t, "deploy", "grafana", "dashboards", "signupsync.json")
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("signupsync.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard without uid or title")
	}
	dsUID := provisionedPrometheusUID(t)

	seen := map[string]bool{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != dsUID {
				t.Errorf("panel %q: datasource %+v, want the provisioned uid %q", p.Title, p.Datasource, dsUID)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no queries", p.Title)
			}
			for _, tg := range p.Targets {
				checkExpr(t, p.Title, tg.Expr, documented, where, seen)
			}
		}
	}
	walk(d.Panels)
	for _, m := range requiredPanels {
		if !seen[m] {
			t.Errorf("no panel charts %s", m)
		}
	}
}

func checkExpr(t *testing.T, title, expr string, documented map[string]documentedMetric, where string, seen map[string]bool) {
	t.Helper()
	names := promMetric.FindAllString(expr, -1)
	if len(names) == 0 {
		t.Errorf("panel %q: query %q uses no signupsync_ metric", title, expr)
		return
	}
	allowed := map[string]bool{}
	labelsKnown := true
	for _, n := range names {
		base := n
		if _, ok := documented[n]; !ok {
			base = histSuffix.ReplaceAllString(n, "")
		}
		m, ok := documented[base]
		if !ok {
			t.Errorf("panel %q: %s is not a metric %s documents", title, n, where)
			continue
		}
		seen[base] = true
		if m.labels == nil {
			labelsKnown = false // the documentation does not list this metric's labels
		}
		for _, l := range m.labels {
			allowed[l] = true
		}
		if base != n {
			allowed["le"] = true
		}
	}
	allowed["instance"], allowed["job"] = true, true // added by Prometheus
	if !labelsKnown {
		return
	}
	for _, by := range promBy.FindAllStringSubmatch(expr, -1) {
		for _, l := range labelsInAgg.FindAllString(by[1], -1) {
			if !allowed[l] {
				t.Errorf("panel %q: groups by %q, which %v does not carry (%s)", title, l, names, where)
			}
		}
	}
}

// provisionedPrometheusUID reads the Prometheus datasource's uid from the
// Grafana provisioning file.
func provisionedPrometheusUID(t *testing.T) string {
	t.Helper()
	var f struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string         `yaml:"name"`
			UID       string         `yaml:"uid"`
			Type      string         `yaml:"type"`
			Access    string         `yaml:"access"`
			URL       string         `yaml:"url"`
			IsDefault bool           `yaml:"isDefault"`
			Editable  bool           `yaml:"editable"`
			JSONData  map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	decodeYAMLStrict(t, &f, "deploy", "grafana", "provisioning", "datasources", "datasources.yaml")
	if f.APIVersion != 1 {
		t.Errorf("datasources.yaml: apiVersion %d", f.APIVersion)
	}
	var uid string
	for _, ds := range f.Datasources {
		switch ds.Type {
		case "prometheus":
			uid = ds.UID
			if ds.URL != "http://prometheus:9090" {
				t.Errorf("Prometheus datasource URL %q, want the compose service", ds.URL)
			}
		case "jaeger":
			if ds.URL != "http://jaeger:16686" {
				t.Errorf("Jaeger datasource URL %q", ds.URL)
			}
		default:
			t.Errorf("unexpected datasource type %q", ds.Type)
		}
	}
	if uid == "" {
		t.Fatal("datasources.yaml: no Prometheus datasource with a uid")
	}
	return uid
}

// TestGrafanaDashboardProvider: the provider reads the folder compose mounts
// the dashboards into.
func TestGrafanaDashboardProvider(t *testing.T) {
	var f struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name                  string            `yaml:"name"`
			Folder                string            `yaml:"folder"`
			Type                  string            `yaml:"type"`
			DisableDeletion       bool              `yaml:"disableDeletion"`
			AllowUIUpdates        bool              `yaml:"allowUiUpdates"`
			UpdateIntervalSeconds int               `yaml:"updateIntervalSeconds"`
			Options               map[string]string `yaml:"options"`
		} `yaml:"providers"`
	}
	decodeYAMLStrict(t, &f, "deploy", "grafana", "provisioning", "dashboards", "signupsync.yaml")
	if len(f.Providers) != 1 || f.Providers[0].Type != "file" {
		t.Fatalf("providers %+v: want one file provider", f.Providers)
	}
	p, err := loadCompose(t, path(t, "compose.yaml"), []string{})
	if err != nil {
		t.Fatal(err)
	}
	var mounted []string
	for _, v := range p.Services["grafana"].Volumes {
		mounted = append(mounted, v.Target)
	}
	if dir := f.Providers[0].Options["path"]; !slices.Contains(mounted, dir) {
		t.Errorf("provider path %q is not a grafana mount (%v)", dir, mounted)
	}
}

// decodeYAMLStrict decodes one YAML document into v, rejecting keys v does
// not declare and duplicate keys.
func decodeYAMLStrict(t *testing.T, v any, elem ...string) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, elem...)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", strings.Join(elem, "/"), err)
	}
}

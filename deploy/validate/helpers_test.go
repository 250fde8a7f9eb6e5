package validate

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// repoRoot is the main module's root: this module lives in deploy/validate.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

// path joins elements to the repository root.
func path(t *testing.T, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{repoRoot(t)}, elem...)...)
}

func readFile(t *testing.T, elem ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(path(t, elem...))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

// documentedMetric is one metric the documentation lists.
type documentedMetric struct {
	name   string   // full name, signupsync_ prefix included
	labels []string // labels in braces; nil when the source does not say
}

var (
	metricEntry = regexp.MustCompile("`([a-z0-9_]+)(?:\\{([a-z0-9_,]*)\\})?`")
	metricRow   = regexp.MustCompile("^\\| `(signupsync_[a-z0-9_]+)(?:\\{([a-z0-9_,]*)\\})?`")
)

// documentedMetrics reads the metrics the documentation lists: the tables
// of docs/metrics.md (first column: the metric with its labels in braces,
// none when it has none), or, where that file does not exist, the
// "* Metrics" bullet of README.md's Observability section.
func documentedMetrics(t *testing.T) (map[string]documentedMetric, string) {
	t.Helper()
	if b, err := os.ReadFile(path(t, "docs", "metrics.md")); err == nil {
		out := map[string]documentedMetric{}
		for _, line := range strings.Split(string(b), "\n") {
			if m := metricRow.FindStringSubmatch(line); m != nil {
				labels := []string{}
				if m[2] != "" {
					labels = strings.Split(m[2], ",")
				}
				out[m[1]] = documentedMetric{name: m[1], labels: labels}
			}
		}
		if len(out) < 10 {
			t.Fatalf("docs/metrics.md: only %d metrics found in its tables: %v", len(out), keys(out))
		}
		return out, "docs/metrics.md"
	}
	return readmeMetrics(t), "README.md"
}

// readmeMetrics reads the metric names from the README's Observability
// section: the "* Metrics (`signupsync_…`)" bullet lists them without the
// prefix, with their labels in braces.
func readmeMetrics(t *testing.T) map[string]documentedMetric {
	t.Helper()
	var bullet strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(readFile(t, "README.md"))))
	in, collecting := false, false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = strings.TrimSpace(line) == "## Observability"
			collecting = false
			continue
		case !in:
			continue
		case strings.HasPrefix(line, "* Metrics"):
			collecting = true
		case collecting && (strings.HasPrefix(line, "* ") || strings.TrimSpace(line) == ""):
			collecting = false
		}
		if collecting {
			bullet.WriteString(line)
			bullet.WriteByte(' ')
		}
	}
	text := bullet.String()
	if text == "" {
		t.Fatal("neither docs/metrics.md nor a \"* Metrics\" bullet in README.md's Observability section")
	}
	prefix := "signupsync_"
	if !strings.Contains(text, "`"+prefix) {
		t.Fatalf("README.md metrics bullet does not name the %s prefix: %q", prefix, text)
	}
	out := map[string]documentedMetric{}
	for _, m := range metricEntry.FindAllStringSubmatch(text, -1) {
		name := m[1]
		if name == prefix || strings.HasSuffix(name, "_") {
			continue // the "`signupsync_…`" heading itself
		}
		var labels []string
		if m[2] != "" {
			labels = strings.Split(m[2], ",")
		}
		out[prefix+name] = documentedMetric{name: prefix + name, labels: labels}
	}
	if len(out) < 10 {
		t.Fatalf("README.md: only %d metrics found in the Observability section: %v", len(out), keys(out))
	}
	return out
}

var (
	// quotedVar is a variable name as the binary declares it: a quoted
	// string (a flag's variable) or an envvar:"A,B" struct tag.
	quotedVar = regexp.MustCompile("[\"`,](SIGNUPSYNC_[A-Z0-9_]+)")
	anyVar    = regexp.MustCompile(`\bSIGNUPSYNC_[A-Z0-9_]+`)
	configVar = regexp.MustCompile("^\\| `([A-Z0-9_]+)`(?:, `([A-Z0-9_]+)`)?")
)

// binarySources are the folders whose Go files declare the commands'
// settings (STYLE.md: no os.Getenv below main).
var binarySources = [][]string{{"services", "signupsync"}, {"internal", "rolerun"}}

// configVars are the SIGNUPSYNC_* settings a deployment may set: the ones
// the binary reads (declared in its command sources) and, where a
// configuration reference exists (docs/configuration.md, or the
// Configuration table of an older README.md), that it documents. where
// names the sources for messages.
func configVars(t *testing.T) (vars map[string]bool, where string) {
	t.Helper()
	read := map[string]bool{}
	for _, dir := range binarySources {
		files, err := filepath.Glob(filepath.Join(path(t, dir...), "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range quotedVar.FindAllStringSubmatch(string(b), -1) {
				read[m[1]] = true
			}
		}
	}
	if !read["SIGNUPSYNC_NATS_URL"] || !read["SIGNUPSYNC_AUTH0_CLIENT_SECRET"] {
		t.Fatalf("services/signupsync: variable declarations not understood: %v", keys(read))
	}
	where = "the variables services/signupsync reads"
	var doc map[string]bool
	if b, err := os.ReadFile(path(t, "docs", "configuration.md")); err == nil {
		doc = map[string]bool{}
		for _, v := range anyVar.FindAllString(string(b), -1) {
			doc[v] = true
		}
		where += " and docs/configuration.md"
	} else if readme := readmeConfigVars(t); readme != nil {
		doc = readme
		where += " and README.md's Configuration table"
	} else {
		t.Log("no configuration reference (docs/configuration.md) to check the variables against; checked against the binary's sources only")
	}
	vars = map[string]bool{}
	for v := range read {
		if doc == nil || doc[v] {
			vars[v] = true
		}
	}
	return vars, where
}

// readmeConfigVars reads the SIGNUPSYNC_* and other variables of the
// README's Configuration table, or nil when it has none.
func readmeConfigVars(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, line := range strings.Split(string(readFile(t, "README.md")), "\n") {
		if m := configVar.FindStringSubmatch(line); m != nil {
			out[m[1]] = true
			if m[2] != "" {
				out[m[2]] = true
			}
		}
	}
	if !out["SIGNUPSYNC_NATS_URL"] {
		return nil
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

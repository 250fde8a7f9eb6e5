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

// documentedMetric is one entry of the README's Observability list.
type documentedMetric struct {
	name   string   // full name, signupsync_ prefix included
	labels []string // labels in braces, if any
}

var metricEntry = regexp.MustCompile("`([a-z0-9_]+)(?:\\{([a-z0-9_,]*)\\})?`")

// readmeMetrics reads the metric names from the README's Observability
// section: the "Metrics (`signupsync_…`)" bullet lists them without the
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
		t.Fatal("README.md: no \"* Metrics\" bullet in the Observability section")
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

var configVar = regexp.MustCompile("^\\| `([A-Z0-9_]+)`(?:, `([A-Z0-9_]+)`)?")

// readmeConfigVars reads the SIGNUPSYNC_* and other variables of the
// README's Configuration table.
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
	if !out["SIGNUPSYNC_NATS_URL"] || !out["SIGNUPSYNC_AUTH0_CLIENT_SECRET"] {
		t.Fatalf("README.md configuration table not understood: %v", keys(out))
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

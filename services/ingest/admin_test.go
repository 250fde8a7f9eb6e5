package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/schemas"
)

// adminPair serves one ingest service's public and admin handlers; its
// readiness asks the broker as `signupsync ingest` does (SIGNUPS's info).
type adminPair struct {
	public, admin *httptest.Server
	logs          *testenv.Buffer
	nats          *testenv.NATS
}

func newAdminPair(t *testing.T) *adminPair {
	t.Helper()
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	testenv.Ensure(t, js)
	set, err := schemas.Compile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ActionSecrets = []string{testSecret}
	logs := &testenv.Buffer{}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "signupsync_ingest_requests_total 0") })
	svc, err := New(cfg, Deps{Publisher: js, Schemas: set, Logger: slog.New(slog.NewJSONHandler(logs, nil)), MetricsHandler: metrics,
		Ready: func(ctx context.Context) error {
			_, err := js.Stream(ctx, events.StreamSignups)
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	p := &adminPair{public: httptest.NewServer(svc.Handler()), admin: httptest.NewServer(svc.AdminHandler()), logs: logs, nats: n}
	t.Cleanup(p.public.Close)
	t.Cleanup(p.admin.Close)
	return p
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestPublicPortServesNoMetricsOrReadiness: the webhook port, which faces
// the internet, answers 404 for /metrics and /readyz; the admin handler
// serves them, and both serve /healthz.
func TestPublicPortServesNoMetricsOrReadiness(t *testing.T) {
	p := newAdminPair(t)
	for _, path := range []string{"/metrics", "/readyz"} {
		if st, body := get(t, p.public.URL+path); st != http.StatusNotFound {
			t.Errorf("public GET %s: %d %q, want 404", path, st, body)
		}
	}
	tests := []struct {
		server, path, want string
	}{
		{p.admin.URL, "/metrics", "signupsync_ingest_requests_total"},
		{p.admin.URL, "/readyz", `{"status":"ready"}`},
		{p.admin.URL, "/healthz", `{"status":"ok"}`},
		{p.public.URL, "/healthz", `{"status":"ok"}`},
	}
	for _, tt := range tests {
		if st, body := get(t, tt.server+tt.path); st != http.StatusOK || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s%s: %d %q, want 200 with %s", tt.server, tt.path, st, body, tt.want)
		}
	}
}

// TestReadyzHidesTheBrokerError: with the broker down /readyz answers 503
// {"status":"unavailable"} and nothing else; the reason goes to the log.
func TestReadyzHidesTheBrokerError(t *testing.T) {
	p := newAdminPair(t)
	p.nats.Stop()
	st, body := get(t, p.admin.URL+"/readyz")
	if st != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the broker down: %d %q, want 503", st, body)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	if len(got) != 1 || got["status"] != "unavailable" {
		t.Fatalf("/readyz body %q, want exactly {\"status\":\"unavailable\"}", body)
	}
	if !strings.Contains(p.logs.String(), `"msg":"not ready"`) || !strings.Contains(p.logs.String(), `"err":"`) {
		t.Fatalf("the reason is not logged:\n%s", p.logs)
	}
}

package exchange_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/services/exchange"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestPublicPortServesNoMetricsOrReadiness: the exchange port, which faces
// the internet, answers 404 for /metrics and /readyz; the admin handler
// serves them, and both serve /healthz.
func TestPublicPortServesNoMetricsOrReadiness(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/metrics", "/readyz"} {
		if st, body := httpGet(t, e.srv.URL+path); st != http.StatusNotFound {
			t.Errorf("public GET %s: %d %q, want 404", path, st, body)
		}
	}
	tests := []struct {
		url, want string
	}{
		{e.admin.URL + "/readyz", `{"status":"ready"}`},
		{e.admin.URL + "/metrics", "signupsync_exchange_jwks_fetches_total"},
		{e.admin.URL + "/healthz", `{"status":"ok"}`},
		{e.srv.URL + "/healthz", `{"status":"ok"}`},
	}
	for _, tt := range tests {
		if st, body := httpGet(t, tt.url); st != http.StatusOK || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s: %d %q, want 200 with %s", tt.url, st, body, tt.want)
		}
	}
}

// TestReadyzHidesTheReason: with the broker, or the issuer's keys,
// unavailable, /readyz answers 503 {"status":"unavailable"} and nothing
// else; the reason goes to the log.
func TestReadyzHidesTheReason(t *testing.T) {
	const brokerErr = "nats: no servers available for connection: 10.9.8.7:4222"
	tests := []struct {
		name  string
		env   func(t *testing.T) *env
		inLog string
	}{
		{"broker down", func(t *testing.T) *env {
			return newEnv(t, nil, func(d *exchange.Deps) {
				d.Ready = func(context.Context) error { return errors.New(brokerErr) }
			})
		}, "10.9.8.7"},
		{"issuer down before any key was fetched", func(t *testing.T) *env {
			e := newEnv(t, nil)
			e.iss.FailWith(http.StatusServiceUnavailable)
			return e
		}, "jwks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.env(t)
			st, body := httpGet(t, e.admin.URL+"/readyz")
			if st != http.StatusServiceUnavailable {
				t.Fatalf("/readyz: %d %q, want 503", st, body)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 1 || got["status"] != "unavailable" {
				t.Fatalf("/readyz body %q, want exactly {\"status\":\"unavailable\"}", body)
			}
			logs := strings.ToLower(e.logs.String())
			if !strings.Contains(logs, `"msg":"not ready"`) || !strings.Contains(logs, tt.inLog) {
				t.Fatalf("the reason (%s) is not logged:\n%s", tt.inLog, e.logs)
			}
		})
	}
}

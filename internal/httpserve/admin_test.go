package httpserve

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadyzTellsTheLogNotTheCaller: /readyz answers 503 with a fixed body
// while not ready and logs the reason; /healthz answers 200 regardless;
// /metrics is what it is given.
func TestReadyzTellsTheLogNotTheCaller(t *testing.T) {
	var logs strings.Builder
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "m 1\n") })
	ready := func(context.Context) error { return errors.New("broker at 10.0.0.7 refused") }
	srv := httptest.NewServer(Admin(metrics, ready, slog.New(slog.NewTextHandler(&logs, nil))))
	defer srv.Close()
	for path, want := range map[string]struct {
		code int
		body string
	}{
		"/readyz":  {http.StatusServiceUnavailable, `{"status":"unavailable"}`},
		"/healthz": {http.StatusOK, `{"status":"ok"}`},
		"/metrics": {http.StatusOK, "m 1"},
	} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want.code || strings.TrimSpace(string(body)) != want.body {
			t.Errorf("%s: %d %q, want %d %q", path, res.StatusCode, body, want.code, want.body)
		}
	}
	if !strings.Contains(logs.String(), "10.0.0.7") {
		t.Error("the reason is not logged")
	}
}

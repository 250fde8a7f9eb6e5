package httpserve

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// Admin returns the operator endpoints of a role, for a listener that is
// not exposed to the internet:
//
//   - GET /healthz: 200 {"status":"ok"} while the process serves (liveness);
//   - GET /readyz: 200 {"status":"ready"} while ready reports nil, else 503
//     {"status":"unavailable"}. The reason is logged to log, never answered;
//   - GET /metrics: metrics (404 when nil).
//
// ready must be safe for concurrent use; it may be called before the role
// runs (it then reports why not).
func Admin(metrics http.Handler, ready func(context.Context) error, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(r.Context()); err != nil {
			log.WarnContext(r.Context(), "not ready", "err", err)
			writeStatus(w, http.StatusServiceUnavailable, "unavailable")
			return
		}
		writeStatus(w, http.StatusOK, "ready")
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return mux
}

func writeStatus(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": status})
}

// NewAdminServer returns a server for h, the admin endpoints, with
// timeouts that bound a slow or stuck client: a probe or a scrape needs no
// more.
func NewAdminServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}

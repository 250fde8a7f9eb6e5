package ingest

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/signupsync/signupsync/internal/httpserve"
)

// AdminHandler returns the operator endpoints, for the listener on
// Config.AdminAddr that is not exposed to the internet:
//
//   - GET /metrics: Deps.MetricsHandler (404 without one);
//   - GET /healthz: 200 while the process serves (liveness);
//   - GET /readyz: 200 {"status":"ready"} while the broker takes writes,
//     else 503 {"status":"unavailable"}. The reason is logged, never
//     answered.
//
// [Service.Handler], the public webhook port, serves none of /metrics and
// /readyz.
func (s *Service) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	if s.metricsH != nil {
		mux.Handle("GET /metrics", s.metricsH)
	}
	return mux
}

func (s *Service) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Service) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if err := s.ready(r.Context()); err != nil {
		s.log.WarnContext(r.Context(), "not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// ServeAdmin runs the admin server ([Service.AdminHandler]) on ln until ctx
// is cancelled, then shuts it down within ShutdownTimeout.
func (s *Service) ServeAdmin(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.AdminHandler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	s.log.InfoContext(ctx, "ingest admin listening", "addr", ln.Addr().String())
	if err := httpserve.Serve(ctx, srv, ln, s.cfg.ShutdownTimeout); err != nil {
		return fmt.Errorf("ingest admin: %w", err)
	}
	return nil
}

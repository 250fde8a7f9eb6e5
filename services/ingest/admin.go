package ingest

import (
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
	return httpserve.Admin(s.metricsH, s.ready, s.log)
}

// handleHealthz is the public port's bare liveness answer.
func (s *Service) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

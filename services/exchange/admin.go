package exchange

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
)

// ErrNotReady is what [Service.Ready] wraps when the exchange cannot serve.
var ErrNotReady = errors.New("exchange not ready")

// Ready reports whether the exchange can serve: the broker answers
// (Deps.Ready) and the issuer's signing keys are loaded. While no keys are
// loaded it fetches them, through the verifier's once-per-interval
// throttle, so frequent probes cause at most one fetch per
// JWKSRefreshInterval. It is safe for concurrent use.
func (s *Service) Ready(ctx context.Context) error {
	err := s.ready(ctx)
	if err == nil && s.verifier.keys.snap.Load() == nil {
		err = s.verifier.Warm(ctx)
	}
	if err != nil {
		return errors.Join(ErrNotReady, err)
	}
	return nil
}

// AdminHandler returns the operator endpoints, for a listener that is not
// exposed to the internet (`signupsync exchange --metrics-addr`):
//
//   - GET /metrics: metrics (404 when nil);
//   - GET /healthz: 200 while the process serves (liveness);
//   - GET /readyz: 200 {"status":"ready"} while ready reports nil (usually
//     [Service.Ready]), else 503 {"status":"unavailable"}. The reason is
//     logged to log, never answered.
//
// ready may be called before the Service exists (it then reports an
// error), so the admin listener can start first.
func AdminHandler(metrics http.Handler, ready func(context.Context) error, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", handleHealthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(r.Context()); err != nil {
			log.WarnContext(r.Context(), "not ready", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return mux
}

func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

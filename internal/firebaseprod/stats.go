package firebaseprod

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// serveControl serves GET /firebaseprod/v1/projects/{project}/stats, the
// project's [Stats] as JSON. It answers even while the server is
// unavailable or frozen.
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request, rest string) {
	projectID, ok := strings.CutSuffix(rest, "/stats")
	if !ok || projectID == "" || strings.Contains(projectID, "/") || r.Method != http.MethodGet {
		writeError(w, notFound(r))
		return
	}
	writeJSON(w, http.StatusOK, s.Stats(projectID))
}

// FetchStats reads a project's [Stats] from a Server at host (host:port),
// for tests whose stand-in runs in another process.
func FetchStats(ctx context.Context, host, projectID string) (Stats, error) {
	u := "http://" + host + controlPrefix + url.PathEscape(projectID) + "/stats"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Stats{}, fmt.Errorf("firebaseprod stats of %s: %w", projectID, err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return Stats{}, fmt.Errorf("firebaseprod stats of %s: %w", projectID, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, DefaultMaxBodyBytes))
	if err != nil {
		return Stats{}, fmt.Errorf("firebaseprod stats of %s: %w", projectID, err)
	}
	if res.StatusCode != http.StatusOK {
		return Stats{}, fmt.Errorf("firebaseprod stats of %s: status %d: %s", projectID, res.StatusCode, body)
	}
	var st Stats
	if err := json.Unmarshal(body, &st); err != nil {
		return Stats{}, fmt.Errorf("firebaseprod stats of %s: %w", projectID, err)
	}
	return st, nil
}

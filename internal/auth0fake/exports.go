package auth0fake

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// exportField is one entry of a users-exports job's fields.
type exportField struct {
	Name     string `json:"name"`
	ExportAs string `json:"export_as,omitempty"`
}

type job struct {
	ID           string        `json:"id"`
	Type         string        `json:"type"`
	Status       string        `json:"status"`
	ConnectionID string        `json:"connection_id,omitempty"`
	Format       string        `json:"format"`
	Limit        int           `json:"limit,omitempty"`
	Fields       []exportField `json:"fields,omitempty"`
	CreatedAt    string        `json:"created_at"`
	Location     string        `json:"location,omitempty"`
	Percentage   *int          `json:"percentage_done,omitempty"`
	TimeLeft     *int          `json:"time_left_seconds,omitempty"`

	polls int
	file  []byte
}

type link struct {
	job     string
	expires time.Time
}

func (s *Server) handleCreateExport(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ConnectionID string        `json:"connection_id"`
		Format       string        `json:"format"`
		Limit        int           `json:"limit"`
		Fields       []exportField `json:"fields"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "Payload validation error: 'Invalid JSON body' "+err.Error(), "invalid_body")
		return
	}
	if req.Format == "" {
		req.Format = "csv"
	}
	if req.Format != "json" && req.Format != "csv" {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("Payload validation error: 'No enum match for: \"%s\"' on property format (Format of the file. Must be json or csv).", req.Format), "invalid_body")
		return
	}
	if req.Limit < 0 {
		apiError(w, http.StatusBadRequest, "Payload validation error: 'Value -1 is less than minimum 1' on property limit.", "invalid_body")
		return
	}
	for _, f := range req.Fields {
		if f.Name == "" {
			apiError(w, http.StatusBadRequest, "Payload validation error: 'Missing required property: name' on property fields.", "invalid_body")
			return
		}
	}
	s.mu.Lock()
	j := &job{
		ID: "job_" + randomID(16), Type: "users_export", Status: "pending",
		ConnectionID: req.ConnectionID, Format: req.Format, Limit: req.Limit, Fields: req.Fields,
		CreatedAt: s.now().UTC().Format(TimeLayout),
	}
	s.jobs[j.ID] = j
	resp := *j
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, resp)
}

// handleGetJob moves the job one step: pending → processing (for
// exportPolls polls) → completed. A completed job builds its file once, from
// the users at that moment, and every read mints a fresh download link that
// works for the link TTL, like a pre-signed URL.
func (s *Server) handleGetJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	j, ok := s.jobs[id]
	if !ok {
		s.mu.Unlock()
		apiError(w, http.StatusNotFound, "The job does not exist.", "inexistent_job")
		return
	}
	j.polls++
	build := j.Status != "completed" && j.polls > s.cfg.exportPolls
	if !build && j.Status != "completed" {
		j.Status = "processing"
		pct, left := 100*j.polls/(s.cfg.exportPolls+1), s.cfg.exportPolls-j.polls+1
		j.Percentage, j.TimeLeft = &pct, &left
	}
	s.mu.Unlock()

	if build {
		file, err := s.exportFile(j.Format, j.Fields, j.Limit)
		if err != nil {
			apiError(w, http.StatusInternalServerError, err.Error(), "")
			return
		}
		s.mu.Lock()
		if j.Status != "completed" {
			j.Status, j.file, j.Percentage, j.TimeLeft = "completed", file, nil, nil
		}
		s.mu.Unlock()
	}

	s.mu.Lock()
	if j.Status == "completed" {
		l := randomID(20)
		s.links[l] = link{job: j.ID, expires: s.now().Add(s.cfg.linkTTL)}
		j.Location = fmt.Sprintf("%s/exports/%s/%s.%s.gz", s.ts.URL, l, j.ID, j.Format)
	}
	resp := *j
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

// exportFile renders the users as gzipped NDJSON or CSV.
func (s *Server) exportFile(format string, fields []exportField, limit int) ([]byte, error) {
	users, err := s.snapshot(false)
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(users) > limit {
		users = users[:limit]
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if format == "csv" {
		if len(fields) == 0 {
			fields = []exportField{{Name: "user_id"}, {Name: "email"}, {Name: "email_verified"}, {Name: "name"}, {Name: "created_at"}}
		}
		cw := csv.NewWriter(zw)
		head := make([]string, len(fields))
		for i, f := range fields {
			head[i] = exportName(f)
		}
		_ = cw.Write(head)
		for _, u := range users {
			row := make([]string, len(fields))
			for i, f := range fields {
				row[i] = scalar(lookup(u, f.Name))
			}
			_ = cw.Write(row)
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return nil, fmt.Errorf("write csv export: %w", err)
		}
	} else {
		enc := json.NewEncoder(zw)
		for _, u := range users {
			obj := u
			if len(fields) > 0 {
				obj = map[string]any{}
				for _, f := range fields {
					if v := lookup(u, f.Name); v != nil {
						obj[exportName(f)] = v
					}
				}
			}
			if err := enc.Encode(obj); err != nil {
				return nil, fmt.Errorf("write json export: %w", err)
			}
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip export: %w", err)
	}
	return buf.Bytes(), nil
}

func exportName(f exportField) string {
	if f.ExportAs != "" {
		return f.ExportAs
	}
	return f.Name
}

// handleDownload serves an export file like S3 serves a pre-signed URL:
// no bearer token, and an XML 403 once the link expired.
func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	l, ok := s.links[r.PathValue("link")]
	var file []byte
	expired := false
	if ok {
		file = s.jobs[l.job].file
		expired = !s.now().Before(l.expires)
	}
	s.mu.Unlock()
	switch {
	case !ok:
		s3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
	case expired:
		s3Error(w, http.StatusForbidden, "AccessDenied", "Request has expired")
	default:
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("Content-Length", fmt.Sprint(len(file)))
		_, _ = w.Write(file)
	}
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}

package auth0api_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/auth0fake"
)

// authSpy records the Authorization header of every request by path.
type authSpy struct {
	base http.RoundTripper
	mu   sync.Mutex
	seen map[string]string
}

func (s *authSpy) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.seen[r.URL.Path] = r.Header.Get("Authorization")
	s.mu.Unlock()
	return s.base.RoundTrip(r)
}

func TestExportUsersJobAndDownload(t *testing.T) {
	srv := auth0fake.New(t, auth0fake.WithExportPolls(1))
	created := time.Date(2025, 3, 4, 5, 6, 7, 890e6, time.UTC)
	srv.AddUsers(auth0fake.User{
		UserID: "github|42", Email: "dev@example.com", EmailVerified: true, Name: "Dev", Nickname: "dev",
		CreatedAt: created, AppMetadata: map[string]any{"secret": "not exported"},
		Identities: []auth0fake.Identity{{Provider: "github", Connection: "github", UserID: "42", Numeric: true, IsSocial: true}},
	})
	spy := &authSpy{base: srv.Client().Transport, seen: map[string]string{}}
	hc := *srv.Client()
	hc.Transport = spy
	c := newClient(t, srv, func(cfg *auth0api.Config) { cfg.HTTPClient = &hc })

	id, err := c.ExportUsers(t.Context(), auth0api.ExportFields, auth0api.FormatJSON)
	if err != nil || !strings.HasPrefix(id, "job_") {
		t.Fatalf("ExportUsers = %q, %v", id, err)
	}
	var statuses []string
	var job auth0api.ExportJob
	for job.Status != auth0api.JobCompleted && len(statuses) < 5 {
		if job, err = c.ExportJob(t.Context(), id); err != nil {
			t.Fatalf("ExportJob: %v", err)
		}
		statuses = append(statuses, job.Status)
	}
	if want := []string{auth0api.JobProcessing, auth0api.JobCompleted}; !reflect.DeepEqual(statuses, want) {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
	if job.ID != id || job.Format != auth0api.FormatJSON || job.Location == "" {
		t.Fatalf("completed job %+v", job)
	}

	var buf bytes.Buffer
	n, err := c.DownloadExport(t.Context(), job.Location, &buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("DownloadExport = %d, %v (have %d bytes)", n, err, buf.Len())
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	sc := bufio.NewScanner(zr)
	if !sc.Scan() {
		t.Fatal("empty export")
	}
	var line map[string]any
	if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
		t.Fatalf("line %s: %v", sc.Text(), err)
	}
	want := map[string]any{
		"user_id": "github|42", "email": "dev@example.com", "email_verified": true, "name": "Dev", "nickname": "dev",
		"created_at": "2025-03-04T05:06:07.890Z",
		"identities": []any{map[string]any{"provider": "github", "connection": "github", "user_id": float64(42), "isSocial": true}},
	}
	if !reflect.DeepEqual(line, want) {
		t.Errorf("export line\n got %v\nwant %v", line, want)
	}
	if sc.Scan() {
		t.Errorf("second line %s", sc.Text())
	}

	spy.mu.Lock()
	defer spy.mu.Unlock()
	for path, auth := range spy.seen {
		api := strings.HasPrefix(path, "/api/v2/")
		if api && auth != "Bearer "+srv.Token() || !api && auth != "" {
			t.Errorf("%s sent Authorization %q", path, auth)
		}
	}
}

func TestExportErrors(t *testing.T) {
	srv := auth0fake.New(t, auth0fake.WithExportPolls(0), auth0fake.WithLinkTTL(time.Minute))
	c := newClient(t, srv)
	id, err := c.ExportUsers(t.Context(), nil, auth0api.FormatJSON)
	if err != nil {
		t.Fatalf("ExportUsers: %v", err)
	}
	job, err := c.ExportJob(t.Context(), id)
	if err != nil || job.Status != auth0api.JobCompleted {
		t.Fatalf("ExportJob = %+v, %v", job, err)
	}
	expired := job.Location
	srv.Advance(time.Minute)

	tests := []struct {
		name          string
		setup         func()
		call          func() error
		want          error
		wantTransient bool
	}{
		{name: "expired link", call: func() error {
			_, err := c.DownloadExport(t.Context(), expired, &bytes.Buffer{})
			return err
		}, want: auth0api.ErrLinkExpired},
		{name: "unknown link", call: func() error {
			_, err := c.DownloadExport(t.Context(), srv.URL()+"/exports/nope/file.json.gz", &bytes.Buffer{})
			return err
		}, want: auth0api.ErrPermanent},
		{name: "plain http link", call: func() error {
			_, err := c.DownloadExport(t.Context(), strings.Replace(expired, "https:", "http:", 1), &bytes.Buffer{})
			return err
		}, want: auth0api.ErrPermanent},
		{name: "unknown job", call: func() error {
			_, err := c.ExportJob(t.Context(), "job_missing")
			return err
		}, want: auth0api.ErrNotFound},
		{name: "bad format", call: func() error {
			_, err := c.ExportUsers(t.Context(), nil, "xml")
			return err
		}, want: auth0api.ErrPermanent},
		{name: "rate limited create", setup: func() { srv.Fail(http.StatusTooManyRequests, 1) }, call: func() error {
			_, err := c.ExportUsers(t.Context(), auth0api.ExportFields, auth0api.FormatJSON)
			return err
		}, wantTransient: true},
		{name: "unavailable job read", setup: func() { srv.Fail(http.StatusServiceUnavailable, 1) }, call: func() error {
			_, err := c.ExportJob(t.Context(), id)
			return err
		}, wantTransient: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			err := tt.call()
			if tt.wantTransient {
				if !auth0api.IsTransient(err) || errors.Is(err, auth0api.ErrPermanent) {
					t.Errorf("err = %v, want transient", err)
				}
				if errors.Is(err, auth0api.ErrPermanent) {
					t.Errorf("err = %v also matches ErrPermanent", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || auth0api.IsTransient(err) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}

	// A 429 carries X-RateLimit-Reset, which RetryAfter reads.
	srv.Fail(http.StatusTooManyRequests, 1)
	_, err = c.ExportJob(t.Context(), id)
	if d := auth0api.RetryAfter(err); d <= 0 {
		t.Errorf("RetryAfter(%v) = %v, want the X-RateLimit-Reset delay", err, d)
	}
}

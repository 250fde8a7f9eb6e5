package reconciler_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/services/reconciler"
)

// spyExporter records the job states read and can disturb the exchange:
// age the first download link past its life, or make the fake fail on the
// first job read.
type spyExporter struct {
	reconciler.Exporter
	srv           *auth0fake.Server
	expireFirst   bool
	failFirstRead int

	mu        sync.Mutex
	statuses  []string
	downloads int
}

func (s *spyExporter) ExportJob(ctx context.Context, id string) (auth0api.ExportJob, error) {
	s.mu.Lock()
	if s.failFirstRead != 0 {
		s.srv.Fail(s.failFirstRead, 1)
		s.failFirstRead = 0
	}
	s.mu.Unlock()
	j, err := s.Exporter.ExportJob(ctx, id)
	if err == nil {
		s.mu.Lock()
		s.statuses = append(s.statuses, j.Status)
		s.mu.Unlock()
	}
	return j, err
}

func (s *spyExporter) DownloadExport(ctx context.Context, location string, w io.Writer) (int64, error) {
	s.mu.Lock()
	s.downloads++
	first := s.downloads == 1
	s.mu.Unlock()
	if first && s.expireFirst {
		s.srv.Advance(2 * auth0fake.DefaultLinkTTL) // a slow start: the link is dead
	}
	return s.Exporter.DownloadExport(ctx, location, w)
}

func readLines(t *testing.T, path string, gz bool) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("output is not gzip: %v", err)
		}
		r = zr
	}
	var out []map[string]any
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExport(t *testing.T) {
	tests := []struct {
		name        string
		gzip        bool
		expireFirst bool
		failRead    int
		opts        []auth0fake.Option

		wantStatuses  []string
		wantDownloads int
		wantSleeps    []time.Duration
	}{
		{name: "gunzipped", opts: []auth0fake.Option{auth0fake.WithExportPolls(2)},
			wantStatuses:  []string{auth0api.JobProcessing, auth0api.JobProcessing, auth0api.JobCompleted},
			wantDownloads: 1, wantSleeps: []time.Duration{time.Second, 2 * time.Second}},
		{name: "gzipped", gzip: true, opts: []auth0fake.Option{auth0fake.WithExportPolls(1)},
			wantStatuses:  []string{auth0api.JobProcessing, auth0api.JobCompleted},
			wantDownloads: 1, wantSleeps: []time.Duration{time.Second}},
		{name: "expired link is replaced by reading the job again", expireFirst: true,
			opts:          []auth0fake.Option{auth0fake.WithExportPolls(1)},
			wantStatuses:  []string{auth0api.JobProcessing, auth0api.JobCompleted, auth0api.JobCompleted},
			wantDownloads: 2, wantSleeps: []time.Duration{time.Second}},
		{name: "503 while polling is retried", failRead: http.StatusServiceUnavailable,
			opts:          []auth0fake.Option{auth0fake.WithExportPolls(1)},
			wantStatuses:  []string{auth0api.JobProcessing, auth0api.JobCompleted},
			wantDownloads: 1, wantSleeps: []time.Duration{time.Second, time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts...)
			users := spread("x", 25, base, time.Minute)
			users[3].Identities = append(users[3].Identities, auth0fake.Identity{Provider: "github", Connection: "github", UserID: "77", Numeric: true, IsSocial: true})
			users[4].AppMetadata = map[string]any{"not": "exported"}
			e.srv.AddUsers(users...)
			spy := &spyExporter{Exporter: e.api, srv: e.srv, expireFirst: tt.expireFirst, failFirstRead: tt.failRead}
			cfg := reconciler.DefaultExportConfig()
			cfg.Out = filepath.Join(t.TempDir(), "users.ndjson")
			cfg.Gzip, cfg.RPS = tt.gzip, 0

			res, err := reconciler.Export(t.Context(), cfg, reconciler.ExportDeps{Auth0: spy, Logger: e.logger(), Sleep: e.sleep})
			if err != nil {
				t.Fatalf("Export: %v", err)
			}
			if !slices.Equal(spy.statuses, tt.wantStatuses) || spy.downloads != tt.wantDownloads {
				t.Errorf("job reads %v, downloads %d; want %v, %d", spy.statuses, spy.downloads, tt.wantStatuses, tt.wantDownloads)
			}
			if got := e.slept(); !slices.Equal(got, tt.wantSleeps) {
				t.Errorf("slept %v, want %v", got, tt.wantSleeps)
			}
			if res.Users != len(users) || res.Downloads != tt.wantDownloads || res.Gzip != tt.gzip || res.Path != cfg.Out {
				t.Errorf("result %+v", res)
			}
			if st, err := os.Stat(cfg.Out); err != nil || st.Size() != res.Bytes || st.Mode().Perm() != 0o600 {
				t.Errorf("output %v (%v), want %d bytes, mode 0600", st, err, res.Bytes)
			}
			entries, _ := os.ReadDir(filepath.Dir(cfg.Out))
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only the output (no temporary files)", len(entries))
			}

			lines := readLines(t, cfg.Out, tt.gzip)
			if len(lines) != len(users) {
				t.Fatalf("%d lines, want %d", len(lines), len(users))
			}
			for _, l := range lines {
				for k := range l {
					if !slices.Contains(auth0api.ExportFields, k) {
						t.Errorf("line carries %q, which was not asked for", k)
					}
				}
			}
			wantIdentities := []any{
				map[string]any{"provider": "google-oauth2", "connection": "google-oauth2", "user_id": "x00003", "isSocial": true},
				map[string]any{"provider": "github", "connection": "github", "user_id": float64(77), "isSocial": true},
			}
			l := lines[3]
			if l["user_id"] != "google-oauth2|x00003" || l["email_verified"] != true || l["created_at"] != users[3].CreatedAt.Format(auth0fake.TimeLayout) ||
				!reflect.DeepEqual(l["identities"], wantIdentities) {
				t.Errorf("line %v", l)
			}
			e.noPII()
		})
	}
}

func TestExportFailures(t *testing.T) {
	tests := []struct {
		name        string
		opts        []auth0fake.Option
		existing    bool
		force       bool
		maxAttempts int
		setup       func(srv *auth0fake.Server)

		wantErr, wantAlso error
		wantCreated       int
	}{
		{name: "existing output is refused", existing: true, wantErr: reconciler.ErrOutputExists},
		{name: "existing output with --force is replaced", existing: true, force: true, wantCreated: 1},
		{name: "links that are always dead give up", opts: []auth0fake.Option{auth0fake.WithLinkTTL(0)}, maxAttempts: 3,
			wantErr: reconciler.ErrGaveUp, wantAlso: auth0api.ErrLinkExpired, wantCreated: 1},
		{name: "bad credentials", setup: func(srv *auth0fake.Server) { srv.Fail(http.StatusUnauthorized, 1) },
			wantErr: auth0api.ErrPermanent, wantCreated: 1},
		{name: "rate limited create is waited out", setup: func(srv *auth0fake.Server) { srv.Fail(http.StatusTooManyRequests, 1) },
			wantCreated: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, append([]auth0fake.Option{auth0fake.WithExportPolls(0)}, tt.opts...)...)
			e.srv.AddUsers(spread("y", 3, base, time.Minute)...)
			cfg := reconciler.DefaultExportConfig()
			cfg.Out = filepath.Join(t.TempDir(), "users.ndjson.gz")
			cfg.Gzip, cfg.Force, cfg.RPS = true, tt.force, 0
			if tt.maxAttempts > 0 {
				cfg.MaxAttempts = tt.maxAttempts
			}
			old := []byte("old contents\n")
			if tt.existing {
				if err := os.WriteFile(cfg.Out, old, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.setup != nil {
				tt.setup(e.srv)
			}
			res, err := reconciler.Export(t.Context(), cfg, reconciler.ExportDeps{Auth0: e.api, Logger: e.logger(), Sleep: e.sleep})
			if !errors.Is(err, tt.wantErr) || (tt.wantAlso != nil && !errors.Is(err, tt.wantAlso)) {
				t.Fatalf("Export error %v, want %v and %v", err, tt.wantErr, tt.wantAlso)
			}
			if n := e.srv.Requests()[auth0fake.RouteCreateExport]; n != tt.wantCreated {
				t.Errorf("%d create requests, want %d", n, tt.wantCreated)
			}
			got, readErr := os.ReadFile(cfg.Out)
			entries, _ := os.ReadDir(filepath.Dir(cfg.Out))
			switch {
			case tt.wantErr == nil:
				if res.Users != 3 || len(readLines(t, cfg.Out, true)) != 3 {
					t.Errorf("result %+v", res)
				}
			case tt.existing:
				if !bytes.Equal(got, old) {
					t.Errorf("existing output changed: %q", got)
				}
			default:
				if !errors.Is(readErr, os.ErrNotExist) {
					t.Errorf("a failed export left %s (%v)", cfg.Out, readErr)
				}
			}
			wantEntries := 0
			if tt.existing || tt.wantErr == nil {
				wantEntries = 1
			}
			if len(entries) != wantEntries {
				t.Errorf("directory holds %d entries, want %d (no temporary files)", len(entries), wantEntries)
			}
		})
	}
}

func TestExportConfigValidate(t *testing.T) {
	ok := reconciler.DefaultExportConfig()
	ok.Out = "users.ndjson"
	tests := []struct {
		name    string
		edit    func(*reconciler.ExportConfig)
		wantErr bool
	}{
		{name: "defaults with an output", edit: func(*reconciler.ExportConfig) {}},
		{name: "no output", edit: func(c *reconciler.ExportConfig) { c.Out = "" }, wantErr: true},
		{name: "no fields", edit: func(c *reconciler.ExportConfig) { c.Fields = nil }, wantErr: true},
		{name: "poll max below min", edit: func(c *reconciler.ExportConfig) { c.PollMax = c.PollMin / 2 }, wantErr: true},
		{name: "negative rps", edit: func(c *reconciler.ExportConfig) { c.RPS = -1 }, wantErr: true},
		{name: "no attempts", edit: func(c *reconciler.ExportConfig) { c.MaxAttempts = 0 }, wantErr: true},
		{name: "negative timeout", edit: func(c *reconciler.ExportConfig) { c.Timeout = -time.Second }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			if err := c.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

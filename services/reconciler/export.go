package reconciler

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
)

// Defaults of [ExportConfig].
const (
	DefaultPollMin       = time.Second
	DefaultPollMax       = 30 * time.Second
	DefaultExportTimeout = 2 * time.Hour
)

// ErrExportFailed means Auth0 reported the export job as failed.
var ErrExportFailed = errors.New("auth0 export job failed")

// ErrOutputExists means the output file exists and overwriting was not
// asked for.
var ErrOutputExists = errors.New("output file exists")

// Exporter runs Auth0 users-export jobs. *auth0api.Client satisfies it;
// errors are classified as auth0api documents.
type Exporter interface {
	ExportUsers(ctx context.Context, fields []string, format string) (string, error)
	ExportJob(ctx context.Context, id string) (auth0api.ExportJob, error)
	DownloadExport(ctx context.Context, location string, w io.Writer) (int64, error)
}

// ExportConfig configures [Export]. Start from [DefaultExportConfig].
type ExportConfig struct {
	// Out is the file written: NDJSON, one user per line.
	Out string
	// Gzip keeps the file gzipped as Auth0 serves it; otherwise it is
	// written decompressed.
	Gzip bool
	// Force overwrites an existing Out.
	Force bool
	// Fields exported; the default is [auth0api.ExportFields].
	Fields []string
	// PollMin is the first pause between job reads; it doubles up to
	// PollMax.
	PollMin, PollMax time.Duration
	// Timeout bounds the whole export; 0 means no bound.
	Timeout time.Duration
	// MaxAttempts bounds the tries of one request after transient failures
	// and the downloads of the file.
	MaxAttempts int
	// RPS caps Management API requests per second; 0 means no cap.
	RPS float64
}

// DefaultExportConfig returns every default; Out is left for the caller.
func DefaultExportConfig() ExportConfig {
	return ExportConfig{
		Fields: slices.Clone(auth0api.ExportFields), PollMin: DefaultPollMin, PollMax: DefaultPollMax,
		Timeout: DefaultExportTimeout, MaxAttempts: DefaultMaxAttempts, RPS: DefaultRPS,
	}
}

// Validate reports every problem at once, naming each field as
// ExportConfig spells it (the command line tells them as its flags).
func (c ExportConfig) Validate() error {
	var errs []error
	if c.Out == "" {
		errs = append(errs, errors.New("export: Out is required"))
	}
	if len(c.Fields) == 0 {
		errs = append(errs, errors.New("no fields to export"))
	}
	if c.PollMin <= 0 || c.PollMax < c.PollMin {
		errs = append(errs, fmt.Errorf("poll interval %s to %s: want 0 < PollMin ≤ PollMax", c.PollMin, c.PollMax))
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("export: Timeout must not be negative"))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts %d: must be at least 1", c.MaxAttempts))
	}
	if c.RPS < 0 {
		errs = append(errs, errors.New("export: RPS must not be negative"))
	}
	return errors.Join(errs...)
}

// ExportDeps are the collaborators of [Export]. Auth0 and Logger are
// required.
type ExportDeps struct {
	Auth0  Exporter
	Logger *slog.Logger
	// Sleep waits d or until ctx ends, returning ctx's error then; nil
	// means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// ExportResult is what [Export] did.
type ExportResult struct {
	JobID string `json:"job_id"`
	Path  string `json:"path"`
	Gzip  bool   `json:"gzip"`
	// Users is the number of lines in the file.
	Users int `json:"users"`
	// Bytes is the size of the file written.
	Bytes int64 `json:"bytes"`
	// Polls counts job reads, Downloads the download attempts (more than
	// one after an expired link or a broken transfer).
	Polls     int `json:"polls"`
	Downloads int `json:"downloads"`
}

// String is a one-line summary.
func (r ExportResult) String() string {
	form := "gunzipped"
	if r.Gzip {
		form = "gzipped"
	}
	return fmt.Sprintf("export %s: %d users, %d bytes (%s) written to %s; %d job reads, %d downloads",
		r.JobID, r.Users, r.Bytes, form, r.Path, r.Polls, r.Downloads)
}

// Export creates a users-export job (NDJSON, cfg.Fields), reads it with
// backoff until it completes, downloads the file at once (the link works for
// about a minute; an expired link is replaced by reading the job again), and
// writes it to cfg.Out atomically: a temporary file in the same directory,
// synced, then renamed. Requests honour cfg.RPS, and 429 answers are waited
// out (X-RateLimit-Reset). It returns [ErrOutputExists], [ErrExportFailed],
// [ErrGaveUp] wrapping the last transient failure, auth0api's permanent
// errors, or ctx's error; Out is then untouched.
func Export(ctx context.Context, cfg ExportConfig, deps ExportDeps) (ExportResult, error) {
	if err := cfg.Validate(); err != nil {
		return ExportResult{}, fmt.Errorf("export config: %w", err)
	}
	if deps.Auth0 == nil || deps.Logger == nil {
		return ExportResult{}, errors.New("export: Auth0 and Logger are required")
	}
	e := &exporter{cfg: cfg, api: deps.Auth0, log: deps.Logger.With("role", "export"), sleep: deps.Sleep, limiter: newLimiter(cfg.RPS)}
	if e.sleep == nil {
		e.sleep = sleep
	}
	e.res = ExportResult{Path: cfg.Out, Gzip: cfg.Gzip}
	if err := e.checkOut(); err != nil {
		return e.res, err
	}
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	err := e.run(ctx)
	return e.res, err
}

type exporter struct {
	cfg     ExportConfig
	api     Exporter
	log     *slog.Logger
	sleep   func(context.Context, time.Duration) error
	limiter interface{ Wait(context.Context) error }
	res     ExportResult
}

func (e *exporter) checkOut() error {
	dir := filepath.Dir(e.cfg.Out)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("export: Out %q: directory %q does not exist", e.cfg.Out, dir)
	}
	st, err := os.Stat(e.cfg.Out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("export: Out %q: %w", e.cfg.Out, err)
	case st.IsDir():
		return fmt.Errorf("export: Out %q: is a directory", e.cfg.Out)
	case !e.cfg.Force:
		return fmt.Errorf("export: Out %q: %w (set Force to replace it)", e.cfg.Out, ErrOutputExists)
	}
	return nil
}

func (e *exporter) retry(ctx context.Context, op string, fn func(context.Context) error) error {
	return retry(ctx, retrier{max: e.cfg.MaxAttempts, sleep: e.sleep, log: e.log}, op, auth0api.IsTransient, func(ctx context.Context) error {
		if err := e.limiter.Wait(ctx); err != nil {
			return fmt.Errorf("rate limiter: %w", err)
		}
		return fn(ctx)
	})
}

func (e *exporter) run(ctx context.Context) error {
	err := e.retry(ctx, "create export job", func(ctx context.Context) error {
		id, err := e.api.ExportUsers(ctx, e.cfg.Fields, auth0api.FormatJSON)
		e.res.JobID = id
		return err
	})
	if err != nil {
		return err
	}
	e.log.InfoContext(ctx, "export job created", "job", e.res.JobID)
	job, err := e.waitCompleted(ctx)
	if err != nil {
		return err
	}
	return e.download(ctx, job)
}

// readJob reads the job once (with retries).
func (e *exporter) readJob(ctx context.Context) (auth0api.ExportJob, error) {
	var job auth0api.ExportJob
	err := e.retry(ctx, "read export job", func(ctx context.Context) error {
		e.res.Polls++
		var err error
		job, err = e.api.ExportJob(ctx, e.res.JobID)
		return err
	})
	return job, err
}

// waitCompleted polls the job with doubling pauses until it completed.
func (e *exporter) waitCompleted(ctx context.Context) (auth0api.ExportJob, error) {
	delay := e.cfg.PollMin
	for {
		job, err := e.readJob(ctx)
		if err != nil {
			return job, err
		}
		switch job.Status {
		case auth0api.JobCompleted:
			if job.Location == "" {
				return job, fmt.Errorf("export job %s completed without a download link: %w", job.ID, auth0api.ErrPermanent)
			}
			return job, nil
		case auth0api.JobFailed:
			return job, fmt.Errorf("export job %s: %w", job.ID, ErrExportFailed)
		}
		e.log.InfoContext(ctx, "export job running", "job", job.ID, "status", job.Status, "percent_done", job.PercentDone, "time_left", job.TimeLeft.String(), "next_poll", delay.String())
		if err := e.sleep(ctx, delay); err != nil {
			return job, fmt.Errorf("wait for export job %s: %w", job.ID, err)
		}
		delay = min(2*delay, e.cfg.PollMax)
	}
}

// download fetches the file, reading the job again for a fresh link when
// the link expired or the transfer broke, and installs it at Out.
func (e *exporter) download(ctx context.Context, job auth0api.ExportJob) error {
	dir, base := filepath.Split(e.cfg.Out)
	raw, err := os.CreateTemp(dir, "."+base+".*.download")
	if err != nil {
		return fmt.Errorf("export temp file: %w", err)
	}
	defer os.Remove(raw.Name())
	defer raw.Close()

	backoff := events.DefaultBackOff()
	for attempt := 1; ; attempt++ {
		e.res.Downloads++
		if err := resetFile(raw); err != nil {
			return err
		}
		n, err := e.api.DownloadExport(ctx, job.Location, raw)
		if err == nil {
			e.log.InfoContext(ctx, "export downloaded", "job", job.ID, "bytes", n)
			break
		}
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("download export %s: %w", job.ID, ctx.Err())
		case !errors.Is(err, auth0api.ErrLinkExpired) && !auth0api.IsTransient(err):
			return err
		case attempt >= e.cfg.MaxAttempts:
			return fmt.Errorf("download export %s: %w after %d attempts: %w", job.ID, ErrGaveUp, attempt, err)
		case auth0api.IsTransient(err):
			d := auth0api.RetryAfter(err)
			if d <= 0 {
				d = backoff[min(attempt-1, len(backoff)-1)]
			}
			e.log.WarnContext(ctx, "export download failed, retrying with a fresh link", "job", job.ID, "in", d.String(), "err", err)
			if err := e.sleep(ctx, d); err != nil {
				return fmt.Errorf("download export %s: %w", job.ID, err)
			}
		default:
			e.log.WarnContext(ctx, "export download link expired, reading the job for a fresh one", "job", job.ID)
		}
		if job, err = e.readJob(ctx); err != nil {
			return err
		}
		if job.Status != auth0api.JobCompleted || job.Location == "" {
			return fmt.Errorf("export job %s: status %q without a download link on re-read: %w", job.ID, job.Status, auth0api.ErrPermanent)
		}
	}
	return e.install(raw)
}

// install checks the downloaded gzip stream, counts its lines, and renames
// it (or its decompressed copy) to Out.
func (e *exporter) install(raw *os.File) error {
	if _, err := raw.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("export temp file: %w", err)
	}
	zr, err := gzip.NewReader(bufio.NewReader(raw))
	if err != nil {
		return fmt.Errorf("export file is not gzip: %w: %w", auth0api.ErrPermanent, err)
	}
	lines := &lineCounter{}
	final := raw
	if e.cfg.Gzip {
		if _, err := io.Copy(lines, zr); err != nil {
			return fmt.Errorf("export file is damaged: %w", err)
		}
	} else {
		dir, base := filepath.Split(e.cfg.Out)
		plain, err := os.CreateTemp(dir, "."+base+".*.tmp")
		if err != nil {
			return fmt.Errorf("export temp file: %w", err)
		}
		defer os.Remove(plain.Name())
		defer plain.Close()
		bw := bufio.NewWriterSize(plain, 1<<16)
		if _, err := io.Copy(io.MultiWriter(bw, lines), zr); err != nil {
			return fmt.Errorf("gunzip export: %w", err)
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write export: %w", err)
		}
		final = plain
	}
	if err := zr.Close(); err != nil {
		return fmt.Errorf("export file is damaged: %w", err)
	}
	if err := final.Sync(); err != nil {
		return fmt.Errorf("sync export: %w", err)
	}
	st, err := final.Stat()
	if err != nil {
		return fmt.Errorf("export temp file: %w", err)
	}
	if err := final.Close(); err != nil {
		return fmt.Errorf("close export: %w", err)
	}
	if err := os.Rename(final.Name(), e.cfg.Out); err != nil {
		return fmt.Errorf("install export: %w", err)
	}
	e.res.Users, e.res.Bytes = lines.lines(), st.Size()
	return nil
}

func resetFile(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("export temp file: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("export temp file: %w", err)
	}
	return nil
}

// lineCounter counts lines, a last line without a newline included.
type lineCounter struct {
	n    int
	last byte
	any  bool
}

func (c *lineCounter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		c.n += bytes.Count(p, []byte{'\n'})
		c.last, c.any = p[len(p)-1], true
	}
	return len(p), nil
}

func (c *lineCounter) lines() int {
	if c.any && c.last != '\n' {
		return c.n + 1
	}
	return c.n
}

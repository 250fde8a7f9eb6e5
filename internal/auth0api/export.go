package auth0api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/auth0/go-auth0/management"
)

// ExportFields are the user fields an export needs for signupsync to import
// the users: the same profile fields [Client.GetUser] reads, without the
// metadata.
var ExportFields = []string{
	"user_id", "email", "email_verified", "name", "given_name", "family_name",
	"nickname", "picture", "created_at", "identities",
}

// Export formats. FormatJSON is newline-delimited JSON: one user object per
// line, gzipped like every export file.
const (
	FormatJSON = "json"
	FormatCSV  = "csv"
)

// Statuses of an export job. Auth0 may add others; treat unknown ones as
// not finished.
const (
	JobPending    = "pending"
	JobProcessing = "processing"
	JobCompleted  = "completed"
	JobFailed     = "failed"
)

// ErrLinkExpired means an export's download link no longer works (the
// pre-signed URL answered 403, which it does about 60 seconds after the job
// was read). Read the job again with [Client.ExportJob] for a fresh link.
var ErrLinkExpired = errors.New("export download link expired")

// ExportJob is the state of a users-export job.
type ExportJob struct {
	ID     string
	Status string
	Format string
	// Location is the download URL of a completed job, valid for about a
	// minute from the read that returned it. It is not under /api/v2 and
	// takes no bearer token.
	Location string
	// PercentDone and TimeLeft are Auth0's progress estimate while the job
	// is processing (0 when it did not say).
	PercentDone int
	TimeLeft    time.Duration
}

// ExportUsers creates a users-export job of every user in the tenant with
// the named fields (nil means Auth0's default set) in format ([FormatJSON]
// or [FormatCSV]) and returns the job id. Errors are classified as for
// [Client.GetUser]; the call is not retried, and retrying it after a
// transient failure may create a second job.
func (c *Client) ExportUsers(ctx context.Context, fields []string, format string) (string, error) {
	op := "create auth0 users export"
	if format != FormatJSON && format != FormatCSV {
		return "", fmt.Errorf("%s: format %q: want %s or %s: %w", op, format, FormatJSON, FormatCSV, ErrPermanent)
	}
	j := &management.Job{Format: &format}
	for _, f := range fields {
		if f == "" {
			return "", fmt.Errorf("%s: empty field name: %w", op, ErrPermanent)
		}
		j.Fields = append(j.Fields, map[string]any{"name": f})
	}
	err := c.call(ctx, func(ctx context.Context) error { return c.m.Job.ExportUsers(ctx, j) })
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	if j.GetID() == "" {
		return "", fmt.Errorf("%s: response without a job id: %w", op, ErrPermanent)
	}
	return j.GetID(), nil
}

// ExportJob reads an export job. Each read of a completed job returns a
// fresh download link. It returns [ErrNotFound] for an unknown job and
// otherwise classifies errors as [Client.GetUser] does.
func (c *Client) ExportJob(ctx context.Context, id string) (ExportJob, error) {
	op := fmt.Sprintf("read auth0 export job %s", id)
	if id == "" {
		return ExportJob{}, fmt.Errorf("%s: empty job id: %w", op, ErrPermanent)
	}
	var j *management.Job
	err := c.call(ctx, func(ctx context.Context) error {
		var err error
		j, err = c.m.Job.Read(ctx, id)
		return err
	})
	if err != nil {
		return ExportJob{}, fmt.Errorf("%s: %w", op, err)
	}
	if j == nil {
		return ExportJob{}, fmt.Errorf("%s: empty response: %w", op, ErrPermanent)
	}
	return ExportJob{
		ID: j.GetID(), Status: j.GetStatus(), Format: j.GetFormat(), Location: j.GetLocation(),
		PercentDone: j.GetPercentageDone(), TimeLeft: time.Duration(j.GetTimeLeftSeconds()) * time.Second,
	}, nil
}

// DownloadExport copies the export file at location (a completed job's
// [ExportJob.Location]) to w, as served: gzipped. It sends no bearer token
// and is bounded by ctx only, so a large file is not cut short by the
// client's timeout. It returns the bytes written and [ErrLinkExpired] when
// the link no longer works, a [*TransientError] for network failures and
// 5xx (w may then hold part of the file), and [ErrPermanent] otherwise.
func (c *Client) DownloadExport(ctx context.Context, location string, w io.Writer) (int64, error) {
	op := "download auth0 export"
	u, err := url.Parse(location)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return 0, fmt.Errorf("%s: location is not an https URL: %w", op, ErrPermanent)
	}
	op += " from " + u.Host
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, location, nil)
	if err != nil {
		return 0, fmt.Errorf("%s: %w: %w", op, ErrPermanent, err)
	}
	res, err := c.download.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, &TransientError{Err: err})
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusOK:
	case res.StatusCode == http.StatusForbidden:
		return 0, fmt.Errorf("%s: status %d: %w", op, res.StatusCode, ErrLinkExpired)
	case res.StatusCode == http.StatusTooManyRequests, res.StatusCode == http.StatusRequestTimeout, res.StatusCode >= 500:
		return 0, fmt.Errorf("%s: %w", op, &TransientError{
			Status: res.StatusCode, RetryAfter: retryAfter(res.StatusCode, res.Header, time.Now()),
			Err: fmt.Errorf("status %d", res.StatusCode),
		})
	default:
		return 0, fmt.Errorf("%s: status %d: %w", op, res.StatusCode, ErrPermanent)
	}
	body := &readErrs{r: res.Body}
	n, err := io.Copy(w, body)
	switch {
	case err != nil && body.err != nil:
		// The connection broke mid-file.
		return n, fmt.Errorf("%s: after %d bytes: %w", op, n, &TransientError{Err: err})
	case err != nil:
		return n, fmt.Errorf("%s: write after %d bytes: %w", op, n, err)
	}
	return n, nil
}

// readErrs remembers a read failure, to tell it from a write failure.
type readErrs struct {
	r   io.Reader
	err error
}

func (r *readErrs) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// call performs one Management API call under the call timeout and
// classifies its failure.
func (c *Client) call(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ex := &Response{}
	err := fn(RecordResponse(ctx, ex))
	if err == nil {
		return nil
	}
	return classify(err, ex, time.Now())
}

// Package backfill reads an Auth0 users export (NDJSON, gzipped or not)
// and publishes one normalised signup per user through the same stream and
// Nats-Msg-Id rule as the webhooks, so the importer treats backfilled and
// live signups alike. Files are streamed, never loaded whole; malformed lines
// are counted and reported by number; progress is checkpointed in the
// SIGNUPSYNC_STATE bucket so a crashed or interrupted run resumes.
package backfill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/asyncpub"
	"github.com/signupsync/signupsync/internal/auth0export"
)

// Config configures one backfill run. Start from [DefaultConfig].
type Config struct {
	File   string
	Tenant string
	// DryRun counts what would happen without publishing.
	DryRun bool
	// Rate limits signups published per second; 0 means unlimited.
	Rate float64
	// CheckpointEvery is how many lines pass between checkpoints.
	CheckpointEvery int
	// Restart ignores an existing checkpoint.
	Restart bool
	// MaxLine is the longest line read; longer lines are malformed.
	MaxLine int
	// ProgressEvery is the interval of progress reports.
	ProgressEvery time.Duration
	// Providers maps Auth0 social strategies to Firebase provider ids for
	// the dry-run classification; nil means events.SocialProviders().
	Providers map[string]string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Tenant: "default", CheckpointEvery: 10000, MaxLine: 1 << 20, ProgressEvery: 2 * time.Second}
}

// Validate reports every problem at once, naming each field as Config
// spells it (the command line tells them as its flags).
func (c Config) Validate() error {
	var errs []error
	if c.File == "" {
		errs = append(errs, errors.New("backfill: File is required"))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("backfill: Rate must not be negative"))
	}
	if c.CheckpointEvery < 1 {
		errs = append(errs, errors.New("backfill: CheckpointEvery must be positive"))
	}
	if c.MaxLine < 1024 {
		errs = append(errs, errors.New("max line must be at least 1 KiB"))
	}
	if c.ProgressEvery <= 0 {
		errs = append(errs, errors.New("progress interval must be positive"))
	}
	return errors.Join(errs...)
}

// Publisher is the part of jetstream.JetStream a backfill needs.
type Publisher interface {
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
	PublishAsyncComplete() <-chan struct{}
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Deps are a run's collaborators. Publisher and State are not needed for a
// dry run.
type Deps struct {
	Publisher Publisher
	// State is the SIGNUPSYNC_STATE bucket holding checkpoints.
	State  jetstream.KeyValue
	Logger *slog.Logger
	// Progress receives a progress bar (Terminal) or periodic lines.
	Progress io.Writer
	Terminal bool
	Now      func() time.Time
}

// Counts is what a run saw and did. Counts restored from a checkpoint are
// included, so a resumed run reports the whole file.
type Counts struct {
	Lines      int64            `json:"lines"`
	Malformed  int64            `json:"malformed"`
	Eligible   int64            `json:"eligible"`
	Skipped    map[string]int64 `json:"skipped"`
	Published  int64            `json:"published"`
	Duplicates int64            `json:"duplicates"`
	// MalformedLines holds the first line numbers that could not be read.
	MalformedLines []int64 `json:"malformed_lines,omitempty"`
	ResumedAt      int64   `json:"resumed_at,omitempty"`
	Complete       bool    `json:"complete"`
}

// ErrInterrupted is returned when ctx ended before the file did; the
// checkpoint lets the same command resume.
var ErrInterrupted = errors.New("backfill interrupted; run the same command again to resume")

// ErrAlreadyComplete is returned when the checkpoint says the file was
// backfilled completely (use Restart to publish it again).
var ErrAlreadyComplete = errors.New("this file was already backfilled completely (set Restart to publish it again)")

const maxMalformedListed = 100

// checkpoint is stored as JSON under checkpointKey(file).
type checkpoint struct {
	File      string    `json:"file"`
	Size      int64     `json:"size"`
	Line      int64     `json:"line"`
	Counts    Counts    `json:"counts"`
	UpdatedAt time.Time `json:"updated_at"`
}

func checkpointKey(abs string) string {
	sum := sha256.Sum256([]byte(abs))
	return "backfill." + hex.EncodeToString(sum[:12])
}

// Run backfills cfg.File. It returns the counts, and ErrInterrupted when
// ctx ended first (after waiting for every outstanding acknowledgement and
// writing a checkpoint).
func Run(ctx context.Context, cfg Config, deps Deps) (Counts, error) {
	if err := cfg.Validate(); err != nil {
		return Counts{}, err
	}
	if !cfg.DryRun && (deps.Publisher == nil || deps.State == nil) {
		return Counts{}, errors.New("backfill: Publisher and State are required unless dry-running")
	}
	if deps.Logger == nil {
		return Counts{}, errors.New("backfill: Logger is required")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Progress == nil {
		deps.Progress = io.Discard
	}
	abs, err := filepath.Abs(cfg.File)
	if err != nil {
		return Counts{}, fmt.Errorf("backfill file: %w", err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return Counts{}, fmt.Errorf("backfill file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Counts{}, fmt.Errorf("backfill file: %w", err)
	}
	r := &run{cfg: cfg, deps: deps, key: checkpointKey(abs), abs: abs, size: st.Size(), counted: &countingReader{r: f}}
	if deps.Publisher != nil {
		r.batch = asyncpub.New(deps.Publisher, events.StreamSignups, 8192)
	}
	r.counts.Skipped = map[string]int64{}
	if !cfg.DryRun && !cfg.Restart {
		if err := r.loadCheckpoint(ctx); err != nil {
			return r.counts, err
		}
	}
	return r.process(ctx)
}

type run struct {
	cfg     Config
	deps    Deps
	key     string
	abs     string
	size    int64
	counted *countingReader
	counts  Counts
	resume  int64
	batch   *asyncpub.Batch
}

func (r *run) loadCheckpoint(ctx context.Context) error {
	e, err := r.deps.State.Get(ctx, r.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	var cp checkpoint
	if err := json.Unmarshal(e.Value(), &cp); err != nil {
		return fmt.Errorf("read checkpoint %s: %w", r.key, err)
	}
	if cp.Size != r.size {
		r.deps.Logger.Warn("checkpoint is for a file of another size; starting over", "checkpoint_size", cp.Size, "size", r.size)
		return nil
	}
	if cp.Counts.Complete {
		r.counts = cp.Counts
		return ErrAlreadyComplete
	}
	r.counts = cp.Counts
	if r.counts.Skipped == nil {
		r.counts.Skipped = map[string]int64{}
	}
	r.resume = cp.Line
	r.counts.ResumedAt = cp.Line
	r.deps.Logger.Info("resuming from checkpoint", "line", cp.Line)
	return nil
}

func (r *run) saveCheckpoint(ctx context.Context, line int64) error {
	if r.cfg.DryRun {
		return nil
	}
	b, err := json.Marshal(checkpoint{File: r.abs, Size: r.size, Line: line, Counts: r.counts, UpdatedAt: r.deps.Now().UTC()})
	if err != nil {
		return err
	}
	if _, err := r.deps.State.Put(context.WithoutCancel(ctx), r.key, b); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

func (r *run) process(ctx context.Context) (Counts, error) {
	exp, err := auth0export.NewReader(r.counted, r.cfg.MaxLine, r.cfg.Tenant)
	if err != nil {
		return r.counts, err
	}
	var limiter *rate.Limiter
	if r.cfg.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(r.cfg.Rate), max(1, int(r.cfg.Rate/10)))
	}
	prog := newProgress(r.deps.Progress, r.deps.Terminal, r.size, r.cfg.ProgressEvery, r.deps.Logger)
	var line int64
	interrupted := false
	for {
		if ctx.Err() != nil {
			interrupted = true
			break
		}
		if !exp.Next() {
			break
		}
		if exp.Line() <= r.resume {
			line = exp.Line()
			continue
		}
		d, perr := exp.User()
		if err := r.handle(ctx, exp.Line(), d, perr, limiter); err != nil {
			if ctx.Err() != nil {
				interrupted = true
				break
			}
			r.drain()
			return r.counts, err
		}
		line = exp.Line()
		if line%int64(r.cfg.CheckpointEvery) == 0 {
			if err := r.flush(ctx, line); err != nil {
				return r.counts, err
			}
		}
		prog.update(r.counted.n.Load(), line, r.counts)
	}
	if err := exp.Fatal(); err != nil {
		r.drain()
		return r.counts, fmt.Errorf("%s: %w", r.cfg.File, err)
	}
	if err := r.flush(ctx, line); err != nil {
		return r.counts, err
	}
	if interrupted {
		prog.done(r.counts)
		return r.counts, ErrInterrupted
	}
	r.counts.Complete = true
	if err := r.saveCheckpoint(ctx, line); err != nil {
		return r.counts, err
	}
	prog.done(r.counts)
	return r.counts, nil
}

// handle reads one line and, unless dry-running, publishes it.
func (r *run) handle(ctx context.Context, line int64, d events.SignupData, err error, limiter *rate.Limiter) error {
	if limiter != nil && !r.cfg.DryRun {
		if err := limiter.Wait(ctx); err != nil {
			return err
		}
	}
	r.counts.Lines++
	if err == nil {
		// A user whose user_id is not its identity's would be refused by
		// events.NewMsg; counting it here makes the dry run report it too.
		err = events.CheckPrimaryIdentity(d)
	}
	if err != nil {
		r.counts.Malformed++
		if len(r.counts.MalformedLines) < maxMalformedListed {
			r.counts.MalformedLines = append(r.counts.MalformedLines, line)
		}
		r.deps.Logger.Warn("malformed line skipped", "line", line, "err", err)
		return nil
	}
	if el := events.Classify(d, r.cfg.Providers); el.OK {
		r.counts.Eligible++
	} else {
		r.counts.Skipped[el.Reason]++
	}
	if r.cfg.DryRun {
		return nil
	}
	msg, _, err := events.NewMsg(events.SourceBackfill, d, r.deps.Now())
	if err != nil {
		return err
	}
	return r.publish(ctx, msg)
}

// publish sends msg asynchronously (see asyncpub.Batch).
func (r *run) publish(ctx context.Context, msg *nats.Msg) error {
	c, err := r.batch.Publish(ctx, msg)
	r.tally(c)
	return err
}

// settle waits for every outstanding acknowledgement (see asyncpub.Batch).
func (r *run) settle(ctx context.Context) error {
	c, err := r.batch.Settle(ctx)
	r.tally(c)
	return err
}

func (r *run) tally(c asyncpub.Counts) {
	r.counts.Published += c.Published
	r.counts.Duplicates += c.Duplicates
}

// flush waits for outstanding acks and writes a checkpoint at line.
func (r *run) flush(ctx context.Context, line int64) error {
	if r.cfg.DryRun {
		return nil
	}
	if err := r.settle(ctx); err != nil {
		return err
	}
	return r.saveCheckpoint(ctx, line)
}

// drain waits for outstanding acks after a failure, ignoring errors.
func (r *run) drain() { _ = r.settle(context.Background()) }

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// SkipReasons lists the skip reasons of counts in a stable order.
func (c Counts) SkipReasons() []string {
	out := make([]string, 0, len(c.Skipped))
	for k := range c.Skipped {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Summary renders the counts on one line.
func (c Counts) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lines=%d eligible=%d malformed=%d published=%d duplicates=%d", c.Lines, c.Eligible, c.Malformed, c.Published, c.Duplicates)
	for _, k := range c.SkipReasons() {
		fmt.Fprintf(&b, " skipped.%s=%d", k, c.Skipped[k])
	}
	return b.String()
}

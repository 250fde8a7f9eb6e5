// Package passwords reads Auth0's password-hash export (newline-delimited
// JSON from Auth0 support, gzipped or not, streamed), joins each line to
// its Auth0 user and publishes one events.PasswordImport per database user
// into the PASSWORDS stream, which the importer imports with the bcrypt
// hash through its own pipeline (see events/passwords.go). Malformed lines
// are reported by number and never stop a run; progress is checkpointed in
// the SIGNUPSYNC_STATE bucket, so an interrupted run resumes.
//
// A line looks like this (Auth0 exports MongoDB extended JSON):
//
//	{"_id":{"$oid":"60425da4ab6c1b0068b1b0d5"},"email":"jane@example.com","email_verified":true,
//	 "passwordHash":"$2b$10$…","password_set_date":{"$date":"2021-03-05T16:31:00.555Z"},
//	 "tenant":"acme","connection":"Username-Password-Authentication","_tmp_is_unique":true}
//
// The Auth0 user_id is "auth0|" and the $oid, or "auth0|" and alt_id when
// the line has one (users imported into Auth0 with their own id).
//
// # Join
//
// With Config.UsersFile (an Auth0 users export, as `signupsync export`
// writes), a line is joined to the user of that file with its user_id; a
// user missing from it (deleted, or created after the export) is counted
// unjoined and not published, and a user the file shows as not a database
// user is counted by its reason. Without it, a line is joined when the
// ledger knows the user (backfill or a webhook recorded it as
// skipped/database_connection); its profile is then the line's (email,
// verified flag, connection), published as partial so an importer with the
// Management API configured reads the full profile before importing (and
// skips a user deleted in Auth0). With Config.JoinAuth0, a line neither
// knows is published the same way and joined by the importer through the
// Management API. Users the ledger holds as imported
// (already imported, or migrated on login) are not published.
//
// Hashes are secrets: they are never logged, never in an error, never in a
// checkpoint.
package passwords

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
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/asyncpub"
	"github.com/signupsync/signupsync/internal/auth0export"
)

// Config configures one run. Start from [DefaultConfig].
type Config struct {
	// File is the hash export.
	File string
	// UsersFile, when set, is an Auth0 users export to join lines to.
	UsersFile string
	// Tenant is recorded for lines that do not name one.
	Tenant string
	// DryRun reads, validates and joins without publishing or writing a
	// checkpoint.
	DryRun bool
	// Rate limits users published per second; 0 means unlimited.
	Rate float64
	// CheckpointEvery is how many lines pass between checkpoints.
	CheckpointEvery int
	// Restart ignores an existing checkpoint.
	Restart bool
	// JoinAuth0 publishes a line that neither the users file nor the
	// ledger knows as a partial signup (JoinAuth0 join): the importer reads
	// the user from the Management API before importing it, and skips one
	// Auth0 no longer has. It needs importers with --auth0-domain.
	JoinAuth0 bool
	// MaxLine is the longest line read; longer lines are malformed.
	MaxLine int
	// ProgressEvery is the interval of progress lines.
	ProgressEvery time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Tenant: "default", CheckpointEvery: 10000, MaxLine: 64 << 10, ProgressEvery: 2 * time.Second}
}

// Validate reports every problem at once, naming each field as Config
// spells it (the command line tells them as its flags).
func (c Config) Validate() error {
	var errs []error
	if c.File == "" {
		errs = append(errs, errors.New("passwords: File is required"))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("passwords: Rate must not be negative"))
	}
	if c.CheckpointEvery < 1 {
		errs = append(errs, errors.New("passwords: CheckpointEvery must be positive"))
	}
	if c.MaxLine < 1024 {
		errs = append(errs, errors.New("max line must be at least 1 KiB"))
	}
	if c.ProgressEvery <= 0 {
		errs = append(errs, errors.New("progress interval must be positive"))
	}
	return errors.Join(errs...)
}

// Publisher is the part of jetstream.JetStream a run needs.
type Publisher interface {
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Ledger reads ledger entries; jetstream.KeyValue satisfies it.
type Ledger interface {
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
}

// Deps are a run's collaborators. Ledger is needed unless every line is
// joined through Config.UsersFile in a dry run; Publisher and State are not
// needed for a dry run.
type Deps struct {
	Publisher Publisher
	// State is the SIGNUPSYNC_STATE bucket holding checkpoints.
	State jetstream.KeyValue
	// Ledger is the SIGNUPS_LEDGER bucket.
	Ledger   Ledger
	Logger   *slog.Logger
	Progress io.Writer
	Now      func() time.Time
}

// Counts is what a run saw and did; counts restored from a checkpoint are
// included, so a resumed run reports the whole file.
type Counts struct {
	Lines     int64 `json:"lines"`
	Malformed int64 `json:"malformed"`
	// Joined counts lines joined to their user, by where the profile came
	// from (users_file, ledger).
	Joined map[string]int64 `json:"joined"`
	// Unjoined counts lines whose user was found nowhere.
	Unjoined int64 `json:"unjoined"`
	// Skipped counts joined users not published, by reason: imported (the
	// ledger holds them as in Firebase), or the skip reason of a user that
	// is not a database user.
	Skipped map[string]int64 `json:"skipped"`
	// Hashes counts valid lines by bcrypt variant (2a, 2b, 2y).
	Hashes     map[string]int64 `json:"hashes"`
	Published  int64            `json:"published"`
	Duplicates int64            `json:"duplicates"`
	// MalformedLines holds the first line numbers that could not be read;
	// UnjoinedLines likewise.
	MalformedLines []int64 `json:"malformed_lines,omitempty"`
	UnjoinedLines  []int64 `json:"unjoined_lines,omitempty"`
	ResumedAt      int64   `json:"resumed_at,omitempty"`
	Complete       bool    `json:"complete"`
}

// Joins: where a line's profile came from.
const (
	JoinUsersFile = "users_file"
	JoinLedger    = "ledger"
	JoinAuth0     = "auth0"
)

// SkipImported is the skip reason of a user the ledger holds as in
// Firebase.
const SkipImported = "already_imported"

// ErrInterrupted is returned when ctx ended before the file did; the
// checkpoint lets the same command resume.
var ErrInterrupted = errors.New("passwords interrupted; run the same command again to resume")

// ErrAlreadyComplete is returned when the checkpoint says the file was
// published completely (use Restart to publish it again).
var ErrAlreadyComplete = errors.New("this hash export was already published completely (set Restart to publish it again)")

const maxListed = 100

type checkpoint struct {
	File      string    `json:"file"`
	Size      int64     `json:"size"`
	Line      int64     `json:"line"`
	Counts    Counts    `json:"counts"`
	UpdatedAt time.Time `json:"updated_at"`
}

func checkpointKey(abs string) string {
	sum := sha256.Sum256([]byte(abs))
	return "passwords." + hex.EncodeToString(sum[:12])
}

// Run publishes cfg.File. It returns the counts, and ErrInterrupted when
// ctx ended first (after every outstanding acknowledgement and a
// checkpoint).
func Run(ctx context.Context, cfg Config, deps Deps) (Counts, error) {
	if err := cfg.Validate(); err != nil {
		return Counts{}, err
	}
	if deps.Logger == nil {
		return Counts{}, errors.New("passwords: Logger is required")
	}
	if !cfg.DryRun && (deps.Publisher == nil || deps.State == nil) {
		return Counts{}, errors.New("passwords: Publisher and State are required unless dry-running")
	}
	if deps.Ledger == nil && (!cfg.DryRun || cfg.UsersFile == "") {
		return Counts{}, errors.New("passwords: the ledger is required (a dry run with UsersFile may go without)")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Progress == nil {
		deps.Progress = io.Discard
	}
	abs, err := filepath.Abs(cfg.File)
	if err != nil {
		return Counts{}, fmt.Errorf("hash export: %w", err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return Counts{}, fmt.Errorf("hash export: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Counts{}, fmt.Errorf("hash export: %w", err)
	}
	r := &run{cfg: cfg, deps: deps, key: checkpointKey(abs), abs: abs, size: st.Size()}
	if deps.Publisher != nil {
		r.batch = asyncpub.New(deps.Publisher, events.StreamPasswords, 2048)
	}
	r.counts = newCounts()
	if cfg.UsersFile != "" {
		if r.users, err = loadUsers(cfg.UsersFile, cfg.Tenant, cfg.MaxLine, deps.Logger); err != nil {
			return r.counts, err
		}
	}
	if !cfg.DryRun && !cfg.Restart {
		if err := r.loadCheckpoint(ctx); err != nil {
			return r.counts, err
		}
	}
	return r.process(ctx, f)
}

func newCounts() Counts {
	return Counts{Joined: map[string]int64{}, Skipped: map[string]int64{}, Hashes: map[string]int64{}}
}

type run struct {
	cfg    Config
	deps   Deps
	key    string
	abs    string
	size   int64
	users  map[string]events.SignupData
	counts Counts
	resume int64
	batch  *asyncpub.Batch
}

// loadUsers reads the database users of an Auth0 users export into memory,
// keyed by user_id; other users are kept with their profile too, so a line
// of the hash export can be counted by their skip reason.
func loadUsers(path, tenant string, maxLine int, log *slog.Logger) (map[string]events.SignupData, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("users export: %w", err)
	}
	defer f.Close()
	rd, err := auth0export.NewReader(f, max(maxLine, auth0export.DefaultMaxLine), tenant)
	if err != nil {
		return nil, fmt.Errorf("users export: %w", err)
	}
	out := map[string]events.SignupData{}
	bad := 0
	for rd.Next() {
		d, err := rd.User()
		if err != nil {
			bad++
			continue
		}
		out[d.UserID] = d
	}
	if err := rd.Fatal(); err != nil {
		return nil, fmt.Errorf("users export %s: %w", path, err)
	}
	log.Info("users export read", "users", len(out), "malformed", bad)
	return out, nil
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
	r.counts = cp.Counts
	for _, m := range []*map[string]int64{&r.counts.Joined, &r.counts.Skipped, &r.counts.Hashes} {
		if *m == nil {
			*m = map[string]int64{}
		}
	}
	if cp.Counts.Complete {
		return ErrAlreadyComplete
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

func (r *run) process(ctx context.Context, f io.Reader) (Counts, error) {
	cr := &countingReader{r: f}
	rd, err := newReader(cr, r.cfg.MaxLine)
	if err != nil {
		return r.counts, err
	}
	var limiter *rate.Limiter
	if r.cfg.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(r.cfg.Rate), max(1, int(r.cfg.Rate/10)))
	}
	prog := &progress{w: r.deps.Progress, size: r.size, every: r.cfg.ProgressEvery, start: time.Now(), last: time.Now()}
	var line int64
	interrupted := false
	// Lines are read in chunks whose ledger look-ups run side by side
	// (one round trip each), then handled in order.
	var chunk []rawLine
	for more := true; more && !interrupted; {
		chunk = chunk[:0]
		for len(chunk) < chunkSize {
			if !rd.next() {
				more = false
				break
			}
			if rd.line <= r.resume {
				line = rd.line
				continue
			}
			chunk = append(chunk, rawLine{n: rd.line, raw: append([]byte(nil), rd.raw...), tooLong: rd.tooLong})
		}
		found := r.prefetch(ctx, chunk)
		checkpoint := false
		for i, c := range chunk {
			if ctx.Err() != nil {
				interrupted = true
				break
			}
			if err := r.handle(ctx, c, found[i], limiter); err != nil {
				if ctx.Err() != nil {
					interrupted = true
					break
				}
				_ = r.settle(context.Background())
				return r.counts, err
			}
			line = c.n
			checkpoint = checkpoint || line%int64(r.cfg.CheckpointEvery) == 0
		}
		if checkpoint {
			if err := r.flush(ctx, line); err != nil {
				return r.counts, err
			}
		}
		prog.update(cr.n, line, r.counts, false)
		if ctx.Err() != nil {
			interrupted = true
		}
	}
	if rd.fatal != nil {
		_ = r.settle(context.Background())
		return r.counts, fmt.Errorf("%s: %w", r.cfg.File, rd.fatal)
	}
	if err := r.flush(ctx, line); err != nil {
		return r.counts, err
	}
	if interrupted {
		prog.update(cr.n, line, r.counts, true)
		return r.counts, ErrInterrupted
	}
	r.counts.Complete = true
	if err := r.saveCheckpoint(ctx, line); err != nil {
		return r.counts, err
	}
	prog.update(cr.n, line, r.counts, true)
	return r.counts, nil
}

// chunkSize is how many lines are looked up in the ledger side by side.
const chunkSize = 256

// rawLine is a line read, with its number; parsed and ledger are filled by
// prefetch.
type rawLine struct {
	n       int64
	raw     []byte
	tooLong bool
	parsed  Line
	err     error
}

// ledgerRead is a ledger look-up made ahead of a line's handling.
type ledgerRead struct {
	entry events.LedgerEntry
	found bool
	err   error
}

// prefetch parses the chunk's lines and reads the ledger entries of the
// valid ones, 16 at a time.
func (r *run) prefetch(ctx context.Context, chunk []rawLine) []ledgerRead {
	out := make([]ledgerRead, len(chunk))
	for i := range chunk {
		chunk[i].parsed, chunk[i].err = ParseLine(chunk[i].raw, chunk[i].tooLong)
	}
	if r.deps.Ledger == nil {
		return out
	}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range chunk {
		if chunk[i].err != nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			kve, err := r.deps.Ledger.Get(ctx, events.LedgerKey(chunk[i].parsed.UserID()))
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
			case err != nil:
				out[i].err = fmt.Errorf("ledger get %s: %w", chunk[i].parsed.UserID(), err)
			default:
				out[i].found = true
				out[i].entry, _ = events.UnmarshalLedger(kve.Value())
			}
		}()
	}
	wg.Wait()
	return out
}

// handle validates, joins and (unless dry-running) publishes one line.
func (r *run) handle(ctx context.Context, c rawLine, lr ledgerRead, limiter *rate.Limiter) error {
	line := c.n
	r.counts.Lines++
	h, err := c.parsed, c.err
	if err != nil {
		r.counts.Malformed++
		if len(r.counts.MalformedLines) < maxListed {
			r.counts.MalformedLines = append(r.counts.MalformedLines, line)
		}
		r.deps.Logger.Warn("malformed line skipped", "line", line, "err", err)
		return nil
	}
	r.counts.Hashes[h.PasswordHash[1:3]]++
	if lr.err != nil {
		return lr.err
	}
	p, ok, err := r.join(line, h, lr)
	if err != nil || !ok {
		return err
	}
	if r.cfg.DryRun {
		return nil
	}
	msg, err := events.NewPasswordMsg(p)
	if err != nil {
		return fmt.Errorf("line %d: %w", line, err)
	}
	if limiter != nil {
		if err := limiter.Wait(ctx); err != nil {
			return err
		}
	}
	return r.publish(ctx, msg)
}

// join finds the user of h; ok is false when the line is not published
// (counted here).
func (r *run) join(line int64, h Line, lr ledgerRead) (events.PasswordImport, bool, error) {
	userID := h.UserID()
	p := events.PasswordImport{Version: 1, PasswordHash: h.PasswordHash, PasswordSetAt: h.PasswordSetAt}
	tenant := h.Tenant
	if tenant == "" {
		tenant = r.cfg.Tenant
	}
	if lr.found {
		if lr.entry.Outcome.Final() {
			r.counts.Skipped[SkipImported]++
			return p, false, nil
		}
		if r.users == nil {
			p.User, p.Joined = h.profile(tenant), JoinLedger
		}
	}
	if r.users != nil {
		d, ok := r.users[userID]
		if ok {
			if el := events.Classify(d, nil); el.OK || el.Reason != events.ReasonDatabaseConnection {
				reason := el.Reason
				if el.OK {
					reason = events.ReasonNotDatabaseUser
				}
				r.counts.Skipped[reason]++
				return p, false, nil
			}
			d.Tenant = tenant
			p.User, p.Joined = d, JoinUsersFile
		}
	}
	if p.Joined == "" && r.users == nil && r.cfg.JoinAuth0 {
		// Known to no one here: the importer joins it through the
		// Management API (a partial signup is always read from Auth0).
		p.User, p.Joined = h.profile(tenant), JoinAuth0
	}
	if p.Joined == "" {
		r.counts.Unjoined++
		if len(r.counts.UnjoinedLines) < maxListed {
			r.counts.UnjoinedLines = append(r.counts.UnjoinedLines, line)
		}
		r.deps.Logger.Warn("line not joined to an Auth0 user; not published", "line", line, "auth0_user_id", userID)
		return p, false, nil
	}
	r.counts.Joined[p.Joined]++
	return p, true, nil
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

// Summary renders the counts on one line.
func (c Counts) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lines=%d malformed=%d unjoined=%d published=%d duplicates=%d", c.Lines, c.Malformed, c.Unjoined, c.Published, c.Duplicates)
	for _, m := range []struct {
		name string
		v    map[string]int64
	}{{"joined", c.Joined}, {"skipped", c.Skipped}, {"hash", c.Hashes}} {
		keys := make([]string, 0, len(m.v))
		for k := range m.v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s.%s=%d", m.name, k, m.v[k])
		}
	}
	return b.String()
}

// progress writes a line every interval: lines read, share of the file,
// rate.
type progress struct {
	w           io.Writer
	size        int64
	every       time.Duration
	start, last time.Time
}

func (p *progress) update(read, line int64, c Counts, final bool) {
	now := time.Now()
	if !final && now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	pct := 100.0
	if p.size > 0 {
		pct = min(100, 100*float64(read)/float64(p.size))
	}
	secs := max(now.Sub(p.start).Seconds(), 0.001)
	fmt.Fprintf(p.w, "passwords: line %d (%.1f%%) published=%d malformed=%d unjoined=%d %.0f lines/s\n",
		line, pct, c.Published, c.Malformed, c.Unjoined, float64(line-c.ResumedAt)/secs)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

package backfill

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
)

type harness struct {
	js    jetstream.JetStream
	state jetstream.KeyValue
	logs  *bytes.Buffer
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	testenv.Ensure(t, js)
	state, err := js.KeyValue(context.Background(), events.BucketState)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{js: js, state: state, logs: &bytes.Buffer{}}
}

func (h *harness) deps(pub Publisher) Deps {
	if pub == nil {
		pub = h.js
	}
	return Deps{Publisher: pub, State: h.state, Logger: slog.New(slog.NewJSONHandler(h.logs, nil))}
}

func (h *harness) stored(t *testing.T) uint64 {
	t.Helper()
	st, err := h.js.Stream(context.Background(), events.StreamSignups)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func config(file string) Config {
	c := DefaultConfig()
	c.File = file
	c.CheckpointEvery = 500
	return c
}

func TestBackfillCounts(t *testing.T) {
	for _, gz := range []bool{false, true} {
		name := "ndjson"
		if gz {
			name = "gzipped"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			file := filepath.Join(t.TempDir(), "export.json")
			truth := testenv.WriteExport(t, file, 5000, gz)
			counts, err := Run(context.Background(), config(file), h.deps(nil))
			if err != nil {
				t.Fatal(err)
			}
			if counts.Lines != int64(truth.Lines) || counts.Malformed != int64(truth.Malformed) {
				t.Fatalf("lines %d malformed %d, want %d %d", counts.Lines, counts.Malformed, truth.Lines, truth.Malformed)
			}
			if got := h.stored(t); got != uint64(truth.Distinct()) {
				t.Fatalf("stream holds %d signups, want %d distinct users", got, truth.Distinct())
			}
			if counts.Duplicates != int64(truth.Duplicated) {
				t.Fatalf("duplicates %d, want %d", counts.Duplicates, truth.Duplicated)
			}
			if len(counts.MalformedLines) != truth.Malformed || counts.MalformedLines[0] != 998 {
				t.Fatalf("malformed lines %v", counts.MalformedLines)
			}
			if !counts.Complete {
				t.Fatal("not complete")
			}
			// Again: the checkpoint says complete.
			if _, err := Run(context.Background(), config(file), h.deps(nil)); !errors.Is(err, ErrAlreadyComplete) {
				t.Fatalf("second run: %v, want ErrAlreadyComplete", err)
			}
		})
	}
}

func TestDryRunCountsByOutcome(t *testing.T) {
	file := filepath.Join(t.TempDir(), "export.json")
	truth := testenv.WriteExport(t, file, 2000, false)
	cfg := config(file)
	cfg.DryRun = true
	counts, err := Run(context.Background(), cfg, Deps{Logger: slog.New(slog.NewJSONHandler(&bytes.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// Repeated lines are counted per line in a dry run.
	wantEligible := int64(truth.Users["imported"] + truth.Duplicated)
	if counts.Eligible != wantEligible || counts.Published != 0 {
		t.Fatalf("eligible %d published %d, want %d 0", counts.Eligible, counts.Published, wantEligible)
	}
	for _, reason := range []string{events.ReasonDatabaseConnection, events.ReasonLinkedIdentities, events.ReasonEnterpriseConnection} {
		if counts.Skipped[reason] != int64(truth.Users[reason]) {
			t.Fatalf("skipped %s = %d, want %d", reason, counts.Skipped[reason], truth.Users[reason])
		}
	}
}

// cancellingPublisher cancels the run after n publishes, as Ctrl-C would.
type cancellingPublisher struct {
	Publisher
	n      int64
	count  atomic.Int64
	cancel context.CancelFunc
}

func (c *cancellingPublisher) PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if c.count.Add(1) == c.n {
		c.cancel()
	}
	return c.Publisher.PublishMsgAsync(msg, opts...)
}

func TestInterruptedBackfillResumes(t *testing.T) {
	h := newHarness(t)
	file := filepath.Join(t.TempDir(), "export.json.gz")
	truth := testenv.WriteExport(t, file, 6000, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, err := Run(ctx, config(file), h.deps(&cancellingPublisher{Publisher: h.js, n: 2345, cancel: cancel}))
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("first run: %v, want ErrInterrupted", err)
	}
	if first.Lines == 0 || first.Lines >= int64(truth.Lines) {
		t.Fatalf("first run read %d of %d lines", first.Lines, truth.Lines)
	}
	second, err := Run(context.Background(), config(file), h.deps(nil))
	if err != nil {
		t.Fatal(err)
	}
	if second.ResumedAt == 0 {
		t.Fatal("second run did not resume")
	}
	if second.Lines != int64(truth.Lines) || second.Malformed != int64(truth.Malformed) {
		t.Fatalf("resumed counts: lines %d malformed %d, want %d %d", second.Lines, second.Malformed, truth.Lines, truth.Malformed)
	}
	if got := h.stored(t); got != uint64(truth.Distinct()) {
		t.Fatalf("stream holds %d signups after resume, want %d", got, truth.Distinct())
	}
}

func TestLongAndBlankLines(t *testing.T) {
	h := newHarness(t)
	file := filepath.Join(t.TempDir(), "export.json")
	long := `{"user_id":"github|1","name":"` + string(bytes.Repeat([]byte("x"), 3000)) + `"}`
	body := "\n" + `{"user_id":"github|2","identities":[{"provider":"github","user_id":2,"isSocial":true}]}` + "\n\n" + long + "\n" + `[1,2]` + "\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config(file)
	cfg.MaxLine = 2048
	counts, err := Run(context.Background(), cfg, h.deps(nil))
	if err != nil {
		t.Fatal(err)
	}
	if counts.Lines != 3 || counts.Malformed != 2 || counts.Published != 1 {
		t.Fatalf("counts %+v", counts)
	}
	if len(counts.MalformedLines) != 2 || counts.MalformedLines[0] != 4 || counts.MalformedLines[1] != 5 {
		t.Fatalf("malformed lines %v", counts.MalformedLines)
	}
}

// TestMismatchedIdentityIsAMalformedLine: a user whose user_id is not its
// social identity's is refused by events.NewMsg; backfill counts it as a
// malformed line (in the dry run too) and goes on, instead of stopping the
// whole file at it.
func TestMismatchedIdentityIsAMalformedLine(t *testing.T) {
	lines := `{"user_id":"github|1","email":"a@example.com","identities":[{"provider":"github","connection":"github","user_id":"1","isSocial":true}]}
{"user_id":"github|2","email":"b@example.com","identities":[{"provider":"github","connection":"github","user_id":"999","isSocial":true}]}
{"user_id":"github|3","email":"c@example.com","identities":[{"provider":"github","connection":"github","user_id":"3","isSocial":true}]}
`
	file := filepath.Join(t.TempDir(), "export.json")
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		h := newHarness(t)
		c := config(file)
		c.DryRun = dry
		counts, err := Run(context.Background(), c, h.deps(nil))
		if err != nil {
			t.Fatalf("dry=%v: %v", dry, err)
		}
		if counts.Lines != 3 || counts.Malformed != 1 || len(counts.MalformedLines) != 1 || counts.MalformedLines[0] != 2 {
			t.Fatalf("dry=%v: lines %d malformed %d %v, want 3 1 [2]", dry, counts.Lines, counts.Malformed, counts.MalformedLines)
		}
		want := uint64(2)
		if dry {
			want = 0
		}
		if got := h.stored(t); got != want {
			t.Fatalf("dry=%v: %d signups stored, want %d", dry, got, want)
		}
	}
}

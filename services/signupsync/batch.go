package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"

	"github.com/alecthomas/kong"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/rolerun"
	"github.com/signupsync/signupsync/services/backfill"
)

// batchFlags are the flags backfill and passwords share: both publish the
// lines of a file, resumably.
type batchFlags struct {
	DryRun          bool `name:"dry-run" help:"Count what would happen (eligible, skipped by reason, malformed) without publishing."`
	CheckpointEvery int  `name:"checkpoint-every" default:"${checkpoint_every}" cfg:"backfill.CheckpointEvery,passwords.CheckpointEvery" help:"Lines between checkpoints."`
	Restart         bool `name:"restart" cfg:"backfill.Restart,passwords.Restart" help:"Ignore the checkpoint and start from the first line."`
	tenantFlag      `embed:""`
	outputFlags     `embed:""`
	natsFlags       `embed:"" group:"nats"`
	topologyFlags   `embed:"" group:"topology"`
	logFlags        `embed:"" group:"process"`
	shutdownFlags   `embed:"" group:"process"`
}

func batchVars() kong.Vars {
	return kong.Vars{"checkpoint_every": strconv.Itoa(backfill.DefaultConfig().CheckpointEvery)}
}

// publisher connects and, unless dryRun, ensures the topology; js
// publishes asynchronously. The caller drains conn.
func (b batchFlags) publisher(ctx context.Context, name string, dryRun bool, log *slog.Logger) (*rolerun.Conn, jetstream.JetStream, jetstream.KeyValue, error) {
	topo, err := b.topology()
	if err != nil {
		return nil, nil, nil, err
	}
	conn, err := b.connect(name, log)
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := jetstream.New(conn.NC, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil || dryRun {
		return conn, js, nil, err
	}
	if err := rolerun.Await(ctx, js, rolerun.EnsureTopology(topo), log); err != nil {
		return conn, nil, nil, err
	}
	state, err := js.KeyValue(ctx, events.BucketState)
	if err != nil {
		return conn, nil, nil, fmt.Errorf("state bucket: %w", err)
	}
	return conn, js, state, nil
}

// drain drains conn within the shutdown timeout.
func (b batchFlags) drain(ctx context.Context, conn *rolerun.Conn) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.ShutdownTimeout)
	defer cancel()
	return conn.Drain(ctx)
}

// printCounts writes the final counts: JSON, or "mode: summary" and the
// lines listed.
func (b batchFlags) printCounts(w io.Writer, counts any, mode, summary string, lines ...[2]any) {
	if b.json() {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(counts)
		return
	}
	if b.DryRun {
		mode = "dry run"
	}
	fmt.Fprintf(w, "%s: %s\n", mode, summary)
	for _, l := range lines {
		if n, _ := l[1].([]int64); len(n) > 0 {
			fmt.Fprintf(w, "%s: %v\n", l[0], n)
		}
	}
}

// isTerminal reports whether w is a character device (a progress bar is
// drawn only there).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Command bench measures signupsync against the limits of its parts in the
// same run, as shared/BENCH.md asks: raw JetStream publish and consume, the
// ingest handler with a no-op publisher, and raw ImportUsers against the
// Firebase Auth emulator; then the pipeline (ingest saturated and open-loop,
// end-to-end latency, importer and backfill throughput, memory of each
// role). It runs every figure `-runs` times and prints one table with the
// median, the min–max and the ratio to its limit. `make bench` runs it.
//
// The roles run as real processes (bin/signupsync) against a standalone
// nats-server process and a Firebase Auth emulator process, all on
// loopback.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{}
	fs.IntVar(&o.runs, "runs", 5, "runs of every figure (the median is reported)")
	fs.StringVar(&o.bin, "bin", "bin/signupsync", "the signupsync binary")
	fs.StringVar(&o.natsBin, "nats-server", ".cache/bin/nats-server", "the nats-server binary")
	fs.StringVar(&o.firebaseBin, "firebase", "", "the firebase CLI (default: found like the tests find it)")
	fs.IntVar(&o.backfillUsers, "backfill-users", 100000, "users in the generated export")
	fs.IntVar(&o.importerUsers, "importer-users", 30000, "signups pre-loaded for the importer figure")
	fs.StringVar(&o.markdown, "markdown", "", "also write the table as Markdown to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := newBench(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer b.close()
	for i := 1; i <= o.runs; i++ {
		fmt.Fprintf(stderr, "--- run %d of %d\n", i, o.runs)
		if err := b.runOnce(ctx, i); err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
	}
	return b.report(stdout)
}

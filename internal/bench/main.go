// Command bench measures signupsync against the limits of its parts in the
// same run (the method is in BENCHMARKS.md): raw JetStream publish and
// consume, the ingest handler with a no-op publisher (services/ingest's
// BenchmarkHTTPLimit, run in that package's test binary, since nothing in
// internal/ imports a service), and two Firebase limits in the importer's
// user shape (raw ImportUsers, and the requests the importer's rules
// require per 1000 users); then the pipeline (ingest saturated and
// open-loop, end-to-end latency, importer and backfill throughput, memory
// of each role). It runs every figure `-runs` times and prints one table
// with the median, the min–max and the ratio to each limit. `make bench`
// runs it.
//
// With -large-backfill N it also (or, with -runs 0, only) measures the
// backfill of an N-user export once: published into the stream, then
// imported as far as the emulator's memory allows (largebackfill.go).
// `make bench-backfill` runs it for 1,000,000 users.
//
// The roles run as real processes (bin/signupsync) against a standalone
// nats-server process and a Firebase Auth emulator process, all on
// loopback. It runs from the repository root.
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
	fs.StringVar(&o.goBin, "go", "go", "the go command, to build services/ingest's test binary (the HTTP limit)")
	fs.IntVar(&o.backfillUsers, "backfill-users", 100000, "users in the generated export")
	fs.IntVar(&o.importerUsers, "importer-users", 30000, "signups pre-loaded for the importer figure")
	fs.IntVar(&o.limitUsers, "limit-users", 20000, "users imported by each Firebase limit (after 2000 untimed)")
	fs.IntVar(&o.largeBackfill, "large-backfill", 0, "after the runs, publish an export of this many users and import it as far as the emulator's memory allows (0: off)")
	fs.IntVar(&o.emulatorMaxRSS, "emulator-max-rss", 16384, "MiB: the large backfill's import stops when the emulator's resident memory reaches this")
	fs.StringVar(&o.markdown, "markdown", "", "also write the table as Markdown to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case o.runs < 0 || o.largeBackfill < 0:
		return errors.New("-runs and -large-backfill must not be negative")
	case o.runs == 0 && o.largeBackfill == 0:
		return errors.New("nothing to measure: -runs 0 needs -large-backfill")
	case o.limitUsers < 1000:
		return errors.New("-limit-users must be at least 1000")
	case o.largeBackfill > 0 && o.emulatorMaxRSS < 1024:
		return errors.New("-emulator-max-rss must be at least 1024 (MiB)")
	}
	b, err := newBench(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer b.close()
	if o.runs > 0 {
		b.begin(newTable("pipeline and limits", o.runs))
	}
	for i := 1; i <= o.runs; i++ {
		fmt.Fprintf(stderr, "--- run %d of %d\n", i, o.runs)
		if err := b.runOnce(ctx, i); err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
	}
	if o.largeBackfill > 0 {
		if err := b.largeBackfill(ctx); err != nil {
			return fmt.Errorf("large backfill: %w", err)
		}
	}
	return b.report(stdout)
}

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/signupsync/signupsync/events"
)

// The large backfill (-large-backfill N, `make bench-backfill`): an Auth0
// export of N users published into SIGNUPS by `signupsync backfill`, then
// imported by `signupsync importer` until the stream is drained or the
// emulator's resident memory reaches -emulator-max-rss. The emulator keeps
// every account in one Node.js heap (roughly 12–17 KB each), so a million
// may not fit on the machine; the table says how far the import went. It
// runs once, with the limits it is compared with measured just before.

// importStall stops the import phase when no signup was imported for this
// long (an emulator stuck in garbage collection, or an importer stuck).
const importStall = 3 * time.Minute

func (b *bench) largeBackfill(ctx context.Context) error {
	n := b.o.largeBackfill
	t := newTable(fmt.Sprintf("backfill of a %d-user export", n), 1)
	b.begin(t)
	fmt.Fprintf(b.log, "--- backfill of a %d-user export\n", n)
	natsPID := b.natsCmd.Process.Pid
	emu := emulatorGroup()
	if emu == 0 {
		return errors.New("the emulator's process group was not found")
	}

	// The limits, in the same run.
	if err := b.resetTopology(ctx); err != nil {
		return err
	}
	pub, err := b.rawPublish(ctx, 50000)
	if err != nil {
		return err
	}
	b.record(limPublish, "msg/s", pub, false)
	if err := b.firebaseLimits(ctx, "large"); err != nil {
		return err
	}

	file := filepath.Join(b.dir, "large-export.json.gz")
	start := time.Now()
	if err := writeExport(file, n); err != nil {
		return err
	}
	defer os.Remove(file)
	fmt.Fprintf(b.log, "  wrote the export in %s\n", time.Since(start).Round(time.Millisecond))

	// Phase 1: publish into an empty SIGNUPS, no importer running.
	if err := b.resetTopology(ctx); err != nil {
		return err
	}
	if err := resetPeak(natsPID); err != nil {
		return fmt.Errorf("reset nats-server peak RSS: %w", err)
	}
	start = time.Now()
	bfPeak, err := b.runBackfill(ctx, file)
	if err != nil {
		return err
	}
	took := time.Since(start)
	if got := b.streamMsgs(ctx); got != uint64(n) {
		return fmt.Errorf("backfill published %d signups into %s, want %d", got, events.StreamSignups, n)
	}
	b.record("publish: time (backfill process start to exit)", "s", took.Seconds(), true)
	b.record("publish: rate into SIGNUPS", "msg/s", float64(n)/took.Seconds(), false, limPublish)
	b.record("publish: backfill process peak RSS", "MiB", bfPeak, true)
	b.record("publish: nats-server peak RSS", "MiB", peakMiB(natsPID), true)

	// Phase 2: import as far as the emulator's memory allows.
	if err := resetPeak(natsPID); err != nil {
		return fmt.Errorf("reset nats-server peak RSS: %w", err)
	}
	r, err := b.importLarge(ctx, n, emu)
	if err != nil {
		return err
	}
	b.record("import: users imported", "users", float64(r.imported), false)
	b.record("import: rate from the stream", "users/s", float64(r.imported)/r.elapsed.Seconds(), false, limRequired, limImport)
	b.record("import: importer peak RSS", "MiB", r.importerPeak, true)
	b.record("import: nats-server peak RSS", "MiB", peakMiB(natsPID), true)
	b.record("import: emulator peak RSS (process group)", "MiB", r.emuPeak, true)
	if r.imported > 0 {
		b.record("import: emulator RSS growth per account", "KiB", (r.emuPeak-r.emuStart)*1024/float64(r.imported), true)
	}
	t.notes = append(t.notes, fmt.Sprintf("Import stopped after %s because %s: %d of %d users imported (%.1f %%); other outcomes: %s. "+
		"Emulator RSS %.0f MiB before the import, bound %d MiB, Node.js heap limit raised to it (NODE_OPTIONS=%s). "+
		"Batches in flight at the stop finish after it and are not counted.",
		r.elapsed.Round(time.Second), r.stop, r.imported, n, 100*float64(r.imported)/float64(n), r.others,
		r.emuStart, b.o.emulatorMaxRSS, os.Getenv("NODE_OPTIONS")))
	return nil
}

// largeImport is what the import phase of the large backfill measured.
type largeImport struct {
	imported          int
	others            string // settled with another outcome, "outcome=count ..."
	elapsed           time.Duration
	stop              string
	emuStart, emuPeak float64 // MiB
	importerPeak      float64 // MiB
}

// importLarge runs the importer over the n published signups until the
// stream is drained, the emulator's process group emu reaches the memory
// bound or exits, or the import stalls; it polls every second and logs
// progress every 10 s.
func (b *bench) importLarge(ctx context.Context, n, emu int) (largeImport, error) {
	project := "demo-large-backfill"
	defer b.clearProject(project)
	r := largeImport{}
	r.emuStart, _ = groupRSSMiB(emu)
	r.emuPeak = r.emuStart
	bound := float64(b.o.emulatorMaxRSS)
	start := time.Now()
	imp, err := b.startRole(ctx, "importer", "SIGNUPSYNC_FIREBASE_PROJECT="+project)
	if err != nil {
		return r, err
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastCount, lastProgress, lastLog, logCount := 0, time.Now(), time.Now(), 0
	for r.stop == "" {
		select {
		case <-ctx.Done():
			imp.stop()
			return r, ctx.Err()
		case <-tick.C:
		}
		rss, procs := groupRSSMiB(emu)
		r.emuPeak = max(r.emuPeak, rss)
		left := b.unfinished(ctx) // before the count, so a drained stream is counted in full
		if counts, err := outcomes(imp.admin); err == nil {
			r.imported, r.others = counts[string(events.OutcomeImported)], "none"
			var others []string
			for _, o := range events.Outcomes() {
				if c := counts[string(o)]; c > 0 && o != events.OutcomeImported {
					others = append(others, fmt.Sprintf("%s=%d", o, c))
				}
			}
			if len(others) > 0 {
				r.others = strings.Join(others, " ")
			}
		}
		if r.imported > lastCount {
			lastCount, lastProgress = r.imported, time.Now()
		}
		switch {
		case procs == 0:
			r.stop = "the emulator exited"
		case rss >= bound:
			r.stop = fmt.Sprintf("the emulator's resident memory reached %.0f MiB (bound %.0f MiB)", rss, bound)
		case left == 0:
			r.stop = "the stream was drained"
		case time.Since(lastProgress) > importStall:
			r.stop = fmt.Sprintf("nothing was imported for %s", importStall)
		}
		if time.Since(lastLog) >= 10*time.Second || r.stop != "" {
			fmt.Fprintf(b.log, "  import: %4.0f s, %d of %d imported (%.0f/s over the last %.0f s), emulator %.0f MiB, importer %.0f MiB\n",
				time.Since(start).Seconds(), r.imported, n, float64(r.imported-logCount)/time.Since(lastLog).Seconds(), time.Since(lastLog).Seconds(),
				rss, statusMiB(imp.cmd.Process.Pid, "VmRSS"))
			lastLog, logCount = time.Now(), r.imported
		}
	}
	r.elapsed = time.Since(start)
	fmt.Fprintf(b.log, "  import stopped: %s\n", r.stop)
	r.importerPeak = imp.peakRSS()
	imp.stop()
	return r, nil
}

// unfinished is the importer consumer's signups not yet acknowledged
// (pending plus in flight), -1 when it cannot tell.
func (b *bench) unfinished(ctx context.Context) int {
	c, err := b.js.Consumer(ctx, events.StreamSignups, events.ConsumerImporter)
	if err != nil {
		return -1
	}
	info, err := c.Info(ctx)
	if err != nil {
		return -1
	}
	return int(info.NumPending) + info.NumAckPending
}

// outcomes reads the importer's signupsync_importer_outcomes_total from
// its /metrics: settled signups by outcome, summed over reasons.
func outcomes(addr string) (map[string]int, error) {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", res.Status)
	}
	out := map[string]int{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "signupsync_importer_outcomes_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		_, o, ok := strings.Cut(labels, `outcome="`)
		if !ok {
			continue
		}
		o, _, _ = strings.Cut(o, `"`)
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		out[o] += int(v)
	}
	return out, sc.Err()
}

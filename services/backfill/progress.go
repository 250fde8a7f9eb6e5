package backfill

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// progress reports how far a run is: a bar redrawn in place on a terminal,
// a log line every interval otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	size     int64
	every    time.Duration
	log      *slog.Logger
	start    time.Time
	last     time.Time
}

func newProgress(w io.Writer, terminal bool, size int64, every time.Duration, log *slog.Logger) *progress {
	now := time.Now()
	return &progress{w: w, terminal: terminal, size: size, every: every, log: log, start: now, last: now}
}

func (p *progress) update(readBytes, line int64, c Counts) {
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	p.render(readBytes, line, c, false)
}

func (p *progress) render(readBytes, line int64, c Counts, final bool) {
	frac := 0.0
	if p.size > 0 {
		frac = min(1, float64(readBytes)/float64(p.size))
	}
	rate := float64(c.Lines-c.ResumedAt) / max(time.Since(p.start).Seconds(), 1e-9)
	if p.terminal {
		const width = 30
		done := int(frac * width)
		fmt.Fprintf(p.w, "\r[%s%s] %5.1f%% line %d  %.0f lines/s  published %d  malformed %d", strings.Repeat("#", done), strings.Repeat(".", width-done), frac*100, line, rate, c.Published, c.Malformed)
		if final {
			fmt.Fprintln(p.w)
		}
		return
	}
	p.log.Info("backfill progress", "percent", fmt.Sprintf("%.1f", frac*100), "line", line, "lines_per_s", int64(rate),
		"published", c.Published, "duplicates", c.Duplicates, "malformed", c.Malformed)
}

func (p *progress) done(c Counts) { p.render(p.size, c.Lines, c, true) }

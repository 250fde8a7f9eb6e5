package importer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
)

// TestFirebaseOutage stops a dedicated emulator mid-run. The breaker must
// open, the importer must stop fetching (so MaxDeliver is never reached and
// nothing is dead-lettered for the outage), and after the restart every
// signup must be imported exactly once.
func TestFirebaseOutage(t *testing.T) {
	dir := t.TempDir()
	emu, err := testenv.NewEmulator(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Stop() })
	t.Setenv(testenv.EmulatorHostEnv, emu.Host)

	e := newEnv(t)
	// The emulator keeps state across a restart only for its own project.
	e.project = emu.Project
	e.fb = testenv.FirebaseAuth(t, e.project)
	e.deps.Accounts = e.fb
	e.cfg.Delivery.MaxDeliver = 4
	e.cfg.BreakerFailures = 2
	e.cfg.BreakerOpenFor = 300 * time.Millisecond
	e.cfg.BatchSize = 20
	e.start()
	m := e.deps.Metrics

	publish := func(from, to int) {
		for i := from; i < to; i++ {
			e.publish(events.SourceAction, social("google-oauth2", fmt.Sprint(60000+i), fmt.Sprintf("o%d@example.com", i)), 0)
		}
	}
	publish(0, 50)
	e.idle()

	stopped := time.Now()
	if err := emu.Stop(); err != nil {
		t.Fatal(err)
	}
	publish(50, 150)
	testenv.Eventually(t, "the breaker to open", func() bool { return testutil.ToFloat64(m.breaker) == 2 })
	// Stay down through several open → half-open → open cycles: each probe
	// fails without touching a message.
	testenv.Eventually(t, "five failed probes", func() bool {
		return testutil.ToFloat64(m.probes.WithLabelValues("failed")) >= 5
	})
	if err := emu.Start(true); err != nil {
		t.Fatal(err)
	}
	down := time.Since(stopped)
	e.idle()

	for i := range 150 {
		id := fmt.Sprintf("google-oauth2|%d", 60000+i)
		if le := e.entry(id); le.Outcome != events.OutcomeImported {
			t.Fatalf("%s: %+v", id, le)
		}
	}
	if n := len(e.dlq()); n != 0 {
		t.Fatalf("%d dead letters for an outage", n)
	}
	if got := len(e.accounts()); got != 150 {
		log, _ := os.ReadFile(filepath.Join(dir, "emulator.log"))
		t.Fatalf("%d accounts, want 150; emulator log:\n%s", got, log)
	}
	open := testutil.ToFloat64(m.transitions.WithLabelValues("closed", "open"))
	halfOpen := testutil.ToFloat64(m.transitions.WithLabelValues("open", "half-open"))
	reopen := testutil.ToFloat64(m.transitions.WithLabelValues("half-open", "open"))
	closed := testutil.ToFloat64(m.transitions.WithLabelValues("half-open", "closed"))
	naks := testutil.ToFloat64(m.naks.WithLabelValues("transient"))
	if open < 1 || closed < 1 || halfOpen < 5 {
		t.Fatalf("breaker transitions closed→open %v, open→half-open %v, half-open→closed %v", open, halfOpen, closed)
	}
	t.Logf("outage of %s: breaker closed→open %.0f, open→half-open %.0f, half-open→open %.0f, half-open→closed %.0f; %.0f messages naked; 0 dead letters",
		down.Round(time.Millisecond), open, halfOpen, reopen, closed, naks)
	if strings.Contains(e.logs.String(), "@example.com") {
		t.Fatal("logs contain an email address")
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
)

// binary runs this test binary as the signupsync command.
func binary(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SIGNUPSYNC_TEST_MAIN=1")
	return cmd
}

// TestBackfillKilledAndResumed kills a backfill process with SIGKILL after
// its first checkpoint, runs the same command again, and checks that the
// stream ends up with exactly one signup per distinct user of the export.
func TestBackfillKilledAndResumed(t *testing.T) {
	nats := testenv.StartNATS(t)
	_, js := nats.Connect()
	testenv.Ensure(t, js)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "export.json.gz")
	truth := testenv.WriteExport(t, file, 60000, true)
	state, err := js.KeyValue(ctx, events.BucketState)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"backfill", "--file", file, "--checkpoint-every", "2000", "--rate", "20000"}
	cmd := binary(args...)
	cmd.Env = append(cmd.Env, "SIGNUPSYNC_NATS_URL="+nats.URL)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "a first checkpoint", func() bool {
		keys, err := state.ListKeys(ctx)
		if err != nil {
			return false
		}
		for k := range keys.Keys() {
			if strings.HasPrefix(k, "backfill.") {
				return true
			}
		}
		return false
	})
	_ = cmd.Process.Signal(syscall.SIGKILL)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("backfill was not killed mid-run (it may have finished first): %v\n%s", err, out.String())
	}
	killedAt := mustStream(t, js)
	info, _ := killedAt.Info(ctx)
	if info.State.Msgs == 0 || info.State.Msgs >= uint64(truth.Distinct()) {
		t.Fatalf("killed after %d of %d signups: not half-way", info.State.Msgs, truth.Distinct())
	}

	resume := binary(append(args, "--format", "json")...)
	resume.Env = append(resume.Env, "SIGNUPSYNC_NATS_URL="+nats.URL)
	res, err := resume.CombinedOutput()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, res)
	}
	if !strings.Contains(string(res), `"resumed_at"`) || !strings.Contains(string(res), `"complete": true`) {
		t.Fatalf("the second run did not resume from the checkpoint:\n%s", res)
	}
	info, _ = mustStream(t, js).Info(ctx)
	if info.State.Msgs != uint64(truth.Distinct()) {
		t.Fatalf("stream holds %d signups after kill and resume, want %d distinct users", info.State.Msgs, truth.Distinct())
	}
}

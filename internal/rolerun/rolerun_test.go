package rolerun

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/internal/testenv"
)

func readyz(addr string) int {
	res, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// TestReadyOnlyWhileRunningThenDrained: /readyz answers 503 while the
// topology is awaited, 200 once the role runs; when ctx ends the unit
// stops, the connection is drained and closed, and Run returns nil.
func TestReadyOnlyWhileRunningThenDrained(t *testing.T) {
	nats := testenv.StartNATS(t)
	admin := testenv.FreeAddr(t)
	topologyReady := make(chan struct{})
	var js jetstream.JetStream
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Role{
			Name: "test", Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
			NATS:      NATS{URLs: nats.URL, Connections: []Connection{{Name: "rolerun-test"}}},
			AdminAddr: admin, ShutdownTimeout: 5 * time.Second,
			Prepare: func(context.Context, jetstream.JetStream) error {
				select {
				case <-topologyReady:
					return nil
				default:
					return errors.New("not yet")
				}
			},
			Start: func(_ context.Context, env Env) (Running, error) {
				js = env.JS[0]
				unit := Unit{Name: "wait", Run: func(ctx context.Context) error { <-ctx.Done(); return nil }}
				return Running{Units: []Unit{unit}, Ready: func(context.Context) error { return nil }}, nil
			},
		})
	}()
	testenv.Eventually(t, "the admin server to answer 503 while the topology is awaited", func() bool { return readyz(admin) == http.StatusServiceUnavailable })
	close(topologyReady)
	testenv.Eventually(t, "readiness once the role runs", func() bool { return readyz(admin) == http.StatusOK })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want a clean stop", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if !js.Conn().IsClosed() {
		t.Error("the NATS connection is not closed after Run")
	}
	if code := readyz(admin); code != 0 {
		t.Errorf("the admin server still answers (%d) after Run", code)
	}
}

// TestAStuckUnitCannotHoldTheShutdown: a unit that ignores its context is
// given up on at the shutdown deadline, and Run says so.
func TestAStuckUnitCannotHoldTheShutdown(t *testing.T) {
	nats := testenv.StartNATS(t)
	release := make(chan struct{})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Role{
			Name: "stuck", Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
			NATS:            NATS{URLs: nats.URL, Connections: []Connection{{Name: "rolerun-test"}}},
			ShutdownTimeout: 200 * time.Millisecond,
			Start: func(context.Context, Env) (Running, error) {
				return Running{Units: []Unit{{Name: "stuck", Run: func(context.Context) error { <-release; return nil }}}}, nil
			},
		})
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "did not stop within the shutdown timeout") {
			t.Fatalf("Run = %v, want the shutdown deadline reported", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stuck unit held Run past the shutdown deadline")
	}
}

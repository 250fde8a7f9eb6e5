package events_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
)

// TestEnsureUpdatesOnlyWhatDiffers: every role runs Ensure at start; a
// second Ensure with the same topology sends no stream update (an update
// racing a consumer creation is a data race inside nats-server), while a
// changed setting is still applied.
func TestEnsureUpdatesOnlyWhatDiffers(t *testing.T) {
	n := testenv.StartNATS(t)
	nc, js := n.Connect()
	var updates atomic.Int64
	sub, err := nc.Subscribe("$JS.API.STREAM.UPDATE.>", func(*nats.Msg) { updates.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ctx := context.Background()
	topo := events.DefaultTopology()
	if err := events.Ensure(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	first := updates.Load()
	if err := events.Ensure(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	if got := updates.Load() - first; got != 0 {
		t.Fatalf("a second Ensure of the same topology sent %d stream updates", got)
	}
	topo.DuplicateWindow = 20 * time.Minute
	if err := events.Ensure(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, events.StreamSignups)
	if err != nil {
		t.Fatal(err)
	}
	if st.CachedInfo().Config.Duplicates != 20*time.Minute {
		t.Fatalf("duplicate window %s after a changed Ensure, want 20m", st.CachedInfo().Config.Duplicates)
	}
}

// Package testenv starts the real parts tests run against: an embedded
// JetStream server and the Firebase Auth emulator. It is for tests only.
package testenv

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/natsembed"
)

// NATS is an embedded JetStream server owned by one test.
type NATS struct {
	t        testing.TB
	Server   *server.Server
	URL      string
	port     int
	storeDir string
}

// StartNATS starts a JetStream server on a free loopback port with its store
// in a temporary directory, and shuts it down when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{t: t, storeDir: t.TempDir()}
	ns, err := natsembed.Start(natsembed.Options{Port: -1, StoreDir: n.storeDir})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	n.Server = ns
	n.URL = ns.ClientURL()
	_, p, _ := net.SplitHostPort(ns.Addr().String())
	n.port, _ = strconv.Atoi(p)
	t.Cleanup(n.Stop)
	return n
}

// Stop shuts the server down and waits for it. Calling it twice is safe.
func (n *NATS) Stop() {
	if n.Server == nil {
		return
	}
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
	n.Server = nil
}

// Restart starts the server again on the same port and store.
func (n *NATS) Restart() {
	n.t.Helper()
	n.Stop()
	ns, err := natsembed.Start(natsembed.Options{Port: n.port, StoreDir: n.storeDir})
	if err != nil {
		n.t.Fatalf("restart nats: %v", err)
	}
	n.Server = ns
}

// Connect opens a client connection that retries reconnects forever, closed
// when the test ends, and a JetStream context on it.
func (n *NATS) Connect(opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	n.t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(n.URL, opts...)
	if err != nil {
		n.t.Fatalf("connect nats: %v", err)
	}
	n.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		n.t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Ensure creates signupsync's topology with memory-friendly defaults.
func Ensure(t testing.TB, js jetstream.JetStream) events.Topology {
	t.Helper()
	topo := events.DefaultTopology()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := events.Ensure(ctx, js, topo); err != nil {
		t.Fatalf("ensure topology: %v", err)
	}
	return topo
}

// Eventually polls cond every 10ms until it holds or the deadline (60s, a
// guard against hangs, not a performance bound) passes.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

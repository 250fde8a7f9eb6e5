package testenv

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
)

// Buffer is a bytes.Buffer safe for the concurrent writers of a logger or
// a command's output.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// FreeAddr returns a loopback host:port nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// FreePort returns a free loopback port.
func FreePort(t testing.TB) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(FreeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// WaitDrained waits until the importer's consumer has nothing pending,
// unacknowledged or waiting for redelivery. The 3-minute limit guards
// against a hang; it is not a performance bound.
func WaitDrained(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		// The consumer's pending count may lag a publish that was just
		// acknowledged, so drained also means the ack floor reached the
		// stream's last message.
		var last uint64
		if st, err := js.Stream(ctx, events.StreamSignups); err == nil {
			if si, err := st.Info(ctx); err == nil {
				last = si.State.LastSeq
			}
		}
		c, err := js.Consumer(ctx, events.StreamSignups, events.ConsumerImporter)
		if err == nil {
			info, err := c.Info(ctx)
			if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0 && info.AckFloor.Stream >= last {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the importer to drain the stream")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

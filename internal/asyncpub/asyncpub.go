// Package asyncpub publishes many messages to one JetStream stream
// asynchronously and settles their acknowledgements in bounded batches, as
// the file-driven publishers (backfill, passwords) need: fast, and nothing
// counted as stored before JetStream acknowledged it.
package asyncpub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publisher is the part of jetstream.JetStream a Batch uses.
type Publisher interface {
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Counts are acknowledged publishes.
type Counts struct {
	// Published counts acknowledged messages; Duplicates those JetStream
	// acknowledged as duplicates of a Nats-Msg-Id it already had.
	Published, Duplicates int64
}

// Batch publishes to Stream, keeping at most Max acknowledgements
// outstanding. Messages must carry a Nats-Msg-Id: one whose asynchronous
// publish failed is published again, which the id makes safe. Safe for
// concurrent use.
type Batch struct {
	pub    Publisher
	stream string
	max    int

	mu      sync.Mutex
	pending []pending
}

type pending struct {
	fut jetstream.PubAckFuture
	msg *nats.Msg
}

// New returns a Batch publishing to stream through pub with at most max
// acknowledgements outstanding (max ≥ 1).
func New(pub Publisher, stream string, maxPending int) *Batch {
	return &Batch{pub: pub, stream: stream, max: max(maxPending, 1)}
}

// Publish sends msg asynchronously; when max acknowledgements are
// outstanding, or the client reports too many stalled messages, it settles
// them first. It returns what it settled.
func (b *Batch) Publish(ctx context.Context, msg *nats.Msg) (Counts, error) {
	var settled Counts
	for attempt := 0; ; attempt++ {
		fut, err := b.pub.PublishMsgAsync(msg, jetstream.WithExpectStream(b.stream))
		if err == nil {
			b.mu.Lock()
			b.pending = append(b.pending, pending{fut: fut, msg: msg})
			n := len(b.pending)
			b.mu.Unlock()
			if n >= b.max {
				c, err := b.Settle(ctx)
				return settled.add(c), err
			}
			return settled, nil
		}
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) || attempt > 100 {
			return settled, fmt.Errorf("publish: %w", err)
		}
		c, err := b.Settle(ctx)
		if settled = settled.add(c); err != nil {
			return settled, err
		}
	}
}

func (c Counts) add(o Counts) Counts {
	return Counts{Published: c.Published + o.Published, Duplicates: c.Duplicates + o.Duplicates}
}

// Settle waits for every outstanding acknowledgement. A message whose
// asynchronous publish failed is published again synchronously (up to 8
// attempts, backing off to 2 s) before Settle returns; its error names the
// message's Nats-Msg-Id, never its data. It returns what it settled.
func (b *Batch) Settle(ctx context.Context) (Counts, error) {
	if b == nil { // nothing was ever published (a dry run)
		return Counts{}, nil
	}
	b.mu.Lock()
	list := b.pending
	b.pending = nil
	b.mu.Unlock()
	var c Counts
	for _, p := range list {
		var ack *jetstream.PubAck
		select {
		case ack = <-p.fut.Ok():
		case err := <-p.fut.Err():
			var perr error
			if ack, perr = b.republish(ctx, p.msg, err); perr != nil {
				return c, perr
			}
		}
		c.Published++
		if ack.Duplicate {
			c.Duplicates++
		}
	}
	return c, nil
}

func (b *Batch) republish(ctx context.Context, msg *nats.Msg, first error) (*jetstream.PubAck, error) {
	delay := 100 * time.Millisecond
	last := first
	for range 8 {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		ack, err := b.pub.PublishMsg(pctx, msg, jetstream.WithExpectStream(b.stream))
		cancel()
		if err == nil {
			return ack, nil
		}
		last = err
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("publish %s: %w", msg.Header.Get(nats.MsgIdHdr), last)
		}
		delay = min(delay*2, 2*time.Second)
	}
	return nil, fmt.Errorf("publish %s: %w", msg.Header.Get(nats.MsgIdHdr), last)
}

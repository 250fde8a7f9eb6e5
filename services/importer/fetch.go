package importer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/signupsync/signupsync/events"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// The fetch loop: workers pull batches while the breaker lets them.

func (im *Importer) worker(ctx context.Context) {
	im.fetchLoop(ctx, "signups", im.cons, im.cfg.BatchSize, im.cfg.BatchWindow, im.process)
}

// fetchLoop is every consumer's loop: while the breaker lets it, fetch up
// to size messages (waiting at most wait for them) and hand a non-empty
// batch to process, until ctx ends. name tells the consumer in logs.
func (im *Importer) fetchLoop(ctx context.Context, name string, cons jetstream.Consumer, size int, wait time.Duration, process func(context.Context, []jetstream.Msg)) {
	for ctx.Err() == nil {
		if !im.awaitBreaker(ctx) {
			return
		}
		batch, err := cons.Fetch(size, jetstream.FetchMaxWait(wait))
		if err != nil {
			im.log.DebugContext(ctx, "fetch failed", "consumer", name, "err", err)
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			if err := batch.Error(); err != nil {
				im.log.DebugContext(ctx, "fetch ended", "consumer", name, "err", err)
				sleep(ctx, 100*time.Millisecond)
			}
			continue
		}
		process(ctx, msgs)
	}
}

// consume starts m's consumer span, parented by the producer's trace
// context from m's headers while keeping bctx's deadline, linked both ways
// with the batch span when batch is not nil, and reads m's metadata. The
// span is started even when the metadata cannot be read (the error), so
// the caller can dead-letter m under it.
func (im *Importer) consume(bctx context.Context, batch trace.Span, m jetstream.Msg) (context.Context, trace.Span, *jetstream.MsgMetadata, error) {
	pctx := im.prop.Extract(bctx, events.HeaderCarrier(m.Headers()))
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", m.Subject()),
			attribute.String("messaging.operation.type", "process")),
	}
	if batch != nil {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: batch.SpanContext()}))
	}
	ctx, span := im.tracer.Start(trace.ContextWithRemoteSpanContext(bctx, trace.SpanContextFromContext(pctx)), "process "+m.Subject(), opts...)
	if batch != nil {
		batch.AddLink(trace.Link{SpanContext: span.SpanContext()})
	}
	meta, err := m.Metadata()
	if err != nil {
		return ctx, span, nil, fmt.Errorf("message metadata: %w", err)
	}
	span.SetAttributes(attribute.Int64("messaging.nats.stream_sequence", int64(meta.Sequence.Stream)), attribute.Int64("messaging.nats.delivered", int64(meta.NumDelivered)))
	return ctx, span, meta, nil
}

// awaitBreaker blocks while the breaker is open, so an outage burns no
// deliveries. Once the open period passes it sends one probe (a cheap
// look-up) instead of a batch; success closes the breaker. It returns false
// when ctx ends.
func (im *Importer) awaitBreaker(ctx context.Context) bool {
	for {
		switch im.guard.state() {
		case gobreaker.StateClosed:
			return true
		case gobreaker.StateHalfOpen:
			// One worker probes; the others keep waiting.
			if im.probing.TryLock() {
				err := im.guard.do(ctx, "probe", func(ctx context.Context) error {
					_, err := im.accounts.GetUsers(ctx, []auth.UserIdentifier{auth.UIDIdentifier{UID: "signupsync-breaker-probe"}})
					return classifyFirebase("probe", err)
				})
				im.probing.Unlock()
				if !errors.Is(err, ErrBreakerOpen) {
					im.metrics.probe(err == nil)
				}
				if err == nil {
					im.log.InfoContext(ctx, "firebase reachable again; resuming")
					return true
				}
			}
		}
		if !sleep(ctx, min(im.cfg.BreakerOpenFor/5, 250*time.Millisecond)) {
			return false
		}
	}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

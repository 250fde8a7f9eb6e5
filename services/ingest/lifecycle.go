package ingest

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/signupsync/signupsync/events"
)

// Lifecycle events: Event Streams user.updated and user.deleted, and the
// Log Streams user deletions (sdu, du), are published on
// users.v1.<kind>.<source> in SIGNUPS_LIFECYCLE (events.LifecycleSubject)
// for the importer to apply to the accounts signupsync created. Like a
// signup, a request is answered 2xx only once every lifecycle event it
// carried is durable.

// publishLifecycle makes one lifecycle event durable. It returns the event
// id and whether JetStream already held it. An event without a usable
// time or user id is a client error (events.ErrMalformedLifecycle).
func (s *Service) publishLifecycle(ctx context.Context, src events.Source, d events.LifecycleData) (string, bool, error) {
	msg, ev, err := events.NewLifecycleMsg(src, d, s.now())
	if err != nil {
		return "", false, err
	}
	ctx, span := s.tracer.Start(ctx, "publish "+msg.Subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(messagingAttrs(msg.Subject, ev.ID)...))
	defer span.End()
	span.SetAttributes(attribute.String("signupsync.lifecycle", string(d.Kind)))
	s.prop.Inject(ctx, events.HeaderCarrier(msg.Header))

	pctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	ack, err := s.pub.PublishMsg(pctx, msg, jetstream.WithExpectStream(events.StreamLifecycle))
	if err != nil {
		recordSpanError(span, err)
		s.metrics.publishFailed(src)
		return "", false, fmt.Errorf("%w: publish lifecycle %s: %w", errBrokerUnavailable, ev.ID, err)
	}
	s.metrics.lifecyclePublished(d.Kind, src, ack.Duplicate)
	return ev.ID, ack.Duplicate, nil
}

// storeLifecycle publishes every lifecycle event of a request in order and
// returns their answers; the first failure stops it.
func (s *Service) storeLifecycle(ctx context.Context, src events.Source, list []events.LifecycleData) ([]accepted, error) {
	out := make([]accepted, 0, len(list))
	for _, d := range list {
		id, dup, err := s.publishLifecycle(ctx, src, d)
		if err != nil {
			return nil, err
		}
		out = append(out, accepted{ID: id, Duplicate: dup})
	}
	return out, nil
}

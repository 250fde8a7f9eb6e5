package importer

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
)

// maxErrorHeader bounds the error text copied into a dead letter's header.
const maxErrorHeader = 1024

// deadLetter copies msg to SIGNUPS_DLQ with headers naming the reason, the
// error, where the original was and how often it was delivered, and waits
// for the acknowledgement. The copy keeps the original headers, the trace
// context among them. Its Nats-Msg-Id is derived from the original stream
// sequence, so a crash between this publish and the Term of the original
// cannot leave two dead letters.
func deadLetter(ctx context.Context, js jetstream.JetStream, msg jetstream.Msg, meta *jetstream.MsgMetadata, reason string, cause error, now time.Time) error {
	var from *dlqOrigin
	if meta != nil {
		from = &dlqOrigin{stream: meta.Stream, seq: meta.Sequence.Stream, deliveries: meta.NumDelivered, published: meta.Timestamp}
	}
	return publishDeadLetter(ctx, js, msg.Subject(), msg.Data(), nats.Header(msg.Headers()), from, reason, cause, now)
}

// dlqOrigin is where a dead letter's original message was.
type dlqOrigin struct {
	stream     string
	seq        uint64
	deliveries uint64
	published  time.Time
}

func publishDeadLetter(ctx context.Context, js jetstream.JetStream, subject string, data []byte, hdr nats.Header, from *dlqOrigin, reason string, cause error, now time.Time) error {
	out := &nats.Msg{Subject: events.DLQSubject(subject), Data: data, Header: nats.Header{}}
	for k, v := range hdr {
		if k == events.HeaderMsgID {
			out.Header.Set(events.HeaderDLQMsgID, v[0])
			continue
		}
		out.Header[k] = append([]string(nil), v...)
	}
	errText := ""
	if cause != nil {
		errText = cause.Error()
		if len(errText) > maxErrorHeader {
			errText = errText[:maxErrorHeader]
		}
	}
	out.Header.Set(events.HeaderDLQReason, reason)
	out.Header.Set(events.HeaderDLQError, errText)
	out.Header.Set(events.HeaderDLQFailedAt, events.FormatTime(now))
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(events.StreamDeadLetter)}
	if from != nil {
		out.Header.Set(events.HeaderDLQStream, from.stream)
		out.Header.Set(events.HeaderDLQSequence, strconv.FormatUint(from.seq, 10))
		out.Header.Set(events.HeaderDLQDeliveries, strconv.FormatUint(from.deliveries, 10))
		out.Header.Set(events.HeaderDLQFirstPublished, events.FormatTime(from.published))
		opts = append(opts, jetstream.WithMsgID("dlq-"+from.stream+"-"+strconv.FormatUint(from.seq, 10)))
	}
	out.Header.Set(events.HeaderDLQSubject, subject)
	if _, err := js.PublishMsg(ctx, out, opts...); err != nil {
		return transient(fmt.Errorf("publish dead letter: %w", err), 0)
	}
	return nil
}

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
	out := &nats.Msg{Subject: events.DLQSubject(msg.Subject()), Data: msg.Data(), Header: nats.Header{}}
	for k, v := range msg.Headers() {
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
	var id string
	if meta != nil {
		out.Header.Set(events.HeaderDLQStream, meta.Stream)
		out.Header.Set(events.HeaderDLQSequence, strconv.FormatUint(meta.Sequence.Stream, 10))
		out.Header.Set(events.HeaderDLQDeliveries, strconv.FormatUint(meta.NumDelivered, 10))
		out.Header.Set(events.HeaderDLQFirstPublished, events.FormatTime(meta.Timestamp))
		id = "dlq-" + meta.Stream + "-" + strconv.FormatUint(meta.Sequence.Stream, 10)
	}
	out.Header.Set(events.HeaderDLQSubject, msg.Subject())
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(events.StreamDeadLetter)}
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	if _, err := js.PublishMsg(ctx, out, opts...); err != nil {
		return transient(fmt.Errorf("publish dead letter: %w", err), 0)
	}
	return nil
}

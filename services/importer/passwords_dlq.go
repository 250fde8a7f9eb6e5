package importer

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
)

// writeDeadLetter writes the dead letter of it: a signup's copy to
// SIGNUPS_DLQ (dlq.go), or for a password message a body of the user id
// only on events.PasswordDLQSubject in PASSWORDS_DLQ. The hash is dropped:
// the export is the place to read it again from (see events/passwords.go).
func (im *Importer) writeDeadLetter(ctx context.Context, it *item, reason string, cause error) error {
	if it.pw == nil {
		return deadLetter(ctx, im.js, it.msg, it.meta, reason, cause, im.now())
	}
	userID := it.ev.Subject
	if userID == "" {
		userID = it.msg.Headers().Get(events.HeaderUserID)
	}
	body, err := json.Marshal(events.PasswordDeadLetter{Auth0UserID: userID})
	if err != nil {
		return err
	}
	out := &nats.Msg{Subject: events.PasswordDLQSubject, Data: body, Header: nats.Header{}}
	// The original headers carry no secret (Msg-Id, user id, trace
	// context); nothing else of the message is copied.
	for k, v := range it.msg.Headers() {
		if k == events.HeaderMsgID {
			out.Header.Set(events.HeaderDLQMsgID, v[0])
			continue
		}
		out.Header[k] = append([]string(nil), v...)
	}
	text := redact(errText(cause), it.pw.hash)
	if len(text) > maxErrorHeader {
		text = text[:maxErrorHeader]
	}
	out.Header.Set(events.HeaderDLQReason, reason)
	out.Header.Set(events.HeaderDLQError, text)
	out.Header.Set(events.HeaderDLQFailedAt, events.FormatTime(im.now()))
	out.Header.Set(events.HeaderDLQSubject, it.msg.Subject())
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(events.StreamPasswordsDLQ)}
	if m := it.meta; m != nil {
		out.Header.Set(events.HeaderDLQStream, m.Stream)
		out.Header.Set(events.HeaderDLQSequence, strconv.FormatUint(m.Sequence.Stream, 10))
		out.Header.Set(events.HeaderDLQDeliveries, strconv.FormatUint(m.NumDelivered, 10))
		out.Header.Set(events.HeaderDLQFirstPublished, events.FormatTime(m.Timestamp))
		opts = append(opts, jetstream.WithMsgID("dlq-"+m.Stream+"-"+strconv.FormatUint(m.Sequence.Stream, 10)))
	}
	if _, err := im.js.PublishMsg(ctx, out, opts...); err != nil {
		return transient(fmt.Errorf("publish password dead letter: %w", err), 0)
	}
	return nil
}

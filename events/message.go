package events

import (
	"time"

	"github.com/nats-io/nats.go"
)

// NewMsg builds the NATS message of a signup learnt from src at t: the
// encoded event on Subject(src), with Nats-Msg-Id set to the event id (the
// deduplication rule) and the source and user id headers. Every publisher
// (ingest, backfill, reconcile) uses it, so a signup is one message however
// it arrives. Callers add the trace context and publish with
// jetstream.WithExpectStream(StreamSignups).
func NewMsg(src Source, d SignupData, t time.Time) (*nats.Msg, Signup, error) {
	ev := NewSignup(src, d, t)
	b, err := Encode(ev)
	if err != nil {
		return nil, Signup{}, err
	}
	msg := &nats.Msg{Subject: Subject(src), Data: b, Header: nats.Header{}}
	msg.Header.Set(HeaderMsgID, ev.ID)
	msg.Header.Set(HeaderSource, string(src))
	msg.Header.Set(HeaderUserID, d.UserID)
	return msg, ev, nil
}

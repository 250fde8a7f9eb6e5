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
//
// It refuses a signup whose user_id is not its primary identity's with an
// [*IdentityError] (errors.Is(err, ErrInvalidUser)), so no publisher can
// store one; see [CheckPrimaryIdentity]. Senders of such a body get a
// client error, not a retry.
func NewMsg(src Source, d SignupData, t time.Time) (*nats.Msg, Signup, error) {
	if err := CheckPrimaryIdentity(d); err != nil {
		return nil, Signup{}, err
	}
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

package events

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Subject namespaces. SIGNUPS holds signups.v1.<source>; SIGNUPS_DLQ holds
// dlq.signups.v1.<source>, outside the SIGNUPS filter so a dead letter is never
// consumed as a signup.
const (
	SubjectPrefix    = "signups.v1"
	SubjectAll       = SubjectPrefix + ".>"
	DLQSubjectPrefix = "dlq." + SubjectPrefix
	DLQSubjectAll    = DLQSubjectPrefix + ".>"
)

// Subject is the subject a signup from src is published on.
func Subject(src Source) string { return SubjectPrefix + "." + string(src) }

// DLQSubject is the dead-letter subject for a message first published on
// subject (a signups.v1 subject).
func DLQSubject(subject string) string {
	if rest, ok := strings.CutPrefix(subject, SubjectPrefix+"."); ok {
		return DLQSubjectPrefix + "." + rest
	}
	return DLQSubjectPrefix + ".unknown"
}

// Message headers. Nats-Msg-Id carries [EventID] on first publish.
const (
	HeaderMsgID  = nats.MsgIdHdr
	HeaderSource = "Signupsync-Source"
	HeaderUserID = "Signupsync-User-Id"

	// Dead-letter headers, set by the importer when it gives a message up.
	HeaderDLQReason         = "Signupsync-Dlq-Reason"
	HeaderDLQError          = "Signupsync-Dlq-Error"
	HeaderDLQStream         = "Signupsync-Dlq-Stream"
	HeaderDLQSubject        = "Signupsync-Dlq-Subject"
	HeaderDLQSequence       = "Signupsync-Dlq-Sequence"
	HeaderDLQMsgID          = "Signupsync-Dlq-Msg-Id"
	HeaderDLQDeliveries     = "Signupsync-Dlq-Deliveries"
	HeaderDLQFirstPublished = "Signupsync-Dlq-First-Published"
	HeaderDLQFailedAt       = "Signupsync-Dlq-Failed-At"

	// HeaderReplayedFrom names the dead letter (stream sequence in
	// SIGNUPS_DLQ) a replayed message came from.
	HeaderReplayedFrom = "Signupsync-Replayed-From"
)

// ReasonInvalidEntry is the dead-letter reason of an entry ingest kept
// instead of refusing its batch: a signup entry of an Auth0 Log Streams
// batch that fails its schema or its identity check. The dead letter's data
// is the entry as Auth0 sent it, not a signup event; it has no original
// subject or sequence, because it never reached SIGNUPS.
const ReasonInvalidEntry = "invalid_entry"

// HeaderCarrier adapts nats.Header to OpenTelemetry's TextMapCarrier so the
// W3C trace context travels in message headers.
type HeaderCarrier nats.Header

// Get returns the first value of key.
func (c HeaderCarrier) Get(key string) string { return nats.Header(c).Get(key) }

// Set replaces the values of key.
func (c HeaderCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// FormatTime renders header timestamps (RFC 3339, UTC, nanoseconds).
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/schemas"
)

// A Log Streams batch is decoded entry by entry (see entrySplitter). Each
// entry is parsed on its own and classified by data.type alone:
//
//   - ss (successful signup) is a signup;
//   - s and scoa (successful login, successful cross-origin login) are a
//     signup when they are the user's first login: Auth0 logs no ss for a
//     social signup, only the first login. Auth0's tenant log schema puts
//     the count in details.prompts[].stats.loginsCount; deliveries also
//     carry details.stats.loginsCount. An entry is a first login when at
//     least one count is present and every count present is 1;
//   - sdu and du (Successful User Deletion, Deleted User) are a user
//     deletion, published as a lifecycle event (events.LogLifecycle) with
//     the entry's date as its time;
//   - every other entry is counted by type (the label from knownTypes,
//     "other" for the rest) and not validated further, whatever its type's
//     length or its other fields.
//
// A signup entry is then validated against schemas.Auth0LogEvent and its
// identity checked. One that fails is not a reason to refuse the batch,
// whose other signups Auth0 would otherwise retry and finally drop: it is
// kept, as Auth0 sent it, in SIGNUPS_DLQ (reason events.ReasonInvalidEntry,
// the failing field in the error header) for an operator to see. The batch
// is answered 202 only once every signup and every kept entry is durable.
//
// Only a body that is not a Log Streams batch at all is refused: malformed
// JSON (the framing of the following entries is then unknown), an entry
// without a string data.type, or a batch past the limits (413).

// logEntryKind is what an entry means to signupsync.
type logEntryKind int

const (
	logIgnored logEntryKind = iota
	logSignup
	logFirstLogin
	logDeletion
)

// firstLoginTypes are the successful-login log types whose details carry a
// login count. Silent authentication (ssa) needs an existing session and
// native social login (sens) carries no count, so neither can tell a first
// login.
var firstLoginTypes = map[string]bool{"s": true, "scoa": true}

func classifyLogEntry(typ string, data map[string]any) logEntryKind {
	switch {
	case typ == "ss":
		return logSignup
	case firstLoginTypes[typ] && isFirstLogin(obj(data, "details")):
		return logFirstLogin
	case events.IsLogDeletion(typ):
		return logDeletion
	}
	return logIgnored
}

// isFirstLogin reports whether details holds at least one login count and
// every count it holds (details.stats, details.prompts[].stats) is exactly
// 1. Null counts are missing data, as Auth0's schema says. The test is
// written so that every entry it accepts also meets the schema's first-login
// condition, which requires a valid user_id.
func isFirstLogin(details map[string]any) bool {
	seen, ok := false, true
	count := func(stats map[string]any) {
		switch v := stats["loginsCount"].(type) {
		case nil:
		case json.Number:
			if v == "1" {
				seen = true
			} else {
				ok = false
			}
		default:
			ok = false
		}
	}
	count(obj(details, "stats"))
	prompts, _ := details["prompts"].([]any)
	for _, p := range prompts {
		if m, isObj := p.(map[string]any); isObj {
			count(obj(m, "stats"))
		}
	}
	return seen && ok
}

// invalidEntry is a signup entry kept in the dead-letter stream.
type invalidEntry struct {
	index  int
	raw    []byte
	field  string // JSON pointer inside the entry
	reason string // fixed text: never echoes the entry
}

// logBatch is what a decoded batch holds for publishing. Its size is
// bounded by the body limit and maxLogEntries.
type logBatch struct {
	entries int
	signups []events.SignupData
	// lifecycle holds the user deletions (sdu, du).
	lifecycle []events.LifecycleData
	invalid   []invalidEntry
	ignored   map[string]int // by type label, so at most len(knownTypes)+1 keys
}

func (b *logBatch) ignoredTotal() int {
	n := 0
	for _, c := range b.ignored {
		n += c
	}
	return n
}

// errInternal marks a failure that is not the sender's: 500.
var errInternal = errors.New("internal error")

// decodeLogBatch reads and classifies every entry of body. Errors are a
// *BadRequestError, a *tooLargeError, an error wrapping errInternal, or the
// body reader's error.
func (s *Service) decodeLogBatch(body io.Reader) (*logBatch, error) {
	sp := newEntrySplitter(body, maxLogEntry, maxLogEntries)
	b := &logBatch{ignored: map[string]int{}}
	for {
		raw, err := sp.next()
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if err := s.decodeLogEntry(b, b.entries, raw); err != nil {
			return nil, err
		}
		b.entries++
	}
}

func (s *Service) decodeLogEntry(b *logBatch, i int, raw []byte) error {
	at := "/" + strconv.Itoa(i)
	res, err := decodeEntry(s.schemas, s.cfg.Tenant, raw)
	if err != nil {
		var bre *BadRequestError
		if errors.As(err, &bre) {
			return &BadRequestError{Field: at + bre.Field, Reason: bre.Reason}
		}
		return err
	}
	switch {
	case res.kind == logIgnored:
		b.ignored[eventTypeLabel(res.typ)]++
	case res.field != "":
		b.invalid = append(b.invalid, invalidEntry{index: i, raw: append([]byte(nil), raw...), field: res.field, reason: res.reason})
	case res.kind == logDeletion:
		b.lifecycle = append(b.lifecycle, res.lifecycle)
	default:
		b.signups = append(b.signups, res.signup)
	}
	return nil
}

// entryResult is one decoded Log Streams entry: ignored, a signup, or a
// signup entry that is invalid (field and reason set; reason is a fixed
// text that never echoes the entry).
type entryResult struct {
	typ           string
	kind          logEntryKind
	signup        events.SignupData
	lifecycle     events.LifecycleData
	field, reason string
}

// decodeEntry decodes one entry with the receiver's rules. Its error is a
// *BadRequestError (field relative to the entry) for an entry that is not a
// Log Streams entry at all, or wraps errInternal.
func decodeEntry(set *schemas.Set, tenant string, raw []byte) (entryResult, error) {
	v, err := parseJSON(raw)
	if err != nil {
		return entryResult{}, err
	}
	entry, _ := v.(map[string]any)
	data := obj(entry, "data")
	typ, _ := data["type"].(string)
	if typ == "" {
		return entryResult{}, badRequest("/data/type", "not an Auth0 log entry: data.type must be a non-empty string")
	}
	res := entryResult{typ: typ, kind: classifyLogEntry(typ, data)}
	if res.kind == logIgnored {
		return res, nil
	}
	if err := set.Validate(schemas.Auth0LogEvent, entry); err != nil {
		var fe *schemas.FieldError
		if !errors.As(err, &fe) {
			return entryResult{}, fmt.Errorf("%w: validate log entry: %w", errInternal, err)
		}
		res.field, res.reason = fe.Field, "does not match "+schemas.Auth0LogEvent
		return res, nil
	}
	if res.kind == logDeletion {
		d := events.LogLifecycle(data, tenant)
		if d.At.IsZero() {
			res.field, res.reason = "/data/date", "a deletion entry needs its date (RFC 3339)"
		} else {
			res.lifecycle = d
		}
		return res, nil
	}
	d := logStreamData(entry, tenant)
	switch {
	case d.UserID == "":
		res.field, res.reason = "/data/user_id", "is required"
	case events.CheckPrimaryIdentity(d) != nil:
		res.field, res.reason = "/data/user_id", "is not provider|id of the entry's strategy"
	default:
		res.signup = d
	}
	return res, nil
}

// ErrNotASignup is returned by [LogEntryDecoder.Signup] for an entry that
// is valid but not a signup (its type is neither a signup nor a first
// login).
var ErrNotASignup = errors.New("log entry is not a signup")

// LogEntryDecoder decodes single Auth0 Log Streams entries with the Log
// Streams receiver's current rules. The operator CLI uses it to replay the
// entries ingest kept in SIGNUPS_DLQ (reason events.ReasonInvalidEntry)
// once a newer release accepts them. Safe for concurrent use.
type LogEntryDecoder struct {
	set    *schemas.Set
	tenant string
}

// NewLogEntryDecoder returns a decoder whose signups carry tenant when the
// entry names none.
func NewLogEntryDecoder(tenant string) (*LogEntryDecoder, error) {
	set, err := schemas.Compile()
	if err != nil {
		return nil, fmt.Errorf("compile schemas: %w", err)
	}
	return &LogEntryDecoder{set: set, tenant: tenant}, nil
}

// Signup decodes raw, one Log Streams entry, to the signup the receiver
// would publish for it. Errors: a *BadRequestError naming the field of an
// entry still invalid, or [ErrNotASignup].
func (d *LogEntryDecoder) Signup(raw []byte) (events.SignupData, error) {
	res, err := decodeEntry(d.set, d.tenant, raw)
	switch {
	case err != nil:
		return events.SignupData{}, err
	case res.kind == logIgnored, res.kind == logDeletion:
		return events.SignupData{}, ErrNotASignup
	case res.field != "":
		return events.SignupData{}, &BadRequestError{Field: res.field, Reason: res.reason}
	}
	return res.signup, nil
}

// storeLogBatch makes every signup and every kept entry of b durable, then
// answers 202; on any failure it answers 503 so Auth0 retries the batch,
// whose stored part the duplicate windows of SIGNUPS and SIGNUPS_DLQ absorb.
func (s *Service) storeLogBatch(w http.ResponseWriter, r *http.Request, b *logBatch) {
	ctx := r.Context()
	out := batchAccepted{Signups: make([]accepted, 0, len(b.signups)), Ignored: b.ignoredTotal(), DeadLettered: len(b.invalid)}
	for _, d := range b.signups {
		id, dup, err := s.publish(ctx, events.SourceLogStream, d)
		if err != nil {
			s.fail(w, r, receiverLogStream, publishStatus(err), err)
			return
		}
		out.Signups = append(out.Signups, accepted{ID: id, Duplicate: dup})
	}
	lc, err := s.storeLifecycle(ctx, events.SourceLogStream, b.lifecycle)
	if err != nil {
		s.fail(w, r, receiverLogStream, publishStatus(err), err)
		return
	}
	out.Lifecycle = lc
	for _, e := range b.invalid {
		if err := s.deadLetterEntry(ctx, e); err != nil {
			s.fail(w, r, receiverLogStream, http.StatusServiceUnavailable, err)
			return
		}
		s.log.WarnContext(ctx, "log entry dead-lettered", "receiver", receiverLogStream, "entry", e.index, "field", e.field, "reason", e.reason)
	}
	for label, n := range b.ignored {
		s.metrics.ignoredEvents(receiverLogStream, label, n)
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.Int("signupsync.log_entries", b.entries),
		attribute.Int("signupsync.dead_lettered", len(b.invalid)))
	s.log.InfoContext(ctx, "batch accepted", "receiver", receiverLogStream, "entries", b.entries,
		"signups", len(out.Signups), "lifecycle", len(out.Lifecycle), "ignored", out.Ignored, "dead_lettered", out.DeadLettered)
	writeJSON(w, http.StatusAccepted, out)
}

// deadLetterEntry publishes a kept entry to SIGNUPS_DLQ and waits for the
// acknowledgement. Its Nats-Msg-Id is derived from the entry's bytes, so a
// retried batch does not keep the same entry twice within the duplicate
// window. The headers name the source, the reason and the failing field,
// never a value of the entry.
func (s *Service) deadLetterEntry(ctx context.Context, e invalidEntry) error {
	subject := events.DLQSubject(events.Subject(events.SourceLogStream))
	sum := sha256.Sum256(e.raw)
	id := "ingest-" + string(events.SourceLogStream) + "-" + hex.EncodeToString(sum[:16])
	ctx, span := s.tracer.Start(ctx, "publish "+subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(messagingAttrs(subject, id)...))
	defer span.End()
	msg := &nats.Msg{Subject: subject, Data: e.raw, Header: nats.Header{}}
	msg.Header.Set(events.HeaderMsgID, id)
	msg.Header.Set(events.HeaderSource, string(events.SourceLogStream))
	msg.Header.Set(events.HeaderDLQReason, events.ReasonInvalidEntry)
	msg.Header.Set(events.HeaderDLQError, e.field+" "+e.reason)
	msg.Header.Set(events.HeaderDLQFailedAt, events.FormatTime(s.now()))
	s.prop.Inject(ctx, events.HeaderCarrier(msg.Header))

	pctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	if _, err := s.pub.PublishMsg(pctx, msg, jetstream.WithExpectStream(events.StreamDeadLetter)); err != nil {
		recordSpanError(span, err)
		return fmt.Errorf("%w: dead-letter log entry %d: %w", errBrokerUnavailable, e.index, err)
	}
	s.metrics.deadLettered(receiverLogStream, events.ReasonInvalidEntry)
	return nil
}

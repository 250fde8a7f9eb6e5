package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/signupsync/signupsync/events"
)

// Selection picks dead letters. Criteria of different kinds must all match;
// several values of one kind match any of them. The zero value selects
// nothing: [Selection.Validate] refuses it.
type Selection struct {
	// Seqs are SIGNUPS_DLQ stream sequences.
	Seqs []uint64
	// MsgIDs match the original Nats-Msg-Id (the event id for signups).
	MsgIDs  []string
	Users   []string
	Reasons []string
	Since   time.Time
	Until   time.Time
	All     bool
}

// Errors of [Selection.Validate].
var (
	ErrNoSelection   = errors.New("no selection: name dead letters with Seqs, MsgIDs, Users, Reasons, Since/Until, or set All")
	ErrContradictory = errors.New("contradictory selection")
)

// ErrRawEntry is returned by [ReplayMsg] and [Replay] for a dead letter
// that holds a raw Auth0 entry ingest kept (reason
// events.ReasonInvalidEntry) rather than a signup event: there is no event
// to put back into SIGNUPS.
var ErrRawEntry = errors.New("dead letter holds a raw Auth0 entry, not a signup event")

// RawEntry reports whether d is an entry ingest kept instead of a signup
// the importer gave up on.
func (d DeadLetter) RawEntry() bool { return d.Reason == events.ReasonInvalidEntry }

// Empty reports whether no criterion is set.
func (s Selection) Empty() bool {
	return !s.All && len(s.Seqs) == 0 && len(s.MsgIDs) == 0 && len(s.Users) == 0 && len(s.Reasons) == 0 && s.Since.IsZero() && s.Until.IsZero()
}

// Validate refuses an empty or contradictory selection.
func (s Selection) Validate() error {
	if s.Empty() {
		return ErrNoSelection
	}
	if s.All && (len(s.Seqs) > 0 || len(s.MsgIDs) > 0 || len(s.Users) > 0 || len(s.Reasons) > 0 || !s.Since.IsZero() || !s.Until.IsZero()) {
		return fmt.Errorf("%w: All cannot be combined with other criteria", ErrContradictory)
	}
	if !s.Since.IsZero() && !s.Until.IsZero() && !s.Since.Before(s.Until) {
		return fmt.Errorf("%w: Since must be before Until", ErrContradictory)
	}
	return nil
}

func (s Selection) matches(d DeadLetter) bool {
	if s.All {
		return true
	}
	if len(s.Seqs) > 0 && !slices.Contains(s.Seqs, d.Seq) {
		return false
	}
	if len(s.MsgIDs) > 0 && !slices.Contains(s.MsgIDs, d.MsgID) {
		return false
	}
	if len(s.Users) > 0 && !slices.Contains(s.Users, d.UserID) {
		return false
	}
	if len(s.Reasons) > 0 && !slices.Contains(s.Reasons, d.Reason) {
		return false
	}
	if !s.Since.IsZero() && d.Time.Before(s.Since) {
		return false
	}
	if !s.Until.IsZero() && !d.Time.Before(s.Until) {
		return false
	}
	return true
}

// DeadLetter is one message of SIGNUPS_DLQ.
type DeadLetter struct {
	Seq        uint64      `json:"seq"`
	Time       time.Time   `json:"time"`
	Subject    string      `json:"subject"`
	Reason     string      `json:"reason"`
	Error      string      `json:"error,omitempty"`
	UserID     string      `json:"auth0_user_id,omitempty"`
	MsgID      string      `json:"msg_id,omitempty"`
	Original   string      `json:"original_subject"`
	OrigSeq    string      `json:"original_sequence,omitempty"`
	Deliveries string      `json:"deliveries,omitempty"`
	Header     nats.Header `json:"headers"`
	Data       []byte      `json:"data"`
}

func fromRaw(m *jetstream.RawStreamMsg) DeadLetter {
	h := m.Header
	if h == nil {
		h = nats.Header{}
	}
	return DeadLetter{
		Seq: m.Sequence, Time: m.Time, Subject: m.Subject, Header: h, Data: m.Data,
		Reason: h.Get(events.HeaderDLQReason), Error: h.Get(events.HeaderDLQError), UserID: h.Get(events.HeaderUserID),
		MsgID: h.Get(events.HeaderDLQMsgID), Original: h.Get(events.HeaderDLQSubject), OrigSeq: h.Get(events.HeaderDLQSequence),
		Deliveries: h.Get(events.HeaderDLQDeliveries),
	}
}

// Select returns the dead letters matching sel, oldest first.
func Select(ctx context.Context, js jetstream.JetStream, sel Selection) ([]DeadLetter, error) {
	if err := sel.Validate(); err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, events.StreamDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	var out []DeadLetter
	if info.State.Msgs == 0 {
		return out, nil
	}
	seqs := sel.Seqs
	if len(seqs) == 0 {
		for s := info.State.FirstSeq; s <= info.State.LastSeq; s++ {
			seqs = append(seqs, s)
		}
	}
	for _, seq := range seqs {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read dead letter %d: %w", seq, err)
		}
		if d := fromRaw(m); sel.matches(d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// Result reports what Replay or Purge did to one dead letter.
type Result struct {
	Seq   uint64 `json:"seq"`
	MsgID string `json:"new_msg_id,omitempty"`
	Err   error  `json:"-"`
}

// ReplayMsg builds the message that replays d: the original subject, data
// and headers (the trace context among them) without the dead-letter
// headers, a new Nats-Msg-Id derived from the dead letter, and a header
// naming it.
func ReplayMsg(d DeadLetter) (*nats.Msg, error) {
	if d.RawEntry() {
		return nil, fmt.Errorf("dead letter %d (%s, %s): %w; once ingest accepts it, POST its data (DeadLetter.Data) to the receiver of source %q, which decodes it with the current rules, then purge it",
			d.Seq, d.Reason, d.Error, ErrRawEntry, d.Header.Get(events.HeaderSource))
	}
	if !strings.HasPrefix(d.Original, events.SubjectPrefix+".") {
		return nil, fmt.Errorf("dead letter %d: original subject %q is not a signup subject", d.Seq, d.Original)
	}
	msg := &nats.Msg{Subject: d.Original, Data: d.Data, Header: nats.Header{}}
	for k, v := range d.Header {
		if strings.HasPrefix(k, "Signupsync-Dlq-") || k == events.HeaderMsgID || k == events.HeaderReplayedFrom {
			continue
		}
		msg.Header[k] = append([]string(nil), v...)
	}
	orig := d.MsgID
	if orig == "" {
		orig = "seq" + d.OrigSeq
	}
	msg.Header.Set(events.HeaderMsgID, "replay-"+strconv.FormatUint(d.Seq, 10)+"-"+orig)
	msg.Header.Set(events.HeaderReplayedFrom, events.StreamDeadLetter+":"+strconv.FormatUint(d.Seq, 10))
	return msg, nil
}

// EntryDecoder decodes a raw Auth0 entry that ingest kept (see
// [DeadLetter.RawEntry]) with the receiver's current rules, to the signup
// the receiver would publish for it now, or an error saying why it is still
// refused. ingest.LogEntryDecoder is one.
type EntryDecoder interface {
	Signup(raw []byte) (events.SignupData, error)
}

// Replay republishes each dead letter into SIGNUPS, at most perSecond a
// second, and deletes it from SIGNUPS_DLQ only after JetStream acknowledged
// the republish. It stops at the first failure; dead letters not yet
// replayed stay where they are.
//
// A raw entry ingest kept (see [DeadLetter.RawEntry]) is decoded again with
// entries and published as the signup the receiver would publish for it now
// (its usual Msg-Id, so a signup stored since by another source is a
// duplicate). Every raw entry of the selection is decoded before anything
// is replayed: if one is still refused, or entries is nil, the selection is
// refused whole with an error wrapping [ErrRawEntry].
func Replay(ctx context.Context, js jetstream.JetStream, dls []DeadLetter, perSecond float64, entries EntryDecoder) ([]Result, error) {
	decoded := map[uint64]*nats.Msg{}
	var refused []string
	for _, d := range dls {
		if !d.RawEntry() {
			continue
		}
		if entries == nil {
			refused = append(refused, strconv.FormatUint(d.Seq, 10))
			continue
		}
		msg, err := entryMsg(d, entries)
		if err != nil {
			refused = append(refused, fmt.Sprintf("%d (%v)", d.Seq, err))
			continue
		}
		decoded[d.Seq] = msg
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("%w: dead letter(s) %s (reason %s) are not accepted by the current rules; leave them out of the selection (select by Reasons or Seqs) or purge them once handled",
			ErrRawEntry, strings.Join(refused, ", "), events.ReasonInvalidEntry)
	}
	st, err := js.Stream(ctx, events.StreamDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	lim := limiter(perSecond)
	var out []Result
	for _, d := range dls {
		if err := lim.Wait(ctx); err != nil {
			return out, err
		}
		msg, ok := decoded[d.Seq]
		if !ok {
			var err error
			if msg, err = ReplayMsg(d); err != nil {
				return out, err
			}
		}
		if _, err := js.PublishMsg(ctx, msg, jetstream.WithExpectStream(events.StreamSignups)); err != nil {
			return out, fmt.Errorf("replay dead letter %d: %w", d.Seq, err)
		}
		if err := st.DeleteMsg(ctx, d.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, fmt.Errorf("dead letter %d was replayed but not deleted (a second replay is deduplicated): %w", d.Seq, err)
		}
		out = append(out, Result{Seq: d.Seq, MsgID: msg.Header.Get(events.HeaderMsgID)})
	}
	return out, nil
}

// Purge deletes each dead letter, at most perSecond a second.
func Purge(ctx context.Context, js jetstream.JetStream, dls []DeadLetter, perSecond float64) ([]Result, error) {
	st, err := js.Stream(ctx, events.StreamDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	lim := limiter(perSecond)
	var out []Result
	for _, d := range dls {
		if err := lim.Wait(ctx); err != nil {
			return out, err
		}
		if err := st.DeleteMsg(ctx, d.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, fmt.Errorf("purge dead letter %d: %w", d.Seq, err)
		}
		out = append(out, Result{Seq: d.Seq})
	}
	return out, nil
}

func limiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(rate.Limit(perSecond), 1)
}

// entryMsg is the signup message for a raw entry d, decoded by entries.
func entryMsg(d DeadLetter, entries EntryDecoder) (*nats.Msg, error) {
	src := events.Source(d.Header.Get(events.HeaderSource))
	if !src.Valid() {
		return nil, fmt.Errorf("source %q unknown", d.Header.Get(events.HeaderSource))
	}
	data, err := entries.Signup(d.Data)
	if err != nil {
		return nil, err
	}
	msg, _, err := events.NewMsg(src, data, time.Now())
	if err != nil {
		return nil, err
	}
	msg.Header.Set(events.HeaderReplayedFrom, events.StreamDeadLetter+":"+strconv.FormatUint(d.Seq, 10))
	return msg, nil
}

package operator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
)

func TestSelectionValidate(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		sel  Selection
		want error
	}{
		{"empty", Selection{}, ErrNoSelection},
		{"all", Selection{All: true}, nil},
		{"all and user", Selection{All: true, Users: []string{"a|1"}}, ErrContradictory},
		{"since after until", Selection{Since: now, Until: now.Add(-time.Hour)}, ErrContradictory},
		{"user and reason", Selection{Users: []string{"a|1"}, Reasons: []string{"max_deliveries"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.sel.Validate(); !errors.Is(err, tt.want) {
				t.Fatalf("Validate = %v, want %v", err, tt.want)
			}
		})
	}
}

// deadLetter publishes a dead letter the way the importer writes one.
func deadLetter(t *testing.T, js jetstream.JetStream, user, reason string) {
	t.Helper()
	msg, ev, err := events.NewMsg(events.SourceAction, events.SignupData{UserID: user, Identities: []events.Identity{}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dl := &nats.Msg{Subject: events.DLQSubject(msg.Subject), Data: msg.Data, Header: nats.Header{}}
	dl.Header.Set(events.HeaderUserID, user)
	dl.Header.Set(events.HeaderSource, "action")
	dl.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	dl.Header.Set(events.HeaderDLQMsgID, ev.ID)
	dl.Header.Set(events.HeaderDLQReason, reason)
	dl.Header.Set(events.HeaderDLQSubject, msg.Subject)
	dl.Header.Set(events.HeaderDLQSequence, "7")
	if _, err := js.PublishMsg(context.Background(), dl); err != nil {
		t.Fatal(err)
	}
}

func TestSelectReplayPurge(t *testing.T) {
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	testenv.Ensure(t, js)
	ctx := context.Background()
	deadLetter(t, js, "github|1", events.ReasonMaxDeliveries)
	deadLetter(t, js, "github|2", events.ReasonFirebaseRejected)
	deadLetter(t, js, "github|3", events.ReasonMaxDeliveries)

	byReason, err := Select(ctx, js, Selection{Reasons: []string{events.ReasonMaxDeliveries}})
	if err != nil || len(byReason) != 2 {
		t.Fatalf("by reason: %d, %v", len(byReason), err)
	}
	both, err := Select(ctx, js, Selection{Reasons: []string{events.ReasonMaxDeliveries}, Users: []string{"github|3"}})
	if err != nil || len(both) != 1 || both[0].UserID != "github|3" {
		t.Fatalf("reason and user: %+v, %v", both, err)
	}
	byMsgID, err := Select(ctx, js, Selection{MsgIDs: []string{events.EventID("github|2")}})
	if err != nil || len(byMsgID) != 1 || byMsgID[0].Seq != 2 {
		t.Fatalf("by msg id: %+v, %v", byMsgID, err)
	}
	if _, err := Select(ctx, js, Selection{}); !errors.Is(err, ErrNoSelection) {
		t.Fatalf("empty selection: %v", err)
	}

	res, err := Replay(ctx, js, both, 100, nil)
	if err != nil || len(res) != 1 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	st, _ := js.Stream(ctx, events.StreamSignups)
	m, err := st.GetLastMsgForSubject(ctx, events.Subject(events.SourceAction))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(events.HeaderReplayedFrom) != "SIGNUPS_DLQ:3" || m.Header.Get("traceparent") == "" ||
		m.Header.Get(events.HeaderMsgID) != "replay-3-"+events.EventID("github|3") || m.Header.Get(events.HeaderDLQReason) != "" {
		t.Fatalf("replayed headers %v", m.Header)
	}
	left, _ := Select(ctx, js, Selection{All: true})
	if len(left) != 2 {
		t.Fatalf("%d dead letters left after replaying one, want 2", len(left))
	}
	if _, err := Purge(ctx, js, left, 0); err != nil {
		t.Fatal(err)
	}
	if left, _ := Select(ctx, js, Selection{All: true}); len(left) != 0 {
		t.Fatalf("%d dead letters left after purge", len(left))
	}
}

// TestRawEntryDeadLetterIsListedNotReplayed: ingest keeps an invalid Log
// Streams signup entry as it came (reason invalid_entry). It is listed with
// its reason and field, and replay refuses the whole selection holding it:
// the entry is not a signup event and must never reach SIGNUPS as one.
func TestRawEntryDeadLetterIsListedNotReplayed(t *testing.T) {
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	testenv.Ensure(t, js)
	ctx := context.Background()
	deadLetter(t, js, "github|1", events.ReasonMaxDeliveries)
	raw := `{"log_id":"9002","data":{"type":"ss","user_id":"no-pipe"}}`
	dl := &nats.Msg{Subject: events.DLQSubject(events.Subject(events.SourceLogStream)), Data: []byte(raw), Header: nats.Header{}}
	dl.Header.Set(events.HeaderSource, string(events.SourceLogStream))
	dl.Header.Set(events.HeaderDLQReason, events.ReasonInvalidEntry)
	dl.Header.Set(events.HeaderDLQError, "/data/user_id does not match auth0-log-event.json")
	if _, err := js.PublishMsg(ctx, dl); err != nil {
		t.Fatal(err)
	}

	all, err := Select(ctx, js, Selection{All: true})
	if err != nil || len(all) != 2 {
		t.Fatalf("select: %d, %v", len(all), err)
	}
	entry := all[1]
	if !entry.RawEntry() || all[0].RawEntry() || entry.Reason != events.ReasonInvalidEntry ||
		entry.Error != "/data/user_id does not match auth0-log-event.json" || string(entry.Data) != raw || entry.Subject != "dlq.signups.v1.log_stream" {
		t.Fatalf("listed as %+v", entry)
	}
	if _, err := ReplayMsg(entry); !errors.Is(err, ErrRawEntry) {
		t.Fatalf("ReplayMsg = %v, want ErrRawEntry", err)
	}
	res, err := Replay(ctx, js, all, 0, nil)
	if !errors.Is(err, ErrRawEntry) || len(res) != 0 || !strings.Contains(err.Error(), "dead letter(s) 2 ") {
		t.Fatalf("replay of a selection with a raw entry: %v, %v", res, err)
	}
	st, _ := js.Stream(ctx, events.StreamSignups)
	if info, _ := st.Info(ctx); info.State.Msgs != 0 {
		t.Fatalf("SIGNUPS holds %d messages after a refused replay", info.State.Msgs)
	}
	if left, _ := Select(ctx, js, Selection{All: true}); len(left) != 2 {
		t.Fatalf("%d dead letters left after a refused replay, want 2", len(left))
	}
	// Selecting around it replays the rest.
	if res, err := Replay(ctx, js, all[:1], 0, nil); err != nil || len(res) != 1 {
		t.Fatalf("replay of the importer's dead letter: %v, %v", res, err)
	}
}

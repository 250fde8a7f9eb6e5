package operator

import (
	"context"
	"errors"
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

	res, err := Replay(ctx, js, both, 100)
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

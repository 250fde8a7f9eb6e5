package operator

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/signupsync/signupsync/events"
)

func sampleDeadLetters() []DeadLetter {
	at := time.Date(2024, 5, 6, 7, 8, 9, 123000000, time.UTC)
	long := strings.Repeat("x", 100)
	return []DeadLetter{
		{
			Seq: 3, Time: at, Subject: "signups.dlq.log_stream", Reason: events.ReasonMaxDeliveries,
			Error: "firebase unavailable", UserID: "auth0|1", MsgID: "su_1", Original: "signups.log_stream",
			OrigSeq: "41", Deliveries: "5",
			Header: nats.Header{
				events.HeaderDLQReason: {events.ReasonMaxDeliveries},
				events.HeaderUserID:    {"auth0|1"},
				"Zz-Multi":             {"a", "b"},
			},
			Data: []byte(`{"user_id":"auth0|1"}`),
		},
		{
			Seq: 12, Time: at.Add(time.Hour), Subject: "signups.dlq.event_stream", Reason: events.ReasonInvalidEntry,
			Error: long, Original: "signups.event_stream", Header: nats.Header{}, Data: []byte("raw"),
		},
	}
}

func TestDeadLetterTableCutsLongErrors(t *testing.T) {
	var b strings.Builder
	if err := WriteDeadLetters(&b, sampleDeadLetters(), DeadLetterTable); err != nil {
		t.Fatal(err)
	}
	cut := strings.Repeat("x", 77) + "..."
	want := "SEQ  DEAD-LETTERED         REASON          AUTH0 USER  DELIVERIES  ERROR\n" +
		"3    2024-05-06T07:08:09Z  max_deliveries  auth0|1     5           firebase unavailable\n" +
		"12   2024-05-06T08:08:09Z  invalid_entry                           " + cut + "\n"
	if got := b.String(); got != want {
		t.Errorf("table:\n%q\nwant:\n%q", got, want)
	}
}

func TestDeadLetterTableOfNoneIsTheHeader(t *testing.T) {
	var b strings.Builder
	if err := WriteDeadLetters(&b, nil, DeadLetterTable); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "SEQ  DEAD-LETTERED  REASON  AUTH0 USER  DELIVERIES  ERROR\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDeadLetterDetailShowsHeadersAndData(t *testing.T) {
	var b strings.Builder
	if err := WriteDeadLetters(&b, sampleDeadLetters(), DeadLetterDetail); err != nil {
		t.Fatal(err)
	}
	want := "dead letter 3 (2024-05-06T07:08:09.123Z)\n" +
		"  " + events.HeaderDLQReason + ": " + events.ReasonMaxDeliveries + "\n" +
		"  " + events.HeaderUserID + ": auth0|1\n" +
		"  Zz-Multi: a, b\n" +
		"  data: {\"user_id\":\"auth0|1\"}\n\n" +
		"dead letter 12 (2024-05-06T08:08:09.123Z)\n" +
		"  data: raw\n\n"
	if events.HeaderDLQReason > events.HeaderUserID {
		t.Fatalf("test assumes %s sorts before %s", events.HeaderDLQReason, events.HeaderUserID)
	}
	if got := b.String(); got != want {
		t.Errorf("detail:\n%s\nwant:\n%s", got, want)
	}
}

func TestDeadLettersJSONParsesBack(t *testing.T) {
	dls := sampleDeadLetters()
	var b bytes.Buffer
	if err := WriteDeadLetters(&b, dls, DeadLetterJSON); err != nil {
		t.Fatal(err)
	}
	var back []DeadLetter
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, dls) {
		t.Errorf("parsed back as %+v, want %+v", back, dls)
	}
	var fields []map[string]any
	if err := json.Unmarshal(b.Bytes(), &fields); err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"auth0_user_id", "data", "deliveries", "error", "headers", "msg_id", "original_sequence", "original_subject", "reason", "seq", "subject", "time"}
	var keys []string
	for k := range fields[0] {
		keys = append(keys, k)
	}
	if !sameSet(keys, wantKeys) {
		t.Errorf("keys %v, want %v", keys, wantKeys)
	}
}

func sameSet(a, b []string) bool {
	m := map[string]bool{}
	for _, s := range a {
		m[s] = true
	}
	if len(m) != len(b) || len(a) != len(b) {
		return false
	}
	for _, s := range b {
		if !m[s] {
			return false
		}
	}
	return true
}

func TestDeadLettersJSONOfNoneIsAnEmptyArray(t *testing.T) {
	var b strings.Builder
	if err := WriteDeadLetters(&b, nil, DeadLetterJSON); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "[]\n" {
		t.Errorf("got %q, want %q", got, "[]\n")
	}
}

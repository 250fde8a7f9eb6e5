package events_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/schemas"
)

func goldenLifecycle() map[string]events.Lifecycle {
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	return map[string]events.Lifecycle{
		"lifecycle-v1-deleted.json": events.NewLifecycle(events.SourceEventStream, events.LifecycleData{
			Tenant: "acme", Kind: events.LifecycleDeleted, UserID: "google-oauth2|1234567890",
			At: at.Add(-time.Second), Trigger: "user.deleted",
		}, at),
		"lifecycle-v1-updated.json": events.NewLifecycle(events.SourceEventStream, events.LifecycleData{
			Tenant: "acme", Kind: events.LifecycleUpdated, UserID: "google-oauth2|1234567890",
			At: at.Add(-2 * time.Second), Trigger: "user.updated",
		}, at),
		"lifecycle-v1-log-deleted.json": events.NewLifecycle(events.SourceLogStream, events.LifecycleData{
			Tenant: "acme", Kind: events.LifecycleDeleted, UserID: "github|42",
			At: at.Add(-3 * time.Second), Trigger: "log:sdu",
		}, at),
	}
}

func TestGoldenLifecycleEvents(t *testing.T) {
	set, err := schemas.Compile()
	if err != nil {
		t.Fatal(err)
	}
	for name, ev := range goldenLifecycle() {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(ev, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./events -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Fatalf("lifecycle v1 encoding changed; if intended, bump the version or run -update\n got: %s\nwant: %s", got, want)
			}
			var doc any
			if err := json.Unmarshal(want, &doc); err != nil {
				t.Fatal(err)
			}
			if err := set.Validate(schemas.LifecycleEventV1, doc); err != nil {
				t.Fatalf("golden file does not match schemas/%s: %v", schemas.LifecycleEventV1, err)
			}
			back, err := events.DecodeLifecycle(want)
			if err != nil {
				t.Fatal(err)
			}
			if back.ID != ev.ID || back.Data != ev.Data || back.EventSource() != ev.EventSource() {
				t.Fatalf("round trip: %+v", back)
			}
		})
	}
}

func TestLifecycleMsgIDRule(t *testing.T) {
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	del := events.LifecycleData{Kind: events.LifecycleDeleted, UserID: "github|1", At: at}
	upd := events.LifecycleData{Kind: events.LifecycleUpdated, UserID: "github|1", At: at}
	later := upd
	later.At = at.Add(time.Millisecond)
	logDel := del
	logDel.At = at.Add(3 * time.Second)
	switch {
	case events.LifecycleEventID(del) != events.LifecycleEventID(logDel):
		t.Fatal("a deletion reported with two times (Event Streams, Log Streams) must be one message")
	case events.LifecycleEventID(upd) == events.LifecycleEventID(later):
		t.Fatal("two updates with different updated_at must be two messages")
	case events.LifecycleEventID(del) == events.LifecycleEventID(upd):
		t.Fatal("a deletion and an update must be two messages")
	case events.LifecycleEventID(del) == events.EventID(del.UserID):
		t.Fatal("a lifecycle id must never equal the signup id")
	}
	msg, ev, err := events.NewLifecycleMsg(events.SourceLogStream, logDel, at)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "users.v1.deleted.log_stream" || msg.Header.Get(events.HeaderMsgID) != ev.ID {
		t.Fatalf("subject %s, msg id %s", msg.Subject, msg.Header.Get(events.HeaderMsgID))
	}
}

func TestLifecycleRefusesIncompleteData(t *testing.T) {
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		d    events.LifecycleData
	}{
		{"no user", events.LifecycleData{Kind: events.LifecycleDeleted, At: at}},
		{"user without provider", events.LifecycleData{Kind: events.LifecycleDeleted, UserID: "123", At: at}},
		{"no time", events.LifecycleData{Kind: events.LifecycleUpdated, UserID: "github|1"}},
		{"unknown kind", events.LifecycleData{Kind: "blocked", UserID: "github|1", At: at}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := events.NewLifecycleMsg(events.SourceEventStream, tt.d, at); !errors.Is(err, events.ErrMalformedLifecycle) {
				t.Fatalf("NewLifecycleMsg = %v, want ErrMalformedLifecycle", err)
			}
		})
	}
	if _, err := events.DecodeLifecycle([]byte(`{"specversion":"1.0"}`)); !errors.Is(err, events.ErrMalformedLifecycle) {
		t.Fatalf("DecodeLifecycle = %v", err)
	}
}

func TestEventStreamLifecycleTimes(t *testing.T) {
	parse := func(s string) map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	d, ok := events.EventStreamLifecycle(parse(`{"type":"user.updated","time":"2026-11-02T10:00:05Z","data":{"object":{"user_id":"github|1","updated_at":"2026-11-02T10:00:01.250Z"}}}`), "acme")
	if !ok || d.Kind != events.LifecycleUpdated || !d.At.Equal(time.Date(2026, 11, 2, 10, 0, 1, 250e6, time.UTC)) || d.Tenant != "acme" {
		t.Fatalf("update: %+v", d)
	}
	d, ok = events.EventStreamLifecycle(parse(`{"type":"user.deleted","time":"2026-11-02T10:00:05Z","data":{"object":{"user_id":"github|1"}}}`), "acme")
	if !ok || d.Kind != events.LifecycleDeleted || !d.At.Equal(time.Date(2026, 11, 2, 10, 0, 5, 0, time.UTC)) {
		t.Fatalf("deletion without deleted_at takes the event time: %+v", d)
	}
	if _, ok := events.EventStreamLifecycle(parse(`{"type":"user.created"}`), "acme"); ok {
		t.Fatal("user.created is not a lifecycle event")
	}
}

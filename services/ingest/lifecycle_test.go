package ingest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signupsync/signupsync/events"
)

// lifecycleMsgs reads every message of SIGNUPS_LIFECYCLE.
func (h *harness) lifecycleMsgs() map[string]events.Lifecycle {
	h.t.Helper()
	ctx := context.Background()
	st, err := h.js.Stream(ctx, events.StreamLifecycle)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]events.Lifecycle{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			h.t.Fatal(err)
		}
		ev, err := events.DecodeLifecycle(m.Data)
		if err != nil {
			h.t.Fatalf("stored lifecycle event does not decode: %v", err)
		}
		if m.Header.Get(events.HeaderMsgID) != ev.ID {
			h.t.Fatalf("Nats-Msg-Id %q, want the event id %q", m.Header.Get(events.HeaderMsgID), ev.ID)
		}
		out[m.Subject+" "+ev.Data.UserID] = ev
	}
	return out
}

func TestLifecycleEventsArePublishedOnTheirSubjects(t *testing.T) {
	h := newHarness(t)
	es := bearer("Bearer " + eventToken)

	// One user.updated alone, then an Event Streams batch with a signup, a
	// deletion and an update of another user.
	res := h.post(PathEventStream, es, []byte(`{"specversion":"1.0","id":"evt_u1","type":"user.updated","source":"urn:auth0:acme","time":"2026-11-02T10:00:09Z","a0tenant":"acme","data":{"object":{"user_id":"google-oauth2|7","email":"new@example.com","email_verified":true,"updated_at":"2026-11-02T10:00:08.500Z"}}}`))
	if res.status != http.StatusAccepted {
		t.Fatalf("user.updated: %d %v", res.status, res.body)
	}
	if lc, _ := res.body["lifecycle"].([]any); len(lc) != 1 {
		t.Fatalf("answer %v, want one lifecycle id", res.body)
	}
	batch := `[` + string(eventStreamBody("github|5")) + `,` +
		`{"specversion":"1.0","id":"evt_d1","type":"user.deleted","source":"urn:auth0:acme","time":"2026-11-02T10:01:00Z","data":{"object":{"user_id":"github|6","deleted_at":"2026-11-02T10:00:59Z"}}}]`
	if res := h.post(PathEventStream, es, []byte(batch)); res.status != http.StatusAccepted {
		t.Fatalf("batch: %d %v", res.status, res.body)
	}
	// Log Streams: the deletion of github|6 again (sdu, another time: one
	// message) and of apple|8 (du), beside an ignored login.
	logs := `[{"log_id":"l1","data":{"type":"sdu","date":"2026-11-02T10:01:02Z","user_id":"github|6","strategy":"github"}},` +
		`{"log_id":"l2","data":{"type":"du","date":"2026-11-02T10:02:00Z","user_id":"apple|8"}},` +
		`{"log_id":"l3","data":{"type":"s","date":"2026-11-02T10:02:00Z","user_id":"apple|9"}}]`
	res = h.post(PathLogStream, bearer(logToken), []byte(logs))
	if res.status != http.StatusAccepted {
		t.Fatalf("log batch: %d %v", res.status, res.body)
	}
	if lc, _ := res.body["lifecycle"].([]any); len(lc) != 2 {
		t.Fatalf("log answer %v, want two lifecycle ids", res.body)
	}

	got := h.lifecycleMsgs()
	want := map[string]struct {
		kind events.LifecycleKind
		at   time.Time
	}{
		"users.v1.updated.event_stream google-oauth2|7": {events.LifecycleUpdated, time.Date(2026, 11, 2, 10, 0, 8, 5e8, time.UTC)},
		"users.v1.deleted.event_stream github|6":        {events.LifecycleDeleted, time.Date(2026, 11, 2, 10, 0, 59, 0, time.UTC)},
		"users.v1.deleted.log_stream apple|8":           {events.LifecycleDeleted, time.Date(2026, 11, 2, 10, 2, 0, 0, time.UTC)},
	}
	if len(got) != len(want) {
		t.Fatalf("stored %d lifecycle events, want %d (the log deletion of github|6 is a duplicate): %v", len(got), len(want), got)
	}
	for k, w := range want {
		ev, ok := got[k]
		if !ok {
			t.Fatalf("missing %s; stored %v", k, got)
		}
		if ev.Data.Kind != w.kind || !ev.Data.At.Equal(w.at) {
			t.Fatalf("%s: %+v, want kind %s at %s", k, ev.Data, w.kind, w.at)
		}
	}
	if n := h.stored(); n != 1 {
		t.Fatalf("SIGNUPS holds %d messages, want the one signup", n)
	}
	if got := testutil.ToFloat64(h.metrics.lifecycle.WithLabelValues("deleted", "log_stream", "true")); got != 1 {
		t.Fatalf("duplicate log deletion counted %v times", got)
	}
}

func TestLifecycleEntryWithoutUserIsDeadLetteredNotTheBatch(t *testing.T) {
	h := newHarness(t)
	logs := `[{"log_id":"l1","data":{"type":"sdu","date":"2026-11-02T10:01:02Z"}},` +
		`{"log_id":"l2","data":{"type":"sdu","date":"2026-11-02T10:01:03Z","user_id":"github|1"}}]`
	res := h.post(PathLogStream, bearer(logToken), []byte(logs))
	if res.status != http.StatusAccepted {
		t.Fatalf("%d %v", res.status, res.body)
	}
	if n := h.streamMsgs(events.StreamLifecycle); n != 1 {
		t.Fatalf("%d lifecycle events stored, want 1", n)
	}
	if n := h.deadLetters(); n != 1 {
		t.Fatalf("%d dead letters, want the entry without a user", n)
	}
}

package reconciler_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/services/reconciler"
)

const streamID = "est_recon1"

func (e *env) deliveriesConfig() reconciler.Config {
	cfg := e.config()
	cfg.Mode, cfg.StreamID = reconciler.ModeDeliveries, streamID
	return cfg
}

func (e *env) withDeliveries(d *reconciler.Deps) { d.Users, d.Deliveries = nil, e.api }

// failed stores a failed user.created delivery of u sent at t.
func (e *env) failed(u auth0fake.User, t time.Time) auth0fake.Delivery {
	e.t.Helper()
	d := e.srv.UserCreatedDelivery(streamID, "acme", u, t)
	e.srv.AddDeliveries(streamID, d)
	return d
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRecoverDeliveriesPublishesTheFailedSignups(t *testing.T) {
	e := newEnv(t)
	e.srv.AddEventStream(streamID)
	at := base.Add(time.Hour)
	lost := []auth0fake.User{social("lost1", at), social("lost2", at.Add(time.Second))}
	imported, reported := social("imported", at.Add(2*time.Second)), social("reported", at.Add(3*time.Second))
	var want []auth0fake.Delivery
	for i, u := range lost {
		want = append(want, e.failed(u, at.Add(time.Duration(i)*time.Second)))
	}
	e.failed(imported, at.Add(2*time.Second))
	e.failed(reported, at.Add(3*time.Second))
	e.putLedger(events.OutcomeImported, imported)
	e.prePublish(events.SourceEventStream, reported) // ingest got it after all

	// Not recovered: a test delivery, an event ingest would refuse, one
	// still retrying, another type, and one sent before --since.
	test := e.srv.UserCreatedDelivery(streamID, "acme", social("test", at), at.Add(4*time.Second))
	ev := decodeJSON(t, test.Event)
	ev["a0purpose"] = "test"
	test.Event, _ = json.Marshal(ev)
	invalid := auth0fake.Delivery{EventType: "user.created", Time: at.Add(5 * time.Second),
		Event: json.RawMessage(`{"specversion":"1.0","id":"evt_bad","type":"user.created","source":"urn:auth0:acme","data":{"object":{"email":"x@example.com"}}}`)}
	retrying := e.srv.UserCreatedDelivery(streamID, "acme", social("retrying", at), at.Add(6*time.Second))
	retrying.Status = auth0fake.DeliveryRetrying
	updated := e.srv.UserCreatedDelivery(streamID, "acme", social("updated", at), at.Add(7*time.Second))
	updated.EventType = "user.updated"
	forged := social("forged", at) // its identity is another person's
	forged.Identities[0].UserID = "someone-else"
	e.failed(forged, at.Add(8*time.Second))
	e.srv.AddDeliveries(streamID, test, invalid, retrying, updated)
	e.failed(social("early", base.Add(-time.Minute)), base.Add(-time.Minute))

	r := e.reconciler(e.deliveriesConfig(), e.withDeliveries)
	res, err := r.RecoverDeliveries(t.Context())
	if err != nil {
		t.Fatalf("RecoverDeliveries: %v", err)
	}
	wantCounts := reconciler.Counts{Listed: 7, Known: 1, Missing: 4, Published: 2, Duplicates: 1, Ignored: 1, Invalid: 2, Requests: 2}
	if res.Counts != wantCounts {
		t.Errorf("counts %+v\nwant   %+v", res.Counts, wantCounts)
	}
	if wantUntil := e.clock().Add(-reconciler.DefaultSettleLag); !res.From.Equal(base) || !res.Until.Equal(wantUntil) || res.Mode != reconciler.ModeDeliveries {
		t.Errorf("result %+v, want [%v, %v)", res, base, wantUntil)
	}

	// Published with ingest's Msg-Id and data, on reconcile's subject; the
	// one ingest stored after all is a duplicate.
	msgs := e.messages()
	if got := e.streamed(); !reflect.DeepEqual(got, map[events.Source][]string{
		events.SourceEventStream: {reported.UserID}, events.SourceReconcile: ids(lost)}) {
		t.Errorf("SIGNUPS holds %v, want the reported user from ingest and the two lost ones", got)
	}
	for _, m := range msgs[1:] {
		if m.Subject != events.Subject(events.SourceReconcile) || m.Header.Get(events.HeaderMsgID) != events.EventID(m.Header.Get(events.HeaderUserID)) {
			t.Errorf("subject %s, msg id %s for %s", m.Subject, m.Header.Get(events.HeaderMsgID), m.Header.Get(events.HeaderUserID))
		}
	}
	for _, m := range msgs[1:] {
		sig, err := events.Decode(m.Data)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		i := slices.IndexFunc(want, func(d auth0fake.Delivery) bool { return strings.Contains(string(d.Event), `"`+sig.Data.UserID+`"`) })
		if i < 0 {
			t.Fatalf("no delivery for %s", sig.Data.UserID)
		}
		if norm := events.EventStreamSignup(decodeJSON(t, want[i].Event), "other-tenant"); !reflect.DeepEqual(sig.Data, norm) || sig.Data.Tenant != "acme" || sig.Data.Trigger != "user.created" {
			t.Errorf("published %+v\nwant the receiver's %+v", sig.Data, norm)
		}
	}
	cp, err := e.deliveriesCheckpoint()
	if err != nil || !cp.Until.Equal(res.Until) {
		t.Fatalf("checkpoint %+v, %v, want until %v", cp, err, res.Until)
	}
	e.noPII()

	// A second run publishes nothing new: the checkpoint moved past the
	// deliveries. One that failed within the lookback is recovered.
	lateFail := social("late", res.Until.Add(-2*time.Minute))
	e.failed(lateFail, res.Until.Add(-2*time.Minute))
	e.setNow(e.clock().Add(5 * time.Minute))
	res2, err := r.RecoverDeliveries(t.Context())
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if want := cp.Until.Add(-reconciler.DefaultLookback); !res2.From.Equal(want) || res2.Listed != 1 || res2.Published != 1 {
		t.Errorf("second run %+v, want [%v, …) with only the late failure", res2, want)
	}
	// An hour later the late failure is still within the lookback: listed
	// again, a duplicate; nothing is published.
	e.setNow(e.clock().Add(time.Hour))
	res3, err := r.RecoverDeliveries(t.Context())
	if err != nil || res3.Published != 0 || res3.Duplicates != res3.Listed {
		t.Errorf("third run %+v, %v: want nothing published", res3.Counts, err)
	}
	if n := len(e.streamed()[events.SourceReconcile]); n != 3 {
		t.Errorf("%d recovered signups, want 3", n)
	}
}

func (e *env) deliveriesCheckpoint() (reconciler.Checkpoint, error) {
	e.t.Helper()
	kv, err := e.js.KeyValue(e.t.Context(), events.BucketState)
	if err != nil {
		e.t.Fatal(err)
	}
	cp, _, err := reconciler.ReadCheckpointAt(e.t.Context(), kv, reconciler.DeliveriesCheckpointKey(streamID))
	return cp, err
}

func TestRecoverDeliveriesPagesAndWaitsOutRateLimits(t *testing.T) {
	e := newEnv(t, auth0fake.WithRateLimit(2, time.Minute))
	e.srv.AddEventStream(streamID)
	var users []auth0fake.User
	for i, u := range spread("page", 120, base.Add(time.Hour), time.Second) {
		users = append(users, u)
		e.failed(u, base.Add(time.Hour+time.Duration(i)*time.Second))
	}
	res, err := e.reconciler(e.deliveriesConfig(), e.withDeliveries).RecoverDeliveries(t.Context())
	if err != nil {
		t.Fatalf("RecoverDeliveries: %v", err)
	}
	// 120 at 50 a page: three pages and the empty one, two requests per
	// minute of budget.
	if res.Listed != 120 || res.Published != 120 || res.Retries == 0 || res.Requests != 4+res.Retries {
		t.Errorf("counts %+v, want 120 published over 4 pages after retries", res.Counts)
	}
	if got := e.streamed()[events.SourceReconcile]; !slices.Equal(got, ids(users)) {
		t.Errorf("stream holds %d signups, want the 120", len(got))
	}
	for _, d := range e.slept() {
		if d <= 0 {
			t.Errorf("slept %v, want the positive wait X-RateLimit-Reset asked for", d)
		}
	}
	if n := e.srv.Requests()[auth0fake.RouteListDeliveries]; n != res.Requests {
		t.Errorf("fake saw %d list requests, the round counted %d", n, res.Requests)
	}
}

func TestRecoverDeliveriesOfAnUnknownStreamFailsAtOnce(t *testing.T) {
	e := newEnv(t)
	res, err := e.reconciler(e.deliveriesConfig(), e.withDeliveries).RecoverDeliveries(t.Context())
	if !errors.Is(err, auth0api.ErrNotFound) || res.Retries != 0 {
		t.Fatalf("RecoverDeliveries = %+v, %v; want ErrNotFound without retries", res.Counts, err)
	}
	if _, err := e.deliveriesCheckpoint(); !errors.Is(err, reconciler.ErrNoCheckpoint) {
		t.Errorf("checkpoint read %v, want none written", err)
	}
}

func TestRunInDeliveriesModeNeedsDeliveries(t *testing.T) {
	e := newEnv(t)
	d := e.deps()
	if _, err := reconciler.New(t.Context(), e.deliveriesConfig(), d); err == nil {
		t.Error("New accepted deliveries mode without Deliveries")
	}
	e.srv.AddEventStream(streamID)
	e.failed(social("run", base.Add(time.Hour)), base.Add(time.Hour))
	var got []reconciler.Result
	r := e.reconciler(e.deliveriesConfig(), e.withDeliveries, func(d *reconciler.Deps) {
		d.OnSweep = func(res reconciler.Result, err error) {
			if err != nil {
				t.Errorf("round: %v", err)
			}
			got = append(got, res)
		}
	})
	if err := r.Run(t.Context()); err != nil || len(got) != 1 || got[0].Published != 1 || got[0].Mode != reconciler.ModeDeliveries {
		t.Errorf("Run = %v, rounds %+v", err, got)
	}
	if s := got[0].String(); !strings.Contains(s, "reconcile deliveries of "+streamID) || !strings.Contains(s, "published 1") {
		t.Errorf("String() = %q", s)
	}
}

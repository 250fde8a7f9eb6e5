package auth0api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/auth0fake"
)

const stream = "est_client"

// deliveries stores five failed user.created deliveries a minute apart
// from t0 (the first with a 19-digit numeric identity id) and a
// user.updated one in between.
func deliveries(t *testing.T, srv *auth0fake.Server) (time.Time, []string) {
	t.Helper()
	srv.AddEventStream(stream)
	t0 := time.Date(2025, 9, 8, 6, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 5 {
		u := auth0fake.User{UserID: "auth0|d" + string(rune('0'+i))}
		if i == 0 {
			u = auth0fake.User{UserID: "twitter|1234567890123456789", Identities: []auth0fake.Identity{
				{Provider: "twitter", Connection: "twitter", UserID: "1234567890123456789", Numeric: true, IsSocial: true}}}
		}
		d := srv.UserCreatedDelivery(stream, "acme", u, t0.Add(time.Duration(i)*time.Minute))
		srv.AddDeliveries(stream, d)
		ids = append(ids, d.ID)
	}
	upd := srv.UserCreatedDelivery(stream, "acme", auth0fake.User{UserID: "auth0|upd"}, t0.Add(90*time.Second))
	upd.EventType = "user.updated"
	srv.AddDeliveries(stream, upd)
	return t0, ids
}

func TestListDeliveriesPagesThroughTheFilteredDeliveries(t *testing.T) {
	srv := auth0fake.New(t)
	c := newClient(t, srv)
	t0, ids := deliveries(t, srv)
	// Sub-second bounds are widened to whole seconds: 06:00:59.5 → 06:00:59
	// and 06:03:00.2 → 06:03:01, so d1 (06:01), d2 and d3 (06:03) are in.
	f := auth0api.DeliveryFilter{
		From: t0.Add(59*time.Second + 500*time.Millisecond), To: t0.Add(3*time.Minute + 200*time.Millisecond),
		EventTypes: []string{"user.created"}, Statuses: []string{auth0api.DeliveryFailed},
	}
	var got []string
	token, requests := "", 0
	for {
		page, next, err := c.ListDeliveries(t.Context(), stream, f, token, 2)
		requests++
		if err != nil {
			t.Fatalf("ListDeliveries: %v", err)
		}
		if len(page) == 0 {
			if next != "" {
				t.Errorf("empty page with next %q", next)
			}
			break
		}
		for _, d := range page {
			if d.Status != "failed" || d.EventType != "user.created" || len(d.Event) == 0 {
				t.Errorf("delivery %+v", d)
			}
			got = append(got, d.ID)
		}
		token = next
	}
	if want := ids[1:4]; !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	if requests != 3 || srv.Requests()[auth0fake.RouteListDeliveries] != 3 {
		t.Errorf("%d requests, want 3 (two pages and the empty one)", requests)
	}

	t.Run("the event keeps a numeric identity id exactly", func(t *testing.T) {
		page, _, err := c.ListDeliveries(t.Context(), stream, auth0api.DeliveryFilter{}, "", 0)
		if err != nil || len(page) != 6 {
			t.Fatalf("ListDeliveries: %d, %v", len(page), err)
		}
		d := json.NewDecoder(bytes.NewReader(page[0].Event))
		d.UseNumber()
		var ev struct {
			Data struct {
				Object struct {
					Identities []struct {
						UserID json.Number `json:"user_id"`
					} `json:"identities"`
				} `json:"object"`
			} `json:"data"`
		}
		if err := d.Decode(&ev); err != nil || ev.Data.Object.Identities[0].UserID != "1234567890123456789" {
			t.Errorf("identity user_id %v (%v), want 1234567890123456789", ev.Data.Object.Identities, err)
		}
	})
}

func TestListDeliveriesErrors(t *testing.T) {
	tests := []struct {
		name      string
		stream    string
		take      int
		fail      int
		transient bool
		wantErr   error
	}{
		{name: "unknown stream is not found", stream: "est_nope", wantErr: auth0api.ErrNotFound},
		{name: "429 is transient with the reset", stream: stream, fail: http.StatusTooManyRequests, transient: true},
		{name: "503 is transient", stream: stream, fail: http.StatusServiceUnavailable, transient: true},
		{name: "403 is permanent", stream: stream, fail: http.StatusForbidden, wantErr: auth0api.ErrPermanent},
		{name: "take out of range, no request", stream: stream, take: 101, wantErr: auth0api.ErrPermanent},
		{name: "empty stream id, no request", wantErr: auth0api.ErrPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := auth0fake.New(t)
			c := newClient(t, srv)
			deliveries(t, srv)
			if tt.fail != 0 {
				srv.Fail(tt.fail, 1)
			}
			_, _, err := c.ListDeliveries(t.Context(), tt.stream, auth0api.DeliveryFilter{}, "", tt.take)
			if tt.transient {
				if !auth0api.IsTransient(err) || (tt.fail == http.StatusTooManyRequests && auth0api.RetryAfter(err) <= 0) {
					t.Errorf("err %v (retry after %v), want transient", err, auth0api.RetryAfter(err))
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || auth0api.IsTransient(err) {
				t.Errorf("err %v, want %v", err, tt.wantErr)
			}
			if tt.take != 0 || tt.stream == "" {
				if n := srv.Requests()[auth0fake.RouteListDeliveries]; n != 0 {
					t.Errorf("%d requests, want none", n)
				}
			}
		})
	}
}

func TestRedeliverThroughTheSDK(t *testing.T) {
	srv := auth0fake.New(t)
	c := newClient(t, srv)
	t0, ids := deliveries(t, srv)
	if err := c.Redeliver(t.Context(), stream, ids[4]); err != nil {
		t.Fatalf("Redeliver: %v", err)
	}
	if err := c.Redeliver(t.Context(), stream, "evt_nope"); !errors.Is(err, auth0api.ErrNotFound) {
		t.Errorf("Redeliver of an unknown event: %v, want ErrNotFound", err)
	}
	f := auth0api.DeliveryFilter{From: t0, To: t0.Add(2 * time.Minute), EventTypes: []string{"user.created"}}
	if err := c.RedeliverMany(t.Context(), stream, f); err != nil {
		t.Fatalf("RedeliverMany: %v", err)
	}
	if err := c.RedeliverMany(t.Context(), "est_nope", f); !errors.Is(err, auth0api.ErrNotFound) {
		t.Errorf("RedeliverMany of an unknown stream: %v, want ErrNotFound", err)
	}
	if got, want := srv.Redeliveries(stream), []string{ids[4], ids[0], ids[1]}; !slices.Equal(got, want) {
		t.Errorf("redelivered %v, want %v", got, want)
	}
}

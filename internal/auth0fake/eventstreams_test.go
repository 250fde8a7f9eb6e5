package auth0fake_test

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signupsync/signupsync/internal/auth0fake"
)

const streamID = "est_fake1"

type deliveryPage struct {
	Deliveries []struct {
		ID            string `json:"id"`
		EventStreamID string `json:"event_stream_id"`
		Status        string `json:"status"`
		EventType     string `json:"event_type"`
		Attempts      []struct {
			Status       string  `json:"status"`
			Timestamp    string  `json:"timestamp"`
			ErrorMessage string  `json:"error_message"`
			Duration     float64 `json:"duration"`
		} `json:"attempts"`
		Event struct {
			ID       string `json:"id"`
			Type     string `json:"type"`
			Time     string `json:"time"`
			A0Tenant string `json:"a0tenant"`
			A0Stream string `json:"a0stream"`
			Data     struct {
				Object map[string]any `json:"object"`
			} `json:"data"`
		} `json:"event"`
	} `json:"deliveries"`
	Next *string `json:"next"`
}

// deliveriesWorld is a stream with six deliveries a minute apart from t0:
// user.created failed ×3 (c0, c1, c2), user.updated failed, user.created
// retrying, and a user.created failed an hour later.
func deliveriesWorld(t *testing.T, opts ...auth0fake.Option) (*auth0fake.Server, time.Time, []auth0fake.Delivery) {
	s := auth0fake.New(t, opts...)
	s.AddEventStream(streamID)
	t0 := time.Date(2025, 9, 8, 6, 0, 0, 0, time.UTC)
	var ds []auth0fake.Delivery
	for i := range 3 {
		ds = append(ds, s.UserCreatedDelivery(streamID, "acme", auth0fake.User{UserID: "auth0|c" + strconv.Itoa(i), Email: "c@example.com"}, t0.Add(time.Duration(i)*time.Minute)))
	}
	upd := s.UserCreatedDelivery(streamID, "acme", auth0fake.User{UserID: "auth0|u"}, t0.Add(3*time.Minute))
	upd.EventType = "user.updated"
	retrying := s.UserCreatedDelivery(streamID, "acme", auth0fake.User{UserID: "auth0|r"}, t0.Add(4*time.Minute))
	retrying.Status = auth0fake.DeliveryRetrying
	late := s.UserCreatedDelivery(streamID, "acme", auth0fake.User{UserID: "auth0|late"}, t0.Add(time.Hour))
	ds = append(ds, upd, retrying, late)
	// Stored out of order: the list orders by event time.
	rev := slices.Clone(ds)
	slices.Reverse(rev)
	s.AddDeliveries(streamID, rev...)
	return s, t0, ds
}

func TestListDeliveriesFiltersAndPagesByToken(t *testing.T) {
	s, t0, ds := deliveriesWorld(t)
	ts := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	tests := []struct {
		name  string
		query url.Values
		want  []string // user ids, in order
	}{
		{name: "everything, oldest first", query: url.Values{}, want: []string{"auth0|c0", "auth0|c1", "auth0|c2", "auth0|u", "auth0|r", "auth0|late"}},
		{name: "statuses", query: url.Values{"statuses": {"failed"}}, want: []string{"auth0|c0", "auth0|c1", "auth0|c2", "auth0|u", "auth0|late"}},
		{name: "event types", query: url.Values{"event_types": {"user.updated,user.deleted"}}, want: []string{"auth0|u"}},
		{name: "date_from inclusive, date_to exclusive", query: url.Values{"date_from": {ts(time.Minute)}, "date_to": {ts(4 * time.Minute)}},
			want: []string{"auth0|c1", "auth0|c2", "auth0|u"}},
		{name: "filters combine", query: url.Values{"statuses": {"failed"}, "event_types": {"user.created"}, "date_from": {ts(time.Minute)}},
			want: []string{"auth0|c1", "auth0|c2", "auth0|late"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			q := tt.query
			q.Set("take", "2")
			pages := 0
			for {
				r := call(t, s, http.MethodGet, "/api/v2/event-streams/"+streamID+"/deliveries?"+q.Encode(), s.Token(), nil)
				if r.status != http.StatusOK {
					t.Fatalf("list: %d %s", r.status, r.body)
				}
				var p deliveryPage
				r.json(t, &p)
				pages++
				if len(p.Deliveries) == 0 {
					if p.Next != nil {
						t.Errorf("an empty page has next %q", *p.Next)
					}
					break
				}
				if len(p.Deliveries) > 2 {
					t.Fatalf("page of %d, take 2", len(p.Deliveries))
				}
				// Like Auth0, even a short last page carries next.
				if p.Next == nil || *p.Next == "" {
					t.Fatalf("page %d has no next", pages)
				}
				for _, d := range p.Deliveries {
					got = append(got, d.Event.Data.Object["user_id"].(string))
				}
				q.Set("from", *p.Next)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("listed %v, want %v", got, tt.want)
			}
			if want := (len(tt.want)+1)/2 + 1; pages != want {
				t.Errorf("%d requests, want %d", pages, want)
			}
		})
	}

	t.Run("delivery object", func(t *testing.T) {
		r := call(t, s, http.MethodGet, "/api/v2/event-streams/"+streamID+"/deliveries?take=1", s.Token(), nil)
		var p deliveryPage
		r.json(t, &p)
		d := p.Deliveries[0]
		if d.ID != ds[0].ID || d.EventStreamID != streamID || d.Status != "failed" || d.EventType != "user.created" ||
			len(d.Attempts) != 4 || d.Attempts[0].Status != "failed" || d.Attempts[0].ErrorMessage == "" || d.Attempts[0].Timestamp == "" {
			t.Errorf("delivery %+v", d)
		}
		if d.Event.ID != d.ID || d.Event.Type != "user.created" || d.Event.Time != t0.Format(auth0fake.TimeLayout) ||
			d.Event.A0Tenant != "acme" || d.Event.A0Stream != streamID || d.Event.Data.Object["created_at"] != t0.Format(auth0fake.TimeLayout) {
			t.Errorf("event %+v", d.Event)
		}
	})

	t.Run("a page token is not shifted by a new delivery", func(t *testing.T) {
		r := call(t, s, http.MethodGet, "/api/v2/event-streams/"+streamID+"/deliveries?take=2", s.Token(), nil)
		var p deliveryPage
		r.json(t, &p)
		s.AddDeliveries(streamID, s.UserCreatedDelivery(streamID, "acme", auth0fake.User{UserID: "auth0|early"}, t0.Add(-time.Minute)))
		r = call(t, s, http.MethodGet, "/api/v2/event-streams/"+streamID+"/deliveries?take=1&from="+url.QueryEscape(*p.Next), s.Token(), nil)
		r.json(t, &p)
		if len(p.Deliveries) != 1 || p.Deliveries[0].Event.Data.Object["user_id"] != "auth0|c2" {
			t.Errorf("page after the token: %s", r.body)
		}
	})
}

func TestDeliveriesErrors(t *testing.T) {
	s, _, ds := deliveriesWorld(t)
	base := "/api/v2/event-streams/" + streamID
	tests := []struct {
		name, method, path string
		want               int
		message            string
	}{
		{name: "unknown stream, list", method: http.MethodGet, path: "/api/v2/event-streams/est_nope/deliveries", want: 404, message: "event stream does not exist"},
		{name: "unknown stream, read", method: http.MethodGet, path: "/api/v2/event-streams/est_nope/deliveries/" + ds[0].ID, want: 404, message: "event stream does not exist"},
		{name: "unknown stream, redeliver", method: http.MethodPost, path: "/api/v2/event-streams/est_nope/redeliver/" + ds[0].ID, want: 404, message: "event stream does not exist"},
		{name: "unknown stream, redeliver many", method: http.MethodPost, path: "/api/v2/event-streams/est_nope/redeliver", want: 404, message: "event stream does not exist"},
		{name: "unknown event, read", method: http.MethodGet, path: base + "/deliveries/evt_nope", want: 404, message: "event does not exist"},
		{name: "unknown event, redeliver", method: http.MethodPost, path: base + "/redeliver/evt_nope", want: 404, message: "event does not exist"},
		{name: "take 0", method: http.MethodGet, path: base + "/deliveries?take=0", want: 400, message: "less than minimum"},
		{name: "take above the maximum", method: http.MethodGet, path: base + "/deliveries?take=101", want: 400, message: "greater than maximum"},
		{name: "sub-second date_from", method: http.MethodGet, path: base + "/deliveries?date_from=2025-09-08T06:00:00.500Z", want: 400, message: "sub-second"},
		{name: "bad date_to", method: http.MethodGet, path: base + "/deliveries?date_to=yesterday", want: 400, message: "date_to"},
		{name: "bad page token", method: http.MethodGet, path: base + "/deliveries?from=not-a-token", want: 400, message: "pagination token"},
		{name: "no token", method: http.MethodGet, path: base + "/deliveries", want: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := s.Token()
			if tt.want == 401 {
				tok = ""
			}
			r := call(t, s, tt.method, tt.path, tok, nil)
			var body struct {
				StatusCode int    `json:"statusCode"`
				Error      string `json:"error"`
				Message    string `json:"message"`
			}
			r.json(t, &body)
			if r.status != tt.want || body.StatusCode != tt.want || body.Error == "" || !strings.Contains(body.Message, tt.message) {
				t.Errorf("%d %s, want %d with a message containing %q", r.status, r.body, tt.want, tt.message)
			}
		})
	}
}

func TestRedeliver(t *testing.T) {
	s, t0, ds := deliveriesWorld(t)
	base := "/api/v2/event-streams/" + streamID

	r := call(t, s, http.MethodPost, base+"/redeliver/"+ds[1].ID, s.Token(), nil)
	if r.status != http.StatusAccepted || len(r.body) != 0 {
		t.Fatalf("redeliver: %d %s, want 202 and no body", r.status, r.body)
	}
	r = call(t, s, http.MethodGet, base+"/deliveries/"+ds[1].ID, s.Token(), nil)
	var d struct {
		ID       string `json:"id"`
		Attempts []struct {
			Status string `json:"status"`
		} `json:"attempts"`
	}
	r.json(t, &d)
	if r.status != http.StatusOK || d.ID != ds[1].ID || len(d.Attempts) != 5 || d.Attempts[4].Status != "retrying" {
		t.Errorf("after redelivery: %d %s, want a fifth attempt retrying", r.status, r.body)
	}

	body := `{"event_types":["user.created"],"statuses":["failed"],"date_from":"` + t0.Format(time.RFC3339) + `","date_to":"` + t0.Add(3*time.Minute).Format(time.RFC3339) + `"}`
	r = call(t, s, http.MethodPost, base+"/redeliver", s.Token(), strings.NewReader(body), "Content-Type", "application/json")
	if r.status != http.StatusAccepted {
		t.Fatalf("redeliver many: %d %s", r.status, r.body)
	}
	if got, want := s.Redeliveries(streamID), []string{ds[1].ID, ds[0].ID, ds[1].ID, ds[2].ID}; !slices.Equal(got, want) {
		t.Errorf("redelivered %v, want %v", got, want)
	}
	r = call(t, s, http.MethodPost, base+"/redeliver", s.Token(), strings.NewReader(`{"date_from":"2025-09-08T06:00:00.1Z"}`), "Content-Type", "application/json")
	if r.status != http.StatusBadRequest {
		t.Errorf("sub-second bulk filter: %d %s, want 400", r.status, r.body)
	}
}

func TestDeliveriesShareTheRateLimit(t *testing.T) {
	s, _, _ := deliveriesWorld(t, auth0fake.WithRateLimit(1, time.Minute))
	path := "/api/v2/event-streams/" + streamID + "/deliveries"
	if r := call(t, s, http.MethodGet, path, s.Token(), nil); r.status != http.StatusOK {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	r := call(t, s, http.MethodGet, path, s.Token(), nil)
	reset, err := strconv.ParseInt(r.header.Get("X-RateLimit-Reset"), 10, 64)
	if r.status != http.StatusTooManyRequests || err != nil || !time.Unix(reset, 0).After(s.Now()) || r.header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("second: %d %v %s, want 429 with a future X-RateLimit-Reset", r.status, r.header, r.body)
	}
	s.Advance(time.Minute)
	if r := call(t, s, http.MethodGet, path, s.Token(), nil); r.status != http.StatusOK {
		t.Errorf("after the window: %d %s", r.status, r.body)
	}
	if got := s.Requests()[auth0fake.RouteListDeliveries]; got != 3 {
		t.Errorf("%d list requests counted, want 3", got)
	}
}

func TestSearchIndexLag(t *testing.T) {
	s := auth0fake.New(t, auth0fake.WithIndexLag(5*time.Minute))
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s.AddUsers(auth0fake.User{UserID: "auth0|lag", CreatedAt: created})
	search := "/api/v2/users?include_totals=true&q=" + url.QueryEscape("created_at:[2025-01-01T00:00:00.000Z TO *]")
	count := func() int {
		r := call(t, s, http.MethodGet, search, s.Token(), nil)
		var p struct {
			Total int `json:"total"`
		}
		r.json(t, &p)
		return p.Total
	}
	if n := count(); n != 0 {
		t.Errorf("searched at once: %d users, want 0 (not indexed yet)", n)
	}
	if r := call(t, s, http.MethodGet, "/api/v2/users/auth0%7Clag", s.Token(), nil); r.status != http.StatusOK {
		t.Errorf("read by id: %d, want 200 at once", r.status)
	}
	s.Advance(5 * time.Minute)
	if n := count(); n != 1 {
		t.Errorf("searched after the lag: %d users, want 1", n)
	}
}

package auth0fake

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The Event Streams deliveries endpoints, as Auth0 documents them
// ("Get this event stream's delivery history", "Get a specific event's
// delivery history", "Redeliver failed events", "Redeliver an event") and as
// go-auth0's EventStreamManager calls them:
//
//   - GET /api/v2/event-streams/{id}/deliveries answers
//     {"deliveries":[…],"next":"…"}, oldest event first. Filters: statuses
//     and event_types (comma-separated), date_from (inclusive) and date_to
//     (exclusive), RFC 3339 without sub-second precision, applied to the
//     event's time. Paging: take (default [DefaultDeliveriesTake], 1 to
//     [MaxDeliveriesTake]) and from, the opaque next token of the previous
//     page. As Auth0 does, next is present on every page that returned a
//     delivery, the last one included: a client stops at an empty page.
//   - GET /api/v2/event-streams/{id}/deliveries/{event_id} answers one
//     delivery.
//   - POST /api/v2/event-streams/{id}/redeliver/{event_id} and
//     POST /api/v2/event-streams/{id}/redeliver (a JSON body of filters:
//     date_from, date_to, statuses, event_types, combined with AND) answer
//     202 with no body. The fake delivers nowhere: it appends a "retrying"
//     attempt to each delivery and records its id ([Server.Redeliveries]).
//
// An unknown stream or event is 404; a bad parameter is 400.

// Defaults and limits of the deliveries list.
const (
	// DefaultDeliveriesTake is take when the request omits it (Auth0's
	// documented default).
	DefaultDeliveriesTake = 50
	// MaxDeliveriesTake is the largest take the fake accepts.
	MaxDeliveriesTake = 100
)

// Delivery statuses.
const (
	DeliveryFailed   = "failed"
	DeliveryRetrying = "retrying"
)

// Delivery is the delivery of one event to an event stream's destination.
type Delivery struct {
	// ID is the event's id, "evt_…"; [Server.AddDeliveries] generates one
	// when it is empty.
	ID        string
	EventType string
	// Status defaults to [DeliveryFailed].
	Status   string
	Attempts []Attempt
	// Time is the event's time: date_from and date_to filter on it, and the
	// list is ordered by it.
	Time time.Time
	// Event is the CloudEvent as Auth0 sent it;
	// [Server.UserCreatedDelivery] builds one.
	Event json.RawMessage

	streamID string
}

// Attempt is one try of a delivery.
type Attempt struct {
	Status       string
	ErrorMessage string
	Timestamp    time.Time
	Duration     float64 // milliseconds
}

type stream struct {
	deliveries  []Delivery
	redelivered []string
}

// UserCreatedDelivery builds the user.created CloudEvent Event Streams send
// for u at t ({"id","source","specversion","type","time","data":{"object":
// user},"a0tenant","a0stream"}), and the failed delivery that carries it,
// with Auth0's four failed attempts. It does not store it
// ([Server.AddDeliveries] does).
func (s *Server) UserCreatedDelivery(streamID, tenant string, u User, t time.Time) Delivery {
	s.t.Helper()
	id := "evt_" + randomID(22)
	if u.CreatedAt.IsZero() {
		u.CreatedAt = t
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	ev, err := json.Marshal(map[string]any{
		"id": id, "source": "urn:auth0:" + tenant, "specversion": "1.0", "type": "user.created",
		"time": t.UTC().Format(TimeLayout), "data": map[string]any{"object": u},
		"a0tenant": tenant, "a0stream": streamID,
	})
	if err != nil {
		s.t.Fatalf("auth0fake: marshal user.created event of %s: %v", u.UserID, err)
	}
	d := Delivery{ID: id, EventType: "user.created", Status: DeliveryFailed, Time: t, Event: ev}
	for i, after := range []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second} {
		d.Attempts = append(d.Attempts, Attempt{
			Status: DeliveryFailed, ErrorMessage: fmt.Sprintf("Post \"https://ingest.example.com/v1/event-stream\": attempt %d: 503", i+1),
			Timestamp: t.Add(20*time.Second + after), Duration: 20,
		})
	}
	return d
}

// AddEventStream creates an empty event stream.
func (s *Server) AddEventStream(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.streams[id]; !ok {
		s.streams[id] = &stream{}
	}
}

// AddDeliveries stores deliveries of a stream created with
// [Server.AddEventStream], replacing any with the same id. It fails the
// test (so call it from the test goroutine) for an unknown stream.
func (s *Server) AddDeliveries(streamID string, ds ...Delivery) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[streamID]
	if !ok {
		s.t.Fatalf("auth0fake: AddDeliveries: no event stream %s", streamID)
	}
	for _, d := range ds {
		if d.ID == "" {
			d.ID = "evt_" + randomID(22)
		}
		if d.Status == "" {
			d.Status = DeliveryFailed
		}
		d.streamID = streamID
		if i := slices.IndexFunc(st.deliveries, func(o Delivery) bool { return o.ID == d.ID }); i >= 0 {
			st.deliveries[i] = d
		} else {
			st.deliveries = append(st.deliveries, d)
		}
	}
	slices.SortStableFunc(st.deliveries, func(a, b Delivery) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.ID, b.ID))
	})
}

// Redeliveries returns the event ids a client asked the stream to
// redeliver, in order, one entry per request (a bulk request adds every
// matching id).
func (s *Server) Redeliveries(streamID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.streams[streamID]; ok {
		return slices.Clone(st.redelivered)
	}
	return nil
}

// MarshalJSON writes the delivery as Auth0 does.
func (d Delivery) MarshalJSON() ([]byte, error) {
	type attempt struct {
		Status       string  `json:"status"`
		Timestamp    string  `json:"timestamp"`
		ErrorMessage string  `json:"error_message,omitempty"`
		Duration     float64 `json:"duration,omitempty"`
	}
	attempts := make([]attempt, 0, len(d.Attempts))
	for _, a := range d.Attempts {
		attempts = append(attempts, attempt{a.Status, a.Timestamp.UTC().Format(TimeLayout), a.ErrorMessage, a.Duration})
	}
	event := d.Event
	if len(event) == 0 {
		event = json.RawMessage("null")
	}
	return json.Marshal(struct {
		ID            string          `json:"id"`
		EventStreamID string          `json:"event_stream_id"`
		Status        string          `json:"status"`
		EventType     string          `json:"event_type"`
		Attempts      []attempt       `json:"attempts"`
		Event         json.RawMessage `json:"event"`
	}{d.ID, d.streamID, d.Status, d.EventType, attempts, event})
}

// deliveryFilter is the filters of the list and of a bulk redelivery.
type deliveryFilter struct {
	statuses, types map[string]bool
	from, to        time.Time
}

func (f deliveryFilter) match(d Delivery) bool {
	return (f.statuses == nil || f.statuses[d.Status]) &&
		(f.types == nil || f.types[d.EventType]) &&
		(f.from.IsZero() || !d.Time.Before(f.from)) &&
		(f.to.IsZero() || d.Time.Before(f.to))
}

// parseDeliveryFilter reads the filters; it returns Auth0's 400 message for
// a bad one.
func parseDeliveryFilter(statuses, types []string, dateFrom, dateTo string) (deliveryFilter, string) {
	var f deliveryFilter
	set := func(list []string) map[string]bool {
		var m map[string]bool
		for _, v := range list {
			if v = strings.TrimSpace(v); v != "" {
				if m == nil {
					m = map[string]bool{}
				}
				m[v] = true
			}
		}
		return m
	}
	f.statuses, f.types = set(statuses), set(types)
	for _, p := range []struct {
		name, value string
		to          *time.Time
	}{{"date_from", dateFrom, &f.from}, {"date_to", dateTo, &f.to}} {
		if p.value == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, p.value)
		if err != nil || strings.Contains(p.value, ".") {
			return f, fmt.Sprintf("Query validation error: '%s must be an RFC-3339 date-time without sub-second precision' on property %s.", p.value, p.name)
		}
		*p.to = t
	}
	return f, ""
}

// pageToken is the opaque next token: the position after the last
// delivery returned, so a page is not shifted by deliveries added or
// removed meanwhile.
type pageToken struct {
	Time int64  `json:"t"`
	ID   string `json:"i"`
}

func (p pageToken) encode() string {
	b, _ := json.Marshal(p)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s string) (pageToken, bool) {
	var p pageToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &p) != nil || p.ID == "" {
		return p, false
	}
	return p, true
}

func (p pageToken) before(d Delivery) bool {
	return cmp.Or(cmp.Compare(p.Time, d.Time.UnixNano()), strings.Compare(p.ID, d.ID)) < 0
}

// stream returns a copy of the stream's deliveries, or answers 404.
func (s *Server) stream(w http.ResponseWriter, id string) ([]Delivery, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[id]
	if !ok {
		apiError(w, http.StatusNotFound, "The event stream does not exist.", "")
		return nil, false
	}
	return slices.Clone(st.deliveries), true
}

func (s *Server) handleListDeliveries(w http.ResponseWriter, r *http.Request) {
	all, ok := s.stream(w, r.PathValue("id"))
	if !ok {
		return
	}
	q := r.URL.Query()
	take, ok := intParam(w, q.Get("take"), "take", DefaultDeliveriesTake, 1, MaxDeliveriesTake)
	if !ok {
		return
	}
	f, msg := parseDeliveryFilter(strings.Split(q.Get("statuses"), ","), strings.Split(q.Get("event_types"), ","), q.Get("date_from"), q.Get("date_to"))
	if msg != "" {
		apiError(w, http.StatusBadRequest, msg, "invalid_query_string")
		return
	}
	var after *pageToken
	if v := q.Get("from"); v != "" {
		tok, ok := decodeToken(v)
		if !ok {
			apiError(w, http.StatusBadRequest, "Query validation error: 'Invalid pagination token' on property from.", "invalid_query_string")
			return
		}
		after = &tok
	}
	page := make([]Delivery, 0, take)
	for _, d := range all {
		if len(page) == take {
			break
		}
		if f.match(d) && (after == nil || after.before(d)) {
			page = append(page, d)
		}
	}
	body := map[string]any{"deliveries": page}
	if len(page) > 0 {
		last := page[len(page)-1]
		body["next"] = pageToken{Time: last.Time.UnixNano(), ID: last.ID}.encode()
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) handleGetDelivery(w http.ResponseWriter, r *http.Request) {
	all, ok := s.stream(w, r.PathValue("id"))
	if !ok {
		return
	}
	i := slices.IndexFunc(all, func(d Delivery) bool { return d.ID == r.PathValue("event_id") })
	if i < 0 {
		apiError(w, http.StatusNotFound, "The event does not exist.", "")
		return
	}
	writeJSON(w, http.StatusOK, all[i])
}

func (s *Server) handleRedeliver(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("event_id")
	if _, ok := s.stream(w, r.PathValue("id")); !ok {
		return
	}
	if n := s.redeliver(r.PathValue("id"), func(d Delivery) bool { return d.ID == id }); n == 0 {
		apiError(w, http.StatusNotFound, "The event does not exist.", "")
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) handleRedeliverMany(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.stream(w, r.PathValue("id")); !ok {
		return
	}
	var body struct {
		DateFrom   string   `json:"date_from"`
		DateTo     string   `json:"date_to"`
		Statuses   []string `json:"statuses"`
		EventTypes []string `json:"event_types"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			apiError(w, http.StatusBadRequest, "Payload validation error: 'Invalid JSON'.", "invalid_body")
			return
		}
	}
	f, msg := parseDeliveryFilter(body.Statuses, body.EventTypes, body.DateFrom, body.DateTo)
	if msg != "" {
		apiError(w, http.StatusBadRequest, strings.Replace(msg, "Query", "Payload", 1), "invalid_body")
		return
	}
	s.redeliver(r.PathValue("id"), f.match)
	w.WriteHeader(http.StatusAccepted)
}

// redeliver records a retrying attempt on every matching delivery and
// returns how many matched.
func (s *Server) redeliver(streamID string, match func(Delivery) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[streamID]
	n := 0
	for i, d := range st.deliveries {
		if !match(d) {
			continue
		}
		n++
		st.deliveries[i].Attempts = append(slices.Clone(d.Attempts), Attempt{Status: DeliveryRetrying, Timestamp: s.now()})
		st.redelivered = append(st.redelivered, d.ID)
	}
	return n
}

package auth0fake

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The Event Streams and Log Streams configuration endpoints, in the shapes
// Auth0 documents ("Create an event stream", "Update an event stream",
// "Create a log stream", "Update a log stream") and go-auth0's recorded
// responses (test/data/recordings/TestEventStreamManager_*.yaml,
// TestLogStreamManager_*):
//
//   - POST /api/v2/event-streams answers 201 with the stream ("est_…",
//     status "enabled"); GET /api/v2/event-streams answers
//     {"eventStreams":[…]}, all of them on one page; GET, PATCH (the fields
//     it carries) and DELETE (204) /api/v2/event-streams/{id}. A webhook
//     destination needs an https webhook_endpoint and a
//     webhook_authorization of method "bearer" (with token) or "basic"
//     (username, password); the API takes no other destination type. Like
//     Auth0, no answer ever carries the token
//     or the password: webhook_authorization shows only the method (and
//     the username). A stream created here also takes deliveries
//     ([Server.AddDeliveries]).
//   - POST /api/v2/log-streams answers 200 with the stream ("lst_…", status
//     "active"); GET /api/v2/log-streams answers a bare array; GET, PATCH
//     (name, status, filters, sink fields merged) and DELETE (204)
//     /api/v2/log-streams/{id}. An http sink needs httpEndpoint and an
//     httpContentFormat of JSONARRAY, JSONLINES or JSONOBJECT; filters are
//     {"type":"category","name":…} with the category names Auth0 lists. As
//     the recordings show, Auth0 returns httpAuthorization as it was set.
//
// Unknown fields are 400 as for actions; an unknown stream is 404.

// Routes of the stream configuration endpoints, as keys of
// [Server.Requests].
const (
	RouteListEventStreams  = "GET /api/v2/event-streams"
	RouteCreateEventStream = "POST /api/v2/event-streams"
	RouteGetEventStream    = "GET /api/v2/event-streams/{id}"
	RouteUpdateEventStream = "PATCH /api/v2/event-streams/{id}"
	RouteDeleteEventStream = "DELETE /api/v2/event-streams/{id}"

	RouteListLogStreams  = "GET /api/v2/log-streams"
	RouteCreateLogStream = "POST /api/v2/log-streams"
	RouteGetLogStream    = "GET /api/v2/log-streams/{id}"
	RouteUpdateLogStream = "PATCH /api/v2/log-streams/{id}"
	RouteDeleteLogStream = "DELETE /api/v2/log-streams/{id}"
)

// LogStreamCategories are the log stream filter categories Auth0 accepts
// (the category group names of its Management API schema).
func LogStreamCategories() []string {
	return []string{
		"auth.ancillary.fail", "auth.ancillary.success", "auth.login.fail", "auth.login.notification",
		"auth.login.success", "auth.logout.fail", "auth.logout.success", "auth.signup.fail",
		"auth.signup.success", "auth.silent_auth.fail", "auth.silent_auth.success",
		"auth.token_exchange.fail", "auth.token_exchange.success", "management.fail",
		"management.success", "scim.event", "system.notification", "user.fail", "user.notification",
		"user.success", "actions", "security", "other",
	}
}

// EventStreamState is what the fake holds of an event stream, token
// included.
type EventStreamState struct {
	ID         string
	Name       string
	Status     string // "enabled" or "disabled"
	EventTypes []string
	// DestinationType is "webhook" (the default) or "eventbridge".
	DestinationType string
	Endpoint        string
	// AuthMethod is "bearer" (with Token) or "basic" (Username, Password).
	AuthMethod, Token, Username, Password string
}

// LogStreamState is what the fake holds of a log stream.
type LogStreamState struct {
	ID     string
	Name   string
	Type   string // "http" unless set
	Status string // "active", "paused" or "suspended"
	// Sink holds the sink's fields as Auth0 names them (httpEndpoint,
	// httpContentFormat, httpContentType, httpAuthorization, …).
	Sink map[string]any
	// Filters are the category names.
	Filters    []string
	IsPriority bool
}

type fakeEventStream struct {
	EventStreamState
	created, updated time.Time
}

type fakeLogStream struct {
	LogStreamState
	hasFilters bool
}

// CreateEventStream stores an event stream as POST would, without its
// checks, and returns its id. Status defaults to enabled and
// DestinationType to webhook.
func (s *Server) CreateEventStream(es EventStreamState) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.storeEventStream(es)
}

func (s *Server) storeEventStream(es EventStreamState) string {
	es.ID = "est_" + randomID(22)
	if es.Status == "" {
		es.Status = "enabled"
	}
	if es.DestinationType == "" {
		es.DestinationType = "webhook"
	}
	es.EventTypes = slices.Clone(es.EventTypes)
	now := s.now()
	s.tenant.eventStreams = append(s.tenant.eventStreams, &fakeEventStream{EventStreamState: es, created: now, updated: now})
	s.streams[es.ID] = &stream{}
	return es.ID
}

// EventStreams returns every event stream, in creation order.
func (s *Server) EventStreams() []EventStreamState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]EventStreamState, 0, len(s.tenant.eventStreams))
	for _, es := range s.tenant.eventStreams {
		st := es.EventStreamState
		st.EventTypes = slices.Clone(st.EventTypes)
		out = append(out, st)
	}
	return out
}

// CreateLogStream stores a log stream as POST would, without its checks,
// and returns its id. Type defaults to http and Status to active.
func (s *Server) CreateLogStream(ls LogStreamState) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.storeLogStream(ls, len(ls.Filters) > 0)
}

func (s *Server) storeLogStream(ls LogStreamState, hasFilters bool) string {
	s.tenant.logSeq++
	ls.ID = fmt.Sprintf("lst_%016d", s.tenant.logSeq)
	if ls.Type == "" {
		ls.Type = "http"
	}
	if ls.Status == "" {
		ls.Status = "active"
	}
	ls.Sink, ls.Filters = maps.Clone(ls.Sink), slices.Clone(ls.Filters)
	s.tenant.logStreams = append(s.tenant.logStreams, &fakeLogStream{LogStreamState: ls, hasFilters: hasFilters})
	return ls.ID
}

// LogStreams returns every log stream, in creation order.
func (s *Server) LogStreams() []LogStreamState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]LogStreamState, 0, len(s.tenant.logStreams))
	for _, ls := range s.tenant.logStreams {
		st := ls.LogStreamState
		st.Sink, st.Filters = maps.Clone(st.Sink), slices.Clone(st.Filters)
		out = append(out, st)
	}
	return out
}

func (es *fakeEventStream) json() map[string]any {
	subs := make([]map[string]string, 0, len(es.EventTypes))
	for _, t := range es.EventTypes {
		subs = append(subs, map[string]string{"event_type": t})
	}
	conf := map[string]any{}
	switch es.DestinationType {
	case "webhook":
		auth := map[string]any{"method": es.AuthMethod}
		if es.AuthMethod == "basic" {
			auth["username"] = es.Username
		}
		conf["webhook_endpoint"], conf["webhook_authorization"] = es.Endpoint, auth
	}
	return map[string]any{
		"id": es.ID, "status": es.Status, "name": es.Name, "subscriptions": subs,
		"created_at": es.created.UTC().Format(TimeLayout), "updated_at": es.updated.UTC().Format(TimeLayout),
		"destination": map[string]any{"type": es.DestinationType, "configuration": conf},
	}
}

type eventStreamIn struct {
	Name          *string `json:"name"`
	Status        *string `json:"status"`
	Subscriptions *[]struct {
		EventType string `json:"event_type"`
	} `json:"subscriptions"`
	Destination *struct {
		Type          string `json:"type"`
		Configuration struct {
			WebhookEndpoint      string `json:"webhook_endpoint"`
			WebhookAuthorization struct {
				Method   string `json:"method"`
				Token    string `json:"token"`
				Username string `json:"username"`
				Password string `json:"password"`
			} `json:"webhook_authorization"`
		} `json:"configuration"`
	} `json:"destination"`
}

// apply checks in and writes it over es; it returns Auth0's 400 message or
// "".
func (in eventStreamIn) apply(es *EventStreamState) string {
	if in.Name != nil {
		if *in.Name == "" || len(*in.Name) > 128 {
			return "Payload validation error: 'String is too short (0 chars), minimum 1' on property name."
		}
		es.Name = *in.Name
	}
	if in.Status != nil {
		if *in.Status != "enabled" && *in.Status != "disabled" {
			return fmt.Sprintf("Payload validation error: 'No enum match for: \"%s\"' on property status.", *in.Status)
		}
		es.Status = *in.Status
	}
	if in.Subscriptions != nil {
		var types []string
		for i, sub := range *in.Subscriptions {
			if before, after, ok := strings.Cut(sub.EventType, "."); !ok || before == "" || after == "" {
				return fmt.Sprintf("Payload validation error: 'Invalid event type \"%s\"' on property subscriptions[%d].event_type.", sub.EventType, i)
			}
			types = append(types, sub.EventType)
		}
		if len(types) == 0 {
			return "Payload validation error: 'Array is too short (0), minimum 1' on property subscriptions."
		}
		es.EventTypes = types
	}
	if d := in.Destination; d != nil {
		if d.Type != "webhook" {
			return fmt.Sprintf("Payload validation error: 'No enum match for: \"%s\"' on property destination.type.", d.Type)
		}
		c := d.Configuration
		if !strings.HasPrefix(c.WebhookEndpoint, "https://") {
			return "Payload validation error: 'String does not match pattern ^https://.*' on property destination.configuration.webhook_endpoint."
		}
		a := c.WebhookAuthorization
		switch {
		case a.Method == "bearer" && a.Token != "":
		case a.Method == "basic" && a.Username != "" && a.Password != "":
		default:
			return "Payload validation error: 'Data does not match any schemas from 'oneOf'' on property destination.configuration.webhook_authorization."
		}
		es.DestinationType, es.Endpoint = d.Type, c.WebhookEndpoint
		es.AuthMethod, es.Token, es.Username, es.Password = a.Method, a.Token, a.Username, a.Password
	}
	return ""
}

func (s *Server) handleListEventStreams(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]map[string]any, 0, len(s.tenant.eventStreams))
	for _, es := range s.tenant.eventStreams {
		list = append(list, es.json())
	}
	writeJSON(w, http.StatusOK, map[string]any{"eventStreams": list})
}

func (s *Server) handleCreateEventStream(w http.ResponseWriter, r *http.Request) {
	var in eventStreamIn
	if !decodeStrict(w, r, &in) {
		return
	}
	if in.Name == nil || in.Subscriptions == nil || in.Destination == nil {
		apiError(w, http.StatusBadRequest, "Payload validation error: 'Missing required property: name, subscriptions, destination'.", "invalid_body")
		return
	}
	var es EventStreamState
	if msg := in.apply(&es); msg != "" {
		apiError(w, http.StatusBadRequest, msg, "invalid_body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.storeEventStream(es)
	writeJSON(w, http.StatusCreated, s.eventStreamByID(id).json())
}

func (s *Server) eventStreamByID(id string) *fakeEventStream {
	for _, es := range s.tenant.eventStreams {
		if es.ID == id {
			return es
		}
	}
	return nil
}

func (s *Server) handleGetEventStream(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	es := s.eventStreamByID(r.PathValue("id"))
	if es == nil {
		apiError(w, http.StatusNotFound, "The event stream does not exist.", "")
		return
	}
	writeJSON(w, http.StatusOK, es.json())
}

func (s *Server) handleUpdateEventStream(w http.ResponseWriter, r *http.Request) {
	var in eventStreamIn
	if !decodeStrict(w, r, &in) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	es := s.eventStreamByID(r.PathValue("id"))
	if es == nil {
		apiError(w, http.StatusNotFound, "The event stream does not exist.", "")
		return
	}
	st := es.EventStreamState
	if msg := in.apply(&st); msg != "" {
		apiError(w, http.StatusBadRequest, msg, "invalid_body")
		return
	}
	es.EventStreamState, es.updated = st, s.now()
	writeJSON(w, http.StatusOK, es.json())
}

func (s *Server) handleDeleteEventStream(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	if s.eventStreamByID(id) == nil {
		apiError(w, http.StatusNotFound, "The event stream does not exist.", "")
		return
	}
	s.tenant.eventStreams = slices.DeleteFunc(s.tenant.eventStreams, func(es *fakeEventStream) bool { return es.ID == id })
	delete(s.streams, id)
	w.WriteHeader(http.StatusNoContent)
}

func (ls *fakeLogStream) json() map[string]any {
	out := map[string]any{
		"id": ls.ID, "name": ls.Name, "type": ls.Type, "status": ls.Status,
		"sink": maps.Clone(ls.Sink), "isPriority": ls.IsPriority,
	}
	if ls.hasFilters {
		filters := make([]map[string]string, 0, len(ls.Filters))
		for _, f := range ls.Filters {
			filters = append(filters, map[string]string{"type": "category", "name": f})
		}
		out["filters"] = filters
	}
	return out
}

type logStreamIn struct {
	Name       *string         `json:"name"`
	Type       *string         `json:"type"`
	Status     *string         `json:"status"`
	IsPriority *bool           `json:"isPriority"`
	Sink       *map[string]any `json:"sink"`
	Filters    *[]struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"filters"`
	PIIConfig *json.RawMessage `json:"pii_config"`
	StartFrom *string          `json:"startFrom"`
}

var httpContentFormats = []string{"JSONARRAY", "JSONLINES", "JSONOBJECT"}

// apply checks in and writes it over ls; it returns Auth0's 400 message or
// "".
func (in logStreamIn) apply(ls *fakeLogStream) string {
	if in.Name != nil {
		if *in.Name == "" {
			return "Payload validation error: 'String is too short (0 chars), minimum 1' on property name."
		}
		ls.Name = *in.Name
	}
	if in.Status != nil {
		if !slices.Contains([]string{"active", "paused", "suspended"}, *in.Status) {
			return fmt.Sprintf("Payload validation error: 'No enum match for: \"%s\"' on property status.", *in.Status)
		}
		ls.Status = *in.Status
	}
	if in.Filters != nil {
		var names []string
		for i, f := range *in.Filters {
			if f.Type != "category" || !slices.Contains(LogStreamCategories(), f.Name) {
				return fmt.Sprintf("Payload validation error: 'No enum match for: \"%s\"' on property filters[%d].name.", f.Name, i)
			}
			names = append(names, f.Name)
		}
		ls.Filters, ls.hasFilters = names, len(names) > 0
	}
	if in.Sink != nil {
		sink := maps.Clone(ls.Sink)
		if sink == nil {
			sink = map[string]any{}
		}
		maps.Copy(sink, *in.Sink)
		if ls.Type == "http" {
			endpoint, _ := sink["httpEndpoint"].(string)
			if u, err := url.Parse(endpoint); err != nil || u.Scheme == "" || u.Host == "" {
				return "Payload validation error: 'Invalid URL' on property sink.httpEndpoint."
			}
			if f, _ := sink["httpContentFormat"].(string); !slices.Contains(httpContentFormats, f) {
				return fmt.Sprintf("Payload validation error: 'No enum match for: \"%v\"' on property sink.httpContentFormat.", sink["httpContentFormat"])
			}
			if _, ok := sink["httpContentType"]; !ok {
				sink["httpContentType"] = "application/json"
			}
		}
		ls.Sink = sink
	}
	return ""
}

func (s *Server) handleListLogStreams(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]map[string]any, 0, len(s.tenant.logStreams))
	for _, ls := range s.tenant.logStreams {
		list = append(list, ls.json())
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleCreateLogStream(w http.ResponseWriter, r *http.Request) {
	var in logStreamIn
	if !decodeStrict(w, r, &in) {
		return
	}
	if in.Type == nil || in.Sink == nil {
		apiError(w, http.StatusBadRequest, "Payload validation error: 'Missing required property: type, sink'.", "invalid_body")
		return
	}
	ls := fakeLogStream{LogStreamState: LogStreamState{Type: *in.Type, Status: "active"}}
	if in.IsPriority != nil {
		ls.IsPriority = *in.IsPriority
	}
	if msg := in.apply(&ls); msg != "" {
		apiError(w, http.StatusBadRequest, msg, "invalid_body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.storeLogStream(ls.LogStreamState, ls.hasFilters)
	writeJSON(w, http.StatusOK, s.logStreamByID(id).json())
}

func (s *Server) logStreamByID(id string) *fakeLogStream {
	for _, ls := range s.tenant.logStreams {
		if ls.ID == id {
			return ls
		}
	}
	return nil
}

func (s *Server) handleGetLogStream(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.logStreamByID(r.PathValue("id"))
	if ls == nil {
		apiError(w, http.StatusNotFound, "The log stream does not exist.", "")
		return
	}
	writeJSON(w, http.StatusOK, ls.json())
}

func (s *Server) handleUpdateLogStream(w http.ResponseWriter, r *http.Request) {
	var in logStreamIn
	if !decodeStrict(w, r, &in) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.logStreamByID(r.PathValue("id"))
	if ls == nil {
		apiError(w, http.StatusNotFound, "The log stream does not exist.", "")
		return
	}
	if in.Type != nil && *in.Type != ls.Type {
		apiError(w, http.StatusBadRequest, "Payload validation error: 'Additional properties not allowed: type'.", "invalid_body")
		return
	}
	if in.IsPriority != nil && *in.IsPriority != ls.IsPriority {
		apiError(w, http.StatusBadRequest, "isPriority cannot be changed once the log stream exists.", "invalid_body")
		return
	}
	next := *ls
	if msg := in.apply(&next); msg != "" {
		apiError(w, http.StatusBadRequest, msg, "invalid_body")
		return
	}
	*ls = next
	writeJSON(w, http.StatusOK, ls.json())
}

func (s *Server) handleDeleteLogStream(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	if s.logStreamByID(id) == nil {
		apiError(w, http.StatusNotFound, "The log stream does not exist.", "")
		return
	}
	s.tenant.logStreams = slices.DeleteFunc(s.tenant.logStreams, func(ls *fakeLogStream) bool { return ls.ID == id })
	w.WriteHeader(http.StatusNoContent)
}

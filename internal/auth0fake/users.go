package auth0fake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TimeLayout is how Auth0 writes timestamps: UTC with milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// User is an Auth0 user. It marshals like Auth0's user object, with
// created_at and updated_at in [TimeLayout].
type User struct {
	UserID        string         `json:"user_id"`
	Email         string         `json:"email,omitempty"`
	EmailVerified bool           `json:"email_verified"`
	Name          string         `json:"name,omitempty"`
	GivenName     string         `json:"given_name,omitempty"`
	FamilyName    string         `json:"family_name,omitempty"`
	Nickname      string         `json:"nickname,omitempty"`
	Picture       string         `json:"picture,omitempty"`
	CreatedAt     time.Time      `json:"-"`
	UpdatedAt     time.Time      `json:"-"`
	Identities    []Identity     `json:"identities"`
	AppMetadata   map[string]any `json:"app_metadata,omitempty"`
	UserMetadata  map[string]any `json:"user_metadata,omitempty"`
}

// Identity is one entry of a user's identities.
type Identity struct {
	Provider   string `json:"provider"`
	Connection string `json:"connection"`
	UserID     string `json:"user_id"`
	// Numeric writes UserID as a JSON number, as Auth0 does for some
	// providers (github, twitter, facebook). UserID must then be digits.
	Numeric  bool `json:"-"`
	IsSocial bool `json:"isSocial"`
}

// MarshalJSON writes the user as Auth0 does.
func (u User) MarshalJSON() ([]byte, error) {
	type plain User
	if u.Identities == nil {
		u.Identities = []Identity{}
	}
	return json.Marshal(struct {
		plain
		CreatedAt string `json:"created_at"`
		UpdatedAt string `json:"updated_at"`
	}{plain(u), u.CreatedAt.UTC().Format(TimeLayout), u.UpdatedAt.UTC().Format(TimeLayout)})
}

// MarshalJSON writes user_id as a number when Numeric is set.
func (i Identity) MarshalJSON() ([]byte, error) {
	type plain Identity
	var id any = i.UserID
	if i.Numeric {
		id = json.Number(i.UserID)
	}
	return json.Marshal(struct {
		plain
		UserID any `json:"user_id"`
	}{plain(i), id})
}

// AddUsers stores users, replacing any with the same user_id. A zero
// CreatedAt becomes the fake's now and a zero UpdatedAt becomes CreatedAt.
// Searches list a user [WithIndexLag] after it was added.
// It fails the test (so call it from the test goroutine) for a user without
// user_id or with a Numeric identity whose user_id is not digits.
func (s *Server) AddUsers(users ...User) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range users {
		if u.UserID == "" {
			s.t.Fatalf("auth0fake: AddUsers: user without user_id")
		}
		for _, id := range u.Identities {
			if _, err := strconv.ParseUint(id.UserID, 10, 64); id.Numeric && err != nil {
				s.t.Fatalf("auth0fake: AddUsers %s: numeric identity user_id %q", u.UserID, id.UserID)
			}
		}
		if u.CreatedAt.IsZero() {
			u.CreatedAt = s.now()
		}
		if u.UpdatedAt.IsZero() {
			u.UpdatedAt = u.CreatedAt
		}
		if _, ok := s.indexed[u.UserID]; !ok {
			s.indexed[u.UserID] = s.now().Add(s.cfg.indexLag)
		}
		if i := s.find(u.UserID); i >= 0 {
			s.users[i] = u
		} else {
			s.users = append(s.users, u)
		}
	}
}

// DeleteUser removes a user and reports whether it existed.
func (s *Server) DeleteUser(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(id)
	if i < 0 {
		return false
	}
	s.users = append(s.users[:i], s.users[i+1:]...)
	delete(s.indexed, id)
	return true
}

// find returns the index of user id, or -1. The caller holds mu.
func (s *Server) find(id string) int {
	for i, u := range s.users {
		if u.UserID == id {
			return i
		}
	}
	return -1
}

// snapshot returns the users as generic JSON objects, numbers kept exact;
// with indexedOnly, only those the search index holds by now.
func (s *Server) snapshot(indexedOnly bool) ([]map[string]any, error) {
	s.mu.Lock()
	users := make([]User, 0, len(s.users))
	now := s.now()
	for _, u := range s.users {
		if indexedOnly && now.Before(s.indexed[u.UserID]) {
			continue
		}
		users = append(users, u)
	}
	s.mu.Unlock()
	out := make([]map[string]any, 0, len(users))
	for _, u := range users {
		m, err := toObject(u)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func toObject(u User) (map[string]any, error) {
	b, err := json.Marshal(u)
	if err != nil {
		return nil, fmt.Errorf("marshal user %s: %w", u.UserID, err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode user %s: %w", u.UserID, err)
	}
	return m, nil
}

func (s *Server) handleGetUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	i := s.find(id)
	var u User
	if i >= 0 {
		u = s.users[i]
	}
	s.mu.Unlock()
	if i < 0 {
		apiError(w, http.StatusNotFound, "The user does not exist.", "inexistent_user")
		return
	}
	m, err := toObject(u)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error(), "")
		return
	}
	fields, ok := fieldSelection(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, fields.apply(m))
}

func (s *Server) handleUsersByEmail(w http.ResponseWriter, r *http.Request) {
	email := r.URL.Query().Get("email")
	if email == "" {
		apiError(w, http.StatusBadRequest, "Query validation error: 'Missing required property: email' on property email.", "invalid_query_string")
		return
	}
	all, err := s.snapshot(false)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error(), "")
		return
	}
	fields, ok := fieldSelection(w, r)
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, m := range all {
		if e, _ := m["email"].(string); strings.EqualFold(e, email) {
			out = append(out, fields.apply(m))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if se := q.Get("search_engine"); se != "" && se != "v3" {
		apiError(w, http.StatusBadRequest, "Requested search engine "+se+" is not supported; use v3.", "operation_not_supported")
		return
	}
	page, ok := intParam(w, q.Get("page"), "page", 0, 0, -1)
	if !ok {
		return
	}
	perPage, ok := intParam(w, q.Get("per_page"), "per_page", 50, 0, MaxPerPage)
	if !ok {
		return
	}
	if (page+1)*perPage > SearchCap {
		apiError(w, http.StatusBadRequest, "You can only page through the first 1000 records. See https://auth0.com/docs/users/search/v3/view-search-results-by-page#limitation", "invalid_paging")
		return
	}
	query, err := parseQuery(q.Get("q"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "Query validation error: "+err.Error(), "invalid_query_string")
		return
	}
	sortField, sortDir, err := parseSort(q.Get("sort"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "Query validation error: "+err.Error(), "invalid_query_string")
		return
	}
	fields, ok := fieldSelection(w, r)
	if !ok {
		return
	}
	all, err := s.snapshot(true)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error(), "")
		return
	}
	var hits []map[string]any
	for _, m := range all {
		if query.match(m) {
			hits = append(hits, m)
		}
	}
	if sortField != "" {
		sort.SliceStable(hits, func(i, j int) bool {
			return compare(sortField, lookup(hits[i], sortField), lookup(hits[j], sortField)) == sortDir*-1
		})
	}
	total := min(len(hits), SearchCap)
	start := min(page*perPage, total)
	end := min(start+perPage, total)
	users := make([]map[string]any, 0, end-start)
	for _, m := range hits[start:end] {
		users = append(users, fields.apply(m))
	}
	if q.Get("include_totals") != "true" {
		writeJSON(w, http.StatusOK, users)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"start": start, "limit": perPage, "length": len(users), "total": total, "users": users,
	})
}

// intParam parses an integer query parameter with a default, at least
// minimum and, unless maximum < 0, at most maximum. It answers 400 itself and returns false on bad input.
func intParam(w http.ResponseWriter, v, name string, def, minimum, maximum int) (int, bool) {
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil:
		apiError(w, http.StatusBadRequest, fmt.Sprintf("Query validation error: 'Expected type integer but found type string' on property %s.", name), "invalid_query_string")
		return 0, false
	case n < minimum:
		apiError(w, http.StatusBadRequest, fmt.Sprintf("Query validation error: 'Value %d is less than minimum %d' on property %s.", n, minimum, name), "invalid_query_string")
		return 0, false
	case maximum >= 0 && n > maximum:
		apiError(w, http.StatusBadRequest, fmt.Sprintf("Query validation error: 'Value %d is greater than maximum %d' on property %s.", n, maximum, name), "invalid_query_string")
		return 0, false
	}
	return n, true
}

func parseSort(v string) (field string, dir int, err error) {
	if v == "" {
		return "", 0, nil
	}
	field, d, ok := strings.Cut(v, ":")
	switch {
	case !ok || field == "":
		return "", 0, fmt.Errorf("'String does not match pattern ^(([a-zA-Z@._-]+):(1|-1))$' on property sort")
	case d == "1":
		return field, 1, nil
	case d == "-1":
		return field, -1, nil
	}
	return "", 0, fmt.Errorf("'String does not match pattern ^(([a-zA-Z@._-]+):(1|-1))$' on property sort")
}

// selection is the fields and include_fields parameters.
type selection struct {
	fields  map[string]bool
	include bool
}

func fieldSelection(w http.ResponseWriter, r *http.Request) (selection, bool) {
	q := r.URL.Query()
	sel := selection{include: true}
	switch q.Get("include_fields") {
	case "", "true":
	case "false":
		sel.include = false
	default:
		apiError(w, http.StatusBadRequest, "Query validation error: 'Expected type boolean but found type string' on property include_fields.", "invalid_query_string")
		return sel, false
	}
	if f := q.Get("fields"); f != "" {
		sel.fields = map[string]bool{}
		for _, name := range strings.Split(f, ",") {
			sel.fields[strings.TrimSpace(name)] = true
		}
	}
	return sel, true
}

func (sel selection) apply(m map[string]any) map[string]any {
	if sel.fields == nil {
		return m
	}
	out := map[string]any{}
	for k, v := range m {
		if sel.fields[k] == sel.include {
			out[k] = v
		}
	}
	return out
}

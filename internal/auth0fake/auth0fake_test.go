package auth0fake_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signupsync/signupsync/internal/auth0fake"
)

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func call(t *testing.T, s *auth0fake.Server, method, path, token string, body io.Reader, header ...string) response {
	t.Helper()
	u := path
	if !strings.HasPrefix(path, "https://") {
		u = s.URL() + path
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, b}
}

func issueToken(t *testing.T, s *auth0fake.Server) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}, "audience": {s.Audience()}}
	r := call(t, s, http.MethodPost, "/oauth/token", "", strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	r.json(t, &tok)
	if r.status != http.StatusOK || tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn != int(auth0fake.DefaultTokenTTL/time.Second) {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	return tok.AccessToken
}

func TestAuthentication(t *testing.T) {
	s := auth0fake.New(t)
	s.AddUsers(auth0fake.User{UserID: "auth0|1"})
	issued := issueToken(t, s)
	tests := []struct {
		name    string
		token   string
		advance time.Duration
		want    int
		message string
	}{
		{name: "no token", want: 401, message: "Missing authentication"},
		{name: "unknown token", token: "nope", want: 401, message: "Invalid token"},
		{name: "static token", token: s.Token(), want: 200},
		{name: "issued token", token: issued, want: 200},
		{name: "expired issued token", token: issued, advance: auth0fake.DefaultTokenTTL, want: 401, message: "Expired token received for JSON Web Token validation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Advance(tt.advance)
			r := call(t, s, http.MethodGet, "/api/v2/users/auth0%7C1", tt.token, nil)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			if tt.message != "" {
				var e map[string]any
				r.json(t, &e)
				if e["message"] != tt.message || e["statusCode"] != float64(401) || e["error"] != "Unauthorized" {
					t.Errorf("body %s", r.body)
				}
			}
		})
	}
}

func TestTokenEndpoint(t *testing.T) {
	s := auth0fake.New(t, auth0fake.WithClientCredentials("id", "secret"))
	tests := []struct {
		name, body, contentType string
		basic                   bool
		want                    int
		wantErr                 string
	}{
		{name: "form", contentType: "application/x-www-form-urlencoded", body: url.Values{"grant_type": {"client_credentials"}, "client_id": {"id"}, "client_secret": {"secret"}, "audience": {s.Audience()}}.Encode(), want: 200},
		{name: "json", contentType: "application/json", body: fmt.Sprintf(`{"grant_type":"client_credentials","client_id":"id","client_secret":"secret","audience":%q}`, s.Audience()), want: 200},
		{name: "basic auth", basic: true, contentType: "application/x-www-form-urlencoded", body: url.Values{"grant_type": {"client_credentials"}, "audience": {s.Audience()}}.Encode(), want: 200},
		{name: "wrong secret", contentType: "application/json", body: fmt.Sprintf(`{"grant_type":"client_credentials","client_id":"id","client_secret":"x","audience":%q}`, s.Audience()), want: 401, wantErr: "access_denied"},
		{name: "wrong audience", contentType: "application/json", body: `{"grant_type":"client_credentials","client_id":"id","client_secret":"secret","audience":"https://other/api/v2/"}`, want: 403, wantErr: "access_denied"},
		{name: "wrong grant", contentType: "application/json", body: `{"grant_type":"password"}`, want: 403, wantErr: "unsupported_grant_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := []string{"Content-Type", tt.contentType}
			if tt.basic {
				req, _ := http.NewRequest(http.MethodPost, "/", nil)
				req.SetBasicAuth("id", "secret")
				h = append(h, "Authorization", req.Header.Get("Authorization"))
			}
			r := call(t, s, http.MethodPost, "/oauth/token", "", strings.NewReader(tt.body), h...)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			var body map[string]any
			r.json(t, &body)
			if tt.wantErr != "" && body["error"] != tt.wantErr {
				t.Errorf("error %v, want %s", body["error"], tt.wantErr)
			}
			if tt.want == 200 && body["token_type"] != "Bearer" {
				t.Errorf("body %s", r.body)
			}
		})
	}
}

func TestGetUser(t *testing.T) {
	s := auth0fake.New(t)
	created := time.Date(2025, 3, 4, 5, 6, 7, 890e6, time.UTC)
	s.AddUsers(auth0fake.User{
		UserID: "github|12345678901234567", Email: "ada@example.com", EmailVerified: true, Name: "Ada",
		CreatedAt:   created,
		Identities:  []auth0fake.Identity{{Provider: "github", Connection: "github", UserID: "12345678901234567", Numeric: true, IsSocial: true}},
		AppMetadata: map[string]any{"plan": "gold"},
	})
	r := call(t, s, http.MethodGet, "/api/v2/users/github%7C12345678901234567", s.Token(), nil)
	want := `{"app_metadata":{"plan":"gold"},"created_at":"2025-03-04T05:06:07.890Z","email":"ada@example.com","email_verified":true,` +
		`"identities":[{"connection":"github","isSocial":true,"provider":"github","user_id":12345678901234567}],` +
		`"name":"Ada","updated_at":"2025-03-04T05:06:07.890Z","user_id":"github|12345678901234567"}`
	if r.status != 200 || string(r.body) != want {
		t.Fatalf("got %d %s\nwant %s", r.status, r.body, want)
	}

	r = call(t, s, http.MethodGet, "/api/v2/users/github%7C12345678901234567?fields=user_id,email&include_fields=true", s.Token(), nil)
	if string(r.body) != `{"email":"ada@example.com","user_id":"github|12345678901234567"}` {
		t.Errorf("fields: %s", r.body)
	}

	r = call(t, s, http.MethodGet, "/api/v2/users-by-email?email=ADA%40example.com", s.Token(), nil)
	var byEmail []map[string]any
	r.json(t, &byEmail)
	if r.status != 200 || len(byEmail) != 1 || byEmail[0]["user_id"] != "github|12345678901234567" {
		t.Errorf("users-by-email: %d %s", r.status, r.body)
	}

	if !s.DeleteUser("github|12345678901234567") {
		t.Fatal("DeleteUser: not found")
	}
	r = call(t, s, http.MethodGet, "/api/v2/users/github%7C12345678901234567", s.Token(), nil)
	if r.status != 404 || string(r.body) != `{"error":"Not Found","errorCode":"inexistent_user","message":"The user does not exist.","statusCode":404}` {
		t.Errorf("deleted: %d %s", r.status, r.body)
	}
}

type page struct {
	Start, Limit, Length, Total int
	Users                       []struct {
		UserID string `json:"user_id"`
	}
}

func (p page) ids() []string {
	var out []string
	for _, u := range p.Users {
		out = append(out, u.UserID)
	}
	return out
}

func TestListUsersQuery(t *testing.T) {
	s := auth0fake.New(t)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 4 {
		s.AddUsers(auth0fake.User{UserID: fmt.Sprintf("auth0|%d", i), Email: fmt.Sprintf("U%d@Example.com", i), CreatedAt: base.Add(time.Duration(i) * 12 * time.Hour)})
	}
	// Created: 0 → Jan 1 00:00, 1 → Jan 1 12:00, 2 → Jan 2 00:00, 3 → Jan 2 12:00.
	tests := []struct {
		name, q, sort string
		want          []string
	}{
		{name: "inclusive", q: "created_at:[2025-01-01T12:00:00.000Z TO 2025-01-02T00:00:00.000Z]", want: []string{"auth0|1", "auth0|2"}},
		{name: "exclusive upper", q: "created_at:[2025-01-01T12:00:00.000Z TO 2025-01-02T00:00:00.000Z}", want: []string{"auth0|1"}},
		{name: "exclusive lower", q: "created_at:{2025-01-01T12:00:00.000Z TO 2025-01-02T00:00:00.000Z]", want: []string{"auth0|2"}},
		{name: "open upper", q: "created_at:[2025-01-02T00:00:00.000Z TO *]", want: []string{"auth0|2", "auth0|3"}},
		{name: "open lower", q: "created_at:[* TO 2025-01-01T00:00:00.000Z]", want: []string{"auth0|0"}},
		{name: "date-only inclusive upper rounds up", q: "created_at:[2025-01-01 TO 2025-01-01]", want: []string{"auth0|0", "auth0|1"}},
		{name: "date-only exclusive lower rounds up", q: "created_at:{2025-01-01 TO *]", want: []string{"auth0|2", "auth0|3"}},
		{name: "email is case-insensitive", q: `email:"u2@example.com"`, want: []string{"auth0|2"}},
		{name: "AND", q: `created_at:[2025-01-01 TO *] AND email:u3@example.com`, want: []string{"auth0|3"}},
		{name: "prefix wildcard", q: "user_id:auth0|*", sort: "created_at:-1", want: []string{"auth0|3", "auth0|2", "auth0|1", "auth0|0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := url.Values{"q": {tt.q}, "search_engine": {"v3"}, "include_totals": {"true"}, "sort": {"created_at:1"}}
			if tt.sort != "" {
				v.Set("sort", tt.sort)
			}
			r := call(t, s, http.MethodGet, "/api/v2/users?"+v.Encode(), s.Token(), nil)
			var p page
			r.json(t, &p)
			if r.status != 200 || !slices.Equal(p.ids(), tt.want) || p.Total != len(tt.want) {
				t.Errorf("got %d %v total %d, want %v", r.status, p.ids(), p.Total, tt.want)
			}
		})
	}

	r := call(t, s, http.MethodGet, "/api/v2/users?q="+url.QueryEscape("created_at:[2025 TO"), s.Token(), nil)
	var e map[string]any
	r.json(t, &e)
	if r.status != 400 || e["errorCode"] != "invalid_query_string" {
		t.Errorf("bad query: %d %s", r.status, r.body)
	}
}

func TestListUsersPaging(t *testing.T) {
	s := auth0fake.New(t)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	users := make([]auth0fake.User, 1200)
	for i := range users {
		users[len(users)-1-i] = auth0fake.User{UserID: fmt.Sprintf("auth0|%04d", i), CreatedAt: base.Add(time.Duration(i) * time.Second)}
	}
	s.AddUsers(users...)
	list := func(query string) response {
		return call(t, s, http.MethodGet, "/api/v2/users?sort=created_at:1&search_engine=v3&q=created_at:%5B*+TO+*%5D&"+query, s.Token(), nil)
	}
	tests := []struct {
		name, query string
		status      int
		code        string
		start, n    int
		first       string
	}{
		{name: "first page", query: "include_totals=true&page=0&per_page=100", status: 200, start: 0, n: 100, first: "auth0|0000"},
		{name: "last page under the cap", query: "include_totals=true&page=9&per_page=100", status: 200, start: 900, n: 100, first: "auth0|0900"},
		{name: "default per_page", query: "include_totals=true", status: 200, start: 0, n: 50, first: "auth0|0000"},
		{name: "past the cap", query: "include_totals=true&page=10&per_page=100", status: 400, code: "invalid_paging"},
		{name: "window crossing the cap", query: "include_totals=true&page=33&per_page=30", status: 400, code: "invalid_paging"},
		{name: "per_page over 100", query: "per_page=101", status: 400, code: "invalid_query_string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := list(tt.query)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.code != "" {
				var e map[string]any
				r.json(t, &e)
				if e["errorCode"] != tt.code || e["statusCode"] != float64(400) || e["error"] != "Bad Request" {
					t.Errorf("body %s", r.body)
				}
				return
			}
			var p page
			r.json(t, &p)
			if p.Start != tt.start || p.Length != tt.n || len(p.Users) != tt.n || p.Total != auth0fake.SearchCap || p.Users[0].UserID != tt.first {
				t.Errorf("start %d length %d limit %d total %d first %s", p.Start, p.Length, p.Limit, p.Total, p.Users[0].UserID)
			}
		})
	}
	r := list("per_page=2")
	var plain []map[string]any
	r.json(t, &plain)
	if len(plain) != 2 {
		t.Errorf("without include_totals: %s", r.body)
	}
}

func TestRateLimit(t *testing.T) {
	s := auth0fake.New(t, auth0fake.WithRateLimit(2, time.Minute))
	s.AddUsers(auth0fake.User{UserID: "auth0|1"})
	get := func() response { return call(t, s, http.MethodGet, "/api/v2/users/auth0%7C1", s.Token(), nil) }
	var reset int64
	for i, want := range []struct{ status, remaining int }{{200, 1}, {200, 0}, {429, 0}} {
		r := get()
		if r.status != want.status || r.header.Get("X-RateLimit-Limit") != "2" || r.header.Get("X-RateLimit-Remaining") != strconv.Itoa(want.remaining) {
			t.Fatalf("request %d: %d limit %s remaining %s", i, r.status, r.header.Get("X-RateLimit-Limit"), r.header.Get("X-RateLimit-Remaining"))
		}
		reset, _ = strconv.ParseInt(r.header.Get("X-RateLimit-Reset"), 10, 64)
		if want.status == 429 && string(r.body) != `{"error":"Too Many Requests","errorCode":"too_many_requests","message":"Global limit has been reached","statusCode":429}` {
			t.Errorf("429 body %s", r.body)
		}
	}
	if until := time.Until(time.Unix(reset, 0)); until < 58*time.Second || until > 61*time.Second {
		t.Errorf("reset in %v, want about a minute", until)
	}
	s.Advance(time.Minute)
	if r := get(); r.status != 200 || r.header.Get("X-RateLimit-Remaining") != "1" {
		t.Errorf("after the window: %d remaining %s", r.status, r.header.Get("X-RateLimit-Remaining"))
	}
}

func TestFail(t *testing.T) {
	s := auth0fake.New(t)
	s.AddUsers(auth0fake.User{UserID: "auth0|1"})
	s.Fail(http.StatusServiceUnavailable, 2)
	var got []int
	for range 3 {
		got = append(got, call(t, s, http.MethodGet, "/api/v2/users/auth0%7C1", s.Token(), nil).status)
	}
	if !slices.Equal(got, []int{503, 503, 200}) {
		t.Errorf("statuses %v", got)
	}
	if n := s.Requests()[auth0fake.RouteGetUser]; n != 3 {
		t.Errorf("Requests()[%s] = %d, want 3", auth0fake.RouteGetUser, n)
	}
}

func TestExportJob(t *testing.T) {
	s := auth0fake.New(t, auth0fake.WithLinkTTL(time.Minute))
	s.AddUsers(
		auth0fake.User{UserID: "google-oauth2|1", Email: "a@example.com", Identities: []auth0fake.Identity{{Provider: "google-oauth2", Connection: "google-oauth2", UserID: "1", IsSocial: true}}},
		auth0fake.User{UserID: "auth0|2", Email: "b@example.com"},
	)
	type job struct {
		ID, Status, Location, Type, Format string
	}
	getJob := func(id string) job {
		t.Helper()
		var j job
		r := call(t, s, http.MethodGet, "/api/v2/jobs/"+id, s.Token(), nil)
		r.json(t, &j)
		return j
	}
	r := call(t, s, http.MethodPost, "/api/v2/jobs/users-exports", s.Token(),
		strings.NewReader(`{"format":"json","fields":[{"name":"user_id"},{"name":"email"},{"name":"identities[0].connection","export_as":"provider"}]}`),
		"Content-Type", "application/json")
	var created job
	r.json(t, &created)
	if r.status != http.StatusCreated || created.Status != "pending" || created.Type != "users_export" || !strings.HasPrefix(created.ID, "job_") {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if j := getJob(created.ID); j.Status != "processing" || j.Location != "" {
		t.Fatalf("first poll: %+v", j)
	}
	done := getJob(created.ID)
	if done.Status != "completed" || done.Location == "" {
		t.Fatalf("second poll: %+v", done)
	}

	r = call(t, s, http.MethodGet, done.Location, "", nil)
	if r.status != 200 {
		t.Fatalf("download: %d %s", r.status, r.body)
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for sc := bufio.NewScanner(zr); sc.Scan(); {
		lines = append(lines, sc.Text())
	}
	want := []string{
		`{"email":"a@example.com","provider":"google-oauth2","user_id":"google-oauth2|1"}`,
		`{"email":"b@example.com","user_id":"auth0|2"}`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("export lines\n%v\nwant\n%v", lines, want)
	}

	s.Advance(time.Minute)
	if r := call(t, s, http.MethodGet, done.Location, "", nil); r.status != http.StatusForbidden || !bytes.Contains(r.body, []byte("Request has expired")) {
		t.Errorf("expired link: %d %s", r.status, r.body)
	}
	fresh := getJob(created.ID)
	if r := call(t, s, http.MethodGet, fresh.Location, "", nil); fresh.Location == done.Location || r.status != 200 {
		t.Errorf("fresh link %q: %d", fresh.Location, r.status)
	}

	r = call(t, s, http.MethodPost, "/api/v2/jobs/users-exports", s.Token(), strings.NewReader(`{"format":"xml"}`), "Content-Type", "application/json")
	if r.status != 400 {
		t.Errorf("bad format: %d %s", r.status, r.body)
	}
	if r := call(t, s, http.MethodGet, "/api/v2/jobs/job_missing", s.Token(), nil); r.status != 404 || !bytes.Contains(r.body, []byte("inexistent_job")) {
		t.Errorf("missing job: %d %s", r.status, r.body)
	}
}

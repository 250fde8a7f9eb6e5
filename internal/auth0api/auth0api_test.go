package auth0api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/auth0fake"
)

func newClient(t *testing.T, srv *auth0fake.Server, edit ...func(*auth0api.Config)) *auth0api.Client {
	t.Helper()
	cfg := auth0api.Config{Domain: srv.Domain(), Token: srv.Token(), HTTPClient: srv.Client()}
	for _, e := range edit {
		e(&cfg)
	}
	c, err := auth0api.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func clientCredentials(srv *auth0fake.Server) func(*auth0api.Config) {
	return func(c *auth0api.Config) {
		c.Token, c.ClientID, c.ClientSecret = "", srv.ClientID(), srv.ClientSecret()
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     auth0api.Config
		enabled bool
		wantErr bool
	}{
		{name: "empty is disabled", cfg: auth0api.Config{}},
		{name: "static token", cfg: auth0api.Config{Domain: "t.eu.auth0.com", Token: "x"}, enabled: true},
		{name: "client credentials", cfg: auth0api.Config{Domain: "https://t.eu.auth0.com", ClientID: "a", ClientSecret: "b"}, enabled: true},
		{name: "both modes", cfg: auth0api.Config{Domain: "t.eu.auth0.com", Token: "x", ClientID: "a", ClientSecret: "b"}, enabled: true, wantErr: true},
		{name: "client id without secret", cfg: auth0api.Config{Domain: "t.eu.auth0.com", ClientID: "a"}, wantErr: true},
		{name: "domain without credentials", cfg: auth0api.Config{Domain: "t.eu.auth0.com"}, wantErr: true},
		{name: "token without domain", cfg: auth0api.Config{Token: "x"}, wantErr: true},
		{name: "domain with a path", cfg: auth0api.Config{Domain: "t.eu.auth0.com/api/v2", Token: "x"}, enabled: true, wantErr: true},
		{name: "plain http", cfg: auth0api.Config{Domain: "http://t.eu.auth0.com", Token: "x"}, enabled: true, wantErr: true},
		{name: "negative timeout", cfg: auth0api.Config{Timeout: -time.Second}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.Enabled(); got != tt.enabled {
				t.Errorf("Enabled() = %v, want %v", got, tt.enabled)
			}
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.wantErr)
			}
			if _, err := auth0api.New(t.Context(), tt.cfg); (err == nil) != (tt.enabled && !tt.wantErr) {
				t.Errorf("New: %v", err)
			}
		})
	}
}

func TestGetUserMapsProfile(t *testing.T) {
	srv := auth0fake.New(t)
	created := time.Date(2025, 6, 7, 8, 9, 10, 123e6, time.UTC)
	srv.AddUsers(auth0fake.User{
		UserID: "github|12345678901234567", Email: "ada@example.com", EmailVerified: true,
		Name: "Ada Lovelace", GivenName: "Ada", FamilyName: "Lovelace", Nickname: "ada",
		Picture: "https://example.com/ada.png", CreatedAt: created,
		Identities: []auth0fake.Identity{
			{Provider: "github", Connection: "github", UserID: "12345678901234567", Numeric: true, IsSocial: true},
		},
		AppMetadata:  map[string]any{"plan": "gold"},
		UserMetadata: map[string]any{"lang": "en"},
	})
	for _, mode := range []struct {
		name string
		edit func(*auth0api.Config)
	}{
		{name: "static token", edit: func(*auth0api.Config) {}},
		{name: "client credentials", edit: clientCredentials(srv)},
	} {
		t.Run(mode.name, func(t *testing.T) {
			got, err := newClient(t, srv, mode.edit).GetUser(t.Context(), "github|12345678901234567")
			if err != nil {
				t.Fatalf("GetUser: %v", err)
			}
			want := events.SignupData{
				Partial: false, Connection: "github",
				UserID: "github|12345678901234567", Email: "ada@example.com", EmailVerified: true,
				Name: "Ada Lovelace", GivenName: "Ada", FamilyName: "Lovelace", Nickname: "ada",
				Picture: "https://example.com/ada.png", CreatedAt: "2025-06-07T08:09:10.123Z",
				Identities: []events.Identity{
					{Provider: "github", Connection: "github", UserID: "12345678901234567", IsSocial: true},
				},
				AppMetadata:  json.RawMessage(`{"plan":"gold"}`),
				UserMetadata: json.RawMessage(`{"lang":"en"}`),
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("GetUser\n got %+v\nwant %+v", got, want)
			}
		})
	}
	if n := srv.Requests()[auth0fake.RouteToken]; n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
}

func TestClientCredentialsTokenIsReused(t *testing.T) {
	srv := auth0fake.New(t)
	srv.AddUsers(auth0fake.User{UserID: "auth0|1"})
	c := newClient(t, srv, clientCredentials(srv))
	for range 3 {
		if _, err := c.GetUser(t.Context(), "auth0|1"); err != nil {
			t.Fatalf("GetUser: %v", err)
		}
	}
	if got := srv.Requests(); got[auth0fake.RouteToken] != 1 || got[auth0fake.RouteGetUser] != 3 {
		t.Errorf("requests %v, want 1 token and 3 user reads", got)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestGetUserErrors(t *testing.T) {
	const id = "google-oauth2|1"
	tests := []struct {
		name  string
		opts  []auth0fake.Option
		setup func(t *testing.T, srv *auth0fake.Server, c *auth0api.Client)
		edit  func(srv *auth0fake.Server) func(*auth0api.Config)
		ctx   func(context.Context) (context.Context, context.CancelFunc)

		wantNotFound  bool
		wantTransient bool
		wantStatus    int
		wantCtxErr    error
		// retryMin and retryMax bound RetryAfter.
		retryMin, retryMax time.Duration
		// wantRequests to GET /api/v2/users/{id}; 0 skips the check.
		wantRequests int
	}{
		{
			name:         "deleted user is not found",
			setup:        func(t *testing.T, srv *auth0fake.Server, _ *auth0api.Client) { srv.DeleteUser(id) },
			wantNotFound: true, wantRequests: 1,
		},
		{
			name:          "rate limited with reset",
			opts:          []auth0fake.Option{auth0fake.WithRateLimit(1, time.Minute)},
			setup:         func(t *testing.T, _ *auth0fake.Server, c *auth0api.Client) { mustGet(t, c, id) },
			wantTransient: true, wantStatus: 429,
			retryMin: 55 * time.Second, retryMax: 61 * time.Second, wantRequests: 1,
		},
		{
			name:          "forced 429",
			setup:         func(t *testing.T, srv *auth0fake.Server, _ *auth0api.Client) { srv.Fail(429, 1) },
			wantTransient: true, wantStatus: 429,
			retryMin: time.Nanosecond, retryMax: auth0fake.DefaultRateWindow + time.Second, wantRequests: 1,
		},
		{
			name:          "503 is transient and not retried by the sdk",
			setup:         func(t *testing.T, srv *auth0fake.Server, _ *auth0api.Client) { srv.Fail(503, 1) },
			wantTransient: true, wantStatus: 503, wantRequests: 1,
		},
		{
			name:          "500 is transient",
			setup:         func(t *testing.T, srv *auth0fake.Server, _ *auth0api.Client) { srv.Fail(500, 3) },
			wantTransient: true, wantStatus: 500, wantRequests: 1,
		},
		{
			name:         "400 is permanent",
			setup:        func(t *testing.T, srv *auth0fake.Server, _ *auth0api.Client) { srv.Fail(400, 1) },
			wantRequests: 1,
		},
		{
			name: "bad static token is permanent",
			edit: func(*auth0fake.Server) func(*auth0api.Config) {
				return func(c *auth0api.Config) { c.Token = "wrong" }
			},
			wantRequests: 1,
		},
		{
			name: "bad client secret is permanent",
			edit: func(srv *auth0fake.Server) func(*auth0api.Config) {
				return func(c *auth0api.Config) { c.Token, c.ClientID, c.ClientSecret = "", srv.ClientID(), "wrong" }
			},
		},
		{
			name: "token endpoint rate limited is transient",
			opts: []auth0fake.Option{auth0fake.WithRateLimit(1, time.Minute)},
			edit: func(srv *auth0fake.Server) func(*auth0api.Config) { return clientCredentials(srv) },
			setup: func(t *testing.T, srv *auth0fake.Server, _ *auth0api.Client) {
				if _, err := srv.Client().Get(srv.URL() + "/api/v2/users"); err != nil {
					t.Fatal(err)
				}
			},
			wantTransient: true, wantStatus: 429, retryMin: 55 * time.Second, retryMax: 61 * time.Second,
		},
		{
			name: "deadline exceeded is transient",
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithDeadline(ctx, time.Now().Add(-time.Second))
			},
			wantTransient: true, wantCtxErr: context.DeadlineExceeded,
		},
		{
			name: "connection refused is transient",
			edit: func(*auth0fake.Server) func(*auth0api.Config) {
				addr := closedAddr(t)
				return func(c *auth0api.Config) { c.Domain = addr }
			},
			wantTransient: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := auth0fake.New(t, tt.opts...)
			srv.AddUsers(auth0fake.User{UserID: id})
			var edit []func(*auth0api.Config)
			if tt.edit != nil {
				edit = append(edit, tt.edit(srv))
			}
			c := newClient(t, srv, edit...)
			if tt.setup != nil {
				tt.setup(t, srv, c)
			}
			before := srv.Requests()[auth0fake.RouteGetUser]
			ctx := t.Context()
			if tt.ctx != nil {
				var cancel context.CancelFunc
				ctx, cancel = tt.ctx(ctx)
				defer cancel()
			}

			_, err := c.GetUser(ctx, id)
			if err == nil {
				t.Fatal("GetUser: no error")
			}
			t.Logf("error: %v", err)
			if got := errors.Is(err, auth0api.ErrNotFound); got != tt.wantNotFound {
				t.Errorf("errors.Is(err, ErrNotFound) = %v, want %v", got, tt.wantNotFound)
			}
			if got := auth0api.IsTransient(err); got != tt.wantTransient {
				t.Errorf("IsTransient = %v, want %v", got, tt.wantTransient)
			}
			if got := errors.Is(err, auth0api.ErrPermanent); got == tt.wantTransient {
				t.Errorf("errors.Is(err, ErrPermanent) = %v, want %v", got, !tt.wantTransient)
			}
			var te *auth0api.TransientError
			if errors.As(err, &te) && te.Status != tt.wantStatus {
				t.Errorf("Status = %d, want %d", te.Status, tt.wantStatus)
			}
			if ra := auth0api.RetryAfter(err); ra < tt.retryMin || ra > tt.retryMax {
				t.Errorf("RetryAfter = %v, want %v to %v", ra, tt.retryMin, tt.retryMax)
			}
			if tt.wantCtxErr != nil && !errors.Is(err, tt.wantCtxErr) {
				t.Errorf("errors.Is(err, %v) = false", tt.wantCtxErr)
			}
			if got := srv.Requests()[auth0fake.RouteGetUser] - before; tt.wantRequests != 0 && got != tt.wantRequests {
				t.Errorf("user requests = %d, want %d", got, tt.wantRequests)
			}
		})
	}
}

func mustGet(t *testing.T, c *auth0api.Client, id string) {
	t.Helper()
	if _, err := c.GetUser(t.Context(), id); err != nil {
		t.Fatalf("GetUser(%s): %v", id, err)
	}
}

func TestGetUserConcurrent(t *testing.T) {
	srv := auth0fake.New(t)
	for i := range 8 {
		srv.AddUsers(auth0fake.User{UserID: fmt.Sprintf("auth0|%d", i)})
	}
	c := newClient(t, srv, clientCredentials(srv))
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range 8 {
		wg.Go(func() {
			d, err := c.GetUser(t.Context(), fmt.Sprintf("auth0|%d", i))
			if err == nil && d.UserID != fmt.Sprintf("auth0|%d", i) {
				err = fmt.Errorf("got %s", d.UserID)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
}

func TestListUsersCreated(t *testing.T) {
	srv := auth0fake.New(t)
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(time.Hour)
	var users []auth0fake.User
	add := func(id string, at time.Time) { users = append(users, auth0fake.User{UserID: id, CreatedAt: at}) }
	add("auth0|before", from.Add(-time.Millisecond))
	add("auth0|at-to", to) // the window is half-open
	for i := range 250 {
		// Added newest first, so the order comes from sort=created_at:1.
		add(fmt.Sprintf("auth0|%03d", 249-i), from.Add(time.Duration(249-i)*time.Second))
	}
	srv.AddUsers(users...)
	c := newClient(t, srv)

	tests := []struct {
		name          string
		page, perPage int
		wantN         int
		wantFirst     string
	}{
		{name: "first page", page: 0, perPage: 100, wantN: 100, wantFirst: "auth0|000"},
		{name: "second page", page: 1, perPage: 100, wantN: 100, wantFirst: "auth0|100"},
		{name: "last page", page: 2, perPage: 100, wantN: 50, wantFirst: "auth0|200"},
		{name: "past the end", page: 5, perPage: 50, wantN: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, total, err := c.ListUsersCreated(t.Context(), from, to, tt.page, tt.perPage)
			if err != nil {
				t.Fatalf("ListUsersCreated: %v", err)
			}
			if total != 250 || len(got) != tt.wantN {
				t.Fatalf("got %d users of %d, want %d of 250", len(got), total, tt.wantN)
			}
			if tt.wantN > 0 && got[0].UserID != tt.wantFirst {
				t.Errorf("first %s, want %s", got[0].UserID, tt.wantFirst)
			}
			for i := 1; i < len(got); i++ {
				if got[i].CreatedAt <= got[i-1].CreatedAt {
					t.Errorf("not ascending at %d: %s then %s", i, got[i-1].CreatedAt, got[i].CreatedAt)
				}
			}
		})
	}

	// Sub-millisecond bounds round up: [from-1ns, from+1ns) becomes
	// [from, from+1ms), holding auth0|000 but not the user 1ms before from.
	got, total, err := c.ListUsersCreated(t.Context(), from.Add(-time.Nanosecond), from.Add(time.Nanosecond), 0, 10)
	if err != nil || total != 1 || got[0].UserID != "auth0|000" {
		t.Errorf("sub-millisecond window: %v users %v total %d", err, got, total)
	}
}

func TestListUsersCreatedSearchLimit(t *testing.T) {
	srv := auth0fake.New(t)
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	users := make([]auth0fake.User, 1100)
	for i := range users {
		users[i] = auth0fake.User{UserID: fmt.Sprintf("auth0|%04d", i), CreatedAt: from.Add(time.Duration(i) * time.Second)}
	}
	srv.AddUsers(users...)
	c := newClient(t, srv)
	to := from.Add(24 * time.Hour)

	seen := map[string]bool{}
	for page := 0; page*auth0api.MaxPerPage < auth0api.SearchLimit; page++ {
		got, total, err := c.ListUsersCreated(t.Context(), from, to, page, auth0api.MaxPerPage)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		if total != auth0api.SearchLimit {
			t.Errorf("page %d: total %d, want the cap %d", page, total, auth0api.SearchLimit)
		}
		for _, u := range got {
			seen[u.UserID] = true
		}
	}
	if len(seen) != auth0api.SearchLimit {
		t.Errorf("paged through %d distinct users, want %d", len(seen), auth0api.SearchLimit)
	}

	tests := []struct {
		name          string
		from, to      time.Time
		page, perPage int
		want          error
	}{
		{name: "page past the cap", from: from, to: to, page: 10, perPage: 100, want: auth0api.ErrBeyondSearchLimit},
		{name: "page crossing the cap", from: from, to: to, page: 33, perPage: 30, want: auth0api.ErrBeyondSearchLimit},
		{name: "per page over 100", from: from, to: to, perPage: 101, want: auth0api.ErrPermanent},
		{name: "empty window", from: to, to: from, perPage: 10, want: auth0api.ErrPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Requests()[auth0fake.RouteListUsers]
			_, _, err := c.ListUsersCreated(t.Context(), tt.from, tt.to, tt.page, tt.perPage)
			if !errors.Is(err, tt.want) || !errors.Is(err, auth0api.ErrPermanent) || auth0api.IsTransient(err) {
				t.Errorf("err = %v, want %v (permanent)", err, tt.want)
			}
			if n := srv.Requests()[auth0fake.RouteListUsers] - before; n != 0 {
				t.Errorf("%d requests sent, want none", n)
			}
		})
	}
}

func TestListUsersCreatedTransient(t *testing.T) {
	srv := auth0fake.New(t)
	c := newClient(t, srv)
	srv.Fail(http.StatusServiceUnavailable, 1)
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	_, _, err := c.ListUsersCreated(t.Context(), from, from.Add(time.Hour), 0, 10)
	var te *auth0api.TransientError
	if !errors.As(err, &te) || te.Status != http.StatusServiceUnavailable {
		t.Errorf("err = %v, want a transient 503", err)
	}
}

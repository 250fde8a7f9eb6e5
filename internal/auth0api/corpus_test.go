package auth0api_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
)

// rawUsers serves GET /api/v2/users/{id} from user objects exactly as
// written, so the client decodes the bytes Auth0 would send (auth0fake
// marshals typed users and cannot send a string email_verified).
func rawUsers(t *testing.T, users map[string]string) *auth0api.Client {
	t.Helper()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, "/api/v2/users/")
		body, found := users[id]
		if !ok || !found {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	c, err := auth0api.New(t.Context(), auth0api.Config{
		Domain: strings.TrimPrefix(ts.URL, "https://"), Token: "t", HTTPClient: ts.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func exportCorpus(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "auth0", "export", "users.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var u struct {
			UserID string `json:"user_id"`
		}
		if err := json.Unmarshal([]byte(line), &u); err != nil {
			t.Fatal(err)
		}
		out[u.UserID] = line
	}
	return out
}

// TestGetUserReadsTheCorpus reads every corpus user through the client: the
// Management API returns the same user object as an export line.
func TestGetUserReadsTheCorpus(t *testing.T) {
	users := exportCorpus(t)
	c := rawUsers(t, users)
	want := map[string]struct {
		verified bool
		reason   string
	}{
		"samlp|acme-saml|jo.silva@acme.example":              {true, events.ReasonEnterpriseConnection},
		"apple|001234.0a1b2c3d4e5f60718293a4b5c6d7e8fa.1234": {true, ""},
		"custom|6725f0a1b2c3d4e5f607182a":                    {false, events.ReasonDatabaseConnection},
		"github|58293017":                                    {true, ""},
		"email|6725f0a1b2c3d4e5f607182b":                     {true, events.ReasonPasswordless},
	}
	for id := range users {
		d, err := c.GetUser(t.Context(), id)
		if err != nil {
			t.Fatalf("GetUser(%s): %v", id, err)
		}
		w, ok := want[id]
		if !ok {
			continue
		}
		if d.EmailVerified != w.verified {
			t.Errorf("%s: email_verified %v, want %v", id, d.EmailVerified, w.verified)
		}
		if el := events.Classify(d, nil); el.Reason != w.reason || el.OK != (w.reason == "") {
			t.Errorf("%s: Classify = %+v, want reason %q", id, el, w.reason)
		}
	}
}

func TestGetUserDecodesAuth0TypeVariations(t *testing.T) {
	tests := []struct {
		name, body                      string
		verified, social, wantPermanent bool
		createdAt                       string
	}{
		{name: "email_verified capitalised string", body: `{"user_id":"samlp|c|1","email_verified":"True","identities":[{"provider":"samlp","connection":"c","user_id":"1","isSocial":false}]}`, verified: true},
		{name: "isSocial as a string", body: `{"user_id":"github|1","identities":[{"provider":"github","connection":"github","user_id":1,"isSocial":"true"}]}`, social: true},
		{name: "created_at as an object", body: `{"user_id":"github|1","created_at":{"$date":"2025-01-29T14:36:25.794Z"},"identities":[{"provider":"github","user_id":1,"isSocial":true}]}`, social: true, createdAt: "2025-01-29T14:36:25.794Z"},
		{name: "email_verified neither boolean nor true/false", body: `{"user_id":"samlp|c|1","email_verified":"yes"}`, wantPermanent: true},
		{name: "email_verified a number", body: `{"user_id":"samlp|c|1","email_verified":3}`, wantPermanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u struct {
				UserID string `json:"user_id"`
			}
			if err := json.Unmarshal([]byte(tt.body), &u); err != nil {
				t.Fatal(err)
			}
			d, err := rawUsers(t, map[string]string{u.UserID: tt.body}).GetUser(t.Context(), u.UserID)
			if tt.wantPermanent {
				if !errors.Is(err, auth0api.ErrPermanent) || auth0api.IsTransient(err) || !strings.Contains(err.Error(), "email_verified") {
					t.Fatalf("GetUser = %v, want a permanent error naming email_verified", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetUser: %v", err)
			}
			if d.EmailVerified != tt.verified || d.CreatedAt != tt.createdAt || len(d.Identities) != 1 || d.Identities[0].IsSocial != tt.social {
				t.Fatalf("GetUser = %+v", d)
			}
		})
	}
}

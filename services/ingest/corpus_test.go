package ingest

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/events"
)

// corpus reads a fixture of the Auth0 conformance corpus (testdata/auth0 at
// the repository root; each fixture names its documentation page in a
// .source.txt sidecar).
func corpus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "auth0", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postCorpus sends body to the receiver of src, signed or authorised as
// Auth0 would.
func (h *harness) postCorpus(src events.Source, body []byte) response {
	h.t.Helper()
	if src == events.SourceAction {
		return h.post(PathAction, h.signed(body), body)
	}
	return h.post(PathEventStream, bearer("Bearer "+eventToken), body)
}

// TestCorpusIsAcceptedAsAuth0SendsIt posts every Action and Event Streams
// fixture of the corpus and checks the stored signup: string email_verified
// values are accepted with the right boolean, and each user is classified
// by its connection strategy.
func TestCorpusIsAcceptedAsAuth0SendsIt(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		fixture  string
		src      events.Source
		userID   string
		verified bool
		reason   string // "" means eligible
		ignored  bool   // acknowledged, never published
	}{
		{"actions/post-login-social-first-login.json", events.SourceAction, "google-oauth2|104729384756102938476", true, "", false},
		{"actions/post-login-apple-string-verified.json", events.SourceAction, "apple|001234.0a1b2c3d4e5f60718293a4b5c6d7e8f9.1234", true, "", false},
		{"actions/post-login-enterprise-string-verified.json", events.SourceAction, "samlp|acme-saml|dana.ortiz@acme.example", true, events.ReasonEnterpriseConnection, false},
		{"actions/post-user-registration-database.json", events.SourceAction, "auth0|67c4a1b2c3d4e5f601234567", false, events.ReasonDatabaseConnection, false},
		{"eventstreams/user-created-social.json", events.SourceEventStream, "google-oauth2|104729384756102938475", true, "", false},
		{"eventstreams/user-created-database-custom.json", events.SourceEventStream, "custom|679e1a2b3c4d5e6f70819a2b", false, events.ReasonDatabaseConnection, false},
		{"eventstreams/user-created-enterprise-string-verified.json", events.SourceEventStream, "samlp|acme-saml|alex.kim@acme.example", true, events.ReasonEnterpriseConnection, false},
		{"eventstreams/test-delivery.json", events.SourceEventStream, "", false, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			h.t = t
			before := h.stored()
			res := h.postCorpus(tt.src, corpus(t, tt.fixture))
			if res.status != http.StatusAccepted {
				t.Fatalf("status %d, body %v", res.status, res.body)
			}
			if tt.ignored {
				if got := h.stored(); got != before {
					t.Fatalf("%d messages published, want none", got-before)
				}
				return
			}
			if res.body["id"] != events.EventID(tt.userID) || h.stored() != before+1 {
				t.Fatalf("body %v, %d messages published; want one signup of %s", res.body, h.stored()-before, tt.userID)
			}
			ctx := context.Background()
			st, err := h.js.Stream(ctx, events.StreamSignups)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := st.GetLastMsgForSubject(ctx, events.Subject(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := events.Decode(msg.Data)
			if err != nil {
				t.Fatal(err)
			}
			d := ev.Data
			if d.UserID != tt.userID || d.EmailVerified != tt.verified {
				t.Fatalf("stored %s email_verified %v, want %s %v", d.UserID, d.EmailVerified, tt.userID, tt.verified)
			}
			if el := events.Classify(d, nil); el.Reason != tt.reason || el.OK != (tt.reason == "") {
				t.Fatalf("Classify = %+v, want reason %q", el, tt.reason)
			}
		})
	}
}

// TestCorpusBogusEmailVerifiedIsA400NamingTheField replaces email_verified
// in corpus fixtures with values Auth0 never writes: each is refused with
// 400, the field named, nothing stored.
func TestCorpusBogusEmailVerifiedIsA400NamingTheField(t *testing.T) {
	h := newHarness(t)
	fixtures := []struct {
		fixture, old, field string
		src                 events.Source
	}{
		{"actions/post-login-social-first-login.json", `"email_verified": true`, "/user/email_verified", events.SourceAction},
		{"eventstreams/user-created-social.json", `"email_verified": true`, "/data/object/email_verified", events.SourceEventStream},
	}
	for _, fx := range fixtures {
		for _, bogus := range []string{`"yes"`, `3`, `""`, `{}`} {
			t.Run(fx.fixture+"/"+bogus, func(t *testing.T) {
				h.t = t
				body := string(corpus(t, fx.fixture))
				if !strings.Contains(body, fx.old) {
					t.Fatalf("fixture has no %s", fx.old)
				}
				body = strings.Replace(body, fx.old, `"email_verified": `+bogus, 1)
				before := h.stored()
				res := h.postCorpus(fx.src, []byte(body))
				if res.status != http.StatusBadRequest || res.body["field"] != fx.field {
					t.Fatalf("status %d, body %v; want 400 naming %s", res.status, res.body, fx.field)
				}
				if got := h.stored(); got != before {
					t.Fatalf("%d messages published, want none", got-before)
				}
			})
		}
	}
}

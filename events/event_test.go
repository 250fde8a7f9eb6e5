package events_test

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func goldenEvents() map[string]events.Signup {
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	return map[string]events.Signup{
		"signup-v1-action.json": events.NewSignup(events.SourceAction, events.SignupData{
			Tenant: "acme", Trigger: "post-login", Connection: "google-oauth2", ConnectionStrategy: "google-oauth2",
			UserID: "google-oauth2|1234567890", Email: "person@example.com", EmailVerified: true,
			Name: "A Person", GivenName: "A", FamilyName: "Person", Nickname: "ap", Picture: "https://example.com/p.png",
			CreatedAt:   "2026-11-01T09:59:58.000Z",
			Identities:  []events.Identity{{Provider: "google-oauth2", Connection: "google-oauth2", UserID: "1234567890", IsSocial: true}},
			AppMetadata: json.RawMessage(`{"plan":"free"}`),
		}, at),
		"signup-v1-log-stream.json": events.NewSignup(events.SourceLogStream, events.SignupData{
			Tenant: "acme", Partial: true, Trigger: "log:ss", Connection: "github", ConnectionStrategy: "github",
			UserID: "github|42", Email: "dev@example.com", CreatedAt: "2026-11-01T10:00:02Z",
			Identities: []events.Identity{{Provider: "github", Connection: "github", UserID: "42", IsSocial: true}},
		}, at),
		"signup-v1-database.json": events.NewSignup(events.SourceEventStream, events.SignupData{
			Tenant: "acme", Trigger: "user.created", UserID: "auth0|abc", Email: "db@example.com",
			Identities: []events.Identity{{Provider: "auth0", Connection: "Username-Password-Authentication", UserID: "abc"}},
		}, at),
	}
}

func TestGoldenEvents(t *testing.T) {
	set, err := schemas.Compile()
	if err != nil {
		t.Fatal(err)
	}
	for name, ev := range goldenEvents() {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(ev, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./events -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Fatalf("event v1 encoding changed; if intended, bump the version or run -update\n got: %s\nwant: %s", got, want)
			}
			var doc any
			if err := json.Unmarshal(want, &doc); err != nil {
				t.Fatal(err)
			}
			if err := set.Validate(schemas.SignupEventV1, doc); err != nil {
				t.Fatalf("golden file does not match schemas/%s: %v", schemas.SignupEventV1, err)
			}
			back, err := events.Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			if back.ID != ev.ID || back.Data.UserID != ev.Data.UserID || back.EventSource() != ev.EventSource() {
				t.Fatalf("round trip: %+v", back)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := events.Encode(goldenEvents()["signup-v1-action.json"])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		body string
	}{
		{"not json", "{"},
		{"wrong specversion", strings.Replace(string(good), `"specversion":"1.0"`, `"specversion":"0.3"`, 1)},
		{"wrong type", strings.Replace(string(good), events.TypeSignupV1, "other", 1)},
		{"subject mismatch", strings.Replace(string(good), `"subject":"google-oauth2|1234567890"`, `"subject":"github|1"`, 1)},
		{"id mismatch", strings.Replace(string(good), events.EventID("google-oauth2|1234567890"), events.EventID("x|y"), 1)},
		{"unknown source", strings.Replace(string(good), `"source":"signupsync/action"`, `"source":"elsewhere"`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := events.Decode([]byte(tt.body)); !errors.Is(err, events.ErrMalformedEvent) {
				t.Fatalf("Decode = %v, want ErrMalformedEvent", err)
			}
		})
	}
}

func TestEventIDIsPerPerson(t *testing.T) {
	a, b := events.EventID("google-oauth2|1"), events.EventID("google-oauth2|2")
	if a == b || a != events.EventID("google-oauth2|1") || len(a) != 35 {
		t.Fatalf("ids %s %s", a, b)
	}
}

func TestLedgerKeyRoundTrip(t *testing.T) {
	for _, id := range []string{"google-oauth2|123", "auth0|5f1a.b=c", "samlp|corp|x y", "ünïcode|1", "a"} {
		k := events.LedgerKey(id)
		for _, c := range k {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=') {
				t.Fatalf("key %q of %q has %q", k, id, c)
			}
		}
		back, err := events.UserIDFromLedgerKey(k)
		if err != nil || back != id {
			t.Fatalf("round trip %q -> %q -> %q (%v)", id, k, back, err)
		}
	}
	if _, err := events.UserIDFromLedgerKey("abc=7"); err == nil {
		t.Fatal("truncated escape accepted")
	}
}

func TestDelayFollowsBackOff(t *testing.T) {
	d := events.DefaultDelivery()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if d.Delay(1) != time.Second || d.Delay(2) != 5*time.Second || d.Delay(100) != 2*time.Minute || d.Delay(0) != time.Second {
		t.Fatalf("delays %v %v %v", d.Delay(1), d.Delay(2), d.Delay(100))
	}
	cfg := d.ConsumerConfig()
	if cfg.MaxDeliver != -1 || cfg.AckWait != d.AckWait || cfg.FilterSubject != events.SubjectAll || cfg.Durable != events.ConsumerImporter {
		t.Fatalf("consumer config %+v", cfg)
	}
}

func TestTopologyValidate(t *testing.T) {
	bad := events.DefaultTopology()
	bad.Replicas = 0
	bad.DuplicateWindow = 0
	if err := bad.Validate(); err == nil {
		t.Fatal("invalid topology accepted")
	}
	if err := events.DefaultTopology().Validate(); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := events.Encode(goldenEvents()["signup-v1-action.json"])
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := events.Decode(b)
		if err == nil && ev.ID != events.EventID(ev.Data.UserID) {
			t.Fatalf("accepted an event whose id does not match its user")
		}
	})
}

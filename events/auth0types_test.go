package events_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/events"
)

// decodeUser decodes one Auth0 user object the way the export reader and the
// Management API client do.
func decodeUser(t *testing.T, raw string) (events.SignupData, error) {
	t.Helper()
	var u events.Auth0User
	if err := json.Unmarshal([]byte(raw), &u); err != nil {
		return events.SignupData{}, err
	}
	return u.SignupData("acme")
}

func TestAuth0UserReadsEmailVerifiedInEveryFormAuth0Writes(t *testing.T) {
	tests := []struct {
		name, value string
		want        bool
	}{
		{"boolean true", `true`, true},
		{"boolean false", `false`, false},
		{"string true", `"true"`, true},
		{"string false", `"false"`, false},
		{"string in capitals", `"TRUE"`, true},
		{"string capitalised", `"False"`, false},
		{"null", `null`, false},
		{"absent", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := `{"user_id":"samlp|corp|1"}`
			if tt.value != "" {
				raw = `{"user_id":"samlp|corp|1","email_verified":` + tt.value + `}`
			}
			d, err := decodeUser(t, raw)
			if err != nil {
				t.Fatalf("email_verified %s refused: %v", tt.value, err)
			}
			if d.EmailVerified != tt.want {
				t.Fatalf("email_verified %s read as %v, want %v", tt.value, d.EmailVerified, tt.want)
			}
		})
	}
}

func TestAuth0UserRefusesOtherEmailVerifiedNamingTheField(t *testing.T) {
	tests := []struct {
		name, raw, field string
	}{
		{"other string", `{"user_id":"a|1","email_verified":"yes"}`, "email_verified"},
		{"empty string", `{"user_id":"a|1","email_verified":""}`, "email_verified"},
		{"number", `{"user_id":"a|1","email_verified":3}`, "email_verified"},
		{"one", `{"user_id":"a|1","email_verified":1}`, "email_verified"},
		{"object", `{"user_id":"a|1","email_verified":{}}`, "email_verified"},
		{"array", `{"user_id":"a|1","email_verified":[true]}`, "email_verified"},
		{"isSocial other string", `{"user_id":"a|1","identities":[{"provider":"a","user_id":"1","isSocial":"maybe"}]}`, "identities.isSocial"},
		{"created_at number", `{"user_id":"a|1","created_at":1738161385}`, "created_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeUser(t, tt.raw)
			var te *json.UnmarshalTypeError
			if !errors.As(err, &te) {
				t.Fatalf("decode = %v, want a *json.UnmarshalTypeError", err)
			}
			if te.Field != tt.field || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q names field %q, want %q", err, te.Field, tt.field)
			}
			if strings.Contains(err.Error(), "yes") || strings.Contains(err.Error(), "maybe") {
				t.Fatalf("error %q repeats the value", err)
			}
		})
	}
}

func TestAuth0UserReadsIsSocialAndCreatedAtInEveryDocumentedForm(t *testing.T) {
	d, err := decodeUser(t, `{"user_id":"github|1","created_at":{"$date":"2025-01-29T14:36:25.794Z"},`+
		`"identities":[{"provider":"github","connection":"github","user_id":1,"isSocial":"true"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Identities[0].IsSocial || d.CreatedAt != "2025-01-29T14:36:25.794Z" {
		t.Fatalf("isSocial %v, created_at %q", d.Identities[0].IsSocial, d.CreatedAt)
	}
	d, err = decodeUser(t, `{"user_id":"github|1","created_at":{"unknown":1},"identities":[{"provider":"github","user_id":1,"isSocial":null}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if d.Identities[0].IsSocial || d.CreatedAt != "" {
		t.Fatalf("isSocial %v, created_at %q: an object without $date and null read as absent", d.Identities[0].IsSocial, d.CreatedAt)
	}
}

func TestParseAuth0Bool(t *testing.T) {
	for _, v := range []any{true, "true", "tRuE"} {
		if got, err := events.ParseAuth0Bool(v); err != nil || !got {
			t.Errorf("ParseAuth0Bool(%#v) = %v, %v; want true", v, got, err)
		}
	}
	for _, v := range []any{false, "false", "FALSE", nil} {
		if got, err := events.ParseAuth0Bool(v); err != nil || got {
			t.Errorf("ParseAuth0Bool(%#v) = %v, %v; want false", v, got, err)
		}
	}
	for _, v := range []any{"yes", "", " true", json.Number("1"), 1.0, map[string]any{}, []any{}} {
		if _, err := events.ParseAuth0Bool(v); !errors.Is(err, events.ErrAuth0Type) {
			t.Errorf("ParseAuth0Bool(%#v) = %v; want ErrAuth0Type", v, err)
		}
	}
}

func TestClassifyByConnectionStrategy(t *testing.T) {
	one := func(provider string, social bool) events.SignupData {
		return events.SignupData{UserID: provider + "|1", Identities: []events.Identity{{Provider: provider, Connection: "c", UserID: "1", IsSocial: social}}}
	}
	withStrategy := func(d events.SignupData, strategy string) events.SignupData {
		d.Connection, d.ConnectionStrategy = "c", strategy
		return d
	}
	tests := []struct {
		name string
		data events.SignupData
		want string
	}{
		{"database auth0", one("auth0", false), events.ReasonDatabaseConnection},
		{"custom is a database", one("custom", false), events.ReasonDatabaseConnection},
		{"custom marked social is still a database", one("custom", true), events.ReasonDatabaseConnection},
		{"passwordless email", one("email", false), events.ReasonPasswordless},
		{"passwordless sms", one("sms", false), events.ReasonPasswordless},
		{"enterprise samlp", one("samlp", false), events.ReasonEnterpriseConnection},
		{"enterprise waad", one("waad", false), events.ReasonEnterpriseConnection},
		{"enterprise okta", one("okta", false), events.ReasonEnterpriseConnection},
		{"enterprise oidc", one("oidc", false), events.ReasonEnterpriseConnection},
		{"enterprise google-apps", one("google-apps", false), events.ReasonEnterpriseConnection},
		{"enterprise pingfederate", one("pingfederate", false), events.ReasonEnterpriseConnection},
		{"enterprise ad", one("ad", false), events.ReasonEnterpriseConnection},
		{"unknown provider, database strategy", withStrategy(one("my-db", false), "auth0"), events.ReasonDatabaseConnection},
		{"unknown provider, enterprise strategy", withStrategy(one("my-idp", false), "samlp"), events.ReasonEnterpriseConnection},
		{"strategy of another connection is not used", func() events.SignupData {
			d := withStrategy(one("my-db", false), "auth0")
			d.Connection = "other"
			return d
		}(), events.ReasonEnterpriseConnection},
		{"unknown non-social", one("mystery", false), events.ReasonEnterpriseConnection},
		{"social unsupported", one("linkedin", true), events.ReasonUnsupportedProvider},
		{"social supported", one("google-oauth2", true), ""},
		{"social supported string isSocial decoded", one("apple", true), ""},
		{"linked", events.SignupData{Identities: []events.Identity{{Provider: "auth0"}, {Provider: "github"}}}, events.ReasonLinkedIdentities},
		{"no identity", events.SignupData{}, events.ReasonNoIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			el := events.Classify(tt.data, nil)
			if el.Reason != tt.want || el.OK != (tt.want == "") {
				t.Fatalf("Classify = %+v, want reason %q", el, tt.want)
			}
		})
	}
}

// TestExportCorpusClassifies reads the users-export corpus through the one
// decoder and classifies every user as the importer, backfill's dry run and
// the report do.
func TestExportCorpusClassifies(t *testing.T) {
	want := map[string]struct {
		reason   string
		verified bool
	}{
		"google-oauth2|104729384756102938477":                     {"", true},
		"github|58293017":                                         {"", true},
		"auth0|6725f0a1b2c3d4e5f6071829":                          {events.ReasonDatabaseConnection, false},
		"custom|6725f0a1b2c3d4e5f607182a":                         {events.ReasonDatabaseConnection, false},
		"samlp|acme-saml|jo.silva@acme.example":                   {events.ReasonEnterpriseConnection, true},
		"waad|contoso-entra|0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9": {events.ReasonEnterpriseConnection, true},
		"apple|001234.0a1b2c3d4e5f60718293a4b5c6d7e8fa.1234":      {"", true},
		"email|6725f0a1b2c3d4e5f607182b":                          {events.ReasonPasswordless, true},
	}
	f, err := os.Open(filepath.Join("..", "testdata", "auth0", "export", "users.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	seen := 0
	for sc.Scan() {
		d, err := decodeUser(t, sc.Text())
		if err != nil {
			t.Fatalf("corpus line %d: %v", seen+1, err)
		}
		seen++
		w, ok := want[d.UserID]
		if !ok {
			t.Fatalf("corpus user %s has no expectation", d.UserID)
		}
		if el := events.Classify(d, nil); el.Reason != w.reason || el.OK != (w.reason == "") {
			t.Errorf("%s: Classify = %+v, want reason %q", d.UserID, el, w.reason)
		}
		if d.EmailVerified != w.verified {
			t.Errorf("%s: email_verified %v, want %v", d.UserID, d.EmailVerified, w.verified)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(want) {
		t.Fatalf("read %d corpus users, want %d", seen, len(want))
	}
}

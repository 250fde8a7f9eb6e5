package auth0export

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/events"
)

func readCorpus(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "auth0", "export", "users.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExportCorpusReadsEveryUser reads the users-export corpus: string
// email_verified values, a "custom" provider and a numeric identity user_id
// are all users, none a malformed line.
func TestExportCorpusReadsEveryUser(t *testing.T) {
	r, err := NewReader(bytes.NewReader(readCorpus(t)), 0, "example")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]events.SignupData{}
	for r.Next() {
		d, err := r.User()
		if err != nil {
			t.Fatalf("line %d is malformed: %v", r.Line(), err)
		}
		got[d.UserID] = d
	}
	if r.Fatal() != nil {
		t.Fatal(r.Fatal())
	}
	if len(got) != 8 {
		t.Fatalf("read %d users, want 8", len(got))
	}
	for id, verified := range map[string]bool{
		"samlp|acme-saml|jo.silva@acme.example":              true,  // "true"
		"apple|001234.0a1b2c3d4e5f60718293a4b5c6d7e8fa.1234": true,  // "true"
		"custom|6725f0a1b2c3d4e5f607182a":                    false, // "false"
		"auth0|6725f0a1b2c3d4e5f6071829":                     false,
		"google-oauth2|104729384756102938477":                true,
	} {
		if got[id].EmailVerified != verified {
			t.Errorf("%s: email_verified %v, want %v", id, got[id].EmailVerified, verified)
		}
	}
	if gh := got["github|58293017"]; len(gh.Identities) != 1 || gh.Identities[0].UserID != "58293017" || !gh.Identities[0].IsSocial {
		t.Errorf("numeric identity user_id: %+v", gh.Identities)
	}
	if c := got["custom|6725f0a1b2c3d4e5f607182a"]; events.Classify(c, nil).Reason != events.ReasonDatabaseConnection {
		t.Errorf("custom provider classified %+v, want %s", events.Classify(c, nil), events.ReasonDatabaseConnection)
	}
}

// TestExportBogusEmailVerifiedIsAMalformedLine: a value Auth0 never writes
// makes its line malformed, names the field, and the read goes on.
func TestExportBogusEmailVerifiedIsAMalformedLine(t *testing.T) {
	lines := strings.Split(strings.TrimSpace(string(readCorpus(t))), "\n")
	good := lines[0]
	var body []string
	for _, bogus := range []string{`"yes"`, `3`, `""`, `{"value":true}`} {
		body = append(body, strings.Replace(good, `"email_verified":true`, `"email_verified":`+bogus, 1), good)
	}
	r, err := NewReader(strings.NewReader(strings.Join(body, "\n")), 0, "example")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		_, err := r.User()
		malformed := r.Line()%2 == 1
		if malformed != (err != nil) {
			t.Fatalf("line %d: err %v, want malformed %v", r.Line(), err, malformed)
		}
		if malformed && !strings.Contains(err.Error(), "email_verified") {
			t.Fatalf("line %d: %q does not name email_verified", r.Line(), err)
		}
	}
	if r.Fatal() != nil || r.Line() != int64(len(body)) {
		t.Fatalf("read stopped at line %d of %d: %v", r.Line(), len(body), r.Fatal())
	}
}

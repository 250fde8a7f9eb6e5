package auth0export

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
	"time"

	"github.com/signupsync/signupsync/events"
)

func TestReader(t *testing.T) {
	body := "\n" + `{"user_id":"github|2","identities":[{"provider":"github","user_id":12345678901234567890,"isSocial":true}]}` + "\n\n" +
		`{"user_id":"github|3","name":"` + strings.Repeat("x", 3000) + `"}` + "\n" + `[1,2]` + "\n" + `{"user_id":"nopipe"}` + "\n" + `{"user_id":"auth0|x"}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(body))
	zw.Close()
	for name, in := range map[string][]byte{"plain": []byte(body), "gzip": gz.Bytes()} {
		t.Run(name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(in), 2048, "acme")
			if err != nil {
				t.Fatal(err)
			}
			type got struct {
				line int64
				ok   bool
			}
			var seen []got
			var first events.SignupData
			for r.Next() {
				d, err := r.User()
				seen = append(seen, got{r.Line(), err == nil})
				if r.Line() == 2 {
					first = d
				}
			}
			if r.Fatal() != nil {
				t.Fatal(r.Fatal())
			}
			want := []got{{2, true}, {4, false}, {5, false}, {6, false}, {7, true}}
			if len(seen) != len(want) {
				t.Fatalf("entries %v, want %v", seen, want)
			}
			for i := range want {
				if seen[i] != want[i] {
					t.Fatalf("entries %v, want %v", seen, want)
				}
			}
			if first.Identities[0].UserID != "12345678901234567890" || first.Tenant != "acme" {
				t.Fatalf("numeric identity id lost digits: %+v", first)
			}
		})
	}
}

func FuzzParseUser(f *testing.F) {
	f.Add([]byte(`{"user_id":"github|1","identities":[{"provider":"github","user_id":12345678901234567890,"isSocial":true}]}`))
	f.Add([]byte(`{"user_id":"auth0|x","app_metadata":null}`))
	f.Add([]byte(`{"user_id":"samlp|c|x","email_verified":"TRUE","created_at":{"$date":"2025-01-29T14:36:25.794Z"},"identities":[{"provider":"samlp","connection":"c","user_id":"x","isSocial":"false"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			return
		}
		d, err := parseUser(b, false, "t")
		if err != nil {
			return
		}
		enc, err := events.Encode(events.NewSignup(events.SourceBackfill, d, time.Unix(0, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := events.Decode(enc); err != nil {
			t.Fatalf("a parsed user does not make a valid event: %v", err)
		}
	})
}

package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/schemas"
)

func TestParseJSON(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		field string
		ok    bool
	}{
		{"object", `{"a":1,"b":[true,null,"x"]}`, "", true},
		{"truncated", `{"a":`, "/a", false},
		{"trailing data", `{} {}`, "", false},
		{"duplicate key", `{"user":{"user_id":"a|1","user_id":"b|2"}}`, "/user/user_id", false},
		{"invalid utf-8", "{\"a\":\"\xff\"}", "", false},
		{"raw NUL", "{\"a\":\"\x00\"}", "/a", false},
		{"too deep", strings.Repeat("[", 40) + strings.Repeat("]", 40), "/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0", false},
		{"deep but allowed", strings.Repeat("[", 30) + strings.Repeat("]", 30), "", true},
		{"key with slash", `{"a/b":{"c":}}`, "/a~1b/c", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseJSON([]byte(tt.in))
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var bre *BadRequestError
			if !errors.As(err, &bre) {
				t.Fatalf("err = %v, want BadRequestError", err)
			}
			if bre.Field != tt.field {
				t.Fatalf("field %q, want %q (%v)", bre.Field, tt.field, err)
			}
		})
	}
}

// Everything a receiver accepts must normalise into an event that matches
// the published schema: this is the contract between ingest and importer.
func checkNormalised(t *testing.T, set *schemas.Set, src events.Source, d events.SignupData) {
	t.Helper()
	b, err := events.Encode(events.NewSignup(src, d, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(schemas.SignupEventV1, doc); err != nil {
		t.Fatalf("normalised event violates the schema: %v\n%s", err, b)
	}
	if _, err := events.Decode(b); err != nil {
		t.Fatalf("normalised event does not decode: %v", err)
	}
}

func FuzzActionBody(f *testing.F) {
	f.Add(actionBody("google-oauth2|1"))
	f.Add([]byte(`{"trigger":"post-user-registration","user":{"user_id":"auth0|x"}}`))
	f.Add([]byte(`{"trigger":"post-login","user":{"user_id":"a|b","identities":[{"provider":"p","user_id":12345678901234567890}]}}`))
	set, err := schemas.Compile()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		doc, err := parseJSON(body)
		if err != nil {
			return
		}
		if set.Validate(schemas.Auth0Action, doc) != nil {
			return
		}
		checkNormalised(t, set, events.SourceAction, actionData(doc.(map[string]any), "t"))
	})
}

func FuzzEventStreamBody(f *testing.F) {
	f.Add(eventStreamBody("github|1"))
	f.Add([]byte(`[{"specversion":"1.0","id":"e","type":"user.created","source":"s","data":{"object":{"user_id":"a|b"}}}]`))
	set, err := schemas.Compile()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		doc, err := parseJSON(body)
		if err != nil {
			return
		}
		m, ok := doc.(map[string]any)
		if !ok || set.Validate(schemas.Auth0EventStream, m) != nil || str(m, "type") != "user.created" {
			return
		}
		checkNormalised(t, set, events.SourceEventStream, eventStreamData(m, "t"))
	})
}

func FuzzLogStreamBody(f *testing.F) {
	f.Add(logStreamBody("github|1"))
	f.Add([]byte("{\"data\":{\"type\":\"ss\",\"user_id\":\"a|b\"}}\n{\"data\":{\"type\":\"s\"}}\n"))
	f.Add([]byte(`[{"data":{"type":"s","user_id":"github|2","strategy":"github","details":{"stats":{"loginsCount":1}}}},{"data":{"type":"ss","user_id":"x"}}]`))
	set, err := schemas.Compile()
	if err != nil {
		f.Fatal(err)
	}
	svc := &Service{schemas: set, cfg: Config{Tenant: "t"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := svc.decodeLogBatch(bytes.NewReader(body))
		if err != nil {
			return
		}
		for _, d := range b.signups {
			checkNormalised(t, set, events.SourceLogStream, d)
			if _, _, err := events.NewMsg(events.SourceLogStream, d, time.Now()); err != nil {
				t.Fatalf("a decoded signup cannot be published: %v", err)
			}
		}
		for _, e := range b.invalid {
			if len(e.raw) == 0 || len(e.raw) > maxLogEntry || e.field == "" && e.reason == "" {
				t.Fatalf("kept entry %+v", e)
			}
		}
	})
}

// FuzzParseJSONMatchesEncodingJSON: on any input the strict parser accepts,
// encoding/json must accept it too and produce the same value.
func FuzzParseJSONMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,-2.5e3,"x\u00e9\ud83d\ude00\n",true,null,{}]}`, `"\ud800"`, `[0,1e5,-0.0]`, `{"k":"\u0041\/"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseJSON(b)
		if err != nil {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("strict parser accepted what encoding/json refuses: %q (%v)", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("values differ for %q:\n got %#v\nwant %#v", b, got, want)
		}
	})
}

package ingest

import (
	"strings"
	"testing"
)

// TestUserIDNotItsIdentityIsA400NamingTheField: a body whose user_id is not
// provider|user_id of its social identity (a forged pairing of one user's id
// with another's identity) is refused with 400 naming the user_id field,
// and nothing of the request is published — in an Event Streams batch not
// even the valid events before it.
func TestUserIDNotItsIdentityIsA400NamingTheField(t *testing.T) {
	h := newHarness(t)
	forge := func(b []byte) []byte {
		// the identity claims github id 666 while user_id says 4242
		return []byte(strings.Replace(string(b), `"user_id":"4242"`, `"user_id":"666"`, 1))
	}
	good := eventStreamBody("github|777")
	bad := forge(eventStreamBody("github|4242"))
	for _, tt := range []struct {
		name, path, field string
		body              []byte
	}{
		{"action", PathAction, "/user/user_id", forge(actionBody("github|4242"))},
		{"event stream", PathEventStream, "/data/object/user_id", bad},
		{"event stream batch", PathEventStream, "/1/data/object/user_id", []byte("[" + string(good) + "," + string(bad) + "]")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hd := bearer("Bearer " + eventToken)
			if tt.path == PathAction {
				hd = h.signed(tt.body)
			}
			before := h.stored()
			res := h.post(tt.path, hd, tt.body)
			if res.status != 400 {
				t.Fatalf("status %d, want 400 (%v)", res.status, res.body)
			}
			if res.body["field"] != tt.field {
				t.Fatalf("field %v, want %s (%v)", res.body["field"], tt.field, res.body)
			}
			if got := h.stored(); got != before {
				t.Fatalf("%d messages published, want none", got-before)
			}
		})
	}
}

package events_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/signupsync/signupsync/events"
)

func decodeEvent(t testing.TB, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var ev map[string]any
	if err := d.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestEventStreamSignupNormalisesLikeTheReceiver(t *testing.T) {
	tests := []struct {
		name       string
		event      string
		wantSignup bool
		want       events.SignupData
	}{
		{
			name: "numeric identity id keeps every digit",
			event: `{"specversion":"1.0","id":"evt_1","type":"user.created","source":"urn:auth0:acme","a0tenant":"acme",
				"data":{"object":{"user_id":"twitter|1234567890123456789","email":"a@example.com","email_verified":true,
				"app_metadata":{"plan":"pro"},"user_metadata":{},
				"identities":[{"provider":"twitter","connection":"twitter","user_id":1234567890123456789,"isSocial":true}]}}}`,
			wantSignup: true,
			want: events.SignupData{Tenant: "acme", Trigger: "user.created", Connection: "twitter", UserID: "twitter|1234567890123456789",
				Email: "a@example.com", EmailVerified: true, AppMetadata: json.RawMessage(`{"plan":"pro"}`),
				Identities: []events.Identity{{Provider: "twitter", Connection: "twitter", UserID: "1234567890123456789", IsSocial: true}}},
		},
		{
			name:       "no a0tenant, no identities",
			event:      `{"specversion":"1.0","id":"evt_2","type":"user.created","source":"urn:auth0:","data":{"object":{"user_id":"auth0|abc"}}}`,
			wantSignup: true,
			want: events.SignupData{Tenant: "default-tenant", Trigger: "user.created", UserID: "auth0|abc",
				Identities: []events.Identity{{Provider: "auth0", UserID: "abc"}}},
		},
		{
			name:  "test delivery",
			event: `{"specversion":"1.0","id":"evt_3","type":"user.created","source":"urn:auth0:","a0purpose":"test","data":{"object":{"user_id":"auth0|t"}}}`,
		},
		{
			name:  "another type",
			event: `{"specversion":"1.0","id":"evt_4","type":"user.updated","source":"urn:auth0:","data":{"object":{"user_id":"auth0|u"}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := decodeEvent(t, tt.event)
			if got := events.IsEventStreamSignup(ev); got != tt.wantSignup {
				t.Fatalf("IsEventStreamSignup = %v, want %v", got, tt.wantSignup)
			}
			if !tt.wantSignup {
				return
			}
			if got := events.EventStreamSignup(ev, "default-tenant"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("EventStreamSignup =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func ExampleEventStreamSignup() {
	d := json.NewDecoder(bytes.NewReader([]byte(`{"specversion":"1.0","id":"evt_1","type":"user.created",
		"source":"urn:auth0:acme","a0tenant":"acme","data":{"object":{"user_id":"github|42",
		"identities":[{"provider":"github","connection":"github","user_id":42,"isSocial":true}]}}}`)))
	d.UseNumber()
	var ev map[string]any
	if err := d.Decode(&ev); err != nil {
		fmt.Println(err)
		return
	}
	if !events.IsEventStreamSignup(ev) {
		return
	}
	s := events.EventStreamSignup(ev, "default")
	fmt.Println(s.Tenant, s.UserID, s.Connection, s.Identities[0].UserID, events.EventID(s.UserID))
	// Output: acme github|42 github 42 su_bdfb3ebc9fe94cf39b72ec52de41df53
}

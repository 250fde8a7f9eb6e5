package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/schemas"
)

func goldenMerges() map[string]events.AccountMerge {
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	d := events.AccountMergeData{AnonymousUID: "Xq3RkW7pLbM2sT9vNc4YhA1eFg6J", PermanentUID: "google-oauth2|1234567890", Auth0UserID: "google-oauth2|1234567890", At: at}
	ack := events.AccountMergeData{AnonymousUID: d.AnonymousUID, PermanentUID: d.PermanentUID, At: at.Add(3 * time.Second)}
	return map[string]events.AccountMerge{
		"account-merge-v1-request.json": events.NewAccountMerge(d, at),
		"account-merge-v1-merged.json":  events.NewAccountMerged("app/merge-worker", ack, at.Add(3*time.Second)),
	}
}

func TestGoldenAccountMerges(t *testing.T) {
	set, err := schemas.Compile()
	if err != nil {
		t.Fatal(err)
	}
	for name, ev := range goldenMerges() {
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
				t.Fatalf("account merge v1 encoding changed; if intended, bump the version or run -update\n got: %s\nwant: %s", got, want)
			}
			var doc any
			if err := json.Unmarshal(want, &doc); err != nil {
				t.Fatal(err)
			}
			if err := set.Validate(schemas.AccountMergeV1, doc); err != nil {
				t.Fatalf("golden file does not match schemas/%s: %v", schemas.AccountMergeV1, err)
			}
			decode := events.DecodeAccountMerge
			if ev.Type == events.TypeAccountMergedV1 {
				decode = events.DecodeAccountMerged
			}
			back, err := decode(want)
			if err != nil {
				t.Fatal(err)
			}
			if back.ID != ev.ID || back.Data != ev.Data {
				t.Fatalf("round trip: %+v", back)
			}
		})
	}
}

func TestMergeIDIsThePair(t *testing.T) {
	a, b := events.MergeID("anon", "perm1"), events.MergeID("anon", "perm2")
	if a == b || a != events.MergeID("anon", "perm1") {
		t.Fatalf("merge ids %s %s", a, b)
	}
	if s := events.MergeSubject("anon"); s != events.MergeSubject(strings.Clone("anon")) || s == events.MergeSubject("anon2") {
		t.Fatal("merge subject is not a function of the anonymous uid alone")
	}
	msg, _, err := events.NewAccountMergeMsg(events.AccountMergeData{AnonymousUID: "anon", PermanentUID: "perm1", Auth0UserID: "github|1", At: time.Now()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get(events.HeaderMsgID) != a || msg.Header.Get(jetstream.ExpectedLastSubjSeqHeader) != "0" {
		t.Fatalf("headers %v", msg.Header)
	}
}

func TestMalformedMergesAreRefused(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		d    events.AccountMergeData
	}{
		{"no anonymous uid", events.AccountMergeData{PermanentUID: "p", Auth0UserID: "a|b", At: now}},
		{"no permanent uid", events.AccountMergeData{AnonymousUID: "x", Auth0UserID: "a|b", At: now}},
		{"same uid", events.AccountMergeData{AnonymousUID: "x", PermanentUID: "x", Auth0UserID: "a|b", At: now}},
		{"no subject", events.AccountMergeData{AnonymousUID: "x", PermanentUID: "p", At: now}},
		{"no time", events.AccountMergeData{AnonymousUID: "x", PermanentUID: "p", Auth0UserID: "a|b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := events.NewAccountMergeMsg(tt.d, now); !errors.Is(err, events.ErrMalformedMerge) {
				t.Fatalf("err %v", err)
			}
		})
	}
	// An acknowledgement whose id is not its pair's is refused.
	ev := events.NewAccountMerged("app", events.AccountMergeData{AnonymousUID: "x", PermanentUID: "p", At: now}, now)
	ev.Data.PermanentUID = "other"
	b, _ := json.Marshal(ev)
	if _, err := events.DecodeAccountMerged(b); !errors.Is(err, events.ErrMalformedMerge) {
		t.Fatalf("forged acknowledgement: %v", err)
	}
}

// A merge request's id is the pair's, so a worker keys its merge by it; the
// subject names the guest, so the stream holds one request per guest.
func ExampleNewAccountMergeMsg() {
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	msg, ev, _ := events.NewAccountMergeMsg(events.AccountMergeData{AnonymousUID: "guest-uid", PermanentUID: "google-oauth2|1", Auth0UserID: "google-oauth2|1", At: at}, at)
	fmt.Println(msg.Subject == events.MergeSubject("guest-uid"), ev.ID == events.MergeID("guest-uid", "google-oauth2|1"), ev.Type)
	// Output: true true dev.signupsync.account.merge.v1
}

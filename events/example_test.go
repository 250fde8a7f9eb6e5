package events_test

import (
	"fmt"
	"time"

	"github.com/signupsync/signupsync/events"
)

// The same person reported by two sources gets one event id, which is also
// the Nats-Msg-Id, so JetStream stores the signup once.
func ExampleEventID() {
	fromAction := events.NewSignup(events.SourceAction, events.SignupData{UserID: "google-oauth2|42"}, time.Now())
	fromLogs := events.NewSignup(events.SourceLogStream, events.SignupData{UserID: "google-oauth2|42", Partial: true}, time.Now())
	fmt.Println(fromAction.ID == fromLogs.ID, events.Subject(fromAction.EventSource()), events.Subject(fromLogs.EventSource()))
	// Output: true signups.v1.action signups.v1.log_stream
}

// Ledger keys keep NATS's key alphabet and stay readable.
func ExampleLedgerKey() {
	fmt.Println(events.LedgerKey("google-oauth2|123"))
	// Output: google-oauth2=7C123
}

// Dead letters keep the source in their subject, outside the SIGNUPS filter.
func ExampleDLQSubject() {
	fmt.Println(events.DLQSubject(events.Subject(events.SourceEventStream)))
	// Output: dlq.signups.v1.event_stream
}

package backfill

import (
	"testing"
	"time"

	"github.com/signupsync/signupsync/events"
)

var testTime = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func mustEncode(t *testing.T, d events.SignupData) []byte {
	t.Helper()
	b, err := events.Encode(events.NewSignup(events.SourceBackfill, d, testTime))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

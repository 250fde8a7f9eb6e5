package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"firebase.google.com/go/v4/auth"
)

func TestRequiredWorkLooksUpEveryUserIn31CallsPer1000(t *testing.T) {
	users, err := shapedBatch(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	calls := packLookups(users)
	if len(calls) != 31 {
		t.Fatalf("%d GetUsers calls for 1000 users, want 31", len(calls))
	}
	seen := map[string]int{}
	for _, c := range calls {
		if len(c) > 100 {
			t.Errorf("a call of %d identifiers, want at most 100", len(c))
		}
		for _, id := range c {
			switch id := id.(type) {
			case auth.UIDIdentifier:
				seen["uid"]++
			case auth.ProviderIdentifier:
				if id.ProviderID != "google.com" {
					t.Errorf("provider %q, want google.com", id.ProviderID)
				}
				seen["provider"]++
			case auth.EmailIdentifier:
				seen["email"]++
			}
		}
	}
	for _, k := range []string{"uid", "provider", "email"} {
		if seen[k] != 1000 {
			t.Errorf("%d %s identifiers, want 1000", seen[k], k)
		}
	}
}

func TestOutcomesSumsTheImporterCounterOverReasons(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Join([]string{
			`# HELP signupsync_importer_outcomes_total Settled signup messages by outcome and reason.`,
			`signupsync_importer_outcomes_total{outcome="imported",reason=""} 2000`,
			`signupsync_importer_outcomes_total{outcome="imported",reason="linked"} 3`,
			`signupsync_importer_outcomes_total{outcome="skipped",reason="not_social"} 7`,
			`signupsync_importer_batch_size_count 3`,
		}, "\n")))
	}))
	defer srv.Close()
	got, err := outcomes(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if got["imported"] != 2003 || got["skipped"] != 7 || len(got) != 2 {
		t.Errorf("outcomes %v, want imported 2003 and skipped 7", got)
	}
}

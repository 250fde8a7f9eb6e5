package main

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

// The example of the Standard Webhooks specification
// (github.com/standard-webhooks/standard-webhooks, spec/standard-webhooks.md).
func TestSignWebhookMatchesTheSpecificationExample(t *testing.T) {
	key, err := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	signWebhook(h, key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if got, want := h.Get("webhook-signature"), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("webhook-signature %q, want %q", got, want)
	}
	if h.Get("webhook-id") != "msg_p5jXN8AQM9LWM0D4loKWxJek" || h.Get("webhook-timestamp") != "1614265330" {
		t.Errorf("headers %v", h)
	}
}

func TestBenchMetricReadsTheUnitOfTheNamedBenchmark(t *testing.T) {
	out := []byte("goos: linux\nBenchmarkHTTPLimitOther-2 \t 10 \t 5 ns/op \t 1 req/s\nBenchmarkHTTPLimit-2 \t 40000 \t 94556 ns/op \t 10575.8 req/s\nPASS\n")
	got, err := benchMetric(out, "BenchmarkHTTPLimit", "req/s")
	if err != nil || got != 10575.8 {
		t.Errorf("benchMetric = %v, %v; want 10575.8", got, err)
	}
	if _, err := benchMetric([]byte("FAIL\n"), "BenchmarkHTTPLimit", "req/s"); err == nil {
		t.Error("no result line: want an error")
	}
}

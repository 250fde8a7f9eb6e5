package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signupsync/signupsync/schemas"
)

// worstNumber is the costliest number the parser accepts: the longest
// mantissa at the largest exponent.
var worstNumber = "9." + strings.Repeat("9", maxNumberLen-7) + "e400"

// TestNumbersBeyondTheLimitsAreRefusedBeforeValidation pins the number
// limits: a huge exponent or an over-long number is a 400 naming the field,
// found by the parser, so the schema validator never does big-rational
// arithmetic on it (1.5e999999 held a request for 38 s before).
func TestNumbersBeyondTheLimitsAreRefusedBeforeValidation(t *testing.T) {
	if len(worstNumber) > maxNumberLen {
		t.Fatalf("worstNumber has %d characters", len(worstNumber))
	}
	for _, tt := range []struct {
		name, number string
		ok           bool
	}{
		{"small integer", "1", true},
		{"numeric identity id", "10157318231283746", true},
		{"float64 range", "1.7976931348623157e308", true},
		{"negative exponent", "-2.5E-300", true},
		{"worst accepted", worstNumber, true},
		{"huge exponent", "1.5e999999", false},
		{"huge negative exponent", "1.5e-999999", false},
		{"exponent just past the limit", "1e401", false},
		{"exponent with leading zeros", "1e" + strings.Repeat("0", 70) + "1", false},
		{"too many digits", strings.Repeat("7", maxNumberLen+1), false},
		{"long fraction", "0." + strings.Repeat("1", 200), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"user":{"identities":[{"provider":"github","user_id":` + tt.number + `}]}}`
			_, err := parseJSON([]byte(body))
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var bre *BadRequestError
			if !errors.As(err, &bre) {
				t.Fatalf("err = %v, want a BadRequestError", err)
			}
			if bre.Field != "/user/identities/0/user_id" {
				t.Fatalf("field %q, want /user/identities/0/user_id (%v)", bre.Field, err)
			}
		})
	}
}

// BenchmarkValidateNumbers compares parsing and validating an Event Streams
// event whose 64 identities carry the costliest accepted numbers with the same
// event carrying short string ids. The limit is the typical body's cost per
// byte measured in the same run; hostile/typical (ns per byte) is reported
// and must stay a small constant: validation is linear in the body, whatever
// its numbers.
func BenchmarkValidateNumbers(b *testing.B) {
	set, err := schemas.Compile()
	if err != nil {
		b.Fatal(err)
	}
	event := func(id string) []byte {
		ids := make([]string, 64)
		for i := range ids {
			ids[i] = `{"provider":"github","connection":"github","isSocial":true,"user_id":` + id + `}`
		}
		return []byte(`{"specversion":"1.0","id":"evt_1","type":"user.created","source":"urn:auth0:acme.auth0.com","time":"2026-11-01T10:00:01Z","data":{"object":{"user_id":"github|1","identities":[` + strings.Join(ids, ",") + `]}}}`)
	}
	typical := event(`"` + strings.Repeat("1", len(worstNumber)-2) + `"`)
	hostile := event(worstNumber)
	validate := func(body []byte) time.Duration {
		start := time.Now()
		doc, err := parseJSON(body)
		if err != nil {
			b.Fatal(err)
		}
		// Whether the schema accepts these identities does not matter;
		// the cost of deciding is what is measured.
		_ = set.Validate(schemas.Auth0EventStream, doc)
		return time.Since(start)
	}
	var typ, host time.Duration
	for b.Loop() {
		typ += validate(typical)
		host += validate(hostile)
	}
	perByte := func(d time.Duration, body []byte) float64 {
		return float64(d.Nanoseconds()) / float64(b.N) / float64(len(body))
	}
	t, h := perByte(typ, typical), perByte(host, hostile)
	b.ReportMetric(t, "typical-ns/byte")
	b.ReportMetric(h, "hostile-ns/byte")
	b.ReportMetric(h/t, "hostile/typical")
}

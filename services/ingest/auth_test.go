package ingest

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// TestAuthorizationSchemesMatchInAnyCase: the Bearer and Basic schemes of
// the Event Streams and Log Streams credentials match in any case and with
// several spaces before the credentials (RFC 7235), while the credentials
// themselves, and values without one of those schemes, must match exactly.
func TestAuthorizationSchemesMatchInAnyCase(t *testing.T) {
	esAuth := eventStreamAuth([]string{"es-token-1"}, []string{"auth0:basic-pass"})
	lsAuth := newHeaderAuth([]string{"Bearer log-token-1", "bearer log-token-2", "shared secret"})
	basic := basicValue("auth0:basic-pass")
	tests := []struct {
		name   string
		auth   *headerAuth
		header string
		ok     bool
	}{
		{"bearer as configured", esAuth, "Bearer es-token-1", true},
		{"bearer in lower case", esAuth, "bearer es-token-1", true},
		{"bearer in upper case", esAuth, "BEARER es-token-1", true},
		{"bearer followed by several spaces", esAuth, "Bearer   es-token-1", true},
		{"basic in lower case", esAuth, "basic " + basic, true},
		{"basic in mixed case", esAuth, "bAsIc " + basic, true},
		{"token in another case", esAuth, "Bearer ES-TOKEN-1", false},
		{"basic credentials in another case", esAuth, "Basic " + strings.ToLower(basic), false},
		{"token under the basic scheme", esAuth, "Basic es-token-1", false},
		{"no space after the scheme", esAuth, "Beareres-token-1", false},
		{"tab after the scheme", esAuth, "Bearer\tes-token-1", false},
		{"other scheme", esAuth, "Token es-token-1", false},
		{"scheme only", esAuth, "Bearer", false},
		{"empty", esAuth, "", false},
		{"log stream value in another scheme case", lsAuth, "BEARER log-token-1", true},
		{"log stream value configured in lower case", lsAuth, "Bearer log-token-2", true},
		{"log stream value without a scheme, exact", lsAuth, "shared secret", true},
		{"log stream value without a scheme, other case", lsAuth, "Shared secret", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{Header: http.Header{}}
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			err := tt.auth.check(r)
			if tt.ok && err != nil {
				t.Fatalf("%q refused: %v", tt.header, err)
			}
			if !tt.ok && !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("%q: err %v, want ErrUnauthorized", tt.header, err)
			}
		})
	}
}

package ingest

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	testSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	rotatedSecret = "whsec_c2lnbnVwc3luYy1yb3RhdGVkLXNlY3JldC0x"
	otherSecret   = "whsec_b3RoZXItc2VjcmV0LW5vdC1jb25maWd1cmVk"
)

func signedHeaders(t testing.TB, secret, id string, at time.Time, body []byte) http.Header {
	t.Helper()
	h := http.Header{}
	if err := SignHeaders(h, secret, id, at, body); err != nil {
		t.Fatal(err)
	}
	return h
}

// signedAs signs body with the webhook-timestamp written exactly as ts, so
// a refusal can only come from how ts is written.
func signedAs(t testing.TB, secret, id, ts string, body []byte) http.Header {
	t.Helper()
	key, err := DecodeWebhookSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookTimestamp, ts)
	h.Set(HeaderWebhookSignature, SignatureHeader(Sign(key, id, ts, body)))
	return h
}

// decoys returns n distinct well-formed v1 signatures that match nothing,
// space-separated.
func decoys(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = SignatureHeader(Sign([]byte("decoy-key-0123456789"), strconv.Itoa(i), "0", nil))
	}
	return strings.Join(parts, " ")
}

// spaced joins a and b with as many spaces as make the result size bytes
// long (at least one).
func spaced(a, b string, size int) string {
	return a + strings.Repeat(" ", max(size-len(a)-len(b), 1)) + b
}

// decoysAtLimit is how many decoys fit in a webhook-signature of
// maxHeaderBytes next to one real signature.
const decoysAtLimit = (maxHeaderBytes - 48) / 48

func TestWebhookVerifier(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"trigger":"post-login","user":{"user_id":"google-oauth2|1"}}`)
	clock := func() time.Time { return now }

	tests := []struct {
		name    string
		secrets []string
		headers func() http.Header
		body    []byte
		want    error
	}{
		{"valid", []string{testSecret}, func() http.Header { return signedHeaders(t, testSecret, "msg_1", now, body) }, body, nil},
		{"wrong secret", []string{testSecret}, func() http.Header { return signedHeaders(t, otherSecret, "msg_1", now, body) }, body, ErrNoMatchingSignature},
		{"tampered body", []string{testSecret}, func() http.Header { return signedHeaders(t, testSecret, "msg_1", now, body) }, append([]byte(nil), strings.Replace(string(body), "1", "2", 1)...), ErrNoMatchingSignature},
		{"tampered id", []string{testSecret}, func() http.Header {
			h := signedHeaders(t, testSecret, "msg_1", now, body)
			h.Set(HeaderWebhookID, "msg_2")
			return h
		}, body, ErrNoMatchingSignature},
		{"stale timestamp", []string{testSecret}, func() http.Header { return signedHeaders(t, testSecret, "msg_1", now.Add(-6*time.Minute), body) }, body, ErrTimestampTooOld},
		{"future timestamp", []string{testSecret}, func() http.Header { return signedHeaders(t, testSecret, "msg_1", now.Add(6*time.Minute), body) }, body, ErrTimestampInFuture},
		{"edge of tolerance", []string{testSecret}, func() http.Header { return signedHeaders(t, testSecret, "msg_1", now.Add(-5*time.Minute), body) }, body, nil},
		{"non-numeric timestamp", []string{testSecret}, func() http.Header {
			h := signedHeaders(t, testSecret, "msg_1", now, body)
			h.Set(HeaderWebhookTimestamp, "yesterday")
			return h
		}, body, ErrBadTimestamp},
		{"missing signature", []string{testSecret}, func() http.Header {
			h := signedHeaders(t, testSecret, "msg_1", now, body)
			h.Del(HeaderWebhookSignature)
			return h
		}, body, ErrMissingSignatureHeaders},
		{"missing id", []string{testSecret}, func() http.Header {
			h := signedHeaders(t, testSecret, "msg_1", now, body)
			h.Del(HeaderWebhookID)
			return h
		}, body, ErrMissingSignatureHeaders},
		{"several signatures one valid", []string{testSecret}, func() http.Header {
			good := signedHeaders(t, testSecret, "msg_1", now, body).Get(HeaderWebhookSignature)
			bad := signedHeaders(t, otherSecret, "msg_1", now, body).Get(HeaderWebhookSignature)
			h := signedHeaders(t, testSecret, "msg_1", now, body)
			h.Set(HeaderWebhookSignature, "v2,abc "+bad+" garbage "+good)
			return h
		}, body, nil},
		{"only unknown versions", []string{testSecret}, func() http.Header {
			h := signedHeaders(t, testSecret, "msg_1", now, body)
			h.Set(HeaderWebhookSignature, strings.Replace(h.Get(HeaderWebhookSignature), "v1,", "v1a,", 1))
			return h
		}, body, ErrNoMatchingSignature},
		{"valid signature after 16 others", []string{testSecret}, func() http.Header {
			h := signedHeaders(t, testSecret, "msg_1", now, body)
			h.Set(HeaderWebhookSignature, decoys(16)+" "+h.Get(HeaderWebhookSignature))
			return h
		}, body, nil},
		{"valid signature last in a header at the size limit", []string{testSecret}, func() http.Header {
			h := signedHeaders(t, testSecret, "msg_1", now, body)
			h.Set(HeaderWebhookSignature, spaced(decoys(decoysAtLimit), h.Get(HeaderWebhookSignature), maxHeaderBytes))
			return h
		}, body, nil},
		{"signature header one byte over the size limit", []string{testSecret}, func() http.Header {
			h := signedHeaders(t, testSecret, "msg_1", now, body)
			h.Set(HeaderWebhookSignature, spaced(h.Get(HeaderWebhookSignature), decoys(decoysAtLimit), maxHeaderBytes+1))
			return h
		}, body, ErrSignatureHeaderTooLong},
		{"timestamp with a plus sign", []string{testSecret}, func() http.Header {
			return signedAs(t, testSecret, "msg_1", "+"+strconv.FormatInt(now.Unix(), 10), body)
		}, body, ErrBadTimestamp},
		{"timestamp with a minus sign", []string{testSecret}, func() http.Header { return signedAs(t, testSecret, "msg_1", "-0", body) }, body, ErrBadTimestamp},
		{"timestamp with an underscore", []string{testSecret}, func() http.Header { return signedAs(t, testSecret, "msg_1", "1_800_000_000", body) }, body, ErrBadTimestamp},
		{"timestamp past int64", []string{testSecret}, func() http.Header { return signedAs(t, testSecret, "msg_1", "18446744073709551615", body) }, body, ErrBadTimestamp},
		{"timestamp with leading zeros is still decimal", []string{testSecret}, func() http.Header {
			return signedAs(t, testSecret, "msg_1", "00"+strconv.FormatInt(now.Unix(), 10), body)
		}, body, nil},
		{"rotation: old secret still accepted", []string{rotatedSecret, testSecret}, func() http.Header { return signedHeaders(t, testSecret, "msg_1", now, body) }, body, nil},
		{"rotation: new secret accepted", []string{rotatedSecret, testSecret}, func() http.Header { return signedHeaders(t, rotatedSecret, "msg_1", now, body) }, body, nil},
		{"rotation: rotated-out secret refused", []string{rotatedSecret}, func() http.Header { return signedHeaders(t, testSecret, "msg_1", now, body) }, body, ErrNoMatchingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewWebhookVerifier(tt.secrets, DefaultTolerance, clock)
			if err != nil {
				t.Fatal(err)
			}
			got := v.Verify(tt.headers(), tt.body)
			if !errors.Is(got, tt.want) {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewWebhookVerifierRejectsBadSecrets(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
	}{
		{"none", nil},
		{"not base64", []string{"whsec_!!!"}},
		{"too short", []string{"whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewWebhookVerifier(tt.secrets, DefaultTolerance, nil); err == nil {
				t.Fatal("NewWebhookVerifier accepted a bad secret")
			}
		})
	}
}

func TestParseSignatureHeader(t *testing.T) {
	sig := Sign([]byte("0123456789abcdef"), "id", "1", []byte("b"))
	good := SignatureHeader(sig)
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"empty", "", 0},
		{"one", good, 1},
		{"two", good + " " + good, 2},
		{"extra spaces", "  " + good + "   ", 1},
		{"unknown version", "v2," + good[3:], 0},
		{"no comma", "v1" + good[3:], 0},
		{"bad base64", "v1,%%%", 0},
		{"wrong length", "v1," + base64.StdEncoding.EncodeToString([]byte("short")), 0},
		{"every entry read", strings.Repeat(good+" ", 40), 40},
		{"v1 entry of the wrong length", "v1," + good[3:] + "AAAA", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := len(ParseSignatureHeader(tt.in)); got != tt.want {
				t.Fatalf("got %d signatures, want %d", got, tt.want)
			}
		})
	}
}

func FuzzParseSignatureHeader(f *testing.F) {
	f.Add("v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=")
	f.Add("v1,a v1,b v2,c")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		for _, sig := range ParseSignatureHeader(s) {
			if len(sig) != 32 {
				t.Fatalf("signature of %d bytes", len(sig))
			}
		}
	})
}

func FuzzWebhookVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add("msg_1", strconv.FormatInt(now.Unix(), 10), "v1,abc", []byte(`{}`))
	f.Add("", "", "", []byte(nil))
	v, err := NewWebhookVerifier([]string{testSecret}, DefaultTolerance, func() time.Time { return now })
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(HeaderWebhookID, id)
		h.Set(HeaderWebhookTimestamp, ts)
		h.Set(HeaderWebhookSignature, sig)
		if v.Verify(h, body) == nil {
			// A random input passing verification would be a forgery.
			t.Fatalf("forged signature accepted: id=%q ts=%q sig=%q", id, ts, sig)
		}
	})
}

package ingest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/schemas"
)

// hostileBodies are bodies every receiver must refuse with 400 (or 413),
// whatever its authentication.
func hostileBodies() []struct {
	name string
	body string
	want int
} {
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	return []struct {
		name string
		body string
		want int
	}{
		{"truncated", `{"trigger":"post-login","user":{"user_id":"github|1"`, 400},
		{"deeply nested", deep, 400},
		{"wrong types", `{"trigger":1,"user":[],"specversion":2,"id":3,"type":{},"source":null,"data":"x"}`, 400},
		{"duplicate keys", `{"trigger":"post-login","user":{"user_id":"github|1","user_id":"github|2"},"data":{"type":"ss","type":"ss"}}`, 400},
		{"invalid utf-8", "{\"trigger\":\"post-login\",\"user\":{\"user_id\":\"github|\xff\xfe\"}}", 400},
		{"raw NUL", "{\"trigger\":\"post-login\",\"user\":{\"user_id\":\"github|1\x00\"}}", 400},
		{"escaped NUL", `{"trigger":"post-login","user":{"user_id":"github|1\u0000"},"data":{"type":"ss","user_id":"github|1\u0000"}}`, 400},
		{"huge string", `{"trigger":"post-login","user":{"user_id":"github|` + strings.Repeat("9", 40000) + `"},"data":{"type":"ss","user_id":"github|` + strings.Repeat("9", 20000) + `"}}`, 400},
		{"huge exponent", `{"trigger":"post-login","stats":{"logins_count":1.5e999999},"user":{"user_id":"github|1","identities":[{"provider":"github","user_id":1e999999}]},"data":{"type":"ss","details":{"n":[` + strings.Repeat("1.5e999999,", 2000) + `1]}}}`, 400},
		{"over-long number", `{"trigger":"post-login","user":{"user_id":"github|1","identities":[{"provider":"github","user_id":` + strings.Repeat("9", 5000) + `}]},"data":{"type":"ss","n":` + strings.Repeat("9", 5000) + `}}`, 400},
		{"not an object", `"just a string"`, 400},
		{"empty", ``, 400},
		{"two documents", `{} {}`, 400},
		{"over the limit", `{"pad":"` + strings.Repeat("x", 70<<10) + `"}`, 413},
	}
}

// TestHostileInput sends every hostile body to every receiver, correctly
// authenticated, and checks the documented status and that nothing is
// published.
func TestHostileInput(t *testing.T) {
	h := newHarness(t)
	receivers := []struct {
		path string
		auth func(body []byte) http.Header
	}{
		{PathAction, func(b []byte) http.Header { return h.signed(b) }},
		{PathEventStream, func([]byte) http.Header { return bearer("Bearer " + eventToken) }},
		{PathLogStream, func([]byte) http.Header { return bearer(logToken) }},
	}
	for _, r := range receivers {
		for _, tt := range hostileBodies() {
			want := tt.want
			if r.path == PathLogStream && tt.name == "huge string" {
				// Well-formed, but an ss entry whose user_id is past its
				// bound: an invalid signup entry, kept in SIGNUPS_DLQ while
				// the batch is accepted (never published as a signup).
				want = http.StatusAccepted
			}
			t.Run(r.path+"/"+tt.name, func(t *testing.T) {
				before := h.stored()
				res := h.post(r.path, r.auth([]byte(tt.body)), []byte(tt.body))
				if res.status != want {
					t.Fatalf("status %d, want %d (%v)", res.status, want, res.body)
				}
				if got := h.stored(); got != before {
					t.Fatalf("a hostile body was published (%d -> %d)", before, got)
				}
			})
		}
	}
}

// TestHostileRequests covers transport and authentication abuse, and
// requests that look odd but are valid: those must be answered 202 and
// stored exactly once (each uses its own user), the others stored never.
func TestHostileRequests(t *testing.T) {
	h := newHarness(t)
	good := actionBody("google-oauth2|8008")
	signedAt := func(secret string, at time.Time, body []byte) http.Header {
		hd := signedHeaders(t, secret, "msg_hostile", at, body)
		hd.Set("Content-Type", "application/json")
		return hd
	}
	// withSignatures replaces webhook-signature by what list makes of the
	// valid one.
	withSignatures := func(body []byte, list func(valid string) string) http.Header {
		hd := h.signed(body)
		hd.Set(HeaderWebhookSignature, list(hd.Get(HeaderWebhookSignature)))
		return hd
	}
	plusTimestamp := signedAs(t, testSecret, "msg_plus", "+"+strconv.FormatInt(time.Now().Unix(), 10), good)
	plusTimestamp.Set("Content-Type", "application/json")
	seventeenth, atLimit := actionBody("google-oauth2|8101"), actionBody("google-oauth2|8102")
	tests := []struct {
		name   string
		path   string
		header http.Header
		body   []byte
		chunk  bool
		want   int
	}{
		{"oversized body sent chunked", PathAction, signedAt(testSecret, time.Now(), nil), bytes.Repeat([]byte("a"), 200<<10), true, 413},
		{"oversized chunked, event stream", PathEventStream, bearer("Bearer " + eventToken), bytes.Repeat([]byte("a"), 200<<10), true, 413},
		{"wrong media type", PathAction, func() http.Header { hd := h.signed(good); hd.Set("Content-Type", "text/plain"); return hd }(), good, false, 415},
		{"missing media type", PathEventStream, http.Header{"Authorization": {"Bearer " + eventToken}}, eventStreamBody("github|1"), false, 415},
		{"malformed media type", PathLogStream, http.Header{"Authorization": {logToken}, "Content-Type": {"application/json; charset"}}, logStreamBody("github|1"), false, 415},
		{"replayed after the tolerance window", PathAction, signedAt(testSecret, time.Now().Add(-6*time.Minute), good), good, false, 401},
		{"signed in the future", PathAction, signedAt(testSecret, time.Now().Add(6*time.Minute), good), good, false, 401},
		{"rotated-out secret", PathAction, signedAt(rotatedSecret, time.Now(), good), good, false, 401},
		{"signature of another body", PathAction, signedAt(testSecret, time.Now(), []byte(`{}`)), good, false, 401},
		{"signature without version", PathAction, func() http.Header {
			hd := h.signed(good)
			hd.Set(HeaderWebhookSignature, strings.TrimPrefix(hd.Get(HeaderWebhookSignature), "v1,"))
			return hd
		}(), good, false, 401},
		{"empty signature list", PathAction, func() http.Header { hd := h.signed(good); hd.Set(HeaderWebhookSignature, " "); return hd }(), good, false, 401},
		{"valid signature after 16 others", PathAction, withSignatures(seventeenth, func(v string) string { return decoys(16) + " " + v }), seventeenth, false, 202},
		{"valid signature last in a header at the size limit", PathAction, withSignatures(atLimit, func(v string) string {
			return spaced(decoys(decoysAtLimit), v, maxHeaderBytes)
		}), atLimit, false, 202},
		{"valid signature first in a header over the size limit", PathAction, withSignatures(good, func(v string) string {
			return spaced(v, decoys(decoysAtLimit), maxHeaderBytes+1)
		}), good, false, 401},
		{"timestamp with a plus sign, correctly signed", PathAction, plusTimestamp, good, false, 401},
		{"bearer scheme in lower case", PathEventStream, bearer("bearer " + eventToken), eventStreamBody("github|8103"), false, 202},
		{"basic scheme in upper case", PathEventStream, bearer("BASIC " + basicValue("auth0:basic-pass")), eventStreamBody("github|8104"), false, 202},
		{"several spaces after the scheme", PathEventStream, bearer("Bearer   " + eventToken), eventStreamBody("github|8105"), false, 202},
		{"log stream bearer scheme in mixed case", PathLogStream, bearer("bEaReR " + strings.TrimPrefix(logToken, "Bearer ")), logStreamBody("github|8106"), false, 202},
		{"bearer token in upper case", PathEventStream, bearer("Bearer " + strings.ToUpper(eventToken)), eventStreamBody("github|1"), false, 401},
		{"basic credentials in lower case", PathEventStream, bearer("Basic " + strings.ToLower(basicValue("auth0:basic-pass"))), eventStreamBody("github|1"), false, 401},
		{"scheme glued to the token", PathEventStream, bearer("Bearer" + eventToken), eventStreamBody("github|1"), false, 401},
		{"tab after the scheme", PathEventStream, bearer("Bearer\t" + eventToken), eventStreamBody("github|1"), false, 401},
		{"token prefix only", PathLogStream, bearer(logToken[:len(logToken)-1]), logStreamBody("github|1"), false, 401},
		{"log token sent to the event stream", PathEventStream, bearer(logToken), eventStreamBody("github|1"), false, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.stored()
			var body io.Reader = bytes.NewReader(tt.body)
			var cl int64
			if tt.chunk {
				body, cl = io.MultiReader(bytes.NewReader(tt.body)), -1
			}
			res := h.do(http.MethodPost, tt.path, tt.header, body, cl)
			if res.status != tt.want {
				t.Fatalf("status %d, want %d (%v)", res.status, tt.want, res.body)
			}
			want := before
			if tt.want == http.StatusAccepted {
				want++
			}
			if got := h.stored(); got != want {
				t.Fatalf("stream went from %d to %d messages, want %d", before, got, want)
			}
		})
	}
}

// TestSlowHeadersAreCut dribbles request headers slower than the server's
// header timeout: the server must drop the connection, not wait forever.
func TestSlowHeadersAreCut(t *testing.T) {
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	testenv.Ensure(t, js)
	set, err := schemas.Compile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ActionSecrets = []string{testSecret}
	cfg.ReadHeaderTimeout = 300 * time.Millisecond
	svc, err := New(cfg, Deps{Publisher: js, Schemas: set, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\n", PathAction)
	closed := make(chan error, 1)
	go func() {
		// Keep dribbling one header byte at a time until the server hangs up.
		for i := 0; ; i++ {
			if _, err := conn.Write([]byte{"X-Slow: a\r\n"[i%11]}); err != nil {
				closed <- err
				return
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
	}()
	reader := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a guard against hanging, not a performance bound
	if _, err := reader.ReadByte(); err == nil {
		// Go's server answers 4xx with Connection: close when the header
		// deadline passes; it must never accept the request.
		rest, _ := io.ReadAll(reader)
		if !strings.HasPrefix("H"+string(rest), "HTTP/1.1 4") || !strings.Contains(string(rest), "Connection: close") {
			t.Fatalf("server answered a dribbled request with %q", rest)
		}
	}
	st, _ := js.Stream(ctx, events.StreamSignups)
	info, _ := st.Info(ctx)
	if info.State.Msgs != 0 {
		t.Fatal("a dribbled request was published")
	}
}

package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/schemas"
)

const (
	eventToken = "es-token-1"
	logToken   = "Bearer log-token-1"
)

type harness struct {
	t       *testing.T
	nats    *testenv.NATS
	js      jetstream.JetStream
	srv     *httptest.Server
	logs    *testenv.Buffer
	metrics *Metrics
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, func(*Config) {})
}

// newHarnessWith is newHarness with cfg changed by configure.
func newHarnessWith(t *testing.T, configure func(*Config)) *harness {
	t.Helper()
	n := testenv.StartNATS(t)
	_, js := n.Connect(nats.ReconnectBufSize(-1))
	testenv.Ensure(t, js)
	set, err := schemas.Compile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ActionSecrets = []string{testSecret}
	cfg.EventStreamTokens = []string{eventToken}
	cfg.EventStreamBasic = []string{"auth0:basic-pass"}
	cfg.LogStreamTokens = []string{logToken}
	cfg.Tenant = "acme"
	cfg.PublishTimeout = 500 * time.Millisecond
	configure(&cfg)
	logs := &testenv.Buffer{}
	m := NewMetrics(prometheus.NewRegistry())
	svc, err := New(cfg, Deps{Publisher: js, Schemas: set, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &harness{t: t, nats: n, js: js, srv: srv, logs: logs, metrics: m}
}

// stored is the number of messages in SIGNUPS.
func (h *harness) stored() uint64 {
	h.t.Helper()
	return h.streamMsgs(events.StreamSignups)
}

// deadLetters is the number of messages in SIGNUPS_DLQ.
func (h *harness) deadLetters() uint64 {
	h.t.Helper()
	return h.streamMsgs(events.StreamDeadLetter)
}

func (h *harness) streamMsgs(stream string) uint64 {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := h.js.Stream(ctx, stream)
	if err != nil {
		h.t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		h.t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

type response struct {
	status int
	header http.Header
	body   map[string]any
}

func (h *harness) do(method, path string, header http.Header, body io.Reader, contentLength int64) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentLength != 0 {
		req.ContentLength = contentLength
	}
	res, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	out := response{status: res.StatusCode, header: res.Header}
	raw, _ := io.ReadAll(res.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			h.t.Fatalf("response is not JSON: %q", raw)
		}
	}
	return out
}

func (h *harness) post(path string, header http.Header, body []byte) response {
	h.t.Helper()
	return h.do(http.MethodPost, path, header, bytes.NewReader(body), 0)
}

func actionBody(userID string) []byte {
	provider, raw, _ := strings.Cut(userID, "|")
	return []byte(fmt.Sprintf(`{"trigger":"post-login","tenant":"acme","connection":{"id":"con_1","name":"%[2]s","strategy":"%[2]s"},"stats":{"logins_count":1},"user":{"user_id":"%[1]s","email":"person@example.com","email_verified":true,"name":"A Person","picture":"https://example.com/p.png","created_at":"2026-11-01T10:00:00.000Z","identities":[{"provider":"%[2]s","connection":"%[2]s","user_id":"%[3]s","isSocial":true}]}}`, userID, provider, raw))
}

func eventStreamBody(userID string) []byte {
	provider, raw, _ := strings.Cut(userID, "|")
	return []byte(fmt.Sprintf(`{"specversion":"1.0","id":"evt_%[3]s","type":"user.created","source":"urn:auth0:acme.auth0.com","time":"2026-11-01T10:00:01Z","a0tenant":"acme","data":{"object":{"user_id":"%[1]s","email":"person@example.com","email_verified":true,"identities":[{"provider":"%[2]s","connection":"%[2]s","user_id":"%[3]s","isSocial":true}]}}}`, userID, provider, raw))
}

func logStreamBody(userID string) []byte {
	provider, _, _ := strings.Cut(userID, "|")
	return []byte(fmt.Sprintf(`[{"log_id":"900201","data":{"type":"ss","date":"2026-11-01T10:00:02Z","connection":"%[2]s","strategy":"%[2]s","strategy_type":"social","user_id":"%[1]s","user_name":"person@example.com"}},{"log_id":"900202","data":{"type":"s","date":"2026-11-01T10:00:03Z","user_id":"%[1]s"}}]`, userID, provider))
}

func (h *harness) signed(body []byte) http.Header {
	hd := signedHeaders(h.t, testSecret, "msg_"+fmt.Sprint(time.Now().UnixNano()), time.Now(), body)
	hd.Set("Content-Type", "application/json")
	return hd
}

func bearer(v string) http.Header {
	return http.Header{"Authorization": {v}, "Content-Type": {"application/json"}}
}

func TestAcceptedSignupIsExactlyOneMessage(t *testing.T) {
	h := newHarness(t)
	body := actionBody("google-oauth2|1001")
	res := h.post(PathAction, h.signed(body), body)
	if res.status != http.StatusAccepted {
		t.Fatalf("status %d, body %v", res.status, res.body)
	}
	if res.body["id"] != events.EventID("google-oauth2|1001") || res.body["duplicate"] != false {
		t.Fatalf("body %v", res.body)
	}
	if got := h.stored(); got != 1 {
		t.Fatalf("stream holds %d messages, want 1", got)
	}
	ctx := context.Background()
	st, _ := h.js.Stream(ctx, events.StreamSignups)
	msg, err := st.GetLastMsgForSubject(ctx, events.Subject(events.SourceAction))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get(events.HeaderMsgID) != events.EventID("google-oauth2|1001") {
		t.Fatalf("Nats-Msg-Id %q", msg.Header.Get(events.HeaderMsgID))
	}
	ev, err := events.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Data.Email != "person@example.com" || len(ev.Data.Identities) != 1 || ev.Data.Identities[0].UserID != "1001" || ev.Data.Partial {
		t.Fatalf("event data %+v", ev.Data)
	}
	if strings.Contains(h.logs.String(), "person@example.com") {
		t.Fatal("logs contain the email address")
	}
}

func TestSameSignupFromAllReceiversIsOneMessage(t *testing.T) {
	h := newHarness(t)
	user := "google-oauth2|2002"
	want := events.EventID(user)
	var dups int
	for round := 0; round < 3; round++ {
		ab := actionBody(user)
		for _, res := range []response{
			h.post(PathAction, h.signed(ab), ab),
			h.post(PathEventStream, bearer("Bearer "+eventToken), eventStreamBody(user)),
			h.post(PathEventStream, bearer("Basic "+basicValue("auth0:basic-pass")), eventStreamBody(user)),
		} {
			if res.status != http.StatusAccepted || res.body["id"] != want {
				t.Fatalf("status %d body %v", res.status, res.body)
			}
			if res.body["duplicate"] == true {
				dups++
			}
		}
		res := h.post(PathLogStream, bearer(logToken), logStreamBody(user))
		if res.status != http.StatusAccepted {
			t.Fatalf("log stream status %d body %v", res.status, res.body)
		}
		signups := res.body["signups"].([]any)
		if len(signups) != 1 || res.body["ignored"].(float64) != 1 {
			t.Fatalf("log stream body %v", res.body)
		}
		if signups[0].(map[string]any)["duplicate"] == true {
			dups++
		}
	}
	if dups != 11 {
		t.Fatalf("%d of 12 deliveries were duplicates, want 11", dups)
	}
	if got := h.stored(); got != 1 {
		t.Fatalf("stream holds %d messages, want 1", got)
	}
}

func TestLogStreamFormats(t *testing.T) {
	h := newHarness(t)
	entry := func(id string) string {
		return fmt.Sprintf(`{"log_id":"l%[1]s","data":{"type":"ss","date":"2026-11-01T10:00:02Z","connection":"github","strategy":"github","strategy_type":"social","user_id":"github|%[1]s","user_name":"u%[1]s@example.com"}}`, id)
	}
	tests := []struct {
		name, media, body string
		want              int
	}{
		{"json array", "application/json", "[" + entry("1") + "," + entry("2") + "]", 2},
		{"json object", "application/json", entry("3"), 1},
		{"json lines", "application/x-ndjson", entry("4") + "\n" + entry("5") + "\n" + entry("6") + "\n", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.stored()
			hd := bearer(logToken)
			hd.Set("Content-Type", tt.media)
			res := h.post(PathLogStream, hd, []byte(tt.body))
			if res.status != http.StatusAccepted {
				t.Fatalf("status %d body %v", res.status, res.body)
			}
			if got := h.stored() - before; got != uint64(tt.want) {
				t.Fatalf("stored %d, want %d", got, tt.want)
			}
		})
	}
	ctx := context.Background()
	st, _ := h.js.Stream(ctx, events.StreamSignups)
	msg, err := st.GetLastMsgForSubject(ctx, events.Subject(events.SourceLogStream))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Data.Partial || ev.Data.Identities[0].Provider != "github" || !ev.Data.Identities[0].IsSocial || ev.Data.Identities[0].UserID != "6" {
		t.Fatalf("log stream event %+v", ev.Data)
	}
}

func TestStatusCodes(t *testing.T) {
	h := newHarness(t)
	good := actionBody("google-oauth2|3003")
	tests := []struct {
		name   string
		method string
		path   string
		header func() http.Header
		body   []byte
		chunk  bool
		want   int
		field  string
	}{
		{"action accepted", "POST", PathAction, func() http.Header { return h.signed(good) }, good, false, 202, ""},
		{"action wrong secret", "POST", PathAction, func() http.Header {
			hd := signedHeaders(t, otherSecret, "m1", time.Now(), good)
			hd.Set("Content-Type", "application/json")
			return hd
		}, good, false, 401, ""},
		{"action unsigned", "POST", PathAction, func() http.Header { return bearer("") }, good, false, 401, ""},
		{"action malformed", "POST", PathAction, func() http.Header { return h.signed([]byte(`{"trigger":`)) }, []byte(`{"trigger":`), false, 400, ""},
		{"action schema invalid", "POST", PathAction, func() http.Header {
			b := []byte(`{"trigger":"post-login","user":{"user_id":"google-oauth2|1","email_verified":"yes"}}`)
			return h.signed(b)
		}, []byte(`{"trigger":"post-login","user":{"user_id":"google-oauth2|1","email_verified":"yes"}}`), false, 400, "/user/email_verified"},
		{"action missing user id", "POST", PathAction, func() http.Header { return h.signed([]byte(`{"trigger":"post-login","user":{}}`)) }, []byte(`{"trigger":"post-login","user":{}}`), false, 400, "/user"},
		{"action too large", "POST", PathAction, func() http.Header { return h.signed(nil) }, bytes.Repeat([]byte("a"), 70<<10), false, 413, ""},
		{"action too large chunked", "POST", PathAction, func() http.Header { return h.signed(nil) }, bytes.Repeat([]byte("a"), 70<<10), true, 413, ""},
		{"action wrong media type", "POST", PathAction, func() http.Header {
			hd := h.signed(good)
			hd.Set("Content-Type", "text/xml")
			return hd
		}, good, false, 415, ""},
		{"action missing media type", "POST", PathAction, func() http.Header {
			hd := h.signed(good)
			hd.Del("Content-Type")
			return hd
		}, good, false, 415, ""},
		{"action GET", "GET", PathAction, func() http.Header { return h.signed(nil) }, nil, false, 405, ""},
		{"event stream no auth", "POST", PathEventStream, func() http.Header { return bearer("") }, eventStreamBody("github|1"), false, 401, ""},
		{"event stream wrong token", "POST", PathEventStream, func() http.Header { return bearer("Bearer nope") }, eventStreamBody("github|1"), false, 401, ""},
		{"event stream wrong basic", "POST", PathEventStream, func() http.Header { return bearer("Basic " + basicValue("auth0:nope")) }, eventStreamBody("github|1"), false, 401, ""},
		{"event stream other type ignored", "POST", PathEventStream, func() http.Header { return bearer("Bearer " + eventToken) }, []byte(`{"specversion":"1.0","id":"e1","type":"organization.updated","source":"urn:auth0:acme","data":{}}`), false, 202, ""},
		{"event stream user.updated without user", "POST", PathEventStream, func() http.Header { return bearer("Bearer " + eventToken) }, []byte(`{"specversion":"1.0","id":"e1","type":"user.updated","source":"urn:auth0:acme","data":{}}`), false, 400, "/data"},
		{"event stream user.created without user", "POST", PathEventStream, func() http.Header { return bearer("Bearer " + eventToken) }, []byte(`{"specversion":"1.0","id":"e1","type":"user.created","source":"urn:auth0:acme","data":{}}`), false, 400, "/data"},
		{"event stream GET", "GET", PathEventStream, func() http.Header { return bearer("Bearer " + eventToken) }, nil, false, 405, ""},
		{"log stream wrong token", "POST", PathLogStream, func() http.Header { return bearer("Bearer nope") }, logStreamBody("github|1"), false, 401, ""},
		{"log stream only non-signups", "POST", PathLogStream, func() http.Header { return bearer(logToken) }, []byte(`[{"log_id":"1","data":{"type":"s"}}]`), false, 202, ""},
		{"log stream one bad entry is dead-lettered, not the batch", "POST", PathLogStream, func() http.Header { return bearer(logToken) }, []byte(`[{"log_id":"1","data":{"type":"ss","user_id":"github|9"}},{"log_id":"2","data":{"type":"ss","user_id":"no-pipe"}}]`), false, 202, ""},
		{"log stream entry that is not a log entry", "POST", PathLogStream, func() http.Header { return bearer(logToken) }, []byte(`[{"log_id":"1","data":{"type":"s"}},{"log_id":"2","data":{"type":7}}]`), false, 400, "/1/data/type"},
		{"log stream wrong media type", "POST", PathLogStream, func() http.Header {
			hd := bearer(logToken)
			hd.Set("Content-Type", "application/xml")
			return hd
		}, logStreamBody("github|1"), false, 415, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.stored()
			var body io.Reader = bytes.NewReader(tt.body)
			if tt.chunk {
				body = io.MultiReader(bytes.NewReader(tt.body)) // unknown length: sent chunked
			}
			var cl int64
			if tt.chunk {
				cl = -1
			}
			res := h.do(tt.method, tt.path, tt.header(), body, cl)
			if res.status != tt.want {
				t.Fatalf("status %d, want %d (body %v)", res.status, tt.want, res.body)
			}
			if tt.want >= 400 {
				if res.body["error"] == nil || res.body["message"] == nil {
					t.Fatalf("error body %v", res.body)
				}
				if got := h.stored(); got != before {
					t.Fatalf("a rejected request changed the stream: %d -> %d", before, got)
				}
			}
			if tt.field != "" && res.body["field"] != tt.field {
				t.Fatalf("field %v, want %s", res.body["field"], tt.field)
			}
			if tt.want == 405 && res.header.Get("Allow") != "POST" {
				t.Fatalf("Allow %q", res.header.Get("Allow"))
			}
		})
	}
}

func TestBrokerDownAnswers503ThenRecovers(t *testing.T) {
	h := newHarness(t)
	user := "apple|4004"
	body := actionBody(user)
	h.nats.Stop()
	res := h.post(PathAction, h.signed(body), body)
	if res.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d with the broker down, want 503 (body %v)", res.status, res.body)
	}
	if res.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	h.nats.Restart()
	testenv.Eventually(t, "the client to reconnect", func() bool {
		_, err := h.js.Stream(context.Background(), events.StreamSignups)
		return err == nil
	})
	if got := h.stored(); got != 0 {
		t.Fatalf("stream holds %d messages after a 503, want 0", got)
	}
	testenv.Eventually(t, "ingest to accept again", func() bool {
		res = h.post(PathAction, h.signed(body), body)
		return res.status == http.StatusAccepted
	})
	if got := h.stored(); got != 1 {
		t.Fatalf("stream holds %d messages after recovery, want 1", got)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	h := newHarness(t)
	// /readyz is on the admin handler (admin_test.go); the public port keeps
	// a bare /healthz for load balancers.
	for _, p := range []string{"/healthz"} {
		if res := h.do("GET", p, nil, nil, 0); res.status != http.StatusOK {
			t.Fatalf("%s: %d", p, res.status)
		}
	}
}

func TestInventedEventTypesDoNotGrowTheSeriesCount(t *testing.T) {
	// 10,000 distinct non-signup types, over both batch receivers: the
	// ignored-events metric keeps a fixed label set ("other" for all of
	// them), so a sender cannot grow memory through labels.
	h := newHarness(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	set, err := schemas.Compile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.EventStreamTokens = []string{eventToken}
	cfg.LogStreamTokens = []string{logToken}
	svc, err := New(cfg, Deps{Publisher: h.js, Schemas: set, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	series := func() int {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, mf := range mfs {
			if mf.GetName() == "signupsync_ingest_ignored_events_total" {
				n += len(mf.GetMetric())
			}
		}
		return n
	}
	post := func(path, auth string, body string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: status %d", path, res.StatusCode)
		}
	}
	// Known types first: their series exist from the start.
	post(PathLogStream, logToken, `[{"log_id":"k1","data":{"type":"s"}},{"log_id":"k2","data":{"type":"other"}}]`)
	post(PathEventStream, "Bearer "+eventToken, `{"specversion":"1.0","id":"k3","type":"organization.updated","source":"urn:auth0:acme"}`)
	before := series()
	const n, perRequest = 10000, 100
	for i := 0; i < n; i += perRequest {
		var logs, evs []string
		for j := i; j < i+perRequest; j++ {
			logs = append(logs, fmt.Sprintf(`{"log_id":"l%d","data":{"type":"t%d"}}`, j, j))
			evs = append(evs, fmt.Sprintf(`{"specversion":"1.0","id":"e%d","type":"com.example.t%d","source":"urn:auth0:acme"}`, j, j))
		}
		post(PathLogStream, logToken, "["+strings.Join(logs, ",")+"]")
		post(PathEventStream, "Bearer "+eventToken, "["+strings.Join(evs, ",")+"]")
	}
	if after := series(); after != before+1 {
		t.Fatalf("ignored_events_total has %d series after %d invented types (was %d): want only an \"other\" series added for the Event Streams receiver", after, 2*n, before)
	}
	if got := testutil.ToFloat64(m.ignored.WithLabelValues(receiverLogStream, "other")); got != n+1 {
		t.Fatalf("log stream other = %v, want %d", got, n+1)
	}
}

func TestEventStreamTestDeliveryIsAcknowledgedNeverPublished(t *testing.T) {
	// Auth0's "send a test event" delivers a user.created marked with the
	// CloudEvents extension a0purpose "test": 202, counted, nothing stored.
	h := newHarness(t)
	before := h.stored()
	body := `{"specversion":"1.0","id":"evt_test1","type":"user.created","source":"urn:auth0:acme","a0purpose":"test","time":"2026-11-30T10:00:00.000Z",` +
		`"data":{"object":{"user_id":"google-oauth2|999","email":"test@example.com","email_verified":true,"identities":[{"provider":"google-oauth2","connection":"google-oauth2","user_id":"999","isSocial":true}]}}}`
	for _, b := range []string{body, "[" + body + "]"} {
		res := h.post(PathEventStream, bearer("Bearer "+eventToken), []byte(b))
		if res.status != http.StatusAccepted {
			t.Fatalf("test delivery: %d %s", res.status, res.body)
		}
	}
	if got := h.stored(); got != before {
		t.Fatalf("a test delivery was published: %d messages stored, want %d", got, before)
	}
	if !strings.Contains(h.logs.String(), "test delivery acknowledged") {
		t.Fatalf("test delivery not logged:\n%s", h.logs.String())
	}
	// The same event without the marker is a signup.
	res := h.post(PathEventStream, bearer("Bearer "+eventToken), []byte(strings.Replace(body, `"a0purpose":"test",`, "", 1)))
	if res.status != http.StatusAccepted || h.stored() != before+1 {
		t.Fatalf("real user.created: %d %s, stored %d", res.status, res.body, h.stored()-before)
	}
}

package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signupsync/signupsync/events"
)

// logFixtures is the Log Streams conformance corpus: payloads reconstructed
// from Auth0's documentation, each with a <name>.source.txt naming the page.
const logFixtures = "../../testdata/auth0/logstreams"

// ssEntry is a valid ss entry for user (provider|id).
func ssEntry(logID, user string) string {
	provider, _, _ := strings.Cut(user, "|")
	return fmt.Sprintf(`{"log_id":"%s","data":{"type":"ss","date":"2026-03-01T10:00:00.000Z","connection":"%[3]s","strategy":"%[3]s","strategy_type":"social","user_id":"%[2]s","user_name":"someone@example.com"}}`, logID, user, provider)
}

// loginEntry is an s (or scoa, ...) entry for user with the given details.
func loginEntry(typ, logID, user, details string) string {
	provider, _, _ := strings.Cut(user, "|")
	return fmt.Sprintf(`{"log_id":"%s","data":{"type":"%s","date":"2026-03-01T10:00:00.000Z","connection":"%[4]s","strategy":"%[4]s","user_id":"%[3]s","user_name":"someone@example.com","details":%[5]s}}`, logID, typ, user, provider, details)
}

func logBatchBody(entries ...string) []byte { return []byte("[" + strings.Join(entries, ",") + "]") }

// lastLogSignup decodes the newest signups.v1.log_stream message.
func (h *harness) lastLogSignup() events.Signup {
	h.t.Helper()
	ctx := context.Background()
	st, err := h.js.Stream(ctx, events.StreamSignups)
	if err != nil {
		h.t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, events.Subject(events.SourceLogStream))
	if err != nil {
		h.t.Fatal(err)
	}
	ev, err := events.Decode(msg.Data)
	if err != nil {
		h.t.Fatal(err)
	}
	return ev
}

func TestLogStreamConformanceFixtures(t *testing.T) {
	tests := map[string]struct {
		signups, ignored int
		user             string // the signup's user_id prefix, when one
		social           bool
	}{
		"ss-database-signup.json":     {1, 0, "auth0|65f1", false},
		"s-first-login-social.json":   {1, 0, "google-oauth2|", true},
		"s-returning-login.json":      {0, 1, "", false},
		"batch-long-type-codes.jsonl": {1, 5, "auth0|65f1", false},
		"batch-over-64kib.json":       {1, 59, "auth0|65f1", false},
	}
	files, err := filepath.Glob(filepath.Join(logFixtures, "*.json*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s: %v", logFixtures, err)
	}
	h := newHarness(t)
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			tt, ok := tests[name]
			if !ok {
				t.Fatalf("fixture %s has no expectation in this table", name)
			}
			delete(tests, name)
			if src, err := os.ReadFile(strings.TrimSuffix(file, filepath.Ext(file)) + ".source.txt"); err != nil || !bytes.Contains(src, []byte("https://auth0.com/docs/")) {
				t.Fatalf("fixture %s names no Auth0 documentation page in its .source.txt: %v", name, err)
			}
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			before := h.stored()
			res := h.post(PathLogStream, bearer(logToken), body)
			if res.status != http.StatusAccepted {
				t.Fatalf("status %d, body %v", res.status, res.body)
			}
			if got := len(res.body["signups"].([]any)); got != tt.signups || res.body["ignored"].(float64) != float64(tt.ignored) {
				t.Fatalf("body %v, want %d signups and %d ignored", res.body, tt.signups, tt.ignored)
			}
			if got := h.stored() - before; got != uint64(tt.signups) {
				t.Fatalf("stored %d, want %d", got, tt.signups)
			}
			if tt.signups == 0 {
				return
			}
			ev := h.lastLogSignup()
			if !ev.Data.Partial || !strings.HasPrefix(ev.Subject, tt.user) || len(ev.Data.Identities) != 1 || ev.Data.Identities[0].IsSocial != tt.social {
				t.Fatalf("event %+v", ev.Data)
			}
		})
	}
	for name := range tests {
		t.Errorf("fixture %s is missing from %s", name, logFixtures)
	}
}

func TestLogStreamLongTypeCodeDoesNotRefuseTheBatch(t *testing.T) {
	// Auth0 documents type codes longer than the old 32-character bound;
	// one of them beside an ss refused the batch and lost the signup.
	h := newHarness(t)
	long := strings.Repeat("x", 300)
	body := logBatchBody(
		`{"log_id":"1","data":{"type":"oidc_backchannel_logout_succeeded"}}`,
		`{"log_id":"2","data":{"type":"my_account_authentication_method_succeeded","user_id":"auth0|1"}}`,
		`{"log_id":"3","data":{"type":"`+long+`","whatever":[1,2,{"x":null}]}}`,
		ssEntry("4", "github|4001"),
	)
	res := h.post(PathLogStream, bearer(logToken), body)
	if res.status != http.StatusAccepted || len(res.body["signups"].([]any)) != 1 || res.body["ignored"].(float64) != 3 {
		t.Fatalf("status %d body %v", res.status, res.body)
	}
	if h.stored() != 1 || h.deadLetters() != 0 || h.lastLogSignup().Subject != "github|4001" {
		t.Fatalf("stored %d, dead letters %d", h.stored(), h.deadLetters())
	}
	for label, want := range map[string]float64{"oidc_backchannel_logout_succeeded": 1, "my_account_authentication_method_succeeded": 1, "other": 1} {
		if got := testutil.ToFloat64(h.metrics.ignored.WithLabelValues(receiverLogStream, label)); got != want {
			t.Errorf("ignored{type=%q} = %v, want %v", label, got, want)
		}
	}
}

// realisticBatch is the over-64-KiB fixture's ignored entries repeated
// until the batch holds at least size bytes, with one ss for user.
func realisticBatch(t *testing.T, size int, user string) (array, lines []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(logFixtures, "batch-over-64kib.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fixture []json.RawMessage
	if err := json.Unmarshal(raw, &fixture); err != nil {
		t.Fatal(err)
	}
	entries := []string{ssEntry("ss-1", user)}
	n := len(entries[0])
	for i := 0; n < size; i++ {
		e := string(fixture[i%len(fixture)])
		if strings.Contains(e, `"type":"ss"`) {
			continue
		}
		entries = append(entries, e)
		n += len(e) + 1
	}
	// The ss in the middle, as in the reported batch.
	mid := len(entries) / 2
	entries[0], entries[mid] = entries[mid], entries[0]
	return logBatchBody(entries...), []byte(strings.Join(entries, "\n") + "\n")
}

func TestLogStreamBatchOver77KBIsAccepted(t *testing.T) {
	// 51 typical entries made 77 KB and got 413 under the 64 KiB limit.
	h := newHarness(t)
	array, lines := realisticBatch(t, 80_000, "google-oauth2|5001")
	if len(array) < 77_000 {
		t.Fatalf("batch is %d bytes", len(array))
	}
	for _, tt := range []struct {
		name, media string
		body        []byte
	}{{"json array", "application/json", array}, {"json lines", "application/x-ndjson", lines}} {
		t.Run(tt.name, func(t *testing.T) {
			hd := bearer(logToken)
			hd.Set("Content-Type", tt.media)
			res := h.post(PathLogStream, hd, tt.body)
			if res.status != http.StatusAccepted || len(res.body["signups"].([]any)) != 1 {
				t.Fatalf("%d-byte batch: status %d body %v", len(tt.body), res.status, res.body)
			}
			if h.stored() != 1 || h.lastLogSignup().Subject != "google-oauth2|5001" {
				t.Fatalf("stored %d", h.stored())
			}
		})
	}
}

func TestInvalidSignupEntryIsDeadLetteredNotTheBatch(t *testing.T) {
	h := newHarness(t)
	invalid := []struct{ entry, field string }{
		{`{"log_id":"b1","data":{"type":"ss","user_id":"no-pipe","user_name":"victim@example.com"}}`, "/data/user_id"},
		{`{"log_id":"b2","data":{"type":"ss","user_id":"github|6002","user_name":"` + strings.Repeat("n", 600) + `"}}`, "/data/user_name"},
		{`{"log_id":"b3","data":{"type":"ss","user_id":"auth0|6003","strategy":"google-oauth2","user_name":"x@example.com"}}`, "/data/user_id"},
		{loginEntry("s", "b4", "", `{"stats":{"loginsCount":1}}`), "/data/user_id"},
	}
	entries := []string{
		ssEntry("g1", "github|6101"),
		invalid[0].entry,
		`{"log_id":"i1","data":{"type":"seacft"}}`,
		invalid[1].entry,
		loginEntry("s", "g2", "google-oauth2|6102", `{"stats":{"loginsCount":1}}`),
		invalid[2].entry,
		`{"log_id":"i2","data":{"type":"s","user_id":"github|6103","details":{"stats":{"loginsCount":9}}}}`,
		invalid[3].entry,
		ssEntry("g3", "github|6104"),
	}
	body := logBatchBody(entries...)
	for round := 1; round <= 2; round++ {
		// The second round is Auth0 retrying the batch: the duplicate
		// windows keep one copy of everything.
		res := h.post(PathLogStream, bearer(logToken), body)
		if res.status != http.StatusAccepted {
			t.Fatalf("round %d: status %d body %v", round, res.status, res.body)
		}
		signups, ignored, dead := len(res.body["signups"].([]any)), int(res.body["ignored"].(float64)), int(res.body["dead_lettered"].(float64))
		if signups != 3 || dead != len(invalid) || ignored != 2 || signups+ignored+dead != len(entries) {
			t.Fatalf("round %d: %d signups, %d ignored, %d dead-lettered of %d entries", round, signups, ignored, dead, len(entries))
		}
		if h.stored() != 3 || h.deadLetters() != uint64(len(invalid)) {
			t.Fatalf("round %d: SIGNUPS holds %d (want 3), SIGNUPS_DLQ %d (want %d)", round, h.stored(), h.deadLetters(), len(invalid))
		}
	}
	ctx := context.Background()
	st, err := h.js.Stream(ctx, events.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range invalid {
		m, err := st.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "dlq.signups.v1.log_stream" || string(m.Data) != want.entry {
			t.Fatalf("dead letter %d: subject %s data %s, want the raw entry %s", i+1, m.Subject, m.Data, want.entry)
		}
		hd := m.Header
		if hd.Get(events.HeaderDLQReason) != events.ReasonInvalidEntry || !strings.HasPrefix(hd.Get(events.HeaderDLQError), want.field+" ") ||
			hd.Get(events.HeaderSource) != string(events.SourceLogStream) || hd.Get(events.HeaderDLQFailedAt) == "" {
			t.Fatalf("dead letter %d headers %v, want reason %s and field %s", i+1, hd, events.ReasonInvalidEntry, want.field)
		}
		for k, v := range hd {
			if strings.Contains(strings.Join(v, " "), "@example.com") || strings.Contains(strings.Join(v, " "), "no-pipe") {
				t.Fatalf("dead letter %d header %s echoes the entry: %v", i+1, k, v)
			}
		}
	}
	if got := testutil.ToFloat64(h.metrics.dead.WithLabelValues(receiverLogStream, events.ReasonInvalidEntry)); got != float64(2*len(invalid)) {
		t.Fatalf("dead_letters_total = %v, want %d (each acknowledged write)", got, 2*len(invalid))
	}
	if strings.Contains(h.logs.String(), "victim@example.com") {
		t.Fatal("logs contain an email address")
	}
}

func TestDeadLetterWriteFailureAnswers503(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if err := h.js.DeleteStream(ctx, events.StreamDeadLetter); err != nil {
		t.Fatal(err)
	}
	body := logBatchBody(ssEntry("g1", "github|7001"), `{"log_id":"b1","data":{"type":"ss","user_id":"no-pipe"}}`)
	res := h.post(PathLogStream, bearer(logToken), body)
	if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" {
		t.Fatalf("status %d (Retry-After %q) with SIGNUPS_DLQ gone, want 503 and Retry-After; body %v", res.status, res.header.Get("Retry-After"), res.body)
	}
}

func TestLogStreamFirstLoginIsAPartialSignup(t *testing.T) {
	h := newHarness(t)
	prompt := func(count string) string {
		return `{"name":"federated-authenticate","stats":{"loginsCount":` + count + `}}`
	}
	tests := []struct {
		name, typ, user, details string
		signup                   bool
	}{
		{"s, count in details.stats", "s", "google-oauth2|8001", `{"stats":{"loginsCount":1}}`, true},
		{"s, count in a prompt (Auth0's schema)", "s", "github|8002", `{"prompts":[{"name":"login"},` + prompt("1") + `]}`, true},
		{"s, both", "s", "apple|8003", `{"stats":{"loginsCount":1},"prompts":[` + prompt("1") + `]}`, true},
		{"scoa, first cross-origin login", "scoa", "facebook|8004", `{"prompts":[` + prompt("1") + `]}`, true},
		{"s, database connection", "s", "auth0|8005", `{"stats":{"loginsCount":1}}`, true},
		{"s, null count beside 1", "s", "github|8006", `{"stats":{"loginsCount":null},"prompts":[` + prompt("1") + `]}`, true},
		{"s, second login", "s", "google-oauth2|8101", `{"stats":{"loginsCount":2}}`, false},
		{"s, fifth login", "s", "google-oauth2|8102", `{"prompts":[` + prompt("5") + `]}`, false},
		{"s, counts disagree", "s", "google-oauth2|8103", `{"stats":{"loginsCount":1},"prompts":[` + prompt("3") + `]}`, false},
		{"s, null count only", "s", "google-oauth2|8104", `{"stats":{"loginsCount":null}}`, false},
		{"s, count as a string", "s", "google-oauth2|8105", `{"stats":{"loginsCount":"1"}}`, false},
		{"s, no details", "s", "google-oauth2|8106", `{}`, false},
		{"ssa, silent auth", "ssa", "google-oauth2|8107", `{"stats":{"loginsCount":1}}`, false},
		{"f, failed login", "f", "google-oauth2|8108", `{"stats":{"loginsCount":1}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.stored()
			res := h.post(PathLogStream, bearer(logToken), logBatchBody(loginEntry(tt.typ, "l1", tt.user, tt.details)))
			if res.status != http.StatusAccepted {
				t.Fatalf("status %d body %v", res.status, res.body)
			}
			published := h.stored() - before
			if !tt.signup {
				if published != 0 || res.body["ignored"].(float64) != 1 {
					t.Fatalf("a returning login was published (%d) or not counted (%v)", published, res.body)
				}
				return
			}
			if published != 1 {
				t.Fatalf("published %d, want 1 (body %v)", published, res.body)
			}
			ev := h.lastLogSignup()
			provider, raw, _ := strings.Cut(tt.user, "|")
			if ev.Subject != tt.user || !ev.Data.Partial || ev.Data.Trigger != "log:"+tt.typ ||
				len(ev.Data.Identities) != 1 || ev.Data.Identities[0].Provider != provider || ev.Data.Identities[0].UserID != raw {
				t.Fatalf("event %+v", ev.Data)
			}
		})
	}
}

// endless is an unbounded body: a JSON array of small ignored entries that
// never ends. It counts the bytes read from it.
type endless struct {
	n       atomic.Int64
	started bool
	pending []byte
}

func (e *endless) Read(p []byte) (int, error) {
	if !e.started {
		e.started, e.pending = true, []byte("[")
	}
	total := 0
	for total < len(p) {
		if len(e.pending) == 0 {
			e.pending = []byte(`{"log_id":"x","data":{"type":"s","description":"` + strings.Repeat("d", 200) + `","details":{"stats":{"loginsCount":4}}}},`)
		}
		c := copy(p[total:], e.pending)
		e.pending, total = e.pending[c:], total+c
	}
	e.n.Add(int64(total))
	return total, nil
}

// hugeEntry is one entry whose string runs for size bytes, never closed in
// time: a hostile sender.
type hugeEntry struct {
	n    atomic.Int64
	size int64
}

func (h *hugeEntry) Read(p []byte) (int, error) {
	sent := h.n.Load()
	if sent >= h.size {
		return 0, io.EOF
	}
	for i := range p {
		p[i] = 'x'
	}
	if sent == 0 {
		copy(p, `[{"data":{"type":"ss","pad":"`)
	}
	n := int64(len(p))
	if rest := h.size - sent; n > rest {
		n = rest
	}
	h.n.Add(n)
	return int(n), nil
}

func TestLogStreamBodyFarOverTheLimitIsRefusedUnread(t *testing.T) {
	const limit = 1 << 20
	h := newHarnessWith(t, func(c *Config) { c.LogStreamBodyLimit = limit })
	t.Run("chunked, no length", func(t *testing.T) {
		body := &endless{}
		res := h.do(http.MethodPost, PathLogStream, bearer(logToken), body, -1)
		if res.status != http.StatusRequestEntityTooLarge || !strings.Contains(res.body["message"].(string), "1048576") {
			t.Fatalf("status %d body %v", res.status, res.body)
		}
		// What the server read is the limit; what the client pushed beyond
		// it sits in socket buffers until the server hangs up.
		read := body.n.Load()
		if read > 16*limit {
			t.Fatalf("%d bytes of an endless body consumed, want about the %d-byte limit", read, limit)
		}
		t.Logf("%d bytes of an endless body consumed under a %d-byte limit", read, limit)
	})
	t.Run("declared length", func(t *testing.T) {
		body := &endless{}
		res := h.do(http.MethodPost, PathLogStream, bearer(logToken), body, 1<<40)
		if res.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d body %v", res.status, res.body)
		}
		if read := body.n.Load(); read > 16*limit {
			t.Fatalf("%d bytes read of a body declared 1 TiB", read)
		}
	})
	if h.stored() != 0 || h.deadLetters() != 0 {
		t.Fatal("a refused batch was stored")
	}
}

func TestLogStreamHostileEntryIsRefusedQuickly(t *testing.T) {
	h := newHarness(t)
	tiny := strings.Repeat(`{"data":{"type":"s"}},`, maxLogEntries)
	tests := []struct {
		name string
		body io.Reader
		cl   int64
		want int
	}{
		{"10 MB entry, chunked", &hugeEntry{size: 10 << 20}, -1, http.StatusRequestEntityTooLarge},
		{"10 MB entry, declared", &hugeEntry{size: 10 << 20}, 10 << 20, http.StatusRequestEntityTooLarge},
		{"entry just over 64 KiB", strings.NewReader(`[{"data":{"type":"s","pad":"` + strings.Repeat("x", maxLogEntry) + `"}}]`), 0, http.StatusRequestEntityTooLarge},
		{"more entries than the batch bound", strings.NewReader("[" + tiny + `{"data":{"type":"s"}}]`), 0, http.StatusRequestEntityTooLarge},
		{"nesting past the depth bound", strings.NewReader(`[{"data":` + strings.Repeat(`[`, 100_000)), 0, http.StatusBadRequest},
		{"unterminated string", strings.NewReader(`[{"data":{"type":"ss","user_id":"github|1}}]`), 0, http.StatusBadRequest},
		{"no newline between entries", strings.NewReader(`{"data":{"type":"s"}} {"data":{"type":"s"}}`), 0, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res := h.do(http.MethodPost, PathLogStream, bearer(logToken), tt.body, tt.cl)
			if res.status != tt.want {
				t.Fatalf("status %d, want %d (%v)", res.status, tt.want, res.body)
			}
			if he, ok := tt.body.(*hugeEntry); ok {
				if he.n.Load() > 4<<20 {
					t.Fatalf("%d bytes of a 10 MB entry consumed", he.n.Load())
				}
				t.Logf("%d bytes of a 10 MB entry consumed in %s", he.n.Load(), time.Since(start))
			}
			// A guard against reading everything, not a performance bound.
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
	if h.stored() != 0 || h.deadLetters() != 0 {
		t.Fatal("a refused batch was stored")
	}
}

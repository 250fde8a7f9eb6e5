package passwords

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
)

// hashOf is a cost-4 bcrypt hash with the variant's prefix.
func hashOf(t *testing.T, pw, variant string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return "$" + variant + string(h[3:])
}

// hashLine is one line of Auth0's export, as published by teams who
// received one.
func hashLine(oid, altID, email, hash string) string {
	m := map[string]any{
		"_id": map[string]string{"$oid": oid}, "email": email, "email_verified": true, "passwordHash": hash,
		"password_set_date": map[string]string{"$date": "2021-03-05T16:31:00.555Z"}, "tenant": "acme",
		"connection": "Username-Password-Authentication", "_tmp_is_unique": true,
	}
	if altID != "" {
		m["alt_id"] = altID
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func oid(i int) string { return fmt.Sprintf("65f0%020x", i) }

// usersLine is a line of an Auth0 users export.
func usersLine(userID, email, provider string, social bool) string {
	raw := strings.TrimPrefix(userID, provider+"|")
	b, _ := json.Marshal(map[string]any{
		"user_id": userID, "email": email, "email_verified": true, "name": "N " + raw, "created_at": "2024-01-01T00:00:00.000Z",
		"identities": []map[string]any{{"provider": provider, "connection": "c", "user_id": raw, "isSocial": social}},
	})
	return string(b)
}

func writeFile(t *testing.T, name string, lines []string, gz bool) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	body := strings.Join(lines, "\n") + "\n"
	if gz {
		zw := gzip.NewWriter(f)
		if _, err := zw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := f.WriteString(body); err != nil {
		t.Fatal(err)
	}
	return p
}

type fixture struct {
	js     jetstream.JetStream
	state  jetstream.KeyValue
	ledger jetstream.KeyValue
	logs   *testenv.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	testenv.Ensure(t, js)
	ctx := context.Background()
	state, err := js.KeyValue(ctx, events.BucketState)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{js: js, state: state, ledger: ledger, logs: &testenv.Buffer{}}
}

func (f *fixture) deps() Deps {
	return Deps{Publisher: f.js, State: f.state, Ledger: f.ledger, Logger: slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Progress: f.logs}
}

// stored returns the user ids in PASSWORDS, with how often each is there.
func (f *fixture) stored(t *testing.T) map[string]int {
	t.Helper()
	ctx := context.Background()
	st, err := f.js.Stream(ctx, events.StreamPasswords)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		p, err := events.DecodePasswordImport(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		out[p.User.UserID]++
	}
	return out
}

func (f *fixture) seedLedger(t *testing.T, userID string, o events.Outcome, reason string) {
	t.Helper()
	b, _ := events.MarshalLedger(events.LedgerEntry{Auth0UserID: userID, Outcome: o, Reason: reason})
	if _, err := f.ledger.Put(context.Background(), events.LedgerKey(userID), b); err != nil {
		t.Fatal(err)
	}
}

// TestHashExportLinesAreValidatedJoinedAndPublishedOnce: $2a$ and $2b$
// lines, with and without alt_id, are joined to the users export and
// published once each; malformed lines are reported by number and do not
// stop the run; users missing from the export, or not database users, are
// not published; a second run is refused as complete and a --restart run
// stores nothing twice; no hash reaches the logs.
func TestHashExportLinesAreValidatedJoinedAndPublishedOnce(t *testing.T) {
	f := newFixture(t)
	h2a, h2b, h3, h4 := hashOf(t, "a", "2a"), hashOf(t, "b", "2b"), hashOf(t, "c", "2b"), hashOf(t, "d", "2a")
	lines := []string{
		hashLine(oid(1), "", "ada@example.com", h2a),               // 1
		hashLine(oid(2), "legacy-42", "bob@example.com", h2b),      // 2: auth0|legacy-42
		`{"_id":{"$oid":"nope"},"passwordHash":"` + h3 + `"}`,      // 3: bad oid
		hashLine(oid(4), "", "dee@example.com", "$2b$10$tooshort"), // 4: not bcrypt
		`{not json`, // 5
		"",          // blank, not counted
		hashLine(oid(7), "", "gone@example.com", h3),   // 7: not in the users export
		hashLine(oid(8), "", "social@example.com", h4), // 8: the users export says social
		hashLine(oid(9), "", "cy@example.com", h3),     // 9
	}
	// User 8 has linked a Google identity: not a database-only user.
	users := writeFile(t, "users.json", []string{
		usersLine("auth0|"+oid(1), "ada@example.com", "auth0", false),
		usersLine("auth0|legacy-42", "bob@example.com", "auth0", false),
		`{"user_id":"auth0|` + oid(8) + `","email":"social@example.com","identities":[{"provider":"auth0","user_id":"` + oid(8) + `","connection":"c"},{"provider":"google-oauth2","user_id":"9","isSocial":true}]}`,
		usersLine("auth0|"+oid(9), "cy@example.com", "auth0", false),
	}, false)
	file := writeFile(t, "hashes.json.gz", lines, true)
	cfg := DefaultConfig()
	cfg.File, cfg.UsersFile = file, users
	counts, err := Run(context.Background(), cfg, f.deps())
	if err != nil {
		t.Fatal(err)
	}
	if counts.Lines != 8 || counts.Malformed != 3 || fmt.Sprint(counts.MalformedLines) != "[3 4 5]" || counts.Unjoined != 1 ||
		fmt.Sprint(counts.UnjoinedLines) != "[7]" || counts.Published != 3 || counts.Joined[JoinUsersFile] != 3 ||
		counts.Skipped[events.ReasonLinkedIdentities] != 1 || counts.Hashes["2a"] != 2 || counts.Hashes["2b"] != 3 || !counts.Complete {
		t.Fatalf("counts %s %v %v", counts.Summary(), counts.MalformedLines, counts.UnjoinedLines)
	}
	want := map[string]int{"auth0|" + oid(1): 1, "auth0|legacy-42": 1, "auth0|" + oid(9): 1}
	if got := f.stored(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stored %v, want %v", got, want)
	}

	if _, err := Run(context.Background(), cfg, f.deps()); !errors.Is(err, ErrAlreadyComplete) {
		t.Fatalf("second run: %v, want ErrAlreadyComplete", err)
	}
	cfg.Restart = true
	again, err := Run(context.Background(), cfg, f.deps())
	if err != nil || again.Published != 3 || again.Duplicates != 3 {
		t.Fatalf("restart: %v %s", err, again.Summary())
	}
	if got := f.stored(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after restart stored %v, want %v", got, want)
	}
	logs := f.logs.String()
	for _, h := range []string{h2a, h2b, h3, h4, "$2b$10$tooshort"} {
		if strings.Contains(logs, h) || strings.Contains(logs, h[7:]) {
			t.Errorf("a hash is in the logs:\n%s", logs)
		}
	}
	if !strings.Contains(logs, `"line":3`) || !strings.Contains(logs, `"line":7`) {
		t.Errorf("malformed and unjoined lines not logged by number:\n%s", logs)
	}
}

// TestWithoutUsersExportTheLedgerJoinsAndDryRunCounts: without a users
// export, a line is joined when the ledger knows its user (as a partial
// profile from the line), not published when the ledger holds the user as
// imported; a dry run counts the same and publishes nothing.
func TestWithoutUsersExportTheLedgerJoinsAndDryRunCounts(t *testing.T) {
	f := newFixture(t)
	f.seedLedger(t, "auth0|"+oid(1), events.OutcomeSkipped, events.ReasonDatabaseConnection)
	f.seedLedger(t, "auth0|"+oid(2), events.OutcomeImported, events.ReasonLazyPassword)
	file := writeFile(t, "hashes.json", []string{
		hashLine(oid(1), "", "ada@example.com", hashOf(t, "a", "2a")),
		hashLine(oid(2), "", "lazy@example.com", hashOf(t, "b", "2b")),
		hashLine(oid(3), "", "unknown@example.com", hashOf(t, "c", "2b")),
		`{"_id":{"$oid":"` + oid(4) + `"}}`,
	}, false)
	cfg := DefaultConfig()
	cfg.File, cfg.DryRun = file, true
	dry, err := Run(context.Background(), cfg, f.deps())
	if err != nil {
		t.Fatal(err)
	}
	if dry.Lines != 4 || dry.Malformed != 1 || dry.Joined[JoinLedger] != 1 || dry.Skipped[SkipImported] != 1 || dry.Unjoined != 1 || dry.Published != 0 {
		t.Fatalf("dry run %s", dry.Summary())
	}
	if got := f.stored(t); len(got) != 0 {
		t.Fatalf("a dry run published %v", got)
	}
	if _, err := f.state.Get(context.Background(), checkpointKey(mustAbs(t, file))); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("a dry run wrote a checkpoint: %v", err)
	}
	cfg.DryRun = false
	counts, err := Run(context.Background(), cfg, f.deps())
	if err != nil || counts.Published != 1 {
		t.Fatalf("run: %v %s", err, counts.Summary())
	}
	ctx := context.Background()
	st, _ := f.js.Stream(ctx, events.StreamPasswords)
	m, err := st.GetLastMsgForSubject(ctx, events.PasswordSubject)
	if err != nil {
		t.Fatal(err)
	}
	p, err := events.DecodePasswordImport(m.Data)
	if err != nil || !p.User.Partial || p.Joined != JoinLedger || p.User.Email != "ada@example.com" || events.Classify(p.User, nil).Reason != events.ReasonDatabaseConnection {
		t.Fatalf("published %+v %v", p.User, err)
	}
	if m.Header.Get(events.HeaderMsgID) != events.PasswordMsgID("auth0|"+oid(1)) {
		t.Fatalf("msg id %q", m.Header.Get(events.HeaderMsgID))
	}
}

// TestJoinAuth0PublishesUnknownUsersAsPartial: with JoinAuth0, a line
// neither the users file nor the ledger knows is published as a partial
// signup (the importer reads it from the Management API); the ledger's
// imported users are still left out.
func TestJoinAuth0PublishesUnknownUsersAsPartial(t *testing.T) {
	f := newFixture(t)
	f.seedLedger(t, "auth0|"+oid(2), events.OutcomeImported, events.ReasonLazyPassword)
	file := writeFile(t, "hashes.json", []string{
		hashLine(oid(2), "", "lazy@example.com", hashOf(t, "b", "2b")),
		hashLine(oid(3), "", "unknown@example.com", hashOf(t, "c", "2a")),
	}, false)
	cfg := DefaultConfig()
	cfg.File, cfg.JoinAuth0 = file, true
	counts, err := Run(context.Background(), cfg, f.deps())
	if err != nil || counts.Published != 1 || counts.Unjoined != 0 || counts.Joined[JoinAuth0] != 1 || counts.Skipped[SkipImported] != 1 {
		t.Fatalf("run: %v %s", err, counts.Summary())
	}
	ctx := context.Background()
	st, _ := f.js.Stream(ctx, events.StreamPasswords)
	m, err := st.GetLastMsgForSubject(ctx, events.PasswordSubject)
	if err != nil {
		t.Fatal(err)
	}
	p, err := events.DecodePasswordImport(m.Data)
	if err != nil || !p.User.Partial || p.Joined != JoinAuth0 || p.User.UserID != "auth0|"+oid(3) {
		t.Fatalf("published %+v %v", p, err)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// cancelAfter cancels a run's context after n publishes, as a Ctrl-C would.
type cancelAfter struct {
	Publisher
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if c.n--; c.n == 0 {
		c.cancel()
	}
	return c.Publisher.PublishMsgAsync(m, opts...)
}

// TestInterruptedRunResumesFromItsCheckpoint: a run interrupted half-way
// returns ErrInterrupted; the same command resumes after the checkpoint
// and, together, every user is stored exactly once.
func TestInterruptedRunResumesFromItsCheckpoint(t *testing.T) {
	f := newFixture(t)
	var lines, userLines []string
	h := hashOf(t, "same", "2b")
	for i := range 50 {
		lines = append(lines, hashLine(oid(100+i), "", fmt.Sprintf("u%d@example.com", i), h))
		userLines = append(userLines, usersLine("auth0|"+oid(100+i), fmt.Sprintf("u%d@example.com", i), "auth0", false))
	}
	cfg := DefaultConfig()
	cfg.File, cfg.UsersFile, cfg.CheckpointEvery = writeFile(t, "h.json", lines, false), writeFile(t, "u.json", userLines, false), 7
	ctx, cancel := context.WithCancel(context.Background())
	deps := f.deps()
	deps.Publisher = &cancelAfter{Publisher: f.js, n: 23, cancel: cancel}
	first, err := Run(ctx, cfg, deps)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v", err)
	}
	if first.Published < 14 || first.Published >= 50 {
		t.Fatalf("interrupted run published %d", first.Published)
	}
	second, err := Run(context.Background(), cfg, f.deps())
	if err != nil {
		t.Fatal(err)
	}
	if second.ResumedAt == 0 || second.Lines != 50 || !second.Complete {
		t.Fatalf("resumed run %s resumed_at=%d", second.Summary(), second.ResumedAt)
	}
	got := f.stored(t)
	if len(got) != 50 {
		t.Fatalf("%d users stored, want 50", len(got))
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("%s stored %d times", id, n)
		}
	}
}

// TestParseLineNeverQuotesTheHash: every refusal names the field, never a
// value.
func TestParseLineNeverQuotesTheHash(t *testing.T) {
	secret := "$2b$10$abcdefghijklmnopqrstuv"
	for name, line := range map[string]string{
		"short hash": hashLine(oid(1), "", "a@example.com", secret),
		"type error": `{"_id":{"$oid":"` + oid(1) + `"},"email":"a@example.com","passwordHash":["` + secret + `"]}`,
		"bad oid":    `{"_id":{"$oid":"` + secret + `"}}`,
		"bad alt_id": strings.Replace(hashLine(oid(1), "x|y", "a@example.com", secret), "x|y", secret+"|", 1),
		"bad date":   strings.Replace(hashLine(oid(1), "", "a@example.com", secret), `"2021-03-05T16:31:00.555Z"`, `"`+secret+`"`, 1),
		"no email":   `{"_id":{"$oid":"` + oid(1) + `"},"passwordHash":"` + secret + `"}`,
		"not an obj": `"` + secret + `"`,
	} {
		_, err := ParseLine([]byte(line), false)
		if !errors.Is(err, ErrMalformedLine) || strings.Contains(err.Error(), "abcdefgh") {
			t.Errorf("%s: %v", name, err)
		}
	}
	l, err := ParseLine([]byte(hashLine(oid(5), "", "a@example.com", hashOf(t, "x", "2a"))), false)
	if err != nil || l.UserID() != "auth0|"+oid(5) || l.PasswordSetAt.Year() != 2021 || !l.EmailVerified {
		t.Fatalf("%+v %v", l, err)
	}
}

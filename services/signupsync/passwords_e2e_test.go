package main

import (
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"firebase.google.com/go/v4/auth/hash"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/api/iterator"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/services/importer"
)

// passwordUsers is the size of the generated hash export (5,000, as the
// issue asks for the rate); SIGNUPSYNC_PASSWORDS_USERS overrides it.
func passwordUsers() int {
	if n, err := strconv.Atoi(getenvDefault("SIGNUPSYNC_PASSWORDS_USERS", "5000")); err == nil && n > 0 {
		return n
	}
	return 5000
}

// TestPasswordsCommandImportsEveryHashOnce drives `signupsync passwords`
// through run against an importer on the emulator: a generated hash
// export ($2a$ and $2b$, every tenth user with an alt_id, malformed lines)
// joined to a users export. Every database user ends imported/password_hash
// with the exported hash stored; users whose uid already had an account
// are conflict/account_exists and untouched; a second run is refused as
// complete and a --restart run changes nothing; no hash appears in the
// command's or the importer's logs. It logs the end-to-end rate and its
// ratio to raw ImportUsers of the same users with their hashes.
func TestPasswordsCommandImportsEveryHashOnce(t *testing.T) {
	n := passwordUsers()
	nts := testenv.StartNATS(t)
	_, js := nts.Connect()
	testenv.Ensure(t, js)
	ctx := context.Background()
	fb := testenv.FirebaseAuth(t, testenv.ProjectID(t))

	// 64 distinct hashes, half $2a$, half $2b$, cycled over the users.
	var hashes []string
	for i := range 64 {
		h, err := bcrypt.GenerateFromPassword([]byte(fmt.Sprint("pw", i)), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, "$"+[]string{"2a", "2b"}[i%2]+string(h[3:]))
	}
	type user struct{ id, email, hash string }
	var users []user
	var hashLines, userLines []string
	for i := range n {
		oid := fmt.Sprintf("65f1%020x", i)
		m := map[string]any{"_id": map[string]string{"$oid": oid}, "email": fmt.Sprintf("db%d@example.com", i), "email_verified": i%3 != 0,
			"passwordHash": hashes[i%len(hashes)], "password_set_date": map[string]string{"$date": "2022-01-01T00:00:00.000Z"},
			"tenant": "acme", "connection": "Username-Password-Authentication", "_tmp_is_unique": true}
		raw := oid
		if i%10 == 9 {
			raw = fmt.Sprintf("legacy-%d", i)
			m["alt_id"] = raw
		}
		b, _ := json.Marshal(m)
		hashLines = append(hashLines, string(b))
		if i%1000 == 500 {
			hashLines = append(hashLines, `{"_id":{"$oid":"`+oid+`"},"passwordHash":"$2b$10$broken"}`, `{broken`)
		}
		u := user{id: "auth0|" + raw, email: fmt.Sprintf("db%d@example.com", i), hash: hashes[i%len(hashes)]}
		users = append(users, u)
		ub, _ := json.Marshal(map[string]any{"user_id": u.id, "email": u.email, "email_verified": i%3 != 0, "name": "Db " + raw,
			"created_at": "2021-06-01T00:00:00.000Z", "identities": []map[string]any{{"provider": "auth0", "connection": "Username-Password-Authentication", "user_id": raw, "isSocial": false}}})
		userLines = append(userLines, string(ub))
	}
	dir := t.TempDir()
	hashFile, usersFile := filepath.Join(dir, "hashes.json.gz"), filepath.Join(dir, "users.json")
	writeGz(t, hashFile, hashLines)
	if err := os.WriteFile(usersFile, []byte(strings.Join(userLines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	malformed := 2 * ((n + 499) / 1000)

	// Accounts that exist already under three users' uids.
	existing := map[string]bool{}
	for _, i := range []int{1, 2, 3} {
		if _, err := fb.CreateUser(ctx, (&auth.UserToCreate{}).UID(users[i].id).DisplayName("app account")); err != nil {
			t.Fatal(err)
		}
		existing[users[i].id] = true
	}

	// Raw ImportUsers of the same users with their hashes, in a project
	// of its own, for the ratio.
	rawFB := testenv.FirebaseAuth(t, testenv.ProjectID(t))
	rawStart := time.Now()
	for b := 0; b < n; b += 1000 {
		var batch []*auth.UserToImport
		for _, u := range users[b:min(b+1000, n)] {
			batch = append(batch, (&auth.UserToImport{}).UID(u.id).Email(u.email).EmailVerified(true).PasswordHash([]byte(u.hash)).
				CustomClaims(map[string]any{importer.ClaimAuth0ID: u.id}))
		}
		res, err := rawFB.ImportUsers(ctx, batch, auth.WithHash(hash.Bcrypt{}))
		if err != nil || res.FailureCount > 0 {
			t.Fatalf("raw import: %v %+v", err, res)
		}
	}
	rawRate := float64(n) / time.Since(rawStart).Seconds()

	implogs := &testenv.Buffer{}
	icfg := importer.DefaultConfig()
	icfg.FirebaseRPS = 0
	icfg.Delivery.AckWait = 2 * time.Minute
	imp, err := importer.New(ctx, icfg, importer.Deps{JetStream: js, Accounts: fb, Logger: slog.New(slog.NewJSONHandler(implogs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = imp.Run(runCtx) }()
	defer func() { stop(); <-done }()

	vars := map[string]string{"SIGNUPSYNC_NATS_URL": nts.URL, "SIGNUPSYNC_LOG_LEVEL": "debug"}
	cmdOut := &testenv.Buffer{}
	start := time.Now()
	if err := run(ctx, []string{"passwords", "--file", hashFile, "--users", usersFile}, envFrom(vars), cmdOut, cmdOut); err != nil {
		t.Fatalf("passwords: %v\n%s", err, cmdOut.String())
	}
	published := time.Since(start)
	waitPasswordsDrained(t, js)
	elapsed := time.Since(start)
	if !strings.Contains(cmdOut.String(), fmt.Sprintf("lines=%d malformed=%d unjoined=0 published=%d", n+malformed, malformed, n)) {
		t.Fatalf("summary:\n%s", cmdOut.String())
	}

	check := func(when string) {
		t.Helper()
		got := passwordOutcomes(t, js)
		want := map[string]int{"imported/" + events.ReasonPasswordHash: n - 3, "conflict/" + events.ReasonAccountExists: 3}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: ledger %v, want %v\nimporter logs:\n%.3000s", when, got, want, implogs.String())
		}
		stored := map[string]*auth.ExportedUserRecord{}
		it := fb.Users(ctx, "")
		for {
			u, err := it.Next()
			if err == iterator.Done {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			stored[u.UID] = u
		}
		if len(stored) != n {
			t.Fatalf("%s: %d accounts, want %d", when, len(stored), n)
		}
		for _, u := range users {
			rec := stored[u.id]
			if existing[u.id] {
				if rec.DisplayName != "app account" || rec.PasswordHash != "" {
					t.Fatalf("%s: existing account %s changed: %+v", when, u.id, rec.UserInfo)
				}
				continue
			}
			h, err := base64.URLEncoding.DecodeString(rec.PasswordHash)
			if err != nil || string(h) != u.hash || rec.Email != u.email {
				t.Fatalf("%s: %s stored hash %q email %q; want the exported hash", when, u.id, rec.PasswordHash, rec.Email)
			}
		}
	}
	check("first run")
	rate := float64(n) / elapsed.Seconds()
	t.Logf("passwords of %d users: published in %s, imported in %s → %.0f users/s end to end; raw ImportUsers with hashes %.0f users/s (ratio %.2f)",
		n, published.Round(time.Millisecond), elapsed.Round(time.Millisecond), rate, rawRate, rate/rawRate)

	// The same command again is refused as complete; --restart publishes
	// every user again and nothing changes.
	if err := run(ctx, []string{"passwords", "--file", hashFile, "--users", usersFile}, envFrom(vars), cmdOut, cmdOut); err != nil || !strings.Contains(cmdOut.String(), "already published completely") {
		t.Fatalf("second run: %v", err)
	}
	if err := run(ctx, []string{"passwords", "--file", hashFile, "--users", usersFile, "--restart"}, envFrom(vars), cmdOut, cmdOut); err != nil {
		t.Fatalf("restart: %v", err)
	}
	waitPasswordsDrained(t, js)
	check("after --restart")

	logs := cmdOut.String() + implogs.String()
	for _, h := range hashes {
		if strings.Contains(logs, h[7:]) {
			t.Fatal("a password hash is in the logs")
		}
	}
}

func writeGz(t *testing.T, path string, lines []string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitPasswordsDrained waits until the importer's password consumer has
// acknowledged everything in PASSWORDS.
func waitPasswordsDrained(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	testenv.Eventually(t, "the password consumer drains PASSWORDS", func() bool {
		st, err := js.Stream(ctx, events.StreamPasswords)
		if err != nil {
			return false
		}
		si, err := st.Info(ctx)
		if err != nil {
			return false
		}
		c, err := js.Consumer(ctx, events.StreamPasswords, events.ConsumerPasswords)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0 && info.AckFloor.Stream >= si.State.LastSeq
	})
}

// passwordOutcomes counts ledger entries by outcome/reason.
func passwordOutcomes(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		t.Fatal(err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for k := range lister.Keys() {
		v, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		le, err := events.UnmarshalLedger(v.Value())
		if err != nil {
			t.Fatal(err)
		}
		out[string(le.Outcome)+"/"+le.Reason]++
	}
	return out
}

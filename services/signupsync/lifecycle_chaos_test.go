package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/services/ingest"
)

// lifecyclePlan sizes a lifecycle chaos run: signups, then updates for
// about a third of the users and deletions for a fifth, sent together
// open-loop at rate events per second through ingest's Event Streams
// receiver, with one importer SIGKILL halfway through the sending.
type lifecyclePlan struct {
	signups int
	rate    int
}

// lcEventKind is what one scheduled Event Streams delivery is.
type lcEventKind string

const (
	lcSignup lcEventKind = "user.created"
	lcUpdate lcEventKind = "user.updated"
	lcDelete lcEventKind = "user.deleted"
)

// lcProfile is one state of a user's profile in Auth0.
type lcProfile struct {
	email    string
	verified bool
	name     string
	at       time.Time
}

// lcEvent is one scheduled delivery; before it is sent the Auth0 fake is
// brought to the state the event reports (set, or the user removed).
type lcEvent struct {
	slot int // order of sending; ties keep the order of creation
	seq  int
	kind lcEventKind
	user string
	// at is the event's updated_at or deleted_at.
	at time.Time
	// set is the profile Auth0 holds from this event on (nil: unchanged).
	set *lcProfile
}

// lcUser is what the run expects of one user at the end.
type lcUser struct {
	id       string
	social   bool
	deleted  bool
	newest   lcProfile // the newest profile Auth0 held
	updated  bool      // at least one user.updated was sent
	newestAt time.Time // the newest updated_at sent
}

// lcSchedule builds the users and the order of their events. Per user i
// (signup slot i):
//   - i%10 == 9 is a database user (skipped by the signup path), the rest
//     social users;
//   - i%20 == 2 and 12: user.deleted sent before user.created (delivery
//     order reversed: the deletion must win);
//   - i%20 == 7: user.deleted two slots after the signup (it races the
//     import);
//   - i%20 == 17: user.deleted 300+ slots later (after the import, and
//     after its updates);
//   - i%3 == 1 (not deleted before or right after its signup): a
//     user.updated 150+ slots after the signup; i%9 == 4 sends a newer and
//     then an older update (the older must be ignored), i%9 == 7 an older
//     then a newer one. Auth0's verification state after an update is
//     i%2 == 0 whatever the body says.
func lcSchedule(n int, base time.Time) ([]*lcUser, []lcEvent) {
	var users []*lcUser
	var evs []lcEvent
	seq := 0
	add := func(e lcEvent) {
		e.seq = seq
		seq++
		evs = append(evs, e)
	}
	for i := range n {
		u := &lcUser{social: i%10 != 9}
		if u.social {
			u.id = fmt.Sprintf("%s|%d", []string{"google-oauth2", "github", "apple", "facebook"}[i%4], 800000+i)
		} else {
			u.id = fmt.Sprintf("auth0|lc%d", i)
		}
		users = append(users, u)
		u.newest = lcProfile{email: fmt.Sprintf("lc%d@example.com", i), verified: true, name: fmt.Sprintf("Chaos %d", i), at: base}
		created := u.newest
		delAt := base.Add(time.Hour)
		switch i % 20 {
		case 2, 12:
			u.deleted = true
			add(lcEvent{slot: i, kind: lcDelete, user: u.id, at: delAt})
		}
		add(lcEvent{slot: i, kind: lcSignup, user: u.id, set: &created})
		if i%20 == 7 {
			u.deleted = true
			add(lcEvent{slot: i + 2, kind: lcDelete, user: u.id, at: delAt})
		}
		if i%3 == 1 && !u.deleted {
			u.updated = true
			v := func(k int) *lcProfile {
				return &lcProfile{email: fmt.Sprintf("lc%d.v%d@example.com", i, k), verified: i%2 == 0, name: fmt.Sprintf("Renamed %d v%d", i, k),
					at: base.Add(time.Duration(k) * time.Minute)}
			}
			slot := i + 150 + i%50
			switch i % 9 {
			case 4: // the newer first, then the older: Auth0 holds v2 throughout
				v2 := v(2)
				add(lcEvent{slot: slot, kind: lcUpdate, user: u.id, at: v2.at, set: v2})
				add(lcEvent{slot: slot + 3, kind: lcUpdate, user: u.id, at: v(1).at})
				u.newest, u.newestAt = *v2, v2.at
			case 7: // in order
				v1, v2 := v(1), v(2)
				add(lcEvent{slot: slot, kind: lcUpdate, user: u.id, at: v1.at, set: v1})
				add(lcEvent{slot: slot + 3, kind: lcUpdate, user: u.id, at: v2.at, set: v2})
				u.newest, u.newestAt = *v2, v2.at
			default:
				v1 := v(1)
				add(lcEvent{slot: slot, kind: lcUpdate, user: u.id, at: v1.at, set: v1})
				u.newest, u.newestAt = *v1, v1.at
			}
		}
		if i%20 == 17 {
			u.deleted = true
			add(lcEvent{slot: i + 300 + i%100, kind: lcDelete, user: u.id, at: delAt})
		}
	}
	sort.SliceStable(evs, func(a, b int) bool {
		if evs[a].slot != evs[b].slot {
			return evs[a].slot < evs[b].slot
		}
		return evs[a].seq < evs[b].seq
	})
	return users, evs
}

// fakeLCUser is the Auth0 user id with profile p.
func fakeLCUser(id string, p lcProfile) auth0fake.User {
	provider, raw, _ := strings.Cut(id, "|")
	conn := provider
	if provider == "auth0" {
		conn = "Username-Password-Authentication"
	}
	return auth0fake.User{UserID: id, Email: p.email, EmailVerified: p.verified, Name: p.name, CreatedAt: p.at, UpdatedAt: p.at,
		Identities: []auth0fake.Identity{{Provider: provider, Connection: conn, UserID: raw, IsSocial: provider != "auth0"}}}
}

// lcBody is the Event Streams delivery of e, as Auth0 sends it. A
// user.updated body always claims a verified email: the importer must
// take verification (and the email) from the Management API.
func lcBody(e lcEvent, i int) []byte {
	ts := func(t time.Time) string { return t.UTC().Format(auth0fake.TimeLayout) }
	switch e.kind {
	case lcSignup:
		provider, raw, _ := strings.Cut(e.user, "|")
		conn := provider
		if provider == "auth0" {
			conn = "Username-Password-Authentication"
		}
		return fmt.Appendf(nil, `{"specversion":"1.0","id":"evt_c%[6]d","type":"user.created","source":"urn:auth0:chaos","time":%[7]q,"data":{"object":{"user_id":%[1]q,"email":%[4]q,"email_verified":true,"name":%[5]q,"created_at":%[7]q,"updated_at":%[7]q,"identities":[{"provider":%[2]q,"connection":%[8]q,"user_id":%[3]q,"isSocial":%[9]t}]}}}`,
			e.user, provider, raw, e.set.email, e.set.name, i, ts(e.set.at), conn, provider != "auth0")
	case lcUpdate:
		return fmt.Appendf(nil, `{"specversion":"1.0","id":"evt_u%[2]d","type":"user.updated","source":"urn:auth0:chaos","time":%[3]q,"data":{"object":{"user_id":%[1]q,"email":"body-is-not-trusted@example.com","email_verified":true,"updated_at":%[3]q}}}`,
			e.user, i, ts(e.at))
	default:
		return fmt.Appendf(nil, `{"specversion":"1.0","id":"evt_d%[2]d","type":"user.deleted","source":"urn:auth0:chaos","time":%[3]q,"data":{"object":{"user_id":%[1]q,"deleted_at":%[3]q}}}`,
			e.user, i, ts(e.at))
	}
}

// firebaseCounter stands between the importer processes and the Auth
// emulator and counts, per uid, the calls that change Firebase and that
// Firebase applied: accounts created by batchCreate, accounts named in
// delete and batchDelete calls, updates. It outlives an importer's
// SIGKILL, so a call the killed process made is counted too.
type firebaseCounter struct {
	target string
	host   string // where the importers reach it
	mu     sync.Mutex
	// created lists, per uid, the order (a global call counter) of each
	// successful creation; deleted the same for deletes naming it.
	created map[string][]int
	deleted map[string][]int
	updated map[string]int
	calls   map[string]int
	clock   int
	// repeats describes each uid deleted twice, for the failure message.
	repeats []string
}

func newFirebaseCounter(t *testing.T, emulatorHost string) *firebaseCounter {
	t.Helper()
	c := &firebaseCounter{target: "http://" + emulatorHost, created: map[string][]int{}, deleted: map[string][]int{}, updated: map[string]int{}, calls: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	c.host = ln.Addr().String()
	return c
}

func (c *firebaseCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	// Detached from the caller: an importer killed mid-call cancels r's
	// context, but the emulator may already have applied the call, and the
	// counter must record what the emulator did, not what the caller saw
	// (else a create applied by a killed importer and deleted later reads
	// as "deleted, never created").
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, c.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if res.StatusCode == http.StatusOK {
		c.record(r.URL.Path, body, out)
	}
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(out)
}

// record counts one successful Identity Toolkit call.
func (c *firebaseCounter) record(path string, req, res []byte) {
	op := path[strings.LastIndex(path, "/")+1:]
	var in struct {
		LocalID  string   `json:"localId"`
		LocalIDs []string `json:"localIds"`
		Users    []struct {
			LocalID string `json:"localId"`
		} `json:"users"`
	}
	var out struct {
		Error []struct {
			Index int `json:"index"`
		} `json:"error"`
		Errors []struct {
			Index int `json:"index"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(req, &in)
	_ = json.Unmarshal(res, &out)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[op]++
	c.clock++
	failed := map[int]bool{}
	for _, e := range append(out.Error, out.Errors...) {
		failed[e.Index] = true
	}
	switch op {
	case "accounts:batchCreate":
		for i, u := range in.Users {
			if !failed[i] {
				c.created[u.LocalID] = append(c.created[u.LocalID], c.clock)
			}
		}
	case "accounts:delete":
		c.deleted[in.LocalID] = append(c.deleted[in.LocalID], c.clock)
	case "accounts:batchDelete":
		for i, uid := range in.LocalIDs {
			if !failed[i] {
				c.deleted[uid] = append(c.deleted[uid], c.clock)
			}
		}
	case "accounts:update":
		c.updated[in.LocalID]++
	}
}

// tally counts, over every uid the counter saw: created more than once
// (an account applied twice), named in a delete call after it had already
// been deleted and not created since (a deletion applied twice),
// deleted without ever having been created (an account signupsync did not
// create), and created again after a deletion (an import that crossed a
// deletion; the importer deletes it again).
func (c *firebaseCounter) tally() (createdTwice, deletedTwice, deletedNeverCreated, createdAfterDelete int, calls map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for uid, cs := range c.created {
		if len(cs) > 1 {
			createdTwice++
		}
		if d := c.deleted[uid]; len(d) > 0 && slices.ContainsFunc(cs, func(at int) bool { return at > d[0] }) {
			createdAfterDelete++
		}
	}
	for uid, ds := range c.deleted {
		cs := c.created[uid]
		if len(cs) == 0 {
			deletedNeverCreated++
			c.repeats = append(c.repeats, fmt.Sprintf("%s never created, deleted %v", uid, ds))
			continue
		}
		// Walk the uid's history: a delete while the account is already
		// gone is a repeat.
		present, ci := false, 0
		for _, d := range ds {
			for ci < len(cs) && cs[ci] < d {
				present = true
				ci++
			}
			if !present {
				deletedTwice++
				c.repeats = append(c.repeats, fmt.Sprintf("%s created %v deleted %v", uid, cs, ds))
				break
			}
			present = false
		}
	}
	return createdTwice, deletedTwice, deletedNeverCreated, createdAfterDelete, maps.Clone(c.calls)
}

// fakeCAFile writes the Auth0 fake's TLS certificate as a PEM file, for
// the importer processes' SSL_CERT_FILE.
func fakeCAFile(t *testing.T, fake *auth0fake.Server) string {
	t.Helper()
	conn, err := tls.Dial("tcp", fake.Domain(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads the test server's own certificate
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		t.Fatal("auth0 fake sent no certificate")
	}
	f := filepath.Join(t.TempDir(), "auth0fake-ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[len(certs)-1].Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// waitLifecycleDrained waits until the lifecycle consumer settled every
// message of SIGNUPS_LIFECYCLE. The 3-minute limit guards against a hang;
// it is not a performance bound.
func waitLifecycleDrained(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var last uint64
		if st, err := js.Stream(ctx, events.StreamLifecycle); err == nil {
			if si, err := st.Info(ctx); err == nil {
				last = si.State.LastSeq
			}
		}
		if c, err := js.Consumer(ctx, events.StreamLifecycle, events.ConsumerLifecycle); err == nil {
			if info, err := c.Info(ctx); err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0 && info.AckFloor.Stream >= last {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the lifecycle consumer to drain")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runLifecycleChaos runs ingest and two importer processes (this test
// binary as signupsync) against the Auth emulator and the Auth0 fake,
// sends the plan's signups, updates and deletions through ingest's Event
// Streams receiver at a fixed rate, SIGKILLs one importer halfway through
// and restarts it, waits until both consumers are drained, and counts:
// every signup has exactly one outcome; every user deleted in Auth0 has no
// Firebase account and a ledger entry deleted without email or name; every
// updated user has the newest Auth0 profile in Firebase; no account was
// created twice and no deletion applied twice (counted by a proxy in front
// of the emulator that outlives the killed process).
func runLifecycleChaos(t *testing.T, plan lifecyclePlan) {
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	project := testenv.ProjectID(t)
	fbc := newFirebaseCounter(t, testenv.SharedEmulator(t).Host)
	fake := auth0fake.New(t)
	ca := fakeCAFile(t, fake)

	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Millisecond)
	users, evs := lcSchedule(plan.signups, base)
	// Auth0 holds every user with its first profile before its signup.
	for _, e := range evs {
		if e.kind == lcSignup {
			fake.AddUsers(fakeLCUser(e.user, *e.set))
		}
	}

	common := []string{"SIGNUPSYNC_TEST_MAIN=1", "SIGNUPSYNC_NATS_URL=" + n.URL, "SIGNUPSYNC_LOG_LEVEL=info"}
	httpAddr, ingAdmin := testenv.FreeAddr(t), testenv.FreeAddr(t)
	ing := newProc(t, "ingest", append(common, "SIGNUPSYNC_HTTP_ADDR="+httpAddr, "SIGNUPSYNC_METRICS_ADDR="+ingAdmin, "SIGNUPSYNC_ACTION_SECRETS="+devSecret,
		"SIGNUPSYNC_EVENT_STREAM_TOKEN=chaos-es-token", "SIGNUPSYNC_PUBLISH_TIMEOUT=1s"), "ingest")
	var imps []*proc
	for i := range 2 {
		imps = append(imps, newProc(t, fmt.Sprintf("importer-%d", i+1), append(common,
			"FIREBASE_AUTH_EMULATOR_HOST="+fbc.host, "SIGNUPSYNC_FIREBASE_PROJECT="+project,
			"SIGNUPSYNC_ACK_WAIT=5s", "SIGNUPSYNC_BATCH_WINDOW=20ms", "SIGNUPSYNC_BREAKER_OPEN_FOR=1s", "SIGNUPSYNC_FIREBASE_TIMEOUT=3s", "SIGNUPSYNC_AMBIGUOUS_IMPORT_WAIT=4s",
			"SIGNUPSYNC_AUTH0_DOMAIN="+fake.Domain(), "SIGNUPSYNC_AUTH0_TOKEN="+fake.Token(), "SSL_CERT_FILE="+ca,
			"SIGNUPSYNC_METRICS_ADDR="+testenv.FreeAddr(t)), "importer"))
	}
	ing.start()
	for _, imp := range imps {
		imp.start()
	}
	waitOK(t, "ingest to be ready", "http://"+ingAdmin+"/readyz")

	sender := &chaosSender{url: "http://" + httpAddr, client: &http.Client{Timeout: 5 * time.Second}, accepted: map[string]int{}, statuses: map[int]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interval := time.Second / time.Duration(plan.rate)
	sendFor := interval * time.Duration(len(evs))
	// The fault: one importer SIGKILLed halfway through the sending,
	// restarted 200 ms to 1 s later.
	faultDone := make(chan string, 1)
	start := time.Now()
	go func() {
		r := rand.New(rand.NewPCG(15, uint64(time.Now().UnixNano())))
		time.Sleep(time.Until(start.Add(sendFor / 2)))
		imp := imps[r.IntN(len(imps))]
		t0 := time.Now()
		imp.kill()
		time.Sleep(time.Duration(200+r.IntN(800)) * time.Millisecond)
		imp.start()
		faultDone <- fmt.Sprintf("%s SIGKILL at %s, down %s", imp.name, t0.Sub(start).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}()

	sent := map[lcEventKind]int{}
	var wg sync.WaitGroup
	for k, e := range evs {
		time.Sleep(time.Until(start.Add(time.Duration(k) * interval)))
		// Auth0 changes first, then tells: the fake holds what the event
		// reports before it is sent.
		switch {
		case e.kind == lcDelete:
			fake.DeleteUser(e.user)
		case e.kind == lcUpdate && e.set != nil:
			fake.AddUsers(fakeLCUser(e.user, *e.set))
		}
		sent[e.kind]++
		wg.Add(1)
		go func() {
			defer wg.Done()
			sender.deliver(ctx, fmt.Sprintf("%s %s %d", e.kind, e.user, e.seq), ingest.PathEventStream, lcBody(e, e.seq), true, rand.New(rand.NewPCG(uint64(k), 3)))
		}()
	}
	wg.Wait()
	sending := time.Since(start)
	fault := <-faultDone

	testenv.WaitDrained(t, js)
	waitLifecycleDrained(t, js)
	elapsed := time.Since(start)

	// Every event accepted by ingest.
	notAccepted := 0
	for _, e := range evs {
		if sender.accepted[fmt.Sprintf("%s %s %d", e.kind, e.user, e.seq)] == 0 {
			notAccepted++
		}
	}
	if notAccepted > 0 {
		t.Errorf("%d events never accepted by ingest; statuses %v", notAccepted, sender.statuses)
	}

	bg := context.Background()
	kv, err := js.KeyValue(bg, events.BucketLedger)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	results := map[string]int{}
	var wantAccounts []*lcUser
	var deletedIDs []string
	lost, wrongOutcome, piiKept, staleLedger := 0, 0, 0, 0
	for _, u := range users {
		v, err := kv.Get(bg, events.LedgerKey(u.id))
		if err != nil {
			lost++
			t.Errorf("%s: no ledger entry (%v)", u.id, err)
			continue
		}
		le, err := events.UnmarshalLedger(v.Value())
		if err != nil {
			t.Fatal(err)
		}
		outcomes[string(le.Outcome)]++
		if le.Lifecycle != nil {
			results[le.Lifecycle.Result]++
		}
		want := events.OutcomeImported
		switch {
		case u.deleted:
			want = events.OutcomeDeleted
			deletedIDs = append(deletedIDs, u.id)
		case !u.social:
			want = events.OutcomeSkipped
		default:
			wantAccounts = append(wantAccounts, u)
		}
		if le.Outcome != want {
			wrongOutcome++
			t.Errorf("%s: outcome %s (%s), want %s; lifecycle %+v", u.id, le.Outcome, le.Reason, want, le.Lifecycle)
		}
		if u.deleted {
			raw := string(v.Value())
			if strings.Contains(raw, "@example.com") || strings.Contains(raw, "Chaos ") || strings.Contains(raw, "Renamed ") {
				piiKept++
				t.Errorf("%s: the ledger keeps personal data after the deletion: %s", u.id, raw)
			}
			if le.Lifecycle == nil || le.Lifecycle.DeletedAt.IsZero() || le.Lifecycle.OrphanUID != "" {
				t.Errorf("%s: deletion not recorded: %+v", u.id, le.Lifecycle)
			}
		}
		if u.updated && !u.deleted && u.social && (le.Lifecycle == nil || !le.Lifecycle.UpdatedAt.Equal(u.newestAt)) {
			staleLedger++
			t.Errorf("%s: ledger's last update %+v, want updated_at %s", u.id, le.Lifecycle, u.newestAt)
		}
	}

	// Firebase: the deleted are gone, the rest hold Auth0's newest profile.
	fb := testenv.FirebaseAuth(t, project)
	deletedPresent, staleProfile, missing := 0, 0, 0
	for ids := range slices.Chunk(deletedIDs, 100) {
		res := getUsers(t, fb, ids)
		deletedPresent += len(res.Users)
		for _, r := range res.Users {
			t.Errorf("user deleted in Auth0 still in Firebase: %s", r.UID)
		}
	}
	for chunk := range slices.Chunk(wantAccounts, 100) {
		ids := make([]string, len(chunk))
		for i, u := range chunk {
			ids[i] = u.id
		}
		res := getUsers(t, fb, ids)
		missing += len(res.NotFound)
		for _, nf := range res.NotFound {
			t.Errorf("imported user missing from Firebase: %v", nf)
		}
		got := map[string]*auth.UserRecord{}
		for _, r := range res.Users {
			got[r.UID] = r
		}
		for _, u := range chunk {
			r := got[u.id]
			if r != nil && (r.Email != u.newest.email || r.EmailVerified != u.newest.verified || r.DisplayName != u.newest.name) {
				staleProfile++
				t.Errorf("%s: Firebase has %q verified=%v %q, want Auth0's newest %q verified=%v %q", u.id, r.Email, r.EmailVerified, r.DisplayName,
					u.newest.email, u.newest.verified, u.newest.name)
			}
		}
	}
	accounts := countAccounts(t, fb)
	createdTwice, deletedTwice, deletedNotOurs, crossed, calls := fbc.tally()

	t.Logf("lifecycle chaos: sent signups=%d updates=%d deletions=%d (%d events at %d/s over %s, statuses %v); "+
		"outcomes %v, lifecycle results %v; accounts=%d want=%d missing=%d stale_profiles=%d stale_ledger=%d lost=%d wrong_outcome=%d "+
		"deleted_but_present=%d pii_kept=%d created_twice=%d deleted_twice=%d deleted_not_ours=%d imports_undone_after_delete=%d; firebase calls %v; "+
		"fault: %s; elapsed %s",
		sent[lcSignup], sent[lcUpdate], sent[lcDelete], len(evs), plan.rate, sending.Round(time.Millisecond), sender.statuses,
		outcomes, results, accounts, len(wantAccounts), missing, staleProfile, staleLedger, lost, wrongOutcome,
		deletedPresent, piiKept, createdTwice, deletedTwice, deletedNotOurs, crossed, calls, fault, elapsed.Round(time.Millisecond))

	if accounts != len(wantAccounts) {
		t.Errorf("%d Firebase accounts, want %d (imported and not deleted)", accounts, len(wantAccounts))
	}
	if createdTwice != 0 || deletedTwice != 0 || deletedNotOurs != 0 {
		t.Errorf("Firebase writes applied twice or to accounts signupsync did not create: created twice %d, deleted twice %d, deleted not ours %d (%v)",
			createdTwice, deletedTwice, deletedNotOurs, fbc.repeats)
	}
	for _, p := range append([]*proc{ing}, imps...) {
		b, _ := os.ReadFile(p.log)
		if bytes.Contains(b, []byte("@example.com")) || bytes.Contains(b, []byte(devSecret)) || bytes.Contains(b, []byte(fake.Token())) {
			t.Errorf("%s logs contain an email address or a secret", p.name)
		}
	}
}

func getUsers(t *testing.T, fb *auth.Client, uids []string) *auth.GetUsersResult {
	t.Helper()
	ids := make([]auth.UserIdentifier, len(uids))
	for i, id := range uids {
		ids[i] = auth.UIDIdentifier{UID: id}
	}
	res, err := fb.GetUsers(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestLifecycleChaosShort is the short lifecycle run of `make test`: 300
// signups, updates for a third (some older after newer), deletions for a
// fifth (some before their signup, some racing its import, some after),
// at 200 events/s with one importer SIGKILLed halfway. `make chaos` runs
// the long one (chaos_long_test.go).
func TestLifecycleChaosShort(t *testing.T) {
	runLifecycleChaos(t, lifecyclePlan{signups: 300, rate: 200})
}

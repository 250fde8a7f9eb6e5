package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/firebaseprod"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/services/ingest"
)

// chaosPlan sizes a chaos run: how many signups at what rate, and which
// faults at which moments.
type chaosPlan struct {
	rate           int
	duration       time.Duration
	importerKills  int
	brokerKill     bool
	emulatorOutage time.Duration
	lateDuplicates bool
	// cluster runs three nats-servers with R3 streams; the broker fault
	// then kills one node, and later another after the first is back.
	cluster bool
	// production replaces the emulator with Firebase of production
	// semantics (internal/firebaseprod), where a second import of a uid
	// replaces the account and a duplicate email is a second account: the
	// run then also counts replaced accounts and shared emails.
	production bool
	// importers is the number of importer replicas (default 1); each kill
	// hits one of them.
	importers int
}

// proc is a signupsync role or a nats-server, run as a separate process of
// this test binary so it can be killed with SIGKILL.
type proc struct {
	t    *testing.T
	name string
	args []string
	env  []string
	log  string
	cmd  *exec.Cmd
	mu   sync.Mutex
}

func newProc(t *testing.T, name string, env []string, args ...string) *proc {
	p := &proc{t: t, name: name, args: args, env: env, log: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(func() {
		p.stop()
		// SIGNUPSYNC_CHAOS_LOGS=<dir> keeps the logs of a failed run.
		if dir := os.Getenv("SIGNUPSYNC_CHAOS_LOGS"); dir != "" && t.Failed() {
			if b, err := os.ReadFile(p.log); err == nil {
				_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".log"), b, 0o644)
			}
		}
	})
	return p
}

func (p *proc) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	go func() { _ = cmd.Wait(); f.Close() }()
	p.cmd = cmd
}

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	for i := 0; i < 600; i++ { // wait for exit: a guard, not a bound
		if syscall.Kill(p.cmd.Process.Pid, 0) != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.cmd = nil
}

func (p *proc) kill() { p.signal(syscall.SIGKILL) }
func (p *proc) stop() { p.signal(syscall.SIGTERM) }

// chaosSender is an unreliable sender as Auth0 is: it retries on 503 and on
// lost responses, and sometimes loses a 202 and sends again.
type chaosSender struct {
	url    string
	client *http.Client
	mu     sync.Mutex
	// accepted counts 2xx answers per user; statuses counts every answer.
	accepted map[string]int
	statuses map[int]int
	// acceptedAt lists when each 2xx arrived, to check the broker outage.
	acceptedAt []time.Time
}

func (s *chaosSender) post(ctx context.Context, path string, hdr http.Header, body []byte) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+path, bytes.NewReader(body))
	req.Header = hdr
	res, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

func chaosBody(user string) []byte {
	provider, raw, _ := strings.Cut(user, "|")
	social := provider != "auth0"
	return []byte(fmt.Sprintf(`{"trigger":"post-login","tenant":"chaos","connection":{"id":"c","name":%[2]q,"strategy":%[2]q},"stats":{"logins_count":1},"user":{"user_id":%[1]q,"email":"%[3]s@example.com","email_verified":true,"name":"Chaos %[3]s","identities":[{"provider":%[2]q,"connection":%[2]q,"user_id":%[3]q,"isSocial":%[4]t}]}}`, user, provider, raw, social))
}

// send delivers one signup until it is accepted (or ctx ends).
func (s *chaosSender) send(ctx context.Context, user string, viaEventStream bool, r *rand.Rand) {
	body := chaosBody(user)
	path := ingest.PathAction
	if viaEventStream {
		provider, raw, _ := strings.Cut(user, "|")
		body = []byte(fmt.Sprintf(`{"specversion":"1.0","id":"evt_%[3]s","type":"user.created","source":"urn:auth0:chaos","data":{"object":{"user_id":%[1]q,"email":"%[3]s@example.com","email_verified":true,"identities":[{"provider":%[2]q,"connection":%[2]q,"user_id":%[3]q,"isSocial":%[4]t}]}}}`, user, provider, raw, provider != "auth0"))
		path = ingest.PathEventStream
	}
	s.deliver(ctx, user, path, body, viaEventStream, r)
}

// deliver posts body to path until it is accepted (or ctx ends), counting
// the answers under key; Event Streams bodies carry the bearer token,
// others are signed as an Action webhook.
func (s *chaosSender) deliver(ctx context.Context, key, path string, body []byte, viaEventStream bool, r *rand.Rand) {
	delay := 50 * time.Millisecond
	lost := false
	for ctx.Err() == nil {
		hdr := http.Header{"Content-Type": {"application/json"}}
		if viaEventStream {
			hdr.Set("Authorization", "Bearer chaos-es-token")
		} else if err := ingest.SignHeaders(hdr, devSecret, "msg_"+key, time.Now(), body); err != nil {
			return
		}
		status, err := s.post(ctx, path, hdr, body)
		s.mu.Lock()
		if err == nil {
			s.statuses[status]++
		}
		if err == nil && status/100 == 2 {
			s.accepted[key]++
			s.acceptedAt = append(s.acceptedAt, time.Now())
		}
		s.mu.Unlock()
		if err == nil && status/100 == 2 {
			// Now and then the 202 is "lost" on the way back: send again.
			if !lost && r.IntN(20) == 0 {
				lost = true
				continue
			}
			return
		}
		if err == nil && status != http.StatusServiceUnavailable {
			return // a 4xx is final for Auth0 too
		}
		time.Sleep(delay)
		delay = min(delay*2, time.Second)
	}
}

// runChaos runs the whole pipeline as separate processes, injects the
// plan's faults while signups flow, and then reconciles: every accepted
// signup has exactly one Firebase account or one recorded non-import
// outcome, no account exists twice, nothing is pending.
func runChaos(t *testing.T, plan chaosPlan) {
	dir := t.TempDir()
	httpAddr := testenv.FreeAddr(t)
	nodes := 1
	if plan.cluster {
		nodes = 3
	}
	var urls, routes []string
	var clientPorts, routePorts []int
	for i := 0; i < nodes; i++ {
		clientPorts = append(clientPorts, testenv.FreePort(t))
		routePorts = append(routePorts, testenv.FreePort(t))
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(clientPorts[i]))
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(routePorts[i]))
	}
	natsURL := strings.Join(urls, ",")
	var brokers []*proc
	for i := 0; i < nodes; i++ {
		env := []string{"SIGNUPSYNC_TEST_NATS_PORT=" + strconv.Itoa(clientPorts[i]), "SIGNUPSYNC_TEST_NATS_STORE=" + filepath.Join(dir, fmt.Sprintf("js%d", i))}
		if plan.cluster {
			env = append(env, "SIGNUPSYNC_TEST_NATS_CLUSTER_PORT="+strconv.Itoa(routePorts[i]), fmt.Sprintf("SIGNUPSYNC_TEST_NATS_NAME=n%d", i+1),
				"SIGNUPSYNC_TEST_NATS_ROUTES="+strings.Join(routes, ","))
		}
		b := newProc(t, fmt.Sprintf("nats-server-%d", i+1), env)
		b.start()
		brokers = append(brokers, b)
	}
	broker := brokers[0]
	replicas := "1"
	if plan.cluster {
		replicas = "3"
	}

	var fbHost, fbProject string
	var freeze, thaw func() error
	var prod *firebaseprod.Server
	if plan.production {
		prod = firebaseprod.New(t)
		fbHost, fbProject = prod.Host(), testenv.ProjectID(t)
		freeze = func() error { prod.Freeze(); return nil }
		thaw = func() error { prod.Thaw(); return nil }
		t.Cleanup(prod.Thaw)
	} else {
		emu, err := testenv.NewEmulator(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := emu.Start(false); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = emu.Stop() })
		// Frozen, not stopped: see testenv.Emulator.Freeze.
		fbHost, fbProject, freeze, thaw = emu.Host, emu.Project, emu.Freeze, emu.Thaw
	}

	common := []string{"SIGNUPSYNC_TEST_MAIN=1", "SIGNUPSYNC_NATS_URL=" + natsURL, "SIGNUPSYNC_DUPLICATE_WINDOW=2s", "SIGNUPSYNC_LOG_LEVEL=info", "SIGNUPSYNC_STREAM_REPLICAS=" + replicas}
	ingAdmin := testenv.FreeAddr(t)
	ing := newProc(t, "ingest", append(common, "SIGNUPSYNC_HTTP_ADDR="+httpAddr, "SIGNUPSYNC_METRICS_ADDR="+ingAdmin, "SIGNUPSYNC_ACTION_SECRETS="+devSecret,
		"SIGNUPSYNC_EVENT_STREAM_TOKEN=chaos-es-token", "SIGNUPSYNC_PUBLISH_TIMEOUT=1s"), "ingest")
	var imps []*proc
	for i := range max(plan.importers, 1) {
		imp := newProc(t, fmt.Sprintf("importer-%d", i+1), append(common, "FIREBASE_AUTH_EMULATOR_HOST="+fbHost, "SIGNUPSYNC_FIREBASE_PROJECT="+fbProject,
			"SIGNUPSYNC_ACK_WAIT=5s", "SIGNUPSYNC_BATCH_WINDOW=20ms", "SIGNUPSYNC_BREAKER_OPEN_FOR=1s", "SIGNUPSYNC_FIREBASE_TIMEOUT=3s",
			// An import frozen by the outage lands when it ends.
			"SIGNUPSYNC_AMBIGUOUS_IMPORT_WAIT="+(plan.emulatorOutage+5*time.Second).String(),
			"SIGNUPSYNC_METRICS_ADDR="+testenv.FreeAddr(t)), "importer")
		imps = append(imps, imp)
	}
	ing.start()
	for _, imp := range imps {
		imp.start()
	}
	sender := &chaosSender{url: "http://" + httpAddr, client: &http.Client{Timeout: 5 * time.Second}, accepted: map[string]int{}, statuses: map[int]int{}}
	waitOK(t, "ingest to be ready", "http://"+ingAdmin+"/readyz")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := int(float64(plan.rate) * plan.duration.Seconds())
	users := make([]string, n)
	for i := range users {
		if i%10 == 9 {
			users[i] = fmt.Sprintf("auth0|db%d", i)
		} else {
			users[i] = fmt.Sprintf("%s|%d", []string{"google-oauth2", "github", "apple", "facebook"}[i%4], 700000+i)
		}
	}

	// Faults, at moments spread over the sending phase.
	type outage struct{ from, to time.Time }
	var brokerDown outage
	faultsDone := make(chan string, 1)
	go func() {
		var log []string
		r := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
		step := plan.duration / time.Duration(plan.importerKills+3)
		at := func(k int) time.Duration { return step*time.Duration(k) + time.Duration(r.Int64N(int64(step/2))) }
		start := time.Now()
		wait := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }
		for k := 1; k <= plan.importerKills; k++ {
			wait(at(k))
			imp := imps[r.IntN(len(imps))]
			imp.kill()
			t0 := time.Now()
			time.Sleep(time.Duration(200+r.IntN(800)) * time.Millisecond)
			imp.start()
			log = append(log, fmt.Sprintf("%s SIGKILL #%d at %s, down %s", imp.name, k, t0.Sub(start).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond)))
		}
		if plan.brokerKill && plan.cluster {
			// One node, then another after the first is back: R3 keeps a
			// quorum throughout, so ingest keeps accepting.
			wait(at(plan.importerKills + 1))
			for _, k := range []int{1, 2} {
				t0 := time.Now()
				brokers[k].kill()
				time.Sleep(3 * time.Second)
				brokers[k].start()
				log = append(log, fmt.Sprintf("nats-server n%d SIGKILL at %s, down %s", k+1, t0.Sub(start).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond)))
				time.Sleep(3 * time.Second)
			}
		}
		if plan.brokerKill && !plan.cluster {
			wait(at(plan.importerKills + 1))
			broker.kill()
			brokerDown.from = time.Now()
			// While the broker is gone ingest must answer 503, never 2xx.
			probe := chaosBody("google-oauth2|probe")
			hdr := http.Header{"Content-Type": {"application/json"}}
			_ = ingest.SignHeaders(hdr, devSecret, "msg_probe", time.Now(), probe)
			status, err := sender.post(ctx, ingest.PathAction, hdr, probe)
			log = append(log, fmt.Sprintf("probe while the broker is down: %d %v", status, err))
			if err != nil || status != http.StatusServiceUnavailable {
				t.Errorf("ingest answered %d (%v) with the broker down, want 503", status, err)
			}
			time.Sleep(2 * time.Second)
			brokerDown.to = time.Now()
			broker.start()
			log = append(log, fmt.Sprintf("nats-server SIGKILL at %s, down %s", brokerDown.from.Sub(start).Round(time.Millisecond), brokerDown.to.Sub(brokerDown.from).Round(time.Millisecond)))
		}
		if plan.emulatorOutage > 0 {
			wait(at(plan.importerKills + 2))
			t0 := time.Now()
			if err := freeze(); err != nil {
				t.Errorf("freeze firebase: %v", err)
			}
			time.Sleep(plan.emulatorOutage)
			if err := thaw(); err != nil {
				t.Errorf("thaw firebase: %v", err)
			}
			log = append(log, fmt.Sprintf("Firebase unavailable (calls hang) at %s for %s", t0.Sub(start).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond)))
		}
		faultsDone <- strings.Join(log, "\n")
	}()

	// Send at a fixed rate; each signup retries on its own goroutine.
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(plan.rate)
	start := time.Now()
	for i, u := range users {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Add(1)
		go func(i int, u string) {
			defer wg.Done()
			sender.send(ctx, u, false, rand.New(rand.NewPCG(uint64(i), 1)))
		}(i, u)
	}
	wg.Wait()
	faults := <-faultsDone
	t.Logf("faults:\n%s", faults)
	// The broker outage: no 2xx may have been given while it was down.
	sender.mu.Lock()
	for _, at := range sender.acceptedAt {
		if at.After(brokerDown.from.Add(200*time.Millisecond)) && at.Before(brokerDown.to) {
			t.Errorf("a signup was accepted at %s while the broker was down", at.Sub(start))
		}
	}
	sender.mu.Unlock()

	if plan.lateDuplicates {
		// Past the duplicate window, every signup again from another source.
		time.Sleep(2500 * time.Millisecond)
		for i, u := range users {
			wg.Add(1)
			go func(i int, u string) {
				defer wg.Done()
				sender.send(ctx, u, true, rand.New(rand.NewPCG(uint64(i), 2)))
			}(i, u)
			if i%50 == 49 {
				wg.Wait()
			}
		}
		wg.Wait()
	}

	// Reconcile.
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	testenv.WaitDrained(t, js)
	t.Setenv(testenv.EmulatorHostEnv, fbHost)
	fb := testenv.FirebaseAuth(t, fbProject)
	tally := reconcileChaos(t, js, fb, users, sender)
	if prod != nil {
		st := prod.Stats(fbProject)
		tally += fmt.Sprintf(" replaced=%d shared_emails=%d shared_identities=%d", st.Replacements, len(st.DuplicateEmails), len(st.DuplicateIdentities))
		if st.Replacements != 0 || len(st.DuplicateEmails) != 0 || len(st.DuplicateIdentities) != 0 {
			t.Errorf("production Firebase: accounts replaced or shared: %s (replaced uids %v)", tally, st.ReplacedUIDs)
			for _, imp := range imps {
				b, _ := os.ReadFile(imp.log)
				for _, line := range strings.Split(string(b), "\n") {
					for _, uid := range st.ReplacedUIDs {
						if strings.Contains(line, uid) {
							t.Logf("%s: %s", imp.name, line)
						}
					}
				}
			}
		}
	}
	t.Logf("chaos: %s; statuses %v", tally, sender.statuses)
	if strings.Contains(tally, "lost=0 duplicated=0") == false {
		t.Fatalf("signups lost or duplicated: %s", tally)
	}
	for _, p := range append([]*proc{ing}, imps...) {
		b, _ := os.ReadFile(p.log)
		if bytes.Contains(b, []byte("@example.com")) || bytes.Contains(b, []byte(devSecret)) {
			t.Errorf("%s logs contain an email address or the secret", p.name)
		}
	}
}

// reconcileChaos counts outcomes of every accepted signup against the ledger
// and Firebase.
func reconcileChaos(t *testing.T, js jetstream.JetStream, fb *auth.Client, users []string, s *chaosSender) string {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[events.Outcome]int{}
	lost, accepted := 0, 0
	var social []string
	for _, u := range users {
		if s.accepted[u] == 0 {
			continue
		}
		accepted++
		v, err := kv.Get(ctx, events.LedgerKey(u))
		if err != nil {
			lost++
			t.Errorf("accepted signup %s has no ledger entry", u)
			continue
		}
		le, _ := events.UnmarshalLedger(v.Value())
		counts[le.Outcome]++
		if strings.HasPrefix(u, "auth0|") {
			if le.Outcome != events.OutcomeSkipped {
				t.Errorf("%s: %s, want skipped", u, le.Outcome)
			}
			continue
		}
		social = append(social, u)
	}
	// Every social signup has its account.
	for i := 0; i < len(social); i += 100 {
		var ids []auth.UserIdentifier
		for _, u := range social[i:min(i+100, len(social))] {
			ids = append(ids, auth.UIDIdentifier{UID: u})
		}
		res, err := fb.GetUsers(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		lost += len(res.NotFound)
		for _, nf := range res.NotFound {
			uid := nf.(auth.UIDIdentifier).UID
			v, _ := kv.Get(ctx, events.LedgerKey(uid))
			t.Errorf("imported signup missing from Firebase: %s", v.Value())
		}
	}
	accounts := countAccounts(t, fb)
	duplicated := accounts - len(social)
	return fmt.Sprintf("sent=%d accepted=%d imported=%d already_present=%d skipped=%d conflict=%d dead_lettered=%d accounts=%d lost=%d duplicated=%d",
		len(users), accepted, counts[events.OutcomeImported], counts[events.OutcomeAlreadyPresent], counts[events.OutcomeSkipped],
		counts[events.OutcomeConflict], counts[events.OutcomeDeadLettered], accounts, lost, duplicated)
}

// TestChaosShort is the short chaos run of `make test`: two importer kills,
// a broker kill, a 5 s Firebase outage and late duplicates from another
// source, counted to the last signup. `make chaos` runs the long one.
func TestChaosShort(t *testing.T) {
	runChaos(t, chaosPlan{rate: 100, duration: 20 * time.Second, importerKills: 2, brokerKill: true, emulatorOutage: 5 * time.Second, lateDuplicates: true})
}

// TestChaosShortProduction is the short run against Firebase with
// production semantics and three importer replicas: it also counts replaced
// accounts and emails or identities held by two accounts, which the
// emulator would have refused and so hidden.
func TestChaosShortProduction(t *testing.T) {
	runChaos(t, chaosPlan{rate: 100, duration: 20 * time.Second, importerKills: 2, brokerKill: true, emulatorOutage: 5 * time.Second, lateDuplicates: true, production: true, importers: 3})
}

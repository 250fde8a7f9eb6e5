package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/loadgen"
	"github.com/signupsync/signupsync/internal/testenv"
)

type options struct {
	runs          int
	bin           string
	natsBin       string
	firebaseBin   string
	goBin         string
	backfillUsers int
	importerUsers int
	limitUsers    int
	// largeBackfill, when > 0, adds the backfill of an export of that many
	// users (largebackfill.go); emulatorMaxRSS (MiB) bounds how far it is
	// imported.
	largeBackfill  int
	emulatorMaxRSS int
	markdown       string
}

// secretKey signs the bench's Action webhooks; secret is the same key in
// the whsec_ form ingest is configured with.
var (
	secretKey = []byte("signupsync-bench-secret-1234")
	secret    = "whsec_" + base64.StdEncoding.EncodeToString(secretKey)
)

// figure is one row of a table: a value per run and the limits it is
// compared with (one more row per further limit).
type figure struct {
	name, unit  string
	values      []float64
	limits      []string // names of limit figures of the same table
	lowerBetter bool
}

// table is a set of figures measured together, runs times; ratios pair a
// figure's value with its limit's value of the same run.
type table struct {
	title string
	runs  int
	figs  map[string]*figure
	order []string
	// notes are printed under the table.
	notes []string
}

func newTable(title string, runs int) *table {
	return &table{title: title, runs: runs, figs: map[string]*figure{}}
}

type bench struct {
	o       options
	log     io.Writer
	dir     string
	natsURL string
	natsCmd *exec.Cmd
	// syncNATS is a second server with sync_interval: always, to price fsync.
	syncCmd *exec.Cmd
	syncJS  jetstream.JetStream
	syncNC  *nats.Conn
	emu     *testenv.Emulator
	// ingestTest is services/ingest's test binary, built at start-up, whose
	// BenchmarkHTTPLimit is the ingest HTTP limit (httpLimit).
	ingestTest string
	nc         *nats.Conn
	js         jetstream.JetStream
	// tables in the order they were measured; cur receives record.
	tables  []*table
	cur     *table
	export  string
	exportN int
}

func newBench(ctx context.Context, o options, log io.Writer) (*bench, error) {
	dir, err := os.MkdirTemp("", "signupsync-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, log: log, dir: dir}
	for _, p := range []string{o.bin, o.natsBin} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: %w (make bench builds it)", p, err)
		}
	}
	if o.runs > 0 {
		b.ingestTest = filepath.Join(dir, "ingest.test")
		fmt.Fprintln(log, "building the ingest test binary…")
		if out, err := exec.CommandContext(ctx, o.goBin, "test", "-c", "-o", b.ingestTest, "./services/ingest").CombinedOutput(); err != nil {
			b.close()
			return nil, fmt.Errorf("build the ingest test binary (the HTTP limit): %w\n%s", err, out)
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	b.natsURL = "nats://127.0.0.1:" + strconv.Itoa(port)
	b.natsCmd = exec.Command(o.natsBin, "-js", "-sd", filepath.Join(dir, "nats"), "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	b.natsCmd.Stdout, b.natsCmd.Stderr = io.Discard, io.Discard
	if err := b.natsCmd.Start(); err != nil {
		return nil, fmt.Errorf("start nats-server: %w", err)
	}
	syncPort, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "sync.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listen: 127.0.0.1:%d\njetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", syncPort, filepath.Join(dir, "nats-sync"))), 0o644); err != nil {
		return nil, err
	}
	b.syncCmd = exec.Command(o.natsBin, "-c", conf)
	b.syncCmd.Stdout, b.syncCmd.Stderr = io.Discard, io.Discard
	if err := b.syncCmd.Start(); err != nil {
		return nil, fmt.Errorf("start nats-server (sync always): %w", err)
	}
	if o.firebaseBin != "" {
		os.Setenv("SIGNUPSYNC_FIREBASE_BIN", o.firebaseBin)
	}
	if o.largeBackfill > 0 {
		// Node.js caps its heap at about 4 GiB by default, which would stop
		// the emulator near 300,000 accounts: let it use the memory the
		// large backfill allows it.
		os.Setenv("NODE_OPTIONS", strings.TrimSpace(os.Getenv("NODE_OPTIONS")+" --max-old-space-size="+strconv.Itoa(o.emulatorMaxRSS)))
	}
	emuDir := filepath.Join(dir, "emulator")
	_ = os.MkdirAll(emuDir, 0o755)
	if b.emu, err = testenv.NewEmulator(emuDir); err != nil {
		b.close()
		return nil, err
	}
	fmt.Fprintln(log, "starting the Firebase Auth emulator…")
	if err := b.emu.Start(false); err != nil {
		b.close()
		return nil, err
	}
	os.Setenv(testenv.EmulatorHostEnv, b.emu.Host)
	for i := 0; ; i++ {
		b.nc, err = nats.Connect(b.natsURL)
		if err == nil {
			break
		}
		if i > 100 {
			b.close()
			return nil, fmt.Errorf("connect nats-server: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.js, _ = jetstream.New(b.nc, jetstream.WithPublishAsyncMaxPending(4096))
	for i := 0; ; i++ {
		b.syncNC, err = nats.Connect("nats://127.0.0.1:" + strconv.Itoa(syncPort))
		if err == nil {
			break
		}
		if i > 100 {
			b.close()
			return nil, fmt.Errorf("connect nats-server (sync always): %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.syncJS, _ = jetstream.New(b.syncNC, jetstream.WithPublishAsyncMaxPending(4096))
	if o.runs > 0 {
		b.export = filepath.Join(dir, "export.json.gz")
		if err := writeExport(b.export, o.backfillUsers); err != nil {
			b.close()
			return nil, err
		}
		b.exportN = o.backfillUsers
	}
	return b, nil
}

func (b *bench) close() {
	if b.nc != nil {
		b.nc.Close()
	}
	if b.syncNC != nil {
		b.syncNC.Close()
	}
	if b.syncCmd != nil && b.syncCmd.Process != nil {
		_ = b.syncCmd.Process.Signal(syscall.SIGTERM)
		_ = b.syncCmd.Wait()
	}
	if b.emu != nil {
		_ = b.emu.Stop()
	}
	if b.natsCmd != nil && b.natsCmd.Process != nil {
		_ = b.natsCmd.Process.Signal(syscall.SIGTERM)
		_ = b.natsCmd.Wait()
	}
	os.RemoveAll(b.dir)
}

// begin makes t the table record writes to.
func (b *bench) begin(t *table) {
	b.tables = append(b.tables, t)
	b.cur = t
}

// record adds this run's value of a figure to the current table; limits
// name the limit figures it is compared with.
func (b *bench) record(name, unit string, v float64, lowerBetter bool, limits ...string) {
	t := b.cur
	f, ok := t.figs[name]
	if !ok {
		f = &figure{name: name, unit: unit, limits: limits, lowerBetter: lowerBetter}
		t.figs[name] = f
		t.order = append(t.order, name)
	}
	f.values = append(f.values, v)
	fmt.Fprintf(b.log, "  %-60s %12.1f %s\n", name, v, unit)
}

// Figure names used as limits.
const (
	limPublish = "limit: JetStream async publish (file, Msg-Id)"
	limConsume = "limit: JetStream pull fetch + ack"
	limHTTP    = "limit: ingest HTTP, no-op publisher"
	limIngest  = "limit: min(HTTP, broker)"
	// The Firebase limits (firebase.go), both with the importer's user shape.
	limImport   = "limit: emulator ImportUsers, importer's user shape, 1000/batch"
	limRequired = "limit: required work, importer's user shape, 31 GetUsers + 1 ImportUsers per 1000"
)

func (b *bench) runOnce(ctx context.Context, run int) error {
	if err := b.resetTopology(ctx); err != nil {
		return err
	}
	pub, err := b.rawPublish(ctx, 50000)
	if err != nil {
		return err
	}
	b.record(limPublish, "msg/s", pub, false)
	syncPub, err := publishRate(ctx, b.syncJS, 20000)
	if err != nil {
		return err
	}
	b.record("JetStream async publish, sync_interval: always", "msg/s", syncPub, false, limPublish)
	cons, err := b.rawConsume(ctx)
	if err != nil {
		return err
	}
	b.record(limConsume, "msg/s", cons, false)
	httpLimit, err := b.httpLimit(ctx)
	if err != nil {
		return err
	}
	b.record(limHTTP, "req/s", httpLimit, false)
	if err := b.firebaseLimits(ctx, fmt.Sprintf("%d", run)); err != nil {
		return err
	}
	b.record(limIngest, "req/s", min(httpLimit, pub), false)

	if err := b.ingestFigures(ctx, run); err != nil {
		return err
	}
	if err := b.pipelineFigures(ctx, run); err != nil {
		return err
	}
	return nil
}

// firebaseLimits measures and records the two Firebase limits, each in a
// fresh project (tag makes its name unique).
func (b *bench) firebaseLimits(ctx context.Context, tag string) error {
	imp, err := b.rawImport(ctx, "demo-raw-"+tag, b.o.limitUsers)
	if err != nil {
		return err
	}
	b.record(limImport, "users/s", imp, false)
	req, err := b.requiredWork(ctx, "demo-req-"+tag, b.o.limitUsers)
	if err != nil {
		return err
	}
	b.record(limRequired, "users/s", req, false)
	return nil
}

// resetTopology deletes and recreates the streams and buckets so every run
// starts empty.
func (b *bench) resetTopology(ctx context.Context) error {
	for _, s := range []string{events.StreamSignups, events.StreamDeadLetter, "BENCH", "KV_" + events.BucketLedger, "KV_" + events.BucketState} {
		_ = b.js.DeleteStream(ctx, s)
	}
	// The server may still be removing the old store: retry briefly.
	var err error
	for i := 0; i < 50; i++ {
		if err = events.Ensure(ctx, b.js, events.DefaultTopology()); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// eventPayload is the signup event of bench user i (benchSignup: the
// shape the Firebase limits import).
func eventPayload(i int) *nats.Msg {
	msg, _, _ := events.NewMsg(events.SourceAction, benchSignup(i), time.Now())
	return msg
}

func (b *bench) rawPublish(ctx context.Context, n int) (float64, error) {
	return publishRate(ctx, b.js, n)
}

func publishRate(ctx context.Context, js jetstream.JetStream, n int) (float64, error) {
	_ = js.DeleteStream(ctx, "BENCH")
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}, Storage: jetstream.FileStorage, Duplicates: events.DefaultDuplicateWindow}); err != nil {
		return 0, err
	}
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		m := eventPayload(i)
		m.Subject = "bench.x"
		m.Header.Set(events.HeaderMsgID, "bench-"+strconv.Itoa(i))
		msgs[i] = m
	}
	start := time.Now()
	for _, m := range msgs {
		for {
			_, err := js.PublishMsgAsync(m)
			if err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				return 0, err
			}
			<-js.PublishAsyncComplete() // a slow (fsyncing) server: wait, then go on
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		return 0, fmt.Errorf("raw publish did not complete")
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func (b *bench) rawConsume(ctx context.Context) (float64, error) {
	c, err := b.js.CreateOrUpdateConsumer(ctx, "BENCH", jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 20000})
	if err != nil {
		return 0, err
	}
	info, _ := c.Info(ctx)
	total := int(info.NumPending)
	start := time.Now()
	got := 0
	for got < total {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return 0, err
		}
		for m := range batch.Messages() {
			_ = m.Ack()
			got++
		}
	}
	b.nc.Flush()
	return float64(got) / time.Since(start).Seconds(), nil
}

// signedRequests pre-signs n Action webhooks for new users (offset keeps
// ids unique across figures), so signing costs the generator nothing.
type signed struct {
	body   []byte
	header http.Header
}

func signedRequests(n, offset int) []signed {
	out := make([]signed, n)
	now := time.Now()
	for i := range out {
		id := offset + i
		body := []byte(fmt.Sprintf(`{"trigger":"post-login","tenant":"bench","connection":{"id":"c","name":"google-oauth2","strategy":"google-oauth2"},"stats":{"logins_count":1},"user":{"user_id":"google-oauth2|%d","email":"b%d@example.com","email_verified":true,"name":"Bench User","picture":"https://example.com/p.png","created_at":"2026-11-01T10:00:00.000Z","identities":[{"provider":"google-oauth2","connection":"google-oauth2","user_id":"%d","isSocial":true}]}}`, id, id, id))
		h := http.Header{"Content-Type": {"application/json"}}
		signWebhook(h, secretKey, "msg_"+strconv.Itoa(id), now, body)
		out[i] = signed{body: body, header: h}
	}
	return out
}

func target(client *http.Client, url string, reqs []signed) loadgen.Target {
	return func(ctx context.Context, i int) (int, error) {
		r := reqs[i]
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+pathAction, bytes.NewReader(r.body))
		req.Header = r.header.Clone()
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, nil
	}
}

func newClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512}}
}

// httpLimit is the ingest HTTP limit: services/ingest's BenchmarkHTTPLimit
// (the receivers in process behind a no-op publisher, 64 closed-loop
// clients over loopback, 40,000 signed Action webhooks), run in the ingest
// test binary built at start-up, and read back as req/s. It runs there and
// not here because nothing in internal/ may import a service.
func (b *bench) httpLimit(ctx context.Context) (float64, error) {
	cmd := exec.CommandContext(ctx, b.ingestTest, "-test.run", "^$", "-test.bench", "^BenchmarkHTTPLimit$",
		"-test.benchtime", "40000x", "-test.count", "1")
	cmd.Dir = filepath.Join("services", "ingest")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("http limit: %w\n%s", err, out)
	}
	return benchMetric(out, "BenchmarkHTTPLimit", "req/s")
}

// benchMetric finds the value of unit on the result line of benchmark name
// in go test -bench output ("BenchmarkX-2  40000  3762 ns/op  10575 req/s").
func benchMetric(out []byte, name, unit string) (float64, error) {
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || (f[0] != name && !strings.HasPrefix(f[0], name+"-")) {
			continue
		}
		for i := 1; i+1 < len(f); i++ {
			if f[i+1] == unit {
				return strconv.ParseFloat(f[i], 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s of %s in:\n%s", unit, name, out)
}

// role is a signupsync process: addr is ingest's webhook port, admin its
// /metrics and /readyz (every role's SIGNUPSYNC_METRICS_ADDR).
type role struct {
	cmd   *exec.Cmd
	addr  string
	admin string
}

func (b *bench) startRole(ctx context.Context, name string, env ...string) (*role, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := freePort()
	if err != nil {
		return nil, err
	}
	addr, admin := "127.0.0.1:"+strconv.Itoa(port), "127.0.0.1:"+strconv.Itoa(adminPort)
	cmd := exec.Command(b.o.bin, name)
	cmd.Env = append(os.Environ(),
		"SIGNUPSYNC_NATS_URL="+b.natsURL, "SIGNUPSYNC_HTTP_ADDR="+addr, "SIGNUPSYNC_METRICS_ADDR="+admin,
		"SIGNUPSYNC_ACTION_SECRETS="+secret, "SIGNUPSYNC_LOG_LEVEL=warn", "FIREBASE_AUTH_EMULATOR_HOST="+b.emu.Host)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &role{cmd: cmd, addr: addr, admin: admin}
	for i := 0; ; i++ {
		res, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return r, nil
			}
		}
		if i > 200 {
			r.stop()
			return nil, fmt.Errorf("%s did not become ready", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// peakRSS is the process's peak resident memory in MiB (VmHWM).
func (r *role) peakRSS() float64 { return peakMiB(r.cmd.Process.Pid) }

func (r *role) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	_ = r.cmd.Wait()
}

func (b *bench) streamMsgs(ctx context.Context) uint64 {
	st, err := b.js.Stream(ctx, events.StreamSignups)
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// ingestFigures: the ingest process saturated (closed loop), then open
// loop at fixed rates for latency.
func (b *bench) ingestFigures(ctx context.Context, run int) error {
	if err := b.resetTopology(ctx); err != nil {
		return err
	}
	in, err := b.startRole(ctx, "ingest")
	if err != nil {
		return err
	}
	defer in.stop()
	url := "http://" + in.addr
	client := newClient()
	reqs := signedRequests(40000, 1_000_000)
	res := loadgen.ClosedLoop(ctx, 64, len(reqs), target(client, url, reqs))
	if got := b.streamMsgs(ctx); res.Statuses[202] != len(reqs) || got != uint64(len(reqs)) {
		return fmt.Errorf("saturation: %v accepted, %d messages stored, want %d each (errors %d)", res.Statuses, got, len(reqs), res.Errors)
	}
	b.record("ingest saturated (closed loop, 64 clients)", "req/s", res.Throughput(), false, limIngest)
	offset := 2_000_000
	for _, rate := range []int{1000, 2000, 5000} {
		n := rate * 5
		reqs := signedRequests(n, offset)
		offset += n
		before := b.streamMsgs(ctx)
		r := loadgen.OpenLoop(ctx, float64(rate), n, 2048, target(client, url, reqs))
		stored := b.streamMsgs(ctx) - before
		if r.Statuses[202] != n || stored != uint64(n) {
			return fmt.Errorf("open loop %d/s: %v accepted, %d stored (errors %d)", rate, r.Statuses, stored, r.Errors)
		}
		for _, q := range []struct {
			name string
			q    float64
		}{{"p50", 0.5}, {"p99", 0.99}, {"p99.9", 0.999}} {
			b.record(fmt.Sprintf("ingest latency %s at %d/s (open loop)", q.name, rate), "ms", ms(r.Latency.Quantile(q.q)), true)
		}
		b.record(fmt.Sprintf("ingest latency max at %d/s (open loop)", rate), "ms", ms(r.Latency.Max()), true)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pipelineFigures: end-to-end latency and memory at 500 and 1000/s, the
// importer from a pre-loaded stream, and the backfill of an export.
func (b *bench) pipelineFigures(ctx context.Context, run int) error {
	for _, rate := range []int{500, 1000} {
		if err := b.resetTopology(ctx); err != nil {
			return err
		}
		project := fmt.Sprintf("demo-e2e-%d-%d", run, rate)
		in, err := b.startRole(ctx, "ingest")
		if err != nil {
			return err
		}
		imp, err := b.startRole(ctx, "importer", "SIGNUPSYNC_FIREBASE_PROJECT="+project)
		if err != nil {
			in.stop()
			return err
		}
		lat, err := b.endToEnd(ctx, "http://"+in.addr, rate, rate*5, 3_000_000+run*100000+rate*10)
		if err == nil {
			b.record(fmt.Sprintf("end to end p50 at %d/s", rate), "ms", ms(lat.Quantile(0.5)), true)
			b.record(fmt.Sprintf("end to end p99 at %d/s", rate), "ms", ms(lat.Quantile(0.99)), true)
			if rate == 1000 {
				b.record("ingest peak RSS at 1000/s", "MiB", in.peakRSS(), true)
				b.record("importer peak RSS at 1000/s", "MiB", imp.peakRSS(), true)
			}
		}
		imp.stop()
		in.stop()
		b.clearProject(project)
		if err != nil {
			return err
		}
	}
	if err := b.importerFigure(ctx, run); err != nil {
		return err
	}
	return b.backfillFigure(ctx, run)
}

// endToEnd sends n signups at rate and measures, per signup, the time from
// its scheduled send to its ledger entry saying imported — written right
// after ImportUsers returned, when the account is readable in Firebase.
func (b *bench) endToEnd(ctx context.Context, url string, rate, n, offset int) (*loadgen.Histogram, error) {
	kv, err := b.js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	reqs := signedRequests(n, offset)
	interval := time.Duration(float64(time.Second) / float64(rate))
	start := time.Now()
	var mu sync.Mutex
	seen := map[string]time.Duration{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			id, err := events.UserIDFromLedgerKey(e.Key())
			if err != nil {
				continue
			}
			_, raw, _ := strings.Cut(id, "|")
			i, _ := strconv.Atoi(raw)
			at := start.Add(time.Duration(i-offset) * interval)
			mu.Lock()
			if _, ok := seen[id]; !ok {
				seen[id] = time.Since(at)
			}
			full := len(seen) >= n
			mu.Unlock()
			if full {
				return
			}
		}
	}()
	res := loadgen.OpenLoop(ctx, float64(rate), n, 2048, target(newClient(), url, reqs))
	if res.Statuses[202] != n {
		return nil, fmt.Errorf("end to end at %d/s: statuses %v errors %d", rate, res.Statuses, res.Errors)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		return nil, fmt.Errorf("end to end at %d/s: only %d of %d imported", rate, len(seen), n)
	}
	h := &loadgen.Histogram{}
	for _, d := range seen {
		h.Record(d)
	}
	return h, nil
}

func (b *bench) waitDrained(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c, err := b.js.Consumer(ctx, events.StreamSignups, events.ConsumerImporter)
		if err == nil {
			if info, err := c.Info(ctx); err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("importer did not drain within %s", limit)
}

func (b *bench) importerFigure(ctx context.Context, run int) error {
	if err := b.resetTopology(ctx); err != nil {
		return err
	}
	n := b.o.importerUsers
	for i := 0; i < n; i++ {
		m := eventPayload(5_000_000 + run*n + i)
		if _, err := b.js.PublishMsgAsync(m); err != nil {
			return err
		}
	}
	<-b.js.PublishAsyncComplete()
	project := fmt.Sprintf("demo-imp-%d", run)
	start := time.Now()
	imp, err := b.startRole(ctx, "importer", "SIGNUPSYNC_FIREBASE_PROJECT="+project)
	if err != nil {
		return err
	}
	defer func() { imp.stop(); b.clearProject(project) }()
	if err := b.waitDrained(ctx, 5*time.Minute); err != nil {
		return err
	}
	b.record("importer from a pre-loaded stream", "users/s", float64(n)/time.Since(start).Seconds(), false, limRequired, limImport)
	return nil
}

func (b *bench) backfillFigure(ctx context.Context, run int) error {
	if err := b.resetTopology(ctx); err != nil {
		return err
	}
	if err := resetPeak(b.natsCmd.Process.Pid); err != nil {
		return fmt.Errorf("reset nats-server peak RSS: %w", err)
	}
	project := fmt.Sprintf("demo-bf-%d", run)
	imp, err := b.startRole(ctx, "importer", "SIGNUPSYNC_FIREBASE_PROJECT="+project)
	if err != nil {
		return err
	}
	defer func() { imp.stop(); b.clearProject(project) }()
	start := time.Now()
	peak, err := b.runBackfill(ctx, b.export)
	if err != nil {
		return err
	}
	if err := b.waitDrained(ctx, 10*time.Minute); err != nil {
		return err
	}
	b.record(fmt.Sprintf("backfill of %d users, published and imported", b.exportN), "users/s", float64(b.exportN)/time.Since(start).Seconds(), false, limRequired, limImport)
	b.record("backfill process peak RSS", "MiB", peak, true)
	b.record("importer peak RSS during backfill", "MiB", imp.peakRSS(), true)
	b.record("nats-server peak RSS during backfill", "MiB", peakMiB(b.natsCmd.Process.Pid), true)
	return nil
}

// runBackfill publishes an export with `signupsync backfill` and returns
// the process's peak resident memory in MiB.
func (b *bench) runBackfill(ctx context.Context, file string) (float64, error) {
	cmd := exec.CommandContext(ctx, b.o.bin, "backfill", "--file", file, "--restart")
	cmd.Env = append(os.Environ(), "SIGNUPSYNC_NATS_URL="+b.natsURL, "SIGNUPSYNC_LOG_LEVEL=warn")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	peak, err := runPolled(cmd)
	if err != nil {
		return 0, fmt.Errorf("backfill: %v\n%s", err, out.String())
	}
	return peak, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// writeExport writes n users (all eligible, unique) in Auth0's export
// shape, with every field the importer maps (email, name, picture,
// created_at, one social identity), as benchSignup has them.
func writeExport(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(f)
	bw := bufio.NewWriterSize(zw, 1<<20)
	for i := 0; i < n; i++ {
		fmt.Fprintf(bw, `{"user_id":"github|%d","email":"bf%d@example.com","email_verified":true,"name":"Backfill %d","picture":"https://example.com/p.png","created_at":"2026-10-01T00:00:00.000Z","identities":[{"provider":"github","connection":"github","user_id":%d,"isSocial":true}]}`+"\n", 9_000_000+i, i, i, 9_000_000+i)
	}
	return errors.Join(bw.Flush(), zw.Close(), f.Close())
}

func median(v []float64) (med, lo, hi float64) {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0, 0, 0
	}
	if n%2 == 1 {
		med = s[n/2]
	} else {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// report prints every table, with the machine, and writes them as
// Markdown when asked.
func (b *bench) report(w io.Writer) error {
	var md bytes.Buffer
	machine := fmt.Sprintf("%d cores (nproc), %s, %s", runtime.NumCPU(), cpuModel(), runtime.Version())
	fmt.Fprintf(w, "\nsignupsync benchmarks — %s\n", machine)
	fmt.Fprintf(&md, "Machine: %s\n", machine)
	for _, t := range b.tables {
		if err := t.write(w, &md); err != nil {
			return err
		}
	}
	if b.o.markdown != "" {
		return os.WriteFile(b.o.markdown, md.Bytes(), 0o644)
	}
	return nil
}

// write prints the table (text to w, Markdown to md): one row per figure
// and its first limit, then a row per further limit.
func (t *table) write(w io.Writer, md *bytes.Buffer) error {
	runs := fmt.Sprintf("%d runs, median (min–max)", t.runs)
	if t.runs == 1 {
		runs = "1 run"
	}
	fmt.Fprintf(w, "\n%s — %s\n\n", t.title, runs)
	fmt.Fprintf(md, "\n%s — %s\n\n| figure | value | min–max | limit | ratio |\n|---|---|---|---|---|\n", t.title, runs)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tMIN–MAX\tLIMIT\tRATIO")
	row := func(name, val, rng, limit, ratio string) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, val, rng, limit, ratio)
		fmt.Fprintf(md, "| %s | %s | %s | %s | %s |\n", name, val, rng, limit, ratio)
	}
	for _, name := range t.order {
		f := t.figs[name]
		med, lo, hi := median(f.values)
		val := fmt.Sprintf("%.1f %s", med, f.unit)
		rng := fmt.Sprintf("%.1f–%.1f", lo, hi)
		if len(f.limits) == 0 {
			row(name, val, rng, "", "")
			continue
		}
		for i, l := range f.limits {
			limit, ratio := t.ratio(f, l)
			if i == 0 {
				row(name, val, rng, limit, ratio)
			} else {
				row("  ↳ same figure", "", "", limit, ratio)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range t.notes {
		fmt.Fprintf(w, "%s\n", n)
		fmt.Fprintf(md, "\n%s\n", n)
	}
	return nil
}

// ratio is the limit's median and the median of the per-run ratios of f
// to the limit named l.
func (t *table) ratio(f *figure, l string) (limit, ratio string) {
	lf, ok := t.figs[l]
	if !ok {
		return "", ""
	}
	var rs []float64
	for i := range f.values {
		if i < len(lf.values) && lf.values[i] > 0 {
			rs = append(rs, f.values[i]/lf.values[i])
		}
	}
	lm, _, _ := median(lf.values)
	rm, _, _ := median(rs)
	return fmt.Sprintf("%.0f %s (%s)", lm, lf.unit, strings.TrimPrefix(l, "limit: ")), fmt.Sprintf("%.2f", rm)
}

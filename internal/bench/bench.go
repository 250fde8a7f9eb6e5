package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/loadgen"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/schemas"
	"github.com/signupsync/signupsync/services/ingest"
)

type options struct {
	runs          int
	bin           string
	natsBin       string
	firebaseBin   string
	backfillUsers int
	importerUsers int
	markdown      string
}

const secret = "whsec_c2lnbnVwc3luYy1iZW5jaC1zZWNyZXQtMTIzNA=="

// figure is one row of the table: a value per run and what it is
// compared with.
type figure struct {
	name, unit  string
	values      []float64
	limit       string // name of the limit figure; "" for none
	lowerBetter bool
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
	nc      *nats.Conn
	js      jetstream.JetStream
	figs    map[string]*figure
	order   []string
	export  string
	exportN int
}

func newBench(ctx context.Context, o options, log io.Writer) (*bench, error) {
	dir, err := os.MkdirTemp("", "signupsync-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, log: log, dir: dir, figs: map[string]*figure{}}
	for _, p := range []string{o.bin, o.natsBin} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: %w (make bench builds it)", p, err)
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
	b.export = filepath.Join(dir, "export.json.gz")
	b.exportN = writeExport(b.export, o.backfillUsers)
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

func (b *bench) record(name, unit string, v float64, limit string, lowerBetter bool) {
	f, ok := b.figs[name]
	if !ok {
		f = &figure{name: name, unit: unit, limit: limit, lowerBetter: lowerBetter}
		b.figs[name] = f
		b.order = append(b.order, name)
	}
	f.values = append(f.values, v)
	fmt.Fprintf(b.log, "  %-48s %12.1f %s\n", name, v, unit)
}

// Figure names used as limits.
const (
	limPublish = "limit: JetStream async publish (file, Msg-Id)"
	limConsume = "limit: JetStream pull fetch + ack"
	limHTTP    = "limit: ingest HTTP, no-op publisher"
	limImport  = "limit: emulator ImportUsers, 1000/batch"
	limIngest  = "limit: min(HTTP, broker)"
)

func (b *bench) runOnce(ctx context.Context, run int) error {
	if err := b.resetTopology(ctx); err != nil {
		return err
	}
	pub, err := b.rawPublish(ctx, 50000)
	if err != nil {
		return err
	}
	b.record(limPublish, "msg/s", pub, "", false)
	syncPub, err := publishRate(ctx, b.syncJS, 20000)
	if err != nil {
		return err
	}
	b.record("JetStream async publish, sync_interval: always", "msg/s", syncPub, limPublish, false)
	cons, err := b.rawConsume(ctx)
	if err != nil {
		return err
	}
	b.record(limConsume, "msg/s", cons, "", false)
	httpLimit, err := b.httpLimit(ctx)
	if err != nil {
		return err
	}
	b.record(limHTTP, "req/s", httpLimit, "", false)
	imp, err := b.rawImport(ctx, fmt.Sprintf("demo-raw-%d", run), 20000)
	if err != nil {
		return err
	}
	b.record(limImport, "users/s", imp, "", false)
	b.record(limIngest, "req/s", min(httpLimit, pub), "", false)

	if err := b.ingestFigures(ctx, run); err != nil {
		return err
	}
	if err := b.pipelineFigures(ctx, run); err != nil {
		return err
	}
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

func eventPayload(i int) *nats.Msg {
	d := events.SignupData{Tenant: "bench", UserID: fmt.Sprintf("google-oauth2|%d", i), Email: fmt.Sprintf("u%d@example.com", i), EmailVerified: true,
		Name: "Bench User", Picture: "https://example.com/p.png", CreatedAt: "2026-11-01T10:00:00.000Z",
		Identities: []events.Identity{{Provider: "google-oauth2", Connection: "google-oauth2", UserID: strconv.Itoa(i), IsSocial: true}}}
	msg, _, _ := events.NewMsg(events.SourceAction, d, time.Now())
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
		_ = ingest.SignHeaders(h, secret, "msg_"+strconv.Itoa(id), now, body)
		out[i] = signed{body: body, header: h}
	}
	return out
}

func target(client *http.Client, url string, reqs []signed) loadgen.Target {
	return func(ctx context.Context, i int) (int, error) {
		r := reqs[i]
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+ingest.PathAction, bytes.NewReader(r.body))
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

type noopPublisher struct{}

func (noopPublisher) PublishMsg(context.Context, *nats.Msg, ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return &jetstream.PubAck{Stream: events.StreamSignups}, nil
}

func (b *bench) httpLimit(ctx context.Context) (float64, error) {
	set, err := schemas.Compile()
	if err != nil {
		return 0, err
	}
	cfg := ingest.DefaultConfig()
	cfg.ActionSecrets = []string{secret}
	svc, err := ingest.New(cfg, ingest.Deps{Publisher: noopPublisher{}, Schemas: set, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		return 0, err
	}
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()
	reqs := signedRequests(40000, 0)
	res := loadgen.ClosedLoop(ctx, 64, len(reqs), target(newClient(), srv.URL, reqs))
	if res.Statuses[202] != len(reqs) {
		return 0, fmt.Errorf("http limit: statuses %v errors %d", res.Statuses, res.Errors)
	}
	return res.Throughput(), nil
}

func firebaseClient(ctx context.Context, project string) (*auth.Client, error) {
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: project})
	if err != nil {
		return nil, err
	}
	return app.Auth(ctx)
}

func (b *bench) rawImport(ctx context.Context, project string, n int) (float64, error) {
	fb, err := firebaseClient(ctx, project)
	if err != nil {
		return 0, err
	}
	defer b.clearProject(project)
	start := time.Now()
	for i := 0; i < n; i += 1000 {
		users := make([]*auth.UserToImport, 0, 1000)
		for j := i; j < i+1000 && j < n; j++ {
			users = append(users, (&auth.UserToImport{}).UID(fmt.Sprintf("google-oauth2|%d", j)).Email(fmt.Sprintf("r%d@example.com", j)).EmailVerified(true).
				DisplayName("Bench User").PhotoURL("https://example.com/p.png").CustomClaims(map[string]any{"auth0_user_id": fmt.Sprintf("google-oauth2|%d", j)}).
				ProviderData([]*auth.UserProvider{{ProviderID: "google.com", UID: strconv.Itoa(j), Email: fmt.Sprintf("r%d@example.com", j)}}))
		}
		res, err := fb.ImportUsers(ctx, users)
		if err != nil || res.FailureCount > 0 {
			return 0, fmt.Errorf("raw import: %v %+v", err, res)
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// clearProject deletes every account of a project, keeping the emulator's
// memory flat across runs.
func (b *bench) clearProject(project string) {
	req, _ := http.NewRequest(http.MethodDelete, "http://"+b.emu.Host+"/emulator/v1/projects/"+project+"/accounts", nil)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
	}
}

// role is a signupsync process.
type role struct {
	cmd  *exec.Cmd
	addr string
}

func (b *bench) startRole(ctx context.Context, name string, env ...string) (*role, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(b.o.bin, name)
	cmd.Env = append(os.Environ(),
		"SIGNUPSYNC_NATS_URL="+b.natsURL, "SIGNUPSYNC_HTTP_ADDR="+addr, "SIGNUPSYNC_METRICS_ADDR="+addr,
		"SIGNUPSYNC_ACTION_SECRETS="+secret, "SIGNUPSYNC_LOG_LEVEL=warn", "FIREBASE_AUTH_EMULATOR_HOST="+b.emu.Host)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &role{cmd: cmd, addr: addr}
	for i := 0; ; i++ {
		res, err := http.Get("http://" + addr + "/readyz")
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
func (r *role) peakRSS() float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

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
	b.record("ingest saturated (closed loop, 64 clients)", "req/s", res.Throughput(), limIngest, false)
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
			b.record(fmt.Sprintf("ingest latency %s at %d/s (open loop)", q.name, rate), "ms", ms(r.Latency.Quantile(q.q)), "", true)
		}
		b.record(fmt.Sprintf("ingest latency max at %d/s (open loop)", rate), "ms", ms(r.Latency.Max()), "", true)
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
			b.record(fmt.Sprintf("end to end p50 at %d/s", rate), "ms", ms(lat.Quantile(0.5)), "", true)
			b.record(fmt.Sprintf("end to end p99 at %d/s", rate), "ms", ms(lat.Quantile(0.99)), "", true)
			if rate == 1000 {
				b.record("ingest peak RSS at 1000/s", "MiB", in.peakRSS(), "", true)
				b.record("importer peak RSS at 1000/s", "MiB", imp.peakRSS(), "", true)
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
	b.record("importer from a pre-loaded stream", "users/s", float64(n)/time.Since(start).Seconds(), limImport, false)
	return nil
}

func (b *bench) backfillFigure(ctx context.Context, run int) error {
	if err := b.resetTopology(ctx); err != nil {
		return err
	}
	project := fmt.Sprintf("demo-bf-%d", run)
	imp, err := b.startRole(ctx, "importer", "SIGNUPSYNC_FIREBASE_PROJECT="+project)
	if err != nil {
		return err
	}
	defer func() { imp.stop(); b.clearProject(project) }()
	start := time.Now()
	cmd := exec.CommandContext(ctx, b.o.bin, "backfill", "--file", b.export, "--restart")
	cmd.Env = append(os.Environ(), "SIGNUPSYNC_NATS_URL="+b.natsURL, "SIGNUPSYNC_LOG_LEVEL=warn")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	var peak float64
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
loop:
	for {
		select {
		case err := <-waitErr:
			if err != nil {
				return fmt.Errorf("backfill: %v\n%s", err, out.String())
			}
			break loop
		case <-poll.C:
			if v := (&role{cmd: cmd}).peakRSS(); v > peak {
				peak = v
			}
		}
	}
	if err := b.waitDrained(ctx, 10*time.Minute); err != nil {
		return err
	}
	b.record(fmt.Sprintf("backfill of %d users, published and imported", b.exportN), "users/s", float64(b.exportN)/time.Since(start).Seconds(), limImport, false)
	b.record("backfill process peak RSS", "MiB", peak, "", true)
	b.record("importer peak RSS during backfill", "MiB", imp.peakRSS(), "", true)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// writeExport writes n users (all eligible, unique) in Auth0's export shape.
func writeExport(path string, n int) int {
	f, err := os.Create(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	defer zw.Close()
	bw := bufio.NewWriterSize(zw, 1<<20)
	defer bw.Flush()
	for i := 0; i < n; i++ {
		fmt.Fprintf(bw, `{"user_id":"github|%d","email":"bf%d@example.com","email_verified":true,"name":"Backfill %d","created_at":"2026-10-01T00:00:00.000Z","identities":[{"provider":"github","connection":"github","user_id":%d,"isSocial":true}]}`+"\n", 9_000_000+i, i, i, 9_000_000+i)
	}
	return n
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

func (b *bench) report(w io.Writer) error {
	var md bytes.Buffer
	machine := fmt.Sprintf("%d cores (nproc), %s, %s, %d runs, median (min–max)", runtime.NumCPU(), cpuModel(), runtime.Version(), b.o.runs)
	fmt.Fprintf(w, "\nsignupsync benchmarks — %s\n\n", machine)
	fmt.Fprintf(&md, "Machine: %s\n\n| figure | value | min–max | limit | ratio |\n|---|---|---|---|---|\n", machine)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tMIN–MAX\tLIMIT\tRATIO")
	for _, name := range b.order {
		f := b.figs[name]
		med, lo, hi := median(f.values)
		limit, ratio := "", ""
		if f.limit != "" {
			if lf, ok := b.figs[f.limit]; ok {
				// Ratio per run, then the median of the ratios.
				var rs []float64
				for i := range f.values {
					if i < len(lf.values) && lf.values[i] > 0 {
						rs = append(rs, f.values[i]/lf.values[i])
					}
				}
				lm, _, _ := median(lf.values)
				rm, _, _ := median(rs)
				limit = fmt.Sprintf("%.0f %s (%s)", lm, lf.unit, strings.TrimPrefix(f.limit, "limit: "))
				ratio = fmt.Sprintf("%.2f", rm)
			}
		}
		val := fmt.Sprintf("%.1f %s", med, f.unit)
		rng := fmt.Sprintf("%.1f–%.1f", lo, hi)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, val, rng, limit, ratio)
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s |\n", name, val, rng, limit, ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if b.o.markdown != "" {
		return os.WriteFile(b.o.markdown, md.Bytes(), 0o644)
	}
	return nil
}

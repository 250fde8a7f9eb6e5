package validate

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The names of events/topology.go (this module does not import the main
// one).
const (
	streamSignups  = "SIGNUPS"
	streamDLQ      = "SIGNUPS_DLQ"
	bucketLedger   = "SIGNUPS_LEDGER"
	bucketState    = "SIGNUPSYNC_STATE"
	bucketClaims   = "SIGNUPS_CLAIMS"
	durable        = "importer"
	advisoryMaxDel = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.SIGNUPS.importer"
	// The lifecycle stream and its consumer (events/lifecycle.go).
	streamLifecycle  = "SIGNUPS_LIFECYCLE"
	durableLifecycle = "lifecycle"
	// The password-hash export (events/passwords.go).
	streamPasswords    = "PASSWORDS"
	streamPasswordsDLQ = "PASSWORDS_DLQ"
	durablePasswords   = "importer_passwords"
	// Anonymous account merges (events/accounts.go): the exchange's consumer
	// of acknowledgements, and the app's worker's consumer of requests
	// (README "Guests: merging an anonymous session").
	streamAccounts  = "ACCOUNTS"
	durableMerged   = "exchange_merged"
	durableAppMerge = "app_merge"
	// The guest key of the merge the checks request and acknowledge.
	mergeKey = "0123456789abcdef0123456789abcdef"
)

// roleUsers are the NATS users of the SIGNUPSYNC account, one per role
// (app_merge: the app's merge worker).
var roleUsers = []string{"ingest", "exchange", "importer", "reconcile", "operator", "app_merge"}

// inboxPrefix is the reply inbox prefix each role connects with
// (services/signupsync: ingest and exchange have their own; the app's
// merge worker must use its own too).
func inboxPrefix(user string) string {
	switch user {
	case "ingest", "exchange", "app_merge":
		return "_INBOX_" + user
	}
	return ""
}

func rolePassword(user string) string {
	return natsPasswords["NATS_"+strings.ToUpper(user)+"_PASSWORD"]
}

// serverLog keeps the servers' trace lines of SIGNUPSYNC clients (every
// PUB and SUB, with the user) and every permission violation.
type serverLog struct {
	mu         sync.Mutex
	ops        []clientOp
	violations []clientOp
}

// clientOp is one operation a user's connection sent, or was refused.
type clientOp struct{ user, op, subject string }

var (
	traceOp     = regexp.MustCompile(`"SIGNUPSYNC/user:([a-z_]+)" - <<- \[(HPUB|PUB|SUB) ([^ \]]+)`)
	violationRe = regexp.MustCompile(`"SIGNUPSYNC/user:([a-z_]+)" - (Publish|Subscription) Violation - Subject "([^"]+)"`)
)

func (l *serverLog) record(format string, v []any) {
	line := fmt.Sprintf(format, v...)
	if !strings.Contains(line, `"SIGNUPSYNC/user:`) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if m := violationRe.FindStringSubmatch(line); m != nil {
		l.violations = append(l.violations, clientOp{m[1], m[2], m[3]})
	} else if m := traceOp.FindStringSubmatch(line); m != nil {
		l.ops = append(l.ops, clientOp{m[1], m[2], m[3]})
	}
}

func (l *serverLog) Noticef(format string, v ...any) {}
func (l *serverLog) Warnf(format string, v ...any)   { l.record(format, v) }
func (l *serverLog) Fatalf(format string, v ...any)  { l.record(format, v) }
func (l *serverLog) Errorf(format string, v ...any)  { l.record(format, v) }
func (l *serverLog) Debugf(format string, v ...any)  {}
func (l *serverLog) Tracef(format string, v ...any)  { l.record(format, v) }

// takeViolations returns and forgets the violations seen so far.
func (l *serverLog) takeViolations() []clientOp {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.violations
	l.violations = nil
	return v
}

func (l *serverLog) refused(user, subject string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.violations, func(o clientOp) bool { return o.user == user && o.subject == subject })
}

func (l *serverLog) allOps() []clientOp {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ops)
}

// subjectMatches reports whether subject (taken literally) matches the
// permission pattern (with * and > wildcards).
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

// configuredPermissions reads each role user's permissions from the node
// configuration (deploy/nats/cluster.conf with permissions.conf).
func configuredPermissions(t *testing.T) map[string]*server.Permissions {
	t.Helper()
	out := map[string]*server.Permissions{}
	for _, u := range loadNATS(t, "nats-1").Users {
		if u.Account != nil && u.Account.Name == "SIGNUPSYNC" {
			out[u.Username] = u.Permissions
		}
	}
	for _, user := range roleUsers {
		p := out[user]
		if p == nil || p.Publish == nil || len(p.Publish.Allow) == 0 || p.Subscribe == nil || len(p.Subscribe.Allow) == 0 {
			t.Fatalf("user %s: no publish and subscribe allow lists (every role user must be restricted): %+v", user, p)
		}
	}
	if len(out) != len(roleUsers) {
		t.Fatalf("SIGNUPSYNC users %v, want %v", keys(out), roleUsers)
	}
	return out
}

// roleConn is a connection with a role's user and inbox prefix.
type roleConn struct {
	user string
	nc   *nats.Conn
	js   jetstream.JetStream
}

func connectRole(t *testing.T, urls []string, user string) *roleConn {
	t.Helper()
	opts := []nats.Option{
		nats.UserInfo(user, rolePassword(user)), nats.Name("validate-" + user),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}), // refusals are checked on the server side
	}
	if p := inboxPrefix(user); p != "" {
		opts = append(opts, nats.CustomInboxPrefix(p))
	}
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &roleConn{user: user, nc: nc, js: js}
}

// ensureTopology does what events.Ensure does: create or update the two
// streams and the three buckets, three replicas.
func ensureTopology(ctx context.Context, js jetstream.JetStream, replicas int) error {
	for _, cfg := range []jetstream.StreamConfig{
		{Name: streamSignups, Subjects: []string{"signups.v1.>"}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: replicas,
			Duplicates: 10 * time.Minute, MaxAge: 30 * 24 * time.Hour, Discard: jetstream.DiscardOld},
		{Name: streamDLQ, Subjects: []string{"dlq.signups.v1.>"}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: replicas,
			Duplicates: 10 * time.Minute},
		{Name: streamLifecycle, Subjects: []string{"users.v1.>"}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: replicas,
			Duplicates: 10 * time.Minute, MaxAge: 30 * 24 * time.Hour, Discard: jetstream.DiscardOld},
		{Name: streamPasswords, Subjects: []string{"passwords.v1.>"}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: replicas,
			Duplicates: 10 * time.Minute, MaxAge: 72 * time.Hour, MaxMsgSize: 64 << 10, Discard: jetstream.DiscardOld},
		{Name: streamPasswordsDLQ, Subjects: []string{"dlq.passwords.v1.>"}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: replicas,
			Duplicates: 10 * time.Minute, MaxAge: 72 * time.Hour, MaxMsgSize: 64 << 10, Discard: jetstream.DiscardOld},
		{Name: streamAccounts, Subjects: []string{"accounts.v1.>"}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: replicas,
			Duplicates: 10 * time.Minute, MaxMsgsPerSubject: 1, Discard: jetstream.DiscardOld, AllowDirect: true},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range []jetstream.KeyValueConfig{
		{Bucket: bucketLedger, History: 1, Storage: jetstream.FileStorage, Replicas: replicas},
		{Bucket: bucketState, History: 1, Storage: jetstream.FileStorage, Replicas: replicas},
		{Bucket: bucketClaims, History: 1, Storage: jetstream.FileStorage, Replicas: replicas, TTL: 15 * time.Minute, LimitMarkerTTL: time.Second},
	} {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}

// retryEnsure retries ensureTopology while the cluster elects leaders.
func retryEnsure(t *testing.T, ctx context.Context, js jetstream.JetStream, replicas int) {
	t.Helper()
	for {
		err := ensureTopology(ctx, js, replicas)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("ensure topology: %v", err)
		}
		time.Sleep(200 * time.Millisecond) // the stream groups may still be electing
	}
}

// signup publishes one message with a Nats-Msg-Id into stream.
func publish(ctx context.Context, js jetstream.JetStream, subject, stream string, data []byte) (*jetstream.PubAck, error) {
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("su_%d", time.Now().UnixNano()))
	return js.PublishMsg(ctx, m, jetstream.WithExpectStream(stream))
}

// step is one operation a role performs; run must succeed.
type step struct {
	name string
	run  func(ctx context.Context) error
}

func runSteps(t *testing.T, user string, steps []step) {
	t.Helper()
	for _, s := range steps {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := s.run(ctx)
		cancel()
		if err != nil {
			t.Errorf("%s: %s: %v (its permissions must allow it)", user, s.name, err)
		}
	}
}

// refusal is an operation a role must not be able to do, and the subject
// the server must refuse.
type refusal struct {
	user, name, subject string
	run                 func(ctx context.Context) error
}

// TestNATSLeastPrivilege starts the three-node cluster with
// deploy/nats/permissions.conf and proves, against the real servers, that
// each role's work succeeds with its own user and that what a role must not
// do is refused: ingest cannot write the ledger, purge, change or delete a
// stream, or read signups; the importer cannot purge or delete streams,
// and so on. Every allow rule of every user must be used by an operation
// that succeeded (the servers' trace shows which subjects each user sent),
// so the permissions hold nothing unused; no operation of a role's real
// work may be refused. TestNATSRolesEndToEnd runs the real binary on top.
func TestNATSLeastPrivilege(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers")
	}
	perms := configuredPermissions(t)
	log := &serverLog{}
	urls := startNATSCluster(t, log)
	conns := map[string]*roleConn{}
	for _, u := range roleUsers {
		conns[u] = connectRole(t, urls, u)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// What each role does, in the order the pipeline does it.
	imp, ing, exc, rec, op, app := conns["importer"], conns["ingest"], conns["exchange"], conns["reconcile"], conns["operator"], conns["app_merge"]
	retryEnsure(t, ctx, imp.js, 3) // creates
	runImporterSetup(t, imp)
	runSteps(t, "ingest", ingestSteps(ing))
	runImporterWork(t, imp)
	runSteps(t, "exchange", exchangeSteps(exc))
	runSteps(t, "app_merge", appMergeSteps(app))
	runSteps(t, "exchange", exchangeMergedSteps(exc))
	runSteps(t, "reconcile", reconcileSteps(rec))
	runSteps(t, "reconcile", passwordsCommandSteps(rec))
	runSteps(t, "importer", importerPasswordSteps(imp))
	runSteps(t, "operator", operatorSteps(op))
	// reconcile and backfill create the topology when they run first: on a
	// fresh single server with the same users.
	single := startNATSSingle(t, log)
	retryEnsure(t, ctx, connectRole(t, []string{single}, "reconcile").js, 1)
	if v := log.takeViolations(); len(v) > 0 {
		t.Fatalf("a role's own work was refused: %v", v)
	}

	// Refusals, concurrently: a refused request is only seen to time out.
	signupsBefore := streamMsgs(t, imp.js, streamSignups)
	var wg sync.WaitGroup
	for _, r := range refusals(conns) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			err := r.run(rctx)
			rcancel()
			if err == nil {
				t.Errorf("%s: %s succeeded; want it refused", r.user, r.name)
				return
			}
			deadline := time.Now().Add(3 * time.Second)
			for !log.refused(r.user, r.subject) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond) // the server logs asynchronously
			}
			if !log.refused(r.user, r.subject) {
				t.Errorf("%s: %s failed (%v) but the server refused no %q", r.user, r.name, err, r.subject)
			}
		}()
	}
	wg.Wait()
	if got := streamMsgs(t, imp.js, streamSignups); got != signupsBefore {
		t.Errorf("SIGNUPS holds %d messages after the refusals, had %d", got, signupsBefore)
	}

	// Every allow rule was used by an operation that succeeded.
	checkRulesUsed(t, perms, log.allOps(), nil)
}

// checkRulesUsed fails for each allow rule of perms that no operation in
// ops matches (except the users in skip), and for each operation that
// matches no rule of its user (it would have been refused).
func checkRulesUsed(t *testing.T, perms map[string]*server.Permissions, ops []clientOp, skip []string) {
	t.Helper()
	for user, p := range perms {
		if slices.Contains(skip, user) {
			continue
		}
		for kind, rules := range map[string][]string{"publish": p.Publish.Allow, "subscribe": p.Subscribe.Allow} {
			for _, rule := range rules {
				used := slices.ContainsFunc(ops, func(o clientOp) bool {
					return o.user == user && (o.op == "SUB") == (kind == "subscribe") && subjectMatches(rule, o.subject)
				})
				if !used {
					t.Errorf("user %s: %s rule %q was used by no operation; drop it or exercise it", user, kind, rule)
				}
			}
		}
	}
}

func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return info.State.Msgs
}

// startNATSSingle starts nats-1's configuration as a lone server (no
// routes) and returns its client URL.
func startNATSSingle(t *testing.T, log server.Logger) string {
	t.Helper()
	o := loadNATS(t, "nats-1")
	o.Host, o.Port, o.HTTPPort = "127.0.0.1", server.RANDOM_PORT, 0
	o.Cluster = server.ClusterOpts{}
	o.Routes = nil
	o.StoreDir = t.TempDir()
	o.LameDuckDuration, o.LameDuckGracePeriod = 0, 0
	o.NoSigs, o.Trace = true, true
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	s.SetLoggerV2(log, false, true, false)
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("single server not ready")
	}
	return s.ClientURL()
}

func lifecycleConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable: durableLifecycle, DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Minute, MaxDeliver: -1, MaxAckPending: 20000, FilterSubject: "users.v1.>",
	}
}

func passwordConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable: durablePasswords, DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Minute, MaxDeliver: -1, MaxAckPending: 20000, FilterSubject: "passwords.v1.>",
	}
}

// passwordsCommandSteps: `signupsync passwords` runs as the reconcile user
// and publishes a joined user with its hash.
func passwordsCommandSteps(rec *roleConn) []step {
	return []step{
		{"publish a password import", func(ctx context.Context) error {
			_, err := publish(ctx, rec.js, "passwords.v1.hash_export", streamPasswords, []byte(`{"v":1}`))
			return err
		}},
	}
}

// importerPasswordSteps: the importer's password consumer fetches and
// acks, and dead-letters into PASSWORDS_DLQ.
func importerPasswordSteps(imp *roleConn) []step {
	return []step{
		{"passwords: fetch and ack", func(ctx context.Context) error {
			c, err := imp.js.CreateOrUpdateConsumer(ctx, streamPasswords, passwordConsumerConfig())
			if err != nil {
				return err
			}
			batch, err := c.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				return err
			}
			n := 0
			for m := range batch.Messages() {
				if err := m.DoubleAck(ctx); err != nil {
					return err
				}
				n++
			}
			if n == 0 {
				return fmt.Errorf("fetched no password import: %v", batch.Error())
			}
			return nil
		}},
		{"passwords: dead-letter a user id", func(ctx context.Context) error {
			_, err := publish(ctx, imp.js, "dlq.passwords.v1.hash_export", streamPasswordsDLQ, []byte(`{"auth0_user_id":"auth0|x"}`))
			return err
		}},
	}
}

func consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable: durable, DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Minute, MaxDeliver: -1, MaxAckPending: 20000, FilterSubject: "signups.v1.>",
	}
}

// runImporterSetup: importer.New and the start of Run (the second Ensure
// updates what the first created, as every restart does).
func runImporterSetup(t *testing.T, imp *roleConn) {
	t.Helper()
	runSteps(t, "importer", []step{
		{"ensure topology again (update)", func(ctx context.Context) error { return ensureTopology(ctx, imp.js, 3) }},
		{"create or update the durable consumer", func(ctx context.Context) error {
			_, err := imp.js.CreateOrUpdateConsumer(ctx, streamSignups, consumerConfig())
			return err
		}},
		{"create or update the lifecycle consumer", func(ctx context.Context) error {
			_, err := imp.js.CreateOrUpdateConsumer(ctx, streamLifecycle, lifecycleConsumerConfig())
			return err
		}},
		{"create or update the password consumer", func(ctx context.Context) error {
			_, err := imp.js.CreateOrUpdateConsumer(ctx, streamPasswords, passwordConsumerConfig())
			return err
		}},
		{"open the ledger and claims buckets", func(ctx context.Context) error {
			if _, err := imp.js.KeyValue(ctx, bucketLedger); err != nil {
				return err
			}
			kv, err := imp.js.KeyValue(ctx, bucketClaims)
			if err != nil {
				return err
			}
			_, err = kv.Status(ctx)
			return err
		}},
		{"subscribe to the MAX_DELIVERIES advisory (backstop)", func(context.Context) error {
			_, err := imp.nc.QueueSubscribe(advisoryMaxDel, "signupsync-importer-backstop", func(*nats.Msg) {})
			if err == nil {
				err = imp.nc.Flush()
			}
			return err
		}},
		{"readiness and lag metrics", func(ctx context.Context) error {
			for _, name := range []string{streamSignups, streamDLQ} {
				st, err := imp.js.Stream(ctx, name)
				if err != nil {
					return err
				}
				if _, err := st.Info(ctx); err != nil {
					return err
				}
			}
			c, err := imp.js.Consumer(ctx, streamSignups, durable)
			if err != nil {
				return err
			}
			_, err = c.Info(ctx)
			return err
		}},
	})
}

func ingestSteps(ing *roleConn) []step {
	return []step{
		{"readiness: SIGNUPS's info", func(ctx context.Context) error {
			_, err := ing.js.Stream(ctx, streamSignups)
			return err
		}},
		{"publish an Action, an Event Streams and a Log Streams signup", func(ctx context.Context) error {
			for _, src := range []string{"action", "event_stream", "log_stream"} {
				if _, err := publish(ctx, ing.js, "signups.v1."+src, streamSignups, []byte(`{"type":"signup"}`)); err != nil {
					return fmt.Errorf("%s: %w", src, err)
				}
			}
			return nil
		}},
		{"dead-letter an invalid Log Streams entry", func(ctx context.Context) error {
			_, err := publish(ctx, ing.js, "dlq.signups.v1.log_stream", streamDLQ, []byte(`{"invalid":true}`))
			return err
		}},
		{"publish Event Streams updates and deletions and a Log Streams deletion", func(ctx context.Context) error {
			for _, subj := range []string{"users.v1.updated.event_stream", "users.v1.deleted.event_stream", "users.v1.deleted.log_stream"} {
				if _, err := publish(ctx, ing.js, subj, streamLifecycle, []byte(`{"type":"lifecycle"}`)); err != nil {
					return fmt.Errorf("%s: %w", subj, err)
				}
			}
			return nil
		}},
	}
}

// runImporterWork: fetch, ack, ledger, claims, dead letter, backstop read.
func runImporterWork(t *testing.T, imp *roleConn) {
	t.Helper()
	runSteps(t, "importer", []step{
		{"fetch and ack a batch", func(ctx context.Context) error {
			c, err := imp.js.Consumer(ctx, streamSignups, durable)
			if err != nil {
				return err
			}
			batch, err := c.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				return err
			}
			n := 0
			for m := range batch.Messages() {
				if err := m.DoubleAck(ctx); err != nil {
					return err
				}
				n++
			}
			if n == 0 {
				return fmt.Errorf("fetched nothing: %v", batch.Error())
			}
			return nil
		}},
		{"lifecycle: fetch and ack, consumer info", func(ctx context.Context) error {
			c, err := imp.js.Consumer(ctx, streamLifecycle, durableLifecycle)
			if err != nil {
				return err
			}
			if _, err := c.Info(ctx); err != nil {
				return err
			}
			batch, err := c.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				return err
			}
			n := 0
			for m := range batch.Messages() {
				if err := m.DoubleAck(ctx); err != nil {
					return err
				}
				n++
			}
			if n == 0 {
				return fmt.Errorf("fetched no lifecycle event: %v", batch.Error())
			}
			return nil
		}},
		{"write and read the ledger (create, get, update)", func(ctx context.Context) error {
			kv, err := imp.js.KeyValue(ctx, bucketLedger)
			if err != nil {
				return err
			}
			rev, err := kv.Create(ctx, "u_check", []byte(`{"outcome":"imported"}`))
			if err != nil {
				return err
			}
			if _, err := kv.Get(ctx, "u_check"); err != nil {
				return err
			}
			_, err = kv.Update(ctx, "u_check", []byte(`{"outcome":"imported","deliveries":2}`), rev)
			return err
		}},
		{"take, read and release a claim", func(ctx context.Context) error {
			m := nats.NewMsg("$KV." + bucketClaims + ".c_check")
			m.Data = []byte(`{"holder":"x"}`)
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
			ack, err := imp.js.PublishMsg(ctx, m)
			if err != nil {
				return err
			}
			kv, err := imp.js.KeyValue(ctx, bucketClaims)
			if err != nil {
				return err
			}
			if _, err := kv.Get(ctx, "c_check"); err != nil {
				return err
			}
			r := nats.NewMsg("$KV." + bucketClaims + ".c_check")
			r.Header.Set("KV-Operation", "PURGE")
			r.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
			r.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(ack.Sequence))
			_, err = imp.js.PublishMsg(ctx, r, jetstream.WithMsgTTL(time.Second))
			return err
		}},
		{"write large ledger entries (for the flow-controlled watches below)", func(ctx context.Context) error {
			return putLarge(ctx, imp.js)
		}},
		{"dead-letter a signup", func(ctx context.Context) error {
			_, err := publish(ctx, imp.js, "dlq.signups.v1.action", streamDLQ, []byte(`{"type":"signup"}`))
			return err
		}},
		{"backstop: read the message an advisory names", func(ctx context.Context) error {
			st, err := imp.js.Stream(ctx, streamSignups)
			if err != nil {
				return err
			}
			_, err = st.GetMsg(ctx, 1)
			return err
		}},
	})
}

// watchAll reads every entry of the ledger through a watch (an ordered
// consumer). With the large values putLarge writes, the server asks for
// flow control, which the client answers on $JS.FC.
func watchAll(ctx context.Context, js jetstream.JetStream, want int) error {
	kv, err := js.KeyValue(ctx, bucketLedger)
	if err != nil {
		return err
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	n := 0
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				if n < want {
					return fmt.Errorf("watch delivered %d entries, want %d", n, want)
				}
				return nil
			}
			n++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// largeEntries is how many 256 KiB ledger values putLarge writes: more than
// half the server's flow control window (4 MiB / 2), so every watch of the
// whole bucket gets a flow control request.
const largeEntries = 12

func putLarge(ctx context.Context, js jetstream.JetStream) error {
	kv, err := js.KeyValue(ctx, bucketLedger)
	if err != nil {
		return err
	}
	v := []byte(strings.Repeat("x", 256<<10))
	for i := range largeEntries {
		if _, err := kv.Put(ctx, fmt.Sprintf("u_large_%d", i), v); err != nil {
			return err
		}
	}
	return nil
}

func exchangeSteps(exc *roleConn) []step {
	return []step{
		{"readiness: SIGNUPS's info", func(ctx context.Context) error {
			_, err := exc.js.Stream(ctx, streamSignups)
			return err
		}},
		{"look up a ledger entry", func(ctx context.Context) error {
			kv, err := exc.js.KeyValue(ctx, bucketLedger)
			if err != nil {
				return err
			}
			_, err = kv.Get(ctx, "u_check")
			return err
		}},
		{"watch one ledger key, publish the signup on the spot", func(ctx context.Context) error {
			kv, err := exc.js.KeyValue(ctx, bucketLedger)
			if err != nil {
				return err
			}
			w, err := kv.Watch(ctx, "u_check")
			if err != nil {
				return err
			}
			defer func() { _ = w.Stop() }()
			for e := range w.Updates() {
				if e == nil {
					break
				}
			}
			_, err = publish(ctx, exc.js, "signups.v1.reconcile", streamSignups, []byte(`{"type":"signup"}`))
			return err
		}},
		{"watch the ledger under flow control", func(ctx context.Context) error {
			return watchAll(ctx, exc.js, largeEntries)
		}},
		{"request an anonymous merge (create-if-absent), read it back", func(ctx context.Context) error {
			subj := "accounts.v1.merge." + mergeKey
			m := nats.NewMsg(subj)
			m.Data = []byte(`{"type":"merge"}`)
			m.Header.Set(nats.MsgIdHdr, "mg_check")
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
			if _, err := exc.js.PublishMsg(ctx, m, jetstream.WithExpectStream(streamAccounts)); err != nil {
				return err
			}
			st, err := exc.js.Stream(ctx, streamAccounts)
			if err != nil {
				return err
			}
			_, err = st.GetLastMsgForSubject(ctx, subj)
			return err
		}},
		{"record a password migration in the ledger (create, update by revision)", func(ctx context.Context) error {
			kv, err := exc.js.KeyValue(ctx, bucketLedger)
			if err != nil {
				return err
			}
			rev, err := kv.Create(ctx, "u_lazy_exchange", []byte(`{"outcome":"skipped"}`))
			if err != nil {
				return err
			}
			_, err = kv.Update(ctx, "u_lazy_exchange", []byte(`{"outcome":"imported","reason":"lazy_password"}`), rev)
			return err
		}},
	}
}

// mergedConsumerConfig is events.MergedConsumerConfig: the exchange's
// consumer of the app's acknowledgements (--delete-merged-anonymous).
func mergedConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable: durableMerged, DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 30 * time.Second, MaxDeliver: -1, MaxAckPending: 100, FilterSubject: "accounts.v1.merged.>",
	}
}

// appMergeConsumerConfig is the app's worker's consumer of merge requests
// (README "Guests: merging an anonymous session").
func appMergeConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable: durableAppMerge, DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Minute, FilterSubject: "accounts.v1.merge.>",
	}
}

// appMergeSteps: the app's merge worker consumes the request the exchange
// published (exchangeSteps), publishes the acknowledgement and acks.
func appMergeSteps(app *roleConn) []step {
	return []step{
		{"readiness: ACCOUNTS's info", func(ctx context.Context) error {
			_, err := app.js.Stream(ctx, streamAccounts)
			return err
		}},
		{"create or update its consumer of merge requests, consumer info", func(ctx context.Context) error {
			c, err := app.js.CreateOrUpdateConsumer(ctx, streamAccounts, appMergeConsumerConfig())
			if err != nil {
				return err
			}
			_, err = c.Info(ctx)
			return err
		}},
		{"consume a merge request, acknowledge the merge, ack the request", func(ctx context.Context) error {
			c, err := app.js.Consumer(ctx, streamAccounts, durableAppMerge)
			if err != nil {
				return err
			}
			batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				return err
			}
			n := 0
			for m := range batch.Messages() {
				if want := "accounts.v1.merge." + mergeKey; m.Subject() != want {
					return fmt.Errorf("delivered %s, want %s", m.Subject(), want)
				}
				done := nats.NewMsg("accounts.v1.merged." + mergeKey)
				done.Data = []byte(`{"type":"merged"}`)
				done.Header.Set(nats.MsgIdHdr, "md_check")
				if _, err := app.js.PublishMsg(ctx, done, jetstream.WithExpectStream(streamAccounts)); err != nil {
					return fmt.Errorf("acknowledgement: %w", err)
				}
				if err := m.DoubleAck(ctx); err != nil {
					return err
				}
				n++
			}
			if n == 0 {
				return fmt.Errorf("fetched no merge request: %v", batch.Error())
			}
			return nil
		}},
	}
}

// exchangeMergedSteps: with --delete-merged-anonymous the exchange creates
// its consumer of acknowledgements and consumes the app's (ConsumeMerged,
// handleMerged): a nak with delay (a transient failure), the redelivery
// acked, then the drain of its stop function.
func exchangeMergedSteps(exc *roleConn) []step {
	return []step{
		{"consume an acknowledgement: nak, redelivery, ack, drain", func(ctx context.Context) error {
			cons, err := exc.js.CreateOrUpdateConsumer(ctx, streamAccounts, mergedConsumerConfig())
			if err != nil {
				return err
			}
			acked := make(chan error, 1)
			cc, err := cons.Consume(func(m jetstream.Msg) {
				meta, err := m.Metadata()
				switch {
				case err != nil:
				case m.Subject() != "accounts.v1.merged."+mergeKey:
					err = fmt.Errorf("delivered %s", m.Subject())
				case meta.NumDelivered == 1:
					if err = m.NakWithDelay(100 * time.Millisecond); err == nil {
						return
					}
				default:
					err = m.DoubleAck(ctx)
				}
				select {
				case acked <- err:
				default:
				}
			})
			if err != nil {
				return err
			}
			select {
			case err = <-acked:
			case <-ctx.Done():
				err = fmt.Errorf("no acknowledgement consumed: %w", ctx.Err())
			}
			cc.Drain()
			select {
			case <-cc.Closed():
			case <-ctx.Done():
				cc.Stop()
				return errors.Join(err, fmt.Errorf("drain: %w", ctx.Err()))
			}
			return err
		}},
	}
}

func reconcileSteps(rec *roleConn) []step {
	return []step{
		{"ensure topology (update)", func(ctx context.Context) error { return ensureTopology(ctx, rec.js, 3) }},
		{"readiness: SIGNUPS's info", func(ctx context.Context) error {
			_, err := rec.js.Stream(ctx, streamSignups)
			return err
		}},
		{"look up a ledger entry", func(ctx context.Context) error {
			kv, err := rec.js.KeyValue(ctx, bucketLedger)
			if err != nil {
				return err
			}
			_, err = kv.Get(ctx, "u_check")
			return err
		}},
		{"read and write the checkpoint", func(ctx context.Context) error {
			kv, err := rec.js.KeyValue(ctx, bucketState)
			if err != nil {
				return err
			}
			if _, err := kv.Get(ctx, "reconcile"); !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("get: %w", err)
			}
			rev, err := kv.Create(ctx, "reconcile", []byte(`{}`))
			if err != nil {
				return err
			}
			if _, err := kv.Update(ctx, "reconcile", []byte(`{"until":1}`), rev); err != nil {
				return err
			}
			_, err = kv.Put(ctx, "backfill.export", []byte(`{"line":1}`))
			return err
		}},
		{"publish a reconciled and a backfilled signup", func(ctx context.Context) error {
			for _, src := range []string{"reconcile", "backfill"} {
				if _, err := publish(ctx, rec.js, "signups.v1."+src, streamSignups, []byte(`{"type":"signup"}`)); err != nil {
					return fmt.Errorf("%s: %w", src, err)
				}
			}
			return nil
		}},
	}
}

// operatorSteps: status, report, dlq list/replay/purge.
func operatorSteps(op *roleConn) []step {
	return []step{
		{"status: one ledger entry", func(ctx context.Context) error {
			kv, err := op.js.KeyValue(ctx, bucketLedger)
			if err != nil {
				return err
			}
			_, err = kv.Get(ctx, "u_check")
			return err
		}},
		{"report: list the ledger's keys, read the entries under flow control", func(ctx context.Context) error {
			kv, err := op.js.KeyValue(ctx, bucketLedger)
			if err != nil {
				return err
			}
			l, err := kv.ListKeys(ctx)
			if err != nil {
				return err
			}
			n := 0
			for range l.Keys() {
				n++
			}
			if n < largeEntries {
				return fmt.Errorf("listed %d keys", n)
			}
			return watchAll(ctx, op.js, largeEntries)
		}},
		{"dlq list, replay one, purge one", func(ctx context.Context) error {
			st, err := op.js.Stream(ctx, streamDLQ)
			if err != nil {
				return err
			}
			info, err := st.Info(ctx)
			if err != nil {
				return err
			}
			if info.State.Msgs < 2 {
				return fmt.Errorf("%d dead letters, want 2", info.State.Msgs)
			}
			first, err := st.GetMsg(ctx, info.State.FirstSeq)
			if err != nil {
				return err
			}
			if _, err := publish(ctx, op.js, "signups.v1.action", streamSignups, first.Data); err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			if err := st.DeleteMsg(ctx, first.Sequence); err != nil {
				return err
			}
			return st.DeleteMsg(ctx, info.State.LastSeq)
		}},
	}
}

// api sends a raw JetStream API request: the refusals name their subject
// exactly.
func api(rc *roleConn, subject, body string) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := rc.nc.RequestWithContext(ctx, subject, []byte(body))
		return err
	}
}

func pub(rc *roleConn, subject string) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := rc.js.Publish(ctx, subject, []byte(`{}`))
		return err
	}
}

// sub subscribes and reports the server's refusal, which arrives
// asynchronously.
func sub(rc *roleConn, subject string) func(context.Context) error {
	return func(ctx context.Context) error {
		errc := make(chan error, 1)
		nc, err := nats.Connect(rc.nc.ConnectedUrl(), nats.UserInfo(rc.user, rolePassword(rc.user)),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				select {
				case errc <- err:
				default:
				}
			}))
		if err != nil {
			return err
		}
		defer nc.Close()
		if _, err := nc.SubscribeSync(subject); err != nil {
			return err
		}
		_ = nc.Flush()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			return nil // not refused
		}
	}
}

func refusals(c map[string]*roleConn) []refusal {
	ing, exc, imp, rec, op, app := c["ingest"], c["exchange"], c["importer"], c["reconcile"], c["operator"], c["app_merge"]
	// A consumer of the merge requests or the acknowledgements, as the body
	// of CONSUMER.CREATE.ACCOUNTS.<durable>.<filter>.
	consumerOn := func(durable, filter string) string {
		return `{"stream_name":"ACCOUNTS","config":{"durable_name":"` + durable + `","filter_subject":"` + filter + `","ack_policy":"explicit"}}`
	}
	return []refusal{
		// ingest: the internet-facing role.
		{"ingest", "write the ledger", "$KV.SIGNUPS_LEDGER.u_evil", pub(ing, "$KV.SIGNUPS_LEDGER.u_evil")},
		{"ingest", "write a claim", "$KV.SIGNUPS_CLAIMS.c_evil", pub(ing, "$KV.SIGNUPS_CLAIMS.c_evil")},
		{"ingest", "purge SIGNUPS", "$JS.API.STREAM.PURGE.SIGNUPS", api(ing, "$JS.API.STREAM.PURGE.SIGNUPS", "")},
		{"ingest", "purge the ledger", "$JS.API.STREAM.PURGE.KV_SIGNUPS_LEDGER", api(ing, "$JS.API.STREAM.PURGE.KV_SIGNUPS_LEDGER", "")},
		{"ingest", "delete SIGNUPS", "$JS.API.STREAM.DELETE.SIGNUPS", api(ing, "$JS.API.STREAM.DELETE.SIGNUPS", "")},
		{"ingest", "change SIGNUPS (max age)", "$JS.API.STREAM.UPDATE.SIGNUPS", func(ctx context.Context) error {
			_, err := ing.js.UpdateStream(ctx, jetstream.StreamConfig{Name: streamSignups, Subjects: []string{"signups.v1.>"}, Replicas: 3, MaxAge: time.Second})
			return err
		}},
		{"ingest", "create SIGNUPS", "$JS.API.STREAM.CREATE.SIGNUPS", api(ing, "$JS.API.STREAM.CREATE.SIGNUPS", `{"name":"SIGNUPS"}`)},
		{"ingest", "read signups: a consumer on SIGNUPS", "$JS.API.CONSUMER.CREATE.SIGNUPS", api(ing, "$JS.API.CONSUMER.CREATE.SIGNUPS", `{"stream_name":"SIGNUPS","config":{}}`)},
		{"ingest", "read signups: one by sequence", "$JS.API.STREAM.MSG.GET.SIGNUPS", api(ing, "$JS.API.STREAM.MSG.GET.SIGNUPS", `{"seq":1}`)},
		{"ingest", "read signups: direct get", "$JS.API.DIRECT.GET.SIGNUPS", api(ing, "$JS.API.DIRECT.GET.SIGNUPS", `{"seq":1}`)},
		{"ingest", "read signups: pull the importer's consumer", "$JS.API.CONSUMER.MSG.NEXT.SIGNUPS.importer", api(ing, "$JS.API.CONSUMER.MSG.NEXT.SIGNUPS.importer", `{"batch":1}`)},
		{"ingest", "read signups: subscribe to the subjects", "signups.v1.>", sub(ing, "signups.v1.>")},
		{"ingest", "read signups: subscribe to the importer's inbox", "_INBOX.>", sub(ing, "_INBOX.>")},
		{"ingest", "read the ledger", "$JS.API.DIRECT.GET.KV_SIGNUPS_LEDGER.$KV.SIGNUPS_LEDGER.u_check", api(ing, "$JS.API.DIRECT.GET.KV_SIGNUPS_LEDGER.$KV.SIGNUPS_LEDGER.u_check", "")},
		{"ingest", "publish as another source", "signups.v1.replay", pub(ing, "signups.v1.replay")},
		{"ingest", "dead-letter another source", "dlq.signups.v1.action", pub(ing, "dlq.signups.v1.action")},
		{"ingest", "publish a password hash", "passwords.v1.hash_export", pub(ing, "passwords.v1.hash_export")},
		// exchange: the other internet-facing role.
		{"exchange", "write a claim", "$KV.SIGNUPS_CLAIMS.c_evil", pub(exc, "$KV.SIGNUPS_CLAIMS.c_evil")},
		{"exchange", "purge SIGNUPS", "$JS.API.STREAM.PURGE.SIGNUPS", api(exc, "$JS.API.STREAM.PURGE.SIGNUPS", "")},
		{"exchange", "read signups", "$JS.API.STREAM.MSG.GET.SIGNUPS", api(exc, "$JS.API.STREAM.MSG.GET.SIGNUPS", `{"seq":1}`)},
		{"exchange", "publish as ingest", "signups.v1.action", pub(exc, "signups.v1.action")},
		{"exchange", "subscribe to the importer's inbox", "_INBOX.>", sub(exc, "_INBOX.>")},
		{"exchange", "acknowledge a merge as the app", "accounts.v1.merged.0123456789abcdef0123456789abcdef", pub(exc, "accounts.v1.merged.0123456789abcdef0123456789abcdef")},
		{"exchange", "create ACCOUNTS", "$JS.API.STREAM.CREATE.ACCOUNTS", api(exc, "$JS.API.STREAM.CREATE.ACCOUNTS", `{"name":"ACCOUNTS"}`)},
		{"exchange", "read password hashes", "$JS.API.STREAM.MSG.GET.PASSWORDS", api(exc, "$JS.API.STREAM.MSG.GET.PASSWORDS", `{"seq":1}`)},
		{"exchange", "consume merge requests: the app's durable", "$JS.API.CONSUMER.CREATE.ACCOUNTS.app_merge.accounts.v1.merge.>",
			api(exc, "$JS.API.CONSUMER.CREATE.ACCOUNTS.app_merge.accounts.v1.merge.>", consumerOn(durableAppMerge, "accounts.v1.merge.>"))},
		{"exchange", "consume merge requests: another durable", "$JS.API.CONSUMER.CREATE.ACCOUNTS.exchange_requests.accounts.v1.merge.>",
			api(exc, "$JS.API.CONSUMER.CREATE.ACCOUNTS.exchange_requests.accounts.v1.merge.>", consumerOn("exchange_requests", "accounts.v1.merge.>"))},
		{"exchange", "consume merge requests: its durable with their filter", "$JS.API.CONSUMER.CREATE.ACCOUNTS.exchange_merged.accounts.v1.merge.>",
			api(exc, "$JS.API.CONSUMER.CREATE.ACCOUNTS.exchange_merged.accounts.v1.merge.>", consumerOn(durableMerged, "accounts.v1.merge.>"))},
		{"exchange", "consume merge requests: a consumer without a filter in the subject", "$JS.API.CONSUMER.CREATE.ACCOUNTS.exchange_merged",
			api(exc, "$JS.API.CONSUMER.CREATE.ACCOUNTS.exchange_merged", consumerOn(durableMerged, "accounts.v1.>"))},
		{"exchange", "pull the app's consumer", "$JS.API.CONSUMER.MSG.NEXT.ACCOUNTS.app_merge", api(exc, "$JS.API.CONSUMER.MSG.NEXT.ACCOUNTS.app_merge", `{"batch":1}`)},
		{"exchange", "delete its acknowledgement consumer", "$JS.API.CONSUMER.DELETE.ACCOUNTS.exchange_merged", api(exc, "$JS.API.CONSUMER.DELETE.ACCOUNTS.exchange_merged", "")},
		{"exchange", "purge ACCOUNTS", "$JS.API.STREAM.PURGE.ACCOUNTS", api(exc, "$JS.API.STREAM.PURGE.ACCOUNTS", "")},
		// app_merge: the app's merge worker, outside signupsync.
		{"app_merge", "read signups: a consumer on SIGNUPS", "$JS.API.CONSUMER.CREATE.SIGNUPS", api(app, "$JS.API.CONSUMER.CREATE.SIGNUPS", `{"stream_name":"SIGNUPS","config":{}}`)},
		{"app_merge", "read signups: one by sequence", "$JS.API.STREAM.MSG.GET.SIGNUPS", api(app, "$JS.API.STREAM.MSG.GET.SIGNUPS", `{"seq":1}`)},
		{"app_merge", "read signups: direct get", "$JS.API.DIRECT.GET.SIGNUPS", api(app, "$JS.API.DIRECT.GET.SIGNUPS", `{"seq":1}`)},
		{"app_merge", "read signups: pull the importer's consumer", "$JS.API.CONSUMER.MSG.NEXT.SIGNUPS.importer", api(app, "$JS.API.CONSUMER.MSG.NEXT.SIGNUPS.importer", `{"batch":1}`)},
		{"app_merge", "read signups: subscribe to the subjects", "signups.v1.>", sub(app, "signups.v1.>")},
		{"app_merge", "read signups: subscribe to the importer's inbox", "_INBOX.>", sub(app, "_INBOX.>")},
		{"app_merge", "read signups: SIGNUPS's info", "$JS.API.STREAM.INFO.SIGNUPS", api(app, "$JS.API.STREAM.INFO.SIGNUPS", "")},
		{"app_merge", "read the ledger", "$JS.API.DIRECT.GET.KV_SIGNUPS_LEDGER.$KV.SIGNUPS_LEDGER.u_check", api(app, "$JS.API.DIRECT.GET.KV_SIGNUPS_LEDGER.$KV.SIGNUPS_LEDGER.u_check", "")},
		{"app_merge", "read the ledger: a watch", "$JS.API.CONSUMER.CREATE.KV_SIGNUPS_LEDGER", api(app, "$JS.API.CONSUMER.CREATE.KV_SIGNUPS_LEDGER", `{"stream_name":"KV_SIGNUPS_LEDGER","config":{}}`)},
		{"app_merge", "write the ledger", "$KV.SIGNUPS_LEDGER.u_evil", pub(app, "$KV.SIGNUPS_LEDGER.u_evil")},
		{"app_merge", "read password hashes", "$JS.API.STREAM.MSG.GET.PASSWORDS", api(app, "$JS.API.STREAM.MSG.GET.PASSWORDS", `{"seq":1}`)},
		{"app_merge", "publish a signup", "signups.v1.action", pub(app, "signups.v1.action")},
		{"app_merge", "publish a merge request", "accounts.v1.merge.fedcba9876543210fedcba9876543210", pub(app, "accounts.v1.merge.fedcba9876543210fedcba9876543210")},
		{"app_merge", "purge ACCOUNTS", "$JS.API.STREAM.PURGE.ACCOUNTS", api(app, "$JS.API.STREAM.PURGE.ACCOUNTS", "")},
		{"app_merge", "delete ACCOUNTS", "$JS.API.STREAM.DELETE.ACCOUNTS", api(app, "$JS.API.STREAM.DELETE.ACCOUNTS", "")},
		{"app_merge", "change ACCOUNTS", "$JS.API.STREAM.UPDATE.ACCOUNTS", api(app, "$JS.API.STREAM.UPDATE.ACCOUNTS", `{"name":"ACCOUNTS"}`)},
		{"app_merge", "delete a merge request", "$JS.API.STREAM.MSG.DELETE.ACCOUNTS", api(app, "$JS.API.STREAM.MSG.DELETE.ACCOUNTS", `{"seq":1}`)},
		{"app_merge", "consume acknowledgements: its durable with their filter", "$JS.API.CONSUMER.CREATE.ACCOUNTS.app_merge.accounts.v1.merged.>",
			api(app, "$JS.API.CONSUMER.CREATE.ACCOUNTS.app_merge.accounts.v1.merged.>", consumerOn(durableAppMerge, "accounts.v1.merged.>"))},
		{"app_merge", "consume acknowledgements: pull the exchange's consumer", "$JS.API.CONSUMER.MSG.NEXT.ACCOUNTS.exchange_merged", api(app, "$JS.API.CONSUMER.MSG.NEXT.ACCOUNTS.exchange_merged", `{"batch":1}`)},
		{"app_merge", "delete its consumer", "$JS.API.CONSUMER.DELETE.ACCOUNTS.app_merge", api(app, "$JS.API.CONSUMER.DELETE.ACCOUNTS.app_merge", "")},
		{"app_merge", "subscribe to the exchange's inbox", "_INBOX_exchange.>", sub(app, "_INBOX_exchange.>")},
		{"reconcile", "read password hashes back", "$JS.API.CONSUMER.CREATE.PASSWORDS", api(rec, "$JS.API.CONSUMER.CREATE.PASSWORDS", `{"stream_name":"PASSWORDS","config":{}}`)},
		// importer.
		{"importer", "purge SIGNUPS", "$JS.API.STREAM.PURGE.SIGNUPS", api(imp, "$JS.API.STREAM.PURGE.SIGNUPS", "")},
		{"importer", "purge SIGNUPS_DLQ", "$JS.API.STREAM.PURGE.SIGNUPS_DLQ", api(imp, "$JS.API.STREAM.PURGE.SIGNUPS_DLQ", "")},
		{"importer", "purge the ledger", "$JS.API.STREAM.PURGE.KV_SIGNUPS_LEDGER", api(imp, "$JS.API.STREAM.PURGE.KV_SIGNUPS_LEDGER", "")},
		{"importer", "delete SIGNUPS", "$JS.API.STREAM.DELETE.SIGNUPS", api(imp, "$JS.API.STREAM.DELETE.SIGNUPS", "")},
		{"importer", "delete its consumer", "$JS.API.CONSUMER.DELETE.SIGNUPS.importer", api(imp, "$JS.API.CONSUMER.DELETE.SIGNUPS.importer", "")},
		{"importer", "delete a signup", "$JS.API.STREAM.MSG.DELETE.SIGNUPS", api(imp, "$JS.API.STREAM.MSG.DELETE.SIGNUPS", `{"seq":1}`)},
		{"importer", "write the checkpoints", "$KV.SIGNUPSYNC_STATE.reconcile", pub(imp, "$KV.SIGNUPSYNC_STATE.reconcile")},
		// reconcile (and backfill).
		{"reconcile", "purge SIGNUPS", "$JS.API.STREAM.PURGE.SIGNUPS", api(rec, "$JS.API.STREAM.PURGE.SIGNUPS", "")},
		{"reconcile", "delete SIGNUPS", "$JS.API.STREAM.DELETE.SIGNUPS", api(rec, "$JS.API.STREAM.DELETE.SIGNUPS", "")},
		{"reconcile", "write the ledger", "$KV.SIGNUPS_LEDGER.u_evil", pub(rec, "$KV.SIGNUPS_LEDGER.u_evil")},
		// operator.
		{"operator", "purge SIGNUPS_DLQ", "$JS.API.STREAM.PURGE.SIGNUPS_DLQ", api(op, "$JS.API.STREAM.PURGE.SIGNUPS_DLQ", "")},
		{"operator", "delete SIGNUPS_DLQ", "$JS.API.STREAM.DELETE.SIGNUPS_DLQ", api(op, "$JS.API.STREAM.DELETE.SIGNUPS_DLQ", "")},
		{"operator", "change SIGNUPS", "$JS.API.STREAM.UPDATE.SIGNUPS", api(op, "$JS.API.STREAM.UPDATE.SIGNUPS", `{"name":"SIGNUPS"}`)},
		{"operator", "write the ledger", "$KV.SIGNUPS_LEDGER.u_evil", pub(op, "$KV.SIGNUPS_LEDGER.u_evil")},
	}
}

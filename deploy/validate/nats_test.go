package validate

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var natsNodes = []string{"nats-1", "nats-2", "nats-3"}

// natsPasswords are what compose.yaml passes to the cluster nodes; the
// configurations read them from the environment.
var natsPasswords = map[string]string{
	"NATS_INGEST_PASSWORD":    "test-ingest",
	"NATS_EXCHANGE_PASSWORD":  "test-exchange",
	"NATS_IMPORTER_PASSWORD":  "test-importer",
	"NATS_RECONCILE_PASSWORD": "test-reconcile",
	"NATS_OPERATOR_PASSWORD":  "test-operator",
	"NATS_APP_MERGE_PASSWORD": "test-app-merge",
	"NATS_SYS_PASSWORD":       "test-sys",
}

// loadNATS parses one node's configuration with nats-server's own parser,
// failing on errors and on warnings.
func loadNATS(t *testing.T, node string) *server.Options {
	t.Helper()
	for k, v := range natsPasswords {
		t.Setenv(k, v)
	}
	file := path(t, "deploy", "nats", node+".conf")
	opts := &server.Options{}
	if err := opts.ProcessConfigFile(file); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return opts
}

// TestNATSConfigs proves every node file is a valid server configuration
// and checks what signupsync relies on.
func TestNATSConfigs(t *testing.T) {
	routes := map[string][]string{}
	for _, node := range natsNodes {
		t.Run(node, func(t *testing.T) {
			o := loadNATS(t, node)
			if o.ServerName != node {
				t.Errorf("server_name %q, want %q (the compose service name)", o.ServerName, node)
			}
			if o.Port != 4222 || o.HTTPPort != 8222 || o.Cluster.Port != 6222 {
				t.Errorf("ports client %d, monitor %d, cluster %d; want 4222, 8222, 6222 (compose.yaml and prometheus.yml use them)", o.Port, o.HTTPPort, o.Cluster.Port)
			}
			if !o.JetStream || o.StoreDir != "/data/jetstream" {
				t.Errorf("jetstream %v store_dir %q; want enabled under the /data volume", o.JetStream, o.StoreDir)
			}
			if !o.SyncAlways {
				t.Errorf("sync_interval: want always (see the comment in cluster.conf)")
			}
			if o.Cluster.Name != "signupsync" {
				t.Errorf("cluster name %q", o.Cluster.Name)
			}
			if o.SystemAccount != server.DEFAULT_SYSTEM_ACCOUNT {
				t.Errorf("system_account %q, want %q", o.SystemAccount, server.DEFAULT_SYSTEM_ACCOUNT)
			}
			if o.LameDuckDuration < 10*time.Second {
				t.Errorf("lame_duck_duration %v: too short for clients to move", o.LameDuckDuration)
			}
			accounts := map[string]*server.Account{}
			for _, a := range o.Accounts {
				accounts[a.Name] = a
			}
			for _, name := range []string{"SIGNUPSYNC", server.DEFAULT_SYSTEM_ACCOUNT} {
				if accounts[name] == nil {
					t.Errorf("account %s missing; have %v", name, keys(accounts))
				}
			}
			users := map[string]string{}
			for _, u := range o.Users {
				if u.Password == "" || strings.HasPrefix(u.Password, "$") {
					t.Errorf("user %s: password not resolved from the environment", u.Username)
				}
				users[u.Username] = u.Account.Name
			}
			for user, acc := range map[string]string{"ingest": "SIGNUPSYNC", "exchange": "SIGNUPSYNC", "importer": "SIGNUPSYNC", "reconcile": "SIGNUPSYNC", "operator": "SIGNUPSYNC", "app_merge": "SIGNUPSYNC", "sys": server.DEFAULT_SYSTEM_ACCOUNT} {
				if users[user] != acc {
					t.Errorf("user %s in account %q, want %q", user, users[user], acc)
				}
			}
			for _, r := range o.Routes {
				if r.Scheme != "nats-route" || r.Port() != "6222" {
					t.Errorf("route %s: want nats-route://<node>:6222", r)
				}
				routes[node] = append(routes[node], r.Hostname())
			}
		})
	}
	// Every node must reach the two others (listing itself is harmless: a
	// server ignores a route to itself).
	for _, node := range natsNodes {
		for _, peer := range natsNodes {
			if peer != node && !slices.Contains(routes[node], peer) {
				t.Errorf("%s has no route to %s (routes %v)", node, peer, routes[node])
			}
		}
		for _, h := range routes[node] {
			if !slices.Contains(natsNodes, h) {
				t.Errorf("%s routes to unknown host %s", node, h)
			}
		}
	}
}

// TestNATSConfigMissingPassword: an unset password variable must stop the
// server rather than start it with an empty password.
func TestNATSConfigMissingPassword(t *testing.T) {
	for k, v := range natsPasswords {
		t.Setenv(k, v)
	}
	os.Unsetenv("NATS_IMPORTER_PASSWORD")
	opts := &server.Options{}
	err := opts.ProcessConfigFile(path(t, "deploy", "nats", "nats-1.conf"))
	if err == nil || !strings.Contains(err.Error(), "NATS_IMPORTER_PASSWORD") {
		t.Fatalf("unset NATS_IMPORTER_PASSWORD: got %v, want an error naming it", err)
	}
}

// startNATSCluster starts the three node configurations as real servers
// (on loopback ports, the route host names mapped to them), waits for a
// JetStream meta leader and returns the client URLs. A non-nil log gets the
// servers' log lines (tracing on: every client operation).
func startNATSCluster(t *testing.T, log server.Logger) []string {
	t.Helper()
	clusterPorts := map[string]int{}
	for _, node := range natsNodes {
		clusterPorts[node] = freePort(t)
	}
	var servers []*server.Server
	for _, node := range natsNodes {
		o := loadNATS(t, node)
		o.Host, o.Port = "127.0.0.1", server.RANDOM_PORT
		o.HTTPHost, o.HTTPPort = "127.0.0.1", server.RANDOM_PORT
		o.Cluster.Host, o.Cluster.Port = "127.0.0.1", clusterPorts[node]
		o.StoreDir = filepath.Join(t.TempDir(), "jetstream")
		o.LameDuckDuration, o.LameDuckGracePeriod = 0, 0
		o.NoSigs = true
		var routes []*url.URL
		for _, r := range o.Routes {
			port, ok := clusterPorts[r.Hostname()]
			if !ok {
				t.Fatalf("%s: route to unknown host %s", node, r.Hostname())
			}
			u := *r
			u.Host = fmt.Sprintf("127.0.0.1:%d", port)
			routes = append(routes, &u)
		}
		o.Routes = routes
		if log != nil {
			o.Trace = true
		}
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatalf("%s: %v", node, err)
		}
		if log != nil {
			s.SetLoggerV2(log, false, true, false)
		}
		s.Start()
		t.Cleanup(s.Shutdown)
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("%s not ready", node)
		}
		servers = append(servers, s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		leaders := 0
		for _, s := range servers {
			if s.JetStreamIsLeader() {
				leaders++
			}
		}
		if leaders == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no JetStream meta leader in 30s")
		}
		time.Sleep(50 * time.Millisecond) // polling another process's state; nothing to wait on
	}
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	return urls
}

// TestNATSClusterForms starts the three configurations as real servers and
// uses the configured users the way signupsync does: the importer creates
// an R3 stream, ingest publishes with a Nats-Msg-Id acknowledged by a
// quorum, and the system account sees all three servers.
func TestNATSClusterForms(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers")
	}
	urls := startNATSCluster(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A wrong password is refused.
	if nc, err := nats.Connect(urls[0], nats.UserInfo("ingest", "wrong"), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("ingest with a wrong password: connected")
	}

	// The importer creates an R3 SIGNUPS (as events.Ensure does)...
	nc2, err := nats.Connect(strings.Join(urls, ","), nats.UserInfo("importer", natsPasswords["NATS_IMPORTER_PASSWORD"]))
	if err != nil {
		t.Fatalf("connect as importer: %v", err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	var st jetstream.Stream
	for {
		st, err = js2.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "SIGNUPS", Subjects: []string{"signups.v1.>"}, Replicas: 3, Storage: jetstream.FileStorage, Duplicates: time.Minute})
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // the meta group may still be electing
	}
	if err != nil {
		t.Fatalf("create R3 stream as importer: %v", err)
	}

	// ...and ingest, in the same account, publishes into it.
	nc, err := nats.Connect(strings.Join(urls, ","), nats.UserInfo("ingest", natsPasswords["NATS_INGEST_PASSWORD"]), nats.CustomInboxPrefix("_INBOX_ingest"),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatalf("connect as ingest: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, true} {
		ack, err := js.Publish(ctx, "signups.v1.action", []byte("{}"), jetstream.WithMsgID("su_check"), jetstream.WithExpectStream("SIGNUPS"))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if ack.Duplicate != want {
			t.Errorf("publish %d: duplicate %v, want %v", i, ack.Duplicate, want)
		}
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Errorf("stream cluster info %+v: want a leader and two replicas", info.Cluster)
	}

	// sys, in the system account, reaches every server.
	sys, err := nats.Connect(urls[0], nats.UserInfo("sys", natsPasswords["NATS_SYS_PASSWORD"]))
	if err != nil {
		t.Fatalf("connect as sys: %v", err)
	}
	defer sys.Close()
	inbox := nats.NewInbox()
	sub, err := sys.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.PublishRequest("$SYS.REQ.SERVER.PING", inbox, nil); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for seen < len(urls) {
		if _, err := sub.NextMsgWithContext(ctx); err != nil {
			break
		}
		seen++
	}
	if seen != len(urls) {
		t.Errorf("system account: %d of %d servers answered $SYS.REQ.SERVER.PING", seen, len(urls))
	}
	// and ingest, outside it (and not permitted to publish there), cannot.
	if m, err := nc.Request("$SYS.REQ.SERVER.PING", nil, time.Second); err == nil {
		t.Errorf("ingest asking $SYS.REQ.SERVER.PING got an answer: %s", m.Data)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/natsembed"
	"github.com/signupsync/signupsync/internal/testenv"
)

// TestThreeNodeCluster runs signups through ingest and the importer against
// three clustered nats-servers with three-replica streams and buckets, and
// keeps going when one node is shut down.
func TestThreeNodeCluster(t *testing.T) {
	var clientPorts, routePorts []int
	for range 3 {
		clientPorts = append(clientPorts, testenv.FreePort(t))
		routePorts = append(routePorts, testenv.FreePort(t))
	}
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(p))
	}
	var nodes []*server.Server
	for i := range 3 {
		ns, err := natsembed.Start(natsembed.Options{Port: clientPorts[i], StoreDir: t.TempDir(), ServerName: fmt.Sprintf("n%d", i+1),
			ClusterName: "signupsync", ClusterPort: routePorts[i], Routes: routes, ReadyTimeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, ns)
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	}
	var urls []string
	for _, p := range clientPorts {
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(p))
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	topo := events.DefaultTopology()
	topo.Replicas = 3
	testenv.Eventually(t, "the JetStream cluster to accept the topology", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return events.Ensure(ctx, js, topo) == nil
	})
	info, err := mustStream(t, js).Info(context.Background())
	if err != nil || info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream is not replicated three times: %+v %v", info, err)
	}

	p := startPipelineJS(t, js)
	for i := range 20 {
		if code := p.postAction(t, fmt.Sprintf("github|c%d", i), fmt.Sprintf("c%d@example.com", i), "", devSecret); code != http.StatusAccepted {
			t.Fatalf("signup %d: status %d", i, code)
		}
	}
	p.waitIdle()

	// One node goes away (not the one that leads the stream, if we can tell):
	// R3 keeps quorum and nothing stops.
	victim := 2
	if info.Cluster.Leader == nodes[2].Name() {
		victim = 1
	}
	nodes[victim].Shutdown()
	nodes[victim].WaitForShutdown()
	for i := 20; i < 30; i++ {
		var code int
		testenv.Eventually(t, "ingest to accept with a node down", func() bool {
			code = p.postAction(t, fmt.Sprintf("github|c%d", i), fmt.Sprintf("c%d@example.com", i), "", devSecret)
			return code == http.StatusAccepted
		})
	}
	p.waitIdle()
	fb := testenv.FirebaseAuth(t, p.project)
	for i := range 30 {
		if _, err := fb.GetUser(context.Background(), fmt.Sprintf("github|c%d", i)); err != nil {
			t.Fatalf("github|c%d not in Firebase: %v", i, err)
		}
	}
}

func mustStream(t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	st, err := js.Stream(context.Background(), events.StreamSignups)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

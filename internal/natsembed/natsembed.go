// Package natsembed runs a JetStream-enabled nats-server inside the process,
// for `signupsync dev` and for tests. Production runs a standalone cluster.
package natsembed

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configures an embedded server.
type Options struct {
	// Host and Port of the client listener; Port -1 picks a free port.
	Host string
	Port int
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// ServerName names the server (cluster tests need distinct names).
	ServerName string
	// Cluster, when ClusterPort is not 0, joins a JetStream cluster.
	ClusterName string
	ClusterHost string
	ClusterPort int
	Routes      []string
	// ReadyTimeout bounds the wait for the client listener.
	ReadyTimeout time.Duration
}

// Start starts a server and waits until it accepts clients. The caller owns
// it: Shutdown then WaitForShutdown.
func Start(o Options) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("natsembed: StoreDir is required")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 10 * time.Second
	}
	opts := &server.Options{
		ServerName: o.ServerName,
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		// Allow large Firebase-sized batches of acknowledgements.
		MaxPayload: 1 << 20,
	}
	if o.ClusterPort != 0 {
		opts.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: o.ClusterHost, Port: o.ClusterPort}
		if opts.Cluster.Host == "" {
			opts.Cluster.Host = o.Host
		}
		routes := server.RoutesFromStr(joinComma(o.Routes))
		opts.Routes = routes
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: new server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(o.ReadyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("natsembed: server not ready within %s", o.ReadyTimeout)
	}
	return ns, nil
}

func joinComma(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}

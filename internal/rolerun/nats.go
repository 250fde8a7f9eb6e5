package rolerun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
)

// Conn is a NATS connection with its JetStream context and a way to drain
// it under a deadline.
type Conn struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	closed chan struct{}
}

// Connect connects to the comma-separated urls as name, with unbounded
// reconnects and connection state changes logged; a server that is down at
// start is retried in the background. creds, when set, is a credentials
// file. opts come after these and must not set a ClosedHandler, which
// [Conn.Drain] needs.
func Connect(urls, creds, name string, log *slog.Logger, opts ...nats.Option) (*Conn, error) {
	c := &Conn{closed: make(chan struct{})}
	all := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: closed on purpose
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", RedactURLs(nc.ConnectedUrl())) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Warn("nats async error", "err", err) }),
	}
	if creds != "" {
		all = append(all, nats.UserCredentials(creds))
	}
	all = append(all, opts...)
	all = append(all, nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }))
	nc, err := nats.Connect(urls, all...)
	if err != nil {
		return nil, fmt.Errorf("connect nats %s: %w", RedactURLs(urls), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c.NC, c.JS = nc, js
	return c, nil
}

// Drain drains the connection, flushing publishes and acknowledgements and
// letting subscriptions finish, and waits until it is closed or ctx ends,
// when it closes it and reports the deadline.
func (c *Conn) Drain(ctx context.Context) error {
	if c.NC.IsClosed() {
		return nil
	}
	if err := c.NC.Drain(); err != nil {
		c.NC.Close()
		return fmt.Errorf("drain nats: %w", err)
	}
	select {
	case <-c.closed:
		return nil
	case <-ctx.Done():
		c.NC.Close()
		return fmt.Errorf("drain nats: %w", ctx.Err())
	}
}

// Step prepares JetStream for a role: creates or checks the topology. A
// step that fails is retried by [Await].
type Step func(ctx context.Context, js jetstream.JetStream) error

// EnsureTopology creates the streams and buckets of t, or updates those
// whose configuration differs (events.Ensure). Roles whose NATS user may
// create streams use it.
func EnsureTopology(t events.Topology) Step {
	return func(ctx context.Context, js jetstream.JetStream) error { return events.Ensure(ctx, js, t) }
}

// AwaitBucket checks that the key-value bucket exists, for roles that may
// not create it (the exchange waits for the ledger the importer creates).
func AwaitBucket(bucket string) Step {
	return func(ctx context.Context, js jetstream.JetStream) error {
		if _, err := js.KeyValue(ctx, bucket); err != nil {
			return fmt.Errorf("bucket %s: %w", bucket, err)
		}
		return nil
	}
}

// Await runs step until it succeeds or ctx ends, each attempt within 10s,
// retrying with jittered exponential backoff (250ms to 5s) while the broker
// is unreachable or the topology not there yet. The jitter keeps roles that
// start together on a cluster from creating the same replicated stream at
// the same moment.
func Await(ctx context.Context, js jetstream.JetStream, step Step, log *slog.Logger) error {
	delay := 250 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := step(actx, js)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("topology: %w", errors.Join(err, ctx.Err()))
		}
		wait := delay + time.Duration(mrand.Int64N(int64(delay)))
		log.Warn("jetstream not ready, retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("topology: %w", errors.Join(err, ctx.Err()))
		case <-time.After(wait):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// StreamReady reports whether SIGNUPS answers: the readiness of a role
// that publishes to it or consumes from it.
func StreamReady(js jetstream.JetStream) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := js.Stream(ctx, events.StreamSignups); err != nil {
			return fmt.Errorf("stream %s: %w", events.StreamSignups, err)
		}
		return nil
	}
}

// RedactURLs replaces the userinfo of each comma-separated URL in s with
// xxxxx, for logs and help. Everything between the scheme and the last '@'
// counts as userinfo, so a password holding '/', '?' or '@' is hidden too,
// and a part without a scheme is taken with the URL before it, so a
// password holding ',' is hidden as well (at worst with a host next to
// it); s need not parse.
func RedactURLs(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	var urls []string
	for i, p := range strings.Split(s, ",") {
		if i > 0 && !strings.Contains(p, "://") {
			urls[len(urls)-1] += "," + p
			continue
		}
		urls = append(urls, p)
	}
	for i, u := range urls {
		at := strings.LastIndex(u, "@")
		if at < 0 {
			continue
		}
		start := 0
		if j := strings.Index(u[:at], "://"); j >= 0 {
			start = j + len("://")
		}
		// Keep the leading space of "a, b" lists out of the redaction.
		for start < at && u[start] == ' ' {
			start++
		}
		urls[i] = u[:start] + "xxxxx" + u[at:]
	}
	return strings.Join(urls, ",")
}

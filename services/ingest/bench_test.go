package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/schemas"
)

// noopPublisher acknowledges without storing: the HTTP limit of ingest.
type noopPublisher struct{}

func (noopPublisher) PublishMsg(context.Context, *nats.Msg, ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return &jetstream.PubAck{Stream: events.StreamSignups}, nil
}

// latencies collects per-request durations from parallel goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	if len(l.d) == 0 {
		return
	}
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	q := func(p float64) float64 { return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func benchService(b *testing.B, pub Publisher) *httptest.Server {
	set, err := schemas.Compile()
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ActionSecrets = []string{testSecret}
	svc, err := New(cfg, Deps{Publisher: pub, Schemas: set, Logger: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	b.Cleanup(srv.Close)
	return srv
}

// benchAction posts correctly signed Action webhooks, each for a new user,
// from parallel clients over loopback (closed loop: saturation throughput).
func benchAction(b *testing.B, srv *httptest.Server) {
	var seq atomic.Int64
	lat := &latencies{}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for pb.Next() {
			n := seq.Add(1)
			body := actionBody(fmt.Sprintf("google-oauth2|%d", n))
			req, _ := http.NewRequest(http.MethodPost, srv.URL+PathAction, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			_ = SignHeaders(req.Header, testSecret, fmt.Sprintf("msg_%d", n), time.Now(), body)
			start := time.Now()
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			local = append(local, time.Since(start))
			if res.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
		lat.add(local)
	})
	b.StopTimer()
	lat.report(b)
}

func BenchmarkActionReceiverNoopPublisher(b *testing.B) {
	benchAction(b, benchService(b, noopPublisher{}))
}

func BenchmarkActionReceiverJetStream(b *testing.B) {
	n := testenv.StartNATS(b)
	_, js := n.Connect()
	testenv.Ensure(b, js)
	benchAction(b, benchService(b, js))
}

// BenchmarkRawJetStreamPublish is the broker limit: synchronous publishes of
// an event-sized payload with a Nats-Msg-Id from the same parallelism.
func BenchmarkRawJetStreamPublish(b *testing.B) {
	n := testenv.StartNATS(b)
	_, js := n.Connect()
	testenv.Ensure(b, js)
	ev, _ := events.Encode(events.NewSignup(events.SourceAction, events.SignupData{UserID: "google-oauth2|1", Email: "person@example.com", Identities: []events.Identity{{Provider: "google-oauth2", UserID: "1", IsSocial: true}}}, time.Now()))
	var seq atomic.Int64
	lat := &latencies{}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for pb.Next() {
			id := fmt.Sprintf("raw-%d", seq.Add(1))
			start := time.Now()
			if _, err := js.Publish(context.Background(), events.Subject(events.SourceAction), ev, jetstream.WithMsgID(id)); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(start))
		}
		lat.add(local)
	})
	b.StopTimer()
	lat.report(b)
}

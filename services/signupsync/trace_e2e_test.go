package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/signupsync/signupsync/internal/telemetry"
	"github.com/signupsync/signupsync/internal/testenv"
	"github.com/signupsync/signupsync/schemas"
	"github.com/signupsync/signupsync/services/importer"
	"github.com/signupsync/signupsync/services/ingest"
)

// pipeline is ingest and importer wired in one test with a shared tracer
// provider recording into memory and a shared Prometheus registry.
type pipeline struct {
	srv      *httptest.Server
	admin    *httptest.Server // /metrics, /readyz: off the webhook port
	spans    *tracetest.InMemoryExporter
	tp       *sdktrace.TracerProvider
	reg      *prometheus.Registry
	project  string
	waitIdle func()
}

func startPipeline(t *testing.T, nats *testenv.NATS) *pipeline {
	t.Helper()
	_, js := nats.Connect()
	testenv.Ensure(t, js)
	return startPipelineJS(t, js)
}

func startPipelineJS(t *testing.T, js jetstream.JetStream) *pipeline {
	t.Helper()
	ctx := context.Background()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	reg := prometheus.NewRegistry()
	set, err := schemas.Compile()
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	icfg := ingest.DefaultConfig()
	icfg.ActionSecrets = []string{devSecret}
	svc, err := ingest.New(icfg, ingest.Deps{Publisher: js, Schemas: set, Logger: quiet, Metrics: ingest.NewMetrics(reg),
		Tracer: tp, Propagator: telemetry.Propagator(), MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	admin := httptest.NewServer(svc.AdminHandler())
	t.Cleanup(admin.Close)
	project := testenv.ProjectID(t)
	cfg := importer.DefaultConfig()
	cfg.FirebaseRPS = 0
	cfg.BatchWindow = 20 * time.Millisecond
	imp, err := importer.New(ctx, cfg, importer.Deps{JetStream: js, Accounts: testenv.FirebaseAuth(t, project), Logger: quiet,
		Metrics: importer.NewMetrics(reg), Registerer: reg, Tracer: tp, Propagator: telemetry.Propagator()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = imp.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	return &pipeline{srv: srv, admin: admin, spans: spans, tp: tp, reg: reg, project: project, waitIdle: func() { testenv.WaitDrained(t, js) }}
}

// postAction sends a signed Action webhook carrying traceparent.
func (p *pipeline) postAction(t *testing.T, userID, email, traceparent, secret string) int {
	t.Helper()
	provider, raw, _ := strings.Cut(userID, "|")
	social := "true"
	if provider == "auth0" {
		social = "false"
	}
	body := []byte(fmt.Sprintf(`{"trigger":"post-login","tenant":"acme","connection":{"id":"c","name":%[2]q,"strategy":%[2]q},"user":{"user_id":%[1]q,"email":%[4]q,"email_verified":true,"name":"Secret Name","identities":[{"provider":%[2]q,"connection":%[2]q,"user_id":%[3]q,"isSocial":%[5]s}]}}`, userID, provider, raw, email, social))
	req, _ := http.NewRequest(http.MethodPost, p.srv.URL+ingest.PathAction, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	if err := ingest.SignHeaders(req.Header, secret, "msg_"+raw, time.Now(), body); err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func spanNamed(spans tracetest.SpanStubs, name string, trace trace.TraceID) *tracetest.SpanStub {
	for i := range spans {
		if spans[i].Name == name && (!trace.IsValid() || spans[i].SpanContext.TraceID() == trace) {
			return &spans[i]
		}
	}
	return nil
}

// TestOneSignupOneTrace: an Action webhook with a traceparent yields one
// trace HTTP server span → producer span → consumer span, and the batch
// span (a root of its own, which makes the Firebase calls) is linked to the
// consumer span both ways. No attribute carries an email or the secret.
func TestOneSignupOneTrace(t *testing.T) {
	p := startPipeline(t, testenv.StartNATS(t))
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if code := p.postAction(t, "google-oauth2|555", "traced@example.com", tp, devSecret); code != http.StatusAccepted {
		t.Fatalf("status %d", code)
	}
	p.waitIdle()
	// The batch span ends after the acknowledgement WaitDrained sees.
	testenv.Eventually(t, "the batch span to end", func() bool {
		return spanNamed(p.spans.GetSpans(), "import batch", trace.TraceID{}) != nil
	})
	_ = p.tp.ForceFlush(context.Background())
	spans := p.spans.GetSpans()
	traceID, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")

	server := spanNamed(spans, "POST "+ingest.PathAction, traceID)
	producer := spanNamed(spans, "publish signups.v1.action", traceID)
	consumer := spanNamed(spans, "process signups.v1.action", traceID)
	if server == nil || producer == nil || consumer == nil {
		t.Fatalf("missing spans in the signup's trace; have %v", names(spans))
	}
	if server.Parent.SpanID().String() != "b7ad6b7169203331" {
		t.Fatalf("server span does not continue the Action's traceparent: parent %s", server.Parent.SpanID())
	}
	if producer.Parent.SpanID() != server.SpanContext.SpanID() || producer.SpanKind != trace.SpanKindProducer {
		t.Fatal("producer span is not a child of the server span")
	}
	if consumer.Parent.SpanID() != producer.SpanContext.SpanID() || consumer.SpanKind != trace.SpanKindConsumer {
		t.Fatal("consumer span is not a child of the producer span (trace context lost in NATS headers)")
	}
	batch := spanNamed(spans, "import batch", trace.TraceID{})
	if batch == nil || batch.SpanContext.TraceID() == traceID || batch.Parent.IsValid() {
		t.Fatal("the batch span must be a root of its own trace")
	}
	if !linked(batch.Links, consumer.SpanContext) || !linked(consumer.Links, batch.SpanContext) {
		t.Fatal("batch and consumer spans are not linked both ways")
	}
	imp := spanNamed(spans, "firebase ImportUsers", batch.SpanContext.TraceID())
	look := spanNamed(spans, "firebase GetUsers", batch.SpanContext.TraceID())
	if imp == nil || look == nil || imp.Parent.SpanID() != batch.SpanContext.SpanID() || imp.SpanKind != trace.SpanKindClient {
		t.Fatalf("firebase spans are not children of the batch span: %v", names(spans))
	}
	for _, s := range spans {
		for _, a := range s.Attributes {
			v := a.Value.String()
			if strings.Contains(v, "@") || strings.Contains(v, "Secret Name") || strings.Contains(v, devSecret) {
				t.Fatalf("span %q attribute %s carries personal data or a secret: %q", s.Name, a.Key, v)
			}
		}
	}
	for _, a := range consumer.Attributes {
		if a.Key == "signupsync.outcome" && a.Value.AsString() != "imported" {
			t.Fatalf("consumer outcome %v", a.Value.AsString())
		}
	}
}

// TestMetricsMatchWhatHappened scrapes /metrics after a scripted run.
func TestMetricsMatchWhatHappened(t *testing.T) {
	p := startPipeline(t, testenv.StartNATS(t))
	codes := []int{
		p.postAction(t, "github|1", "m1@example.com", "", devSecret),
		p.postAction(t, "github|1", "m1@example.com", "", devSecret), // duplicate
		p.postAction(t, "auth0|2", "m2@example.com", "", devSecret),  // database user
		p.postAction(t, "apple|3", "m3@example.com", "", "whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="),
	}
	if fmt.Sprint(codes) != "[202 202 202 401]" {
		t.Fatalf("statuses %v", codes)
	}
	p.waitIdle()
	res, err := http.Get(p.admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`signupsync_ingest_requests_total{receiver="auth0_action",status="202"} 3`,
		`signupsync_ingest_requests_total{receiver="auth0_action",status="401"} 1`,
		`signupsync_ingest_published_total{duplicate="false",source="action"} 2`,
		`signupsync_ingest_published_total{duplicate="true",source="action"} 1`,
		`signupsync_importer_outcomes_total{outcome="imported",reason=""} 1`,
		`signupsync_importer_outcomes_total{outcome="skipped",reason="database_connection"} 1`,
		`signupsync_importer_consumer_pending 0`,
		`signupsync_importer_consumer_ack_pending 0`,
		`signupsync_dead_letter_depth 0`,
		`signupsync_importer_breaker_state 0`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func linked(links []sdktrace.Link, sc trace.SpanContext) bool {
	for _, l := range links {
		if l.SpanContext.SpanID() == sc.SpanID() && l.SpanContext.TraceID() == sc.TraceID() {
			return true
		}
	}
	return false
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

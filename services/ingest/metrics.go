package ingest

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signupsync/signupsync/events"
)

// Metrics are the ingest role's Prometheus collectors. Methods are safe for
// concurrent use.
type Metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	publishes *prometheus.CounterVec
	failed    *prometheus.CounterVec
	ignored   *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg; a nil reg
// keeps them unregistered (tests, benchmarks).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "ingest", Name: "requests_total",
			Help: "Webhook requests by receiver and HTTP status.",
		}, []string{"receiver", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "signupsync", Subsystem: "ingest", Name: "request_duration_seconds",
			Help:    "Webhook request latency by receiver.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}, []string{"receiver"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "ingest", Name: "published_total",
			Help: "Signups acknowledged by JetStream, by source and whether JetStream found a duplicate.",
		}, []string{"source", "duplicate"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "ingest", Name: "publish_failures_total",
			Help: "Signups JetStream did not acknowledge in time, by source.",
		}, []string{"source"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "ingest", Name: "ignored_events_total",
			Help: "Acknowledged deliveries that are not signups, by receiver and event type.",
		}, []string{"receiver", "type"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.publishes, m.failed, m.ignored)
	}
	return m
}

func (m *Metrics) request(receiver string, status int, d time.Duration) {
	m.requests.WithLabelValues(receiver, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(receiver).Observe(d.Seconds())
}

func (m *Metrics) published(src events.Source, dup bool) {
	m.publishes.WithLabelValues(string(src), strconv.FormatBool(dup)).Inc()
}

func (m *Metrics) publishFailed(src events.Source) { m.failed.WithLabelValues(string(src)).Inc() }

// ignoredEvent counts a non-signup delivery. Unknown types are folded into
// "other" so a sender cannot grow the label set without bound.
func (m *Metrics) ignoredEvent(receiver, typ string) {
	if len(typ) > 32 {
		typ = "other"
	}
	m.ignored.WithLabelValues(receiver, typ).Inc()
}

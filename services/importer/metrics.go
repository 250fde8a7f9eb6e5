package importer

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/signupsync/signupsync/events"
)

// Metrics are the importer's Prometheus collectors. Methods are safe for
// concurrent use.
type Metrics struct {
	outcomes    *prometheus.CounterVec
	batchSize   prometheus.Histogram
	firebase    *prometheus.HistogramVec
	breaker     prometheus.Gauge
	transitions *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	naks        *prometheus.CounterVec
	probes      *prometheus.CounterVec
	reg         prometheus.Registerer
}

// NewMetrics creates the collectors and registers them with reg; nil keeps
// them unregistered.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "importer", Name: "outcomes_total",
			Help: "Settled signup messages by outcome and reason.",
		}, []string{"outcome", "reason"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "signupsync", Subsystem: "importer", Name: "batch_size",
			Help:    "Messages per fetched batch.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
		firebase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "signupsync", Subsystem: "importer", Name: "firebase_call_seconds",
			Help:    "Firebase Auth call latency by operation and result (ok, transient, permanent).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"op", "result"}),
		breaker: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "signupsync", Subsystem: "importer", Name: "breaker_state",
			Help: "Firebase circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "importer", Name: "breaker_transitions_total",
			Help: "Firebase circuit breaker state changes.",
		}, []string{"from", "to"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "importer", Name: "dead_letters_total",
			Help: "Messages written to SIGNUPS_DLQ, by reason.",
		}, []string{"reason"}),
		naks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "importer", Name: "redeliveries_total",
			Help: "Messages negatively acknowledged for a later retry, by cause.",
		}, []string{"cause"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "importer", Name: "breaker_probes_total",
			Help: "Half-open probes of Firebase by result (ok, failed).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.outcomes, m.batchSize, m.firebase, m.breaker, m.transitions, m.deadLetters, m.naks, m.probes)
	}
	return m
}

func (m *Metrics) outcome(o events.Outcome, reason string) {
	m.outcomes.WithLabelValues(string(o), reason).Inc()
}

func (m *Metrics) batch(n int) { m.batchSize.Observe(float64(n)) }

func (m *Metrics) firebaseCall(op string, err error, d time.Duration) {
	res := "ok"
	switch {
	case err == nil:
	case IsTransient(err):
		res = "transient"
	default:
		res = "permanent"
	}
	m.firebase.WithLabelValues(op, res).Observe(d.Seconds())
}

func (m *Metrics) breakerChanged(from, to gobreaker.State) {
	switch to {
	case gobreaker.StateClosed:
		m.breaker.Set(0)
	case gobreaker.StateHalfOpen:
		m.breaker.Set(1)
	case gobreaker.StateOpen:
		m.breaker.Set(2)
	}
	if from != to {
		m.transitions.WithLabelValues(from.String(), to.String()).Inc()
	}
}

func (m *Metrics) deadLettered(reason string) { m.deadLetters.WithLabelValues(reason).Inc() }

func (m *Metrics) probe(ok bool) {
	if ok {
		m.probes.WithLabelValues("ok").Inc()
		return
	}
	m.probes.WithLabelValues("failed").Inc()
}

func (m *Metrics) nak(cause string) { m.naks.WithLabelValues(cause).Inc() }

// lagCollector reports the consumer's pending and ack-pending counts and the
// dead-letter depth at scrape time.
type lagCollector struct {
	cons       jetstream.Consumer
	js         jetstream.JetStream
	pending    *prometheus.Desc
	ackPending *prometheus.Desc
	redeliver  *prometheus.Desc
	dlqDepth   *prometheus.Desc
}

func newLagCollector(js jetstream.JetStream, cons jetstream.Consumer) *lagCollector {
	return &lagCollector{
		cons: cons, js: js,
		pending:    prometheus.NewDesc("signupsync_importer_consumer_pending", "Signups in SIGNUPS not yet delivered to the importer.", nil, nil),
		ackPending: prometheus.NewDesc("signupsync_importer_consumer_ack_pending", "Signups delivered and not yet settled.", nil, nil),
		redeliver:  prometheus.NewDesc("signupsync_importer_consumer_redelivered", "Signups waiting for redelivery.", nil, nil),
		dlqDepth:   prometheus.NewDesc("signupsync_dead_letter_depth", "Messages in SIGNUPS_DLQ.", nil, nil),
	}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.redeliver
	ch <- c.dlqDepth
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if info, err := c.cons.Info(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(info.NumPending))
		ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(info.NumAckPending))
		ch <- prometheus.MustNewConstMetric(c.redeliver, prometheus.GaugeValue, float64(info.NumRedelivered))
	}
	if st, err := c.js.Stream(ctx, events.StreamDeadLetter); err == nil {
		if info, err := st.Info(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(c.dlqDepth, prometheus.GaugeValue, float64(info.State.Msgs))
		}
	}
}

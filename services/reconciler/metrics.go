package reconciler

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the reconcile role's Prometheus collectors: rounds by
// result, users listed and signups published, and the end of the last
// completed window. They are fed from Deps.OnSweep ([Metrics.Observe]).
// Methods are safe for concurrent use.
type Metrics struct {
	sweeps    *prometheus.CounterVec
	published prometheus.Counter
	listed    prometheus.Counter
	until     prometheus.Gauge
}

// NewMetrics creates the collectors and registers them with reg; a nil reg
// keeps them unregistered (tests). It panics, as
// [prometheus.Registerer.MustRegister] does, when reg already holds
// collectors of the same names.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "reconcile", Name: "sweeps_total",
			Help: "Reconcile sweeps by result (ok, failed).",
		}, []string{"result"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "reconcile", Name: "published_total",
			Help: "Signups no webhook reported, published by reconcile.",
		}),
		listed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "reconcile", Name: "listed_total",
			Help: "Users listed from the Management API.",
		}),
		until: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "signupsync", Subsystem: "reconcile", Name: "checkpoint_timestamp_seconds",
			Help: "End of the last completed sweep window (unix seconds).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.sweeps, m.published, m.listed, m.until)
	}
	return m
}

// Observe counts one round (a sweep or a recovery of deliveries) and its
// error, as passed to Deps.OnSweep. A failed round counts only as failed:
// its listed and published users are not added, and the checkpoint gauge
// stays, as the checkpoint does. A dry run, or a round without a window
// end, moves no gauge either.
func (m *Metrics) Observe(res Result, err error) {
	if err != nil {
		m.sweeps.WithLabelValues("failed").Inc()
		return
	}
	m.sweeps.WithLabelValues("ok").Inc()
	m.published.Add(float64(res.Published))
	m.listed.Add(float64(res.Listed))
	if !res.DryRun && !res.Until.IsZero() {
		m.until.Set(float64(res.Until.Unix()))
	}
}

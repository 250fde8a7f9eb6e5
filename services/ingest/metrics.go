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
	dead      *prometheus.CounterVec
	lifecycle *prometheus.CounterVec
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
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "ingest", Name: "dead_letters_total",
			Help: "Entries of an accepted batch kept in SIGNUPS_DLQ instead of published, by receiver and reason.",
		}, []string{"receiver", "reason"}),
		lifecycle: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "ingest", Name: "lifecycle_published_total",
			Help: "User deletions and profile changes acknowledged by JetStream, by kind, source and whether JetStream found a duplicate.",
		}, []string{"kind", "source", "duplicate"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.publishes, m.failed, m.ignored, m.dead, m.lifecycle)
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

// lifecyclePublished counts a stored lifecycle event; kind and src are
// events constants, never input.
func (m *Metrics) lifecyclePublished(kind events.LifecycleKind, src events.Source, dup bool) {
	m.lifecycle.WithLabelValues(string(kind), string(src), strconv.FormatBool(dup)).Inc()
}

// typeTestDelivery is the type label of an Event Streams test delivery.
const typeTestDelivery = "test_delivery"

// eventTypeLabel is typ when it is one of knownTypes, else "other": the
// value that may appear in a label or a log line.
func eventTypeLabel(typ string) string {
	if _, ok := knownTypes[typ]; ok {
		return typ
	}
	return "other"
}

// ignoredEvent counts a non-signup delivery. The type label comes from a
// fixed set (knownTypes); any other type, however many a sender invents,
// is counted as "other", so input can never grow the series count.
func (m *Metrics) ignoredEvent(receiver, typ string) {
	m.ignored.WithLabelValues(receiver, eventTypeLabel(typ)).Inc()
}

// ignoredEvents counts n non-signup deliveries of one type at once.
func (m *Metrics) ignoredEvents(receiver, typ string, n int) {
	m.ignored.WithLabelValues(receiver, eventTypeLabel(typ)).Add(float64(n))
}

// deadLettered counts an entry kept in SIGNUPS_DLQ; reason is one of the
// events Reason constants, never input.
func (m *Metrics) deadLettered(receiver, reason string) {
	m.dead.WithLabelValues(receiver, reason).Inc()
}

// knownTypes are the label values of ignored_events_total besides "other":
// the Event Streams event types and the common Log Streams type codes of
// Auth0's documentation (event types catalog; log event type codes).
var knownTypes = func() map[string]struct{} {
	m := map[string]struct{}{}
	for _, t := range []string{
		// Event Streams, and their test deliveries.
		typeTestDelivery, "user.created", "user.updated", "user.deleted",
		"organization.created", "organization.updated", "organization.deleted",
		"organization.member.added", "organization.member.deleted",
		"organization.member.role.assigned", "organization.member.role.deleted",
		"organization.connection.added", "organization.connection.updated", "organization.connection.removed",
		// Log Streams: logins, signups, passwords, logouts, tokens, MFA,
		// API and rate limits.
		"s", "ss", "f", "fs", "fp", "fu", "fc", "fco", "fcoa", "scoa", "w", "du", "sd", "fd",
		"slo", "flo", "sv", "fv", "svr", "fvr", "scp", "fcp", "scpr", "fcpr", "sce", "fce",
		"seacft", "feacft", "seccft", "feccft", "sertft", "fertft", "sepft", "fepft", "srrt", "fsa",
		"sapi", "fapi", "mgmt_api_read", "api_limit", "limit_wc", "limit_sul", "limit_mu",
		"gd_auth_succeed", "gd_auth_failed", "gd_send_sms", "gd_send_email", "gd_enrollment_complete",
		"sui", "ublkdu", "pwd_leak", "sdu", "fdu", "cls", "cs", "fcpro", "depnote", "admin_update_launch",
		// Log Streams: native social and silent logins, and the long type
		// codes of newer features.
		"sens", "fens", "ssa", "api_limit_warning", "actions_execution_failed",
		"oidc_backchannel_logout_succeeded", "oidc_backchannel_logout_failed",
		"federated_logout_failed", "ciba_start_succeeded", "ciba_start_failed",
		"ciba_exchange_succeeded", "ciba_exchange_failed",
		"my_account_authentication_method_succeeded", "my_account_authentication_method_failed",
	} {
		m[t] = struct{}{}
	}
	return m
}()

package exchange

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the exchange role's Prometheus collectors. Methods are safe
// for concurrent use.
type Metrics struct {
	exchanges *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	resolved  *prometheus.CounterVec
	checks    *prometheus.CounterVec
	jwks      *prometheus.CounterVec
	passwords *prometheus.CounterVec
	pwTime    *prometheus.HistogramVec
	merges    *prometheus.CounterVec
	mergedAck *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg; a nil reg
// keeps them unregistered (tests, benchmarks). It fails when reg already
// holds collectors of the same names.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "exchange", Name: "requests_total",
			Help: "Session exchanges by result (ok, missing_token, invalid_token, expired, not_yet_valid, token_too_old, rate_limited, not_migrated, account_not_found, identity_mismatch, import_pending, unavailable, internal_error, method_not_allowed, cancelled; with a guest token also anonymous_token_invalid, anonymous_token_expired, anonymous_token_revoked, anonymous_token_wrong_project, not_anonymous, anonymous_already_merged).",
		}, []string{"result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "signupsync", Subsystem: "exchange", Name: "duration_seconds",
			Help:    "Session exchange latency by result.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		resolved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "exchange", Name: "accounts_resolved_total",
			Help: "Firebase accounts found for an exchange, by where: ledger, firebase_uid, firebase_provider, imported (on the spot).",
		}, []string{"via"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "exchange", Name: "account_checks_failed_total",
			Help: "Exchanges refused because the Firebase account named by the ledger is not the caller's, by reason (account_not_found, identity_mismatch) and by where the uid came from (ledger, imported). identity_mismatch should stay at zero: investigate every one.",
		}, []string{"reason", "via"}),
		jwks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "exchange", Name: "jwks_fetches_total",
			Help: "JWKS fetch decisions: ok, error, throttled (unknown kid inside the refresh interval).",
		}, []string{"result"}),
		passwords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "exchange", Name: "password_requests_total",
			Help: "Password fallback requests (POST /v1/session/password) by result (ok, invalid_credentials, login_blocked, mfa_required, login_denied, rate_limited, account_exists, email_in_use, password_rejected, account_not_found, identity_mismatch, unavailable, internal_error, invalid_body, body_too_large, unsupported_media_type, password_fallback_disabled, method_not_allowed, cancelled).",
		}, []string{"result"}),
		pwTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "signupsync", Subsystem: "exchange", Name: "password_duration_seconds",
			Help:    "Password fallback latency by result (the Auth0 password grant included).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		merges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "exchange", Name: "merge_requests_total",
			Help: "Exchanges that carried a guest's anonymous ID token, by result: requested, already_requested (a retry), anonymous_already_merged (409), anonymous_token_invalid, anonymous_token_expired, anonymous_token_revoked, anonymous_token_wrong_project, not_anonymous (400), or the exchange's own failure (unavailable, internal_error, cancelled, not_migrated, …).",
		}, []string{"result"}),
		mergedAck: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signupsync", Subsystem: "exchange", Name: "merged_acknowledgements_total",
			Help: "The app's merge acknowledgements consumed with --delete-merged-anonymous, by result: deleted, already_gone, kept_not_anonymous, unknown_pair, malformed, retry, failed.",
		}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.exchanges, m.duration, m.resolved, m.checks, m.jwks, m.passwords, m.pwTime, m.merges, m.mergedAck} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register exchange metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *Metrics) exchange(result string, d time.Duration) {
	m.exchanges.WithLabelValues(result).Inc()
	m.duration.WithLabelValues(result).Observe(d.Seconds())
}

func (m *Metrics) resolvedVia(via string) { m.resolved.WithLabelValues(via).Inc() }

func (m *Metrics) checkFailed(reason, via string) { m.checks.WithLabelValues(reason, via).Inc() }

func (m *Metrics) jwksFetch(result string) { m.jwks.WithLabelValues(result).Inc() }

func (m *Metrics) password(result string, d time.Duration) {
	m.passwords.WithLabelValues(result).Inc()
	m.pwTime.WithLabelValues(result).Observe(d.Seconds())
}

func (m *Metrics) mergeRequest(result string) { m.merges.WithLabelValues(result).Inc() }

func (m *Metrics) merged(result string) { m.mergedAck.WithLabelValues(result).Inc() }

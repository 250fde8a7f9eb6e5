package reconciler_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signupsync/signupsync/services/reconciler"
)

// metricsHeader is the HELP and TYPE of every reconcile metric, as
// docs/metrics.md lists them; dashboards and alerts depend on these names.
const metricsHeader = `
# HELP signupsync_reconcile_checkpoint_timestamp_seconds End of the last completed sweep window (unix seconds).
# TYPE signupsync_reconcile_checkpoint_timestamp_seconds gauge
# HELP signupsync_reconcile_listed_total Users listed from the Management API.
# TYPE signupsync_reconcile_listed_total counter
# HELP signupsync_reconcile_published_total Signups no webhook reported, published by reconcile.
# TYPE signupsync_reconcile_published_total counter
# HELP signupsync_reconcile_sweeps_total Reconcile sweeps by result (ok, failed).
# TYPE signupsync_reconcile_sweeps_total counter
`

func TestMetricsCountRoundsAndMoveTheCheckpointOnlyOnSuccess(t *testing.T) {
	window := reconciler.Result{From: base, Until: base.Add(time.Hour)}
	ok := window
	ok.Counts = reconciler.Counts{Listed: 10, Known: 3, Missing: 7, Published: 5, Duplicates: 2}
	later := reconciler.Result{From: base.Add(time.Hour), Until: base.Add(2 * time.Hour), Counts: reconciler.Counts{Listed: 4, Missing: 1, Published: 1}}
	dry := reconciler.Result{From: base.Add(2 * time.Hour), Until: base.Add(3 * time.Hour), DryRun: true, Counts: reconciler.Counts{Listed: 2, Missing: 2}}
	failed := reconciler.Result{From: base.Add(2 * time.Hour), Until: base.Add(4 * time.Hour), Counts: reconciler.Counts{Listed: 50, Published: 20}}
	upToDate := reconciler.Result{From: base.Add(2 * time.Hour), UpToDate: true}

	tests := []struct {
		name   string
		rounds []reconciler.Result
		errs   []error
		want   string
	}{
		{name: "successful rounds add their counts and move the gauge to the last window end",
			rounds: []reconciler.Result{ok, later}, errs: []error{nil, nil},
			want: `
signupsync_reconcile_checkpoint_timestamp_seconds 1.7356968e+09
signupsync_reconcile_listed_total 14
signupsync_reconcile_published_total 6
signupsync_reconcile_sweeps_total{result="ok"} 2
`},
		{name: "a failed round counts as failed and adds nothing",
			rounds: []reconciler.Result{ok, failed}, errs: []error{nil, errors.New("auth0: 503")},
			want: `
signupsync_reconcile_checkpoint_timestamp_seconds 1.7356932e+09
signupsync_reconcile_listed_total 10
signupsync_reconcile_published_total 5
signupsync_reconcile_sweeps_total{result="failed"} 1
signupsync_reconcile_sweeps_total{result="ok"} 1
`},
		{name: "a dry run counts but leaves the gauge",
			rounds: []reconciler.Result{ok, dry}, errs: []error{nil, nil},
			want: `
signupsync_reconcile_checkpoint_timestamp_seconds 1.7356932e+09
signupsync_reconcile_listed_total 12
signupsync_reconcile_published_total 5
signupsync_reconcile_sweeps_total{result="ok"} 2
`},
		{name: "a round without a window end leaves the gauge unset",
			rounds: []reconciler.Result{upToDate}, errs: []error{nil},
			want: `
signupsync_reconcile_checkpoint_timestamp_seconds 0
signupsync_reconcile_listed_total 0
signupsync_reconcile_published_total 0
signupsync_reconcile_sweeps_total{result="ok"} 1
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			m := reconciler.NewMetrics(reg)
			for i, r := range tt.rounds {
				m.Observe(r, tt.errs[i])
			}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(metricsHeader+tt.want)); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestMetricsRegisterOnceAndNilKeepsThemUnregistered(t *testing.T) {
	// Unregistered collectors still count.
	reconciler.NewMetrics(nil).Observe(reconciler.Result{Until: base}, nil)

	reg := prometheus.NewRegistry()
	reconciler.NewMetrics(reg)
	// The sweeps counter has no series until a round is observed.
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 3 {
		t.Errorf("GatherAndCount = %d, %v; want 3 series", n, err)
	}
	defer func() {
		if recover() == nil {
			t.Error("NewMetrics registered the same collectors twice without panicking")
		}
	}()
	reconciler.NewMetrics(reg)
}

package reconciler_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/schemas"
	"github.com/signupsync/signupsync/services/reconciler"
)

func TestSweepPublishesOnlyWhatNoWebhookReported(t *testing.T) {
	tests := []struct {
		name        string
		dryRun      bool
		wantCounts  reconciler.Counts
		wantPublish bool
	}{
		{name: "publishes the missing users", wantPublish: true,
			wantCounts: reconciler.Counts{Listed: 10, Known: 3, Missing: 7, Published: 5, Duplicates: 2, Requests: 1}},
		{name: "dry run publishes nothing",
			dryRun:     true,
			wantCounts: reconciler.Counts{Listed: 10, Known: 3, Missing: 7, Requests: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			users := spread("u", 10, base.Add(time.Minute), time.Minute)
			imported, skipped, reported, missing := users[0:2], users[2:3], users[3:5], users[5:]
			early := social("early", base.Add(-time.Millisecond))       // before --since
			settling := social("settling", e.clock().Add(-time.Second)) // inside the settle lag
			e.srv.AddUsers(append(users, early, settling)...)
			e.putLedger(events.OutcomeImported, imported...)
			e.putLedger(events.OutcomeSkipped, skipped...)
			e.prePublish(events.SourceAction, reported...)

			cfg := e.config()
			cfg.DryRun = tt.dryRun
			res, err := e.reconciler(cfg).Sweep(t.Context())
			if err != nil {
				t.Fatalf("Sweep: %v", err)
			}
			if res.Counts != tt.wantCounts {
				t.Errorf("counts %+v\nwant   %+v", res.Counts, tt.wantCounts)
			}
			wantUntil := e.clock().Add(-reconciler.DefaultSettleLag)
			if !res.From.Equal(base) || !res.Until.Equal(wantUntil) || res.UpToDate {
				t.Errorf("window [%v, %v) up to date %v, want [%v, %v)", res.From, res.Until, res.UpToDate, base, wantUntil)
			}

			got := e.streamed()
			want := map[events.Source][]string{events.SourceAction: ids(reported)}
			if tt.wantPublish {
				want[events.SourceReconcile] = ids(missing)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("stream holds %v\nwant %v", got, want)
			}
			_, _, cpErr := e.checkpoint()
			if tt.dryRun != errors.Is(cpErr, reconciler.ErrNoCheckpoint) {
				t.Errorf("checkpoint read: %v (dry run %v)", cpErr, tt.dryRun)
			}
			e.noPII()
		})
	}
}

func TestSweepEventsAreValid(t *testing.T) {
	e := newEnv(t)
	u := social("123", base.Add(time.Minute))
	e.srv.AddUsers(u)
	if _, err := e.reconciler(e.config()).Sweep(t.Context()); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	msgs := e.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject != events.Subject(events.SourceReconcile) || m.Header.Get(events.HeaderMsgID) != events.EventID(u.UserID) {
		t.Errorf("subject %s, msg id %s", m.Subject, m.Header.Get(events.HeaderMsgID))
	}
	ev, err := events.Decode(m.Data)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := events.SignupData{
		Tenant: "acme", Trigger: reconciler.Trigger, Connection: "google-oauth2", ConnectionStrategy: "google-oauth2",
		UserID: u.UserID, Email: u.Email, EmailVerified: true, Name: u.Name, GivenName: u.GivenName, FamilyName: u.FamilyName,
		Picture: u.Picture, CreatedAt: u.CreatedAt.Format(auth0fake.TimeLayout),
		Identities: []events.Identity{{Provider: "google-oauth2", Connection: "google-oauth2", UserID: "123", IsSocial: true}},
	}
	if !reflect.DeepEqual(ev.Data, want) || ev.EventSource() != events.SourceReconcile || !ev.Time.Equal(e.clock()) {
		t.Errorf("event %+v\nwant data %+v", ev, want)
	}
	set, err := schemas.Compile()
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(m.Data, &doc); err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(schemas.SignupEventV1, doc); err != nil {
		t.Errorf("event violates the schema: %v", err)
	}
}

func TestSweepPagesPastTheSearchCap(t *testing.T) {
	tests := []struct {
		name       string
		users      []auth0fake.User
		wantListed int
		wantDense  int
	}{
		{name: "under the cap", users: spread("a", 999, base.Add(time.Minute), time.Second), wantListed: 999},
		{name: "1500 users in 150s and 20 later", users: append(
			spread("b", 1500, base.Add(time.Minute), 100*time.Millisecond),
			spread("c", 20, base.Add(50*time.Minute), time.Minute)...),
			wantListed: 1520},
		{name: "1001 users in one millisecond", users: append(
			spread("d", 1001, base.Add(time.Minute), 0),
			spread("e", 5, base.Add(10*time.Minute), time.Second)...),
			wantListed: 1005, wantDense: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.srv.AddUsers(tt.users...)
			res, err := e.reconciler(e.config()).Sweep(t.Context())
			if err != nil {
				t.Fatalf("Sweep: %v", err)
			}
			if res.Listed != tt.wantListed || res.Published != tt.wantListed || res.Dense != tt.wantDense {
				t.Errorf("counts %+v, want %d listed and published, dense %d", res.Counts, tt.wantListed, tt.wantDense)
			}
			got := e.streamed()[events.SourceReconcile]
			if len(got) != tt.wantListed || len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Fatalf("stream holds %d reconcile signups (%d distinct), want %d, each once", len(got), len(slices.Compact(slices.Clone(got))), tt.wantListed)
			}
			if tt.wantDense == 0 && !slices.Equal(got, ids(tt.users)) {
				t.Errorf("stream does not hold exactly the users")
			}
			if tt.wantDense > 0 && !strings.Contains(e.logs.String(), "1000 users or more") {
				t.Errorf("dense window not logged")
			}
		})
	}
}

// failOnRequest makes the fake fail n requests from the request-th list
// request of the sweep on (0 is the first).
type failOnRequest struct {
	reconciler.Lister
	srv             *auth0fake.Server
	request, status int
	n               int
	mu              sync.Mutex
	calls           int
}

func (f *failOnRequest) ListUsersCreated(ctx context.Context, from, to time.Time, page, perPage int) ([]events.SignupData, int, error) {
	f.mu.Lock()
	if f.calls == f.request {
		f.srv.Fail(f.status, f.n)
	}
	f.calls++
	f.mu.Unlock()
	return f.Lister.ListUsersCreated(ctx, from, to, page, perPage)
}

func TestSweepWaitsOutFailures(t *testing.T) {
	tests := []struct {
		name        string
		opts        []auth0fake.Option
		failRequest int
		status, n   int
		maxAttempts int

		wantErr, wantAlso error
		wantRetries       int
		// wantSleeps, when set, are the exact waits; otherwise every wait
		// must be positive (read from X-RateLimit-Reset).
		wantSleeps []time.Duration
	}{
		{name: "rate-limit budget runs out mid-sweep", opts: []auth0fake.Option{auth0fake.WithRateLimit(2, time.Minute)}, wantRetries: 1},
		{name: "429s on the second page", failRequest: 1, status: http.StatusTooManyRequests, n: 2, wantRetries: 2},
		{name: "503 on the third page backs off", failRequest: 2, status: http.StatusServiceUnavailable, n: 2, wantRetries: 2,
			wantSleeps: events.DefaultBackOff()[:2]},
		{name: "gives up after max attempts", failRequest: 1, status: http.StatusBadGateway, n: 100, maxAttempts: 3,
			wantErr: reconciler.ErrGaveUp, wantRetries: 2, wantSleeps: events.DefaultBackOff()[:2]},
		{name: "permanent failure stops at once", failRequest: 1, status: http.StatusForbidden, n: 1,
			wantErr: auth0api.ErrPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts...)
			users := spread("r", 250, base.Add(time.Minute), time.Second)
			e.srv.AddUsers(users...)
			cfg := e.config()
			if tt.maxAttempts > 0 {
				cfg.MaxAttempts = tt.maxAttempts
			}
			r := e.reconciler(cfg, func(d *reconciler.Deps) {
				if tt.status != 0 {
					d.Users = &failOnRequest{Lister: e.api, srv: e.srv, request: tt.failRequest, status: tt.status, n: tt.n}
				}
			})
			res, err := r.Sweep(t.Context())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Sweep error %v, want %v", err, tt.wantErr)
			}
			if res.Retries != tt.wantRetries {
				t.Errorf("retries %d, want %d", res.Retries, tt.wantRetries)
			}
			slept := e.slept()
			if tt.wantSleeps != nil && !slices.Equal(slept, tt.wantSleeps) {
				t.Errorf("slept %v, want %v", slept, tt.wantSleeps)
			}
			if len(slept) != tt.wantRetries {
				t.Errorf("slept %d times, want %d", len(slept), tt.wantRetries)
			}
			for _, d := range slept {
				if d <= 0 {
					t.Errorf("slept %v, want a positive wait", d)
				}
			}
			_, _, cpErr := e.checkpoint()
			if tt.wantErr != nil {
				if !errors.Is(cpErr, reconciler.ErrNoCheckpoint) {
					t.Errorf("a failed sweep wrote a checkpoint (%v)", cpErr)
				}
				return
			}
			if cpErr != nil || res.Published != len(users) || !slices.Equal(e.streamed()[events.SourceReconcile], ids(users)) {
				t.Errorf("sweep incomplete: %+v, checkpoint %v", res.Counts, cpErr)
			}
		})
	}
}

func TestCheckpointMakesTheNextSweepListOnlyNewerUsers(t *testing.T) {
	e := newEnv(t)
	first := spread("f", 30, base.Add(time.Minute), time.Minute)
	e.srv.AddUsers(first...)
	r := e.reconciler(e.config())

	res1, err := r.Sweep(t.Context())
	if err != nil || res1.Listed != 30 || res1.Published != 30 {
		t.Fatalf("first sweep %+v, %v", res1, err)
	}
	cp, raw, err := e.checkpoint()
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if !cp.Until.Equal(res1.Until) || !cp.From.Equal(base) || !cp.FinishedAt.Equal(e.clock()) || cp.Counts != res1.Counts {
		t.Errorf("checkpoint %+v, want until %v and the first sweep's counts", cp, res1.Until)
	}
	for _, k := range []string{"until", "finished_at", "counts"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("checkpoint JSON lacks %q: %v", k, raw)
		}
	}

	// The same moment again: nothing to sweep, no request.
	before := e.srv.Requests()[auth0fake.RouteListUsers]
	if res, err := r.Sweep(t.Context()); err != nil || !res.UpToDate || e.srv.Requests()[auth0fake.RouteListUsers] != before {
		t.Errorf("repeat sweep %+v, %v, requests %d → %d", res, err, before, e.srv.Requests()[auth0fake.RouteListUsers])
	}

	// An hour on, the users created after the first window are listed: those
	// that were still in its settle lag (one exactly at its end) and later
	// ones. The sweep starts the lookback before the checkpoint; a user
	// created long before that but indexed only now is not listed: it is the
	// export's and the backfill's to find.
	newer := append(spread("n", 5, res1.Until.Add(time.Second), 10*time.Second),
		spread("m", 5, res1.Until.Add(10*time.Minute), time.Minute)...)
	newer[0] = social("boundary", res1.Until)
	late := social("late", base.Add(90*time.Second))
	e.srv.AddUsers(append(slices.Clone(newer), late)...)
	e.setNow(e.clock().Add(time.Hour))
	res2, err := r.Sweep(t.Context())
	if err != nil {
		t.Fatalf("second sweep: %v", err)
	}
	if want := res1.Until.Add(-reconciler.DefaultLookback); !res2.From.Equal(want) || res2.Listed != 10 || res2.Published != 10 || res2.Known != 0 {
		t.Errorf("second sweep %+v, want [%v, …) with the 10 newer users", res2, want)
	}
	if got := e.streamed()[events.SourceReconcile]; !slices.Equal(got, ids(append(slices.Clone(first), newer...))) {
		t.Errorf("stream holds %d reconcile signups, want the %d first and newer users", len(got), len(first)+len(newer))
	}

	// Ignoring the checkpoint re-sweeps from --since: the late user is
	// found, everything else is in the stream already (duplicate window).
	cfg := e.config()
	cfg.IgnoreCheckpoint = true
	res3, err := e.reconciler(cfg).Sweep(t.Context())
	if err != nil || res3.Listed != 41 || res3.Published != 1 || res3.Duplicates != 40 {
		t.Errorf("re-sweep %+v, %v: want 41 listed, 1 published, 40 duplicates", res3.Counts, err)
	}
	if cp, _, _ := e.checkpoint(); !cp.Until.Equal(res3.Until) {
		t.Errorf("checkpoint until %v after the re-sweep, want %v", cp.Until, res3.Until)
	}

	// A re-sweep of an older, fixed range never moves the checkpoint back.
	cfg.Until = base.Add(30 * time.Minute)
	res4, err := e.reconciler(cfg).Sweep(t.Context())
	if err != nil || !res4.Until.Equal(cfg.Until) || res4.Listed != 30 { // f00000…f00028 and the late user
		t.Errorf("fixed re-sweep %+v, %v", res4, err)
	}
	if cp, _, _ := e.checkpoint(); !cp.Until.Equal(res3.Until) {
		t.Errorf("checkpoint moved back to %v, want %v", cp.Until, res3.Until)
	}
}

func TestRunSweepsEveryPeriodUntilCancelled(t *testing.T) {
	e := newEnv(t)
	users := []auth0fake.User{social("r1", base.Add(time.Minute)), social("r2", base.Add(6*time.Minute)), social("r3", base.Add(11*time.Minute))}
	e.srv.AddUsers(users...)
	e.setNow(base.Add(5 * time.Minute))
	cfg := e.config()
	cfg.SettleLag, cfg.Every = 0, 5*time.Minute

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var results []reconciler.Result
	r := e.reconciler(cfg, func(d *reconciler.Deps) {
		d.OnSweep = func(res reconciler.Result, err error) {
			if err != nil {
				t.Errorf("sweep: %v", err)
			}
			results = append(results, res)
			if len(results) == 3 {
				cancel()
			}
		}
	})
	if err := r.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(results) != 3 {
		t.Fatalf("%d sweeps, want 3", len(results))
	}
	for i, res := range results {
		// The lookback lists the previous sweep's user again: a duplicate.
		if res.Published != 1 || res.Listed != res.Published+res.Duplicates {
			t.Errorf("sweep %d: %+v, want one new user", i, res.Counts)
		}
		if i > 0 && !res.From.Equal(results[i-1].Until.Add(-cfg.Lookback)) {
			t.Errorf("sweep %d starts at %v, the previous ended at %v", i, res.From, results[i-1].Until)
		}
	}
	if got := e.slept(); !slices.Equal(got, []time.Duration{cfg.Every, cfg.Every, cfg.Every}) {
		t.Errorf("paused %v, want three periods", got)
	}
	if !slices.Equal(e.streamed()[events.SourceReconcile], ids(users)) {
		t.Errorf("stream %v", e.streamed())
	}
}

func TestRunOnceReturnsTheSweepError(t *testing.T) {
	e := newEnv(t)
	e.srv.Fail(http.StatusUnauthorized, 1)
	var got error
	r := e.reconciler(e.config(), func(d *reconciler.Deps) { d.OnSweep = func(_ reconciler.Result, err error) { got = err } })
	err := r.Run(t.Context())
	if !errors.Is(err, auth0api.ErrPermanent) || !errors.Is(got, auth0api.ErrPermanent) {
		t.Errorf("Run = %v, OnSweep got %v, want ErrPermanent", err, got)
	}
}

func TestNewRefusesMissingDependencies(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		edit func(*reconciler.Deps)
	}{
		{name: "no users for a sweep", edit: func(d *reconciler.Deps) { d.Users = nil }},
		{name: "no jetstream", edit: func(d *reconciler.Deps) { d.JetStream = nil }},
		{name: "no logger", edit: func(d *reconciler.Deps) { d.Logger = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.deps()
			tt.edit(&d)
			if _, err := reconciler.New(t.Context(), e.config(), d); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

func TestUndecodableCheckpoint(t *testing.T) {
	tests := []struct {
		name    string
		ignore  bool
		wantErr error
	}{
		{name: "stops the sweep without retrying", wantErr: reconciler.ErrBadCheckpoint},
		{name: "is replaced by a sweep ignoring it", ignore: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.srv.AddUsers(social("c1", base.Add(time.Minute)))
			kv, err := e.js.KeyValue(t.Context(), events.BucketState)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := kv.Put(t.Context(), reconciler.CheckpointKey, []byte("not json")); err != nil {
				t.Fatal(err)
			}
			cfg := e.config()
			cfg.IgnoreCheckpoint = tt.ignore
			res, err := e.reconciler(cfg).Sweep(t.Context())
			if !errors.Is(err, tt.wantErr) || len(e.slept()) != 0 {
				t.Fatalf("Sweep = %v after %d waits, want %v and no retries", err, len(e.slept()), tt.wantErr)
			}
			cp, _, cpErr := e.checkpoint()
			if tt.wantErr != nil {
				if !errors.Is(cpErr, reconciler.ErrBadCheckpoint) || res.Requests != 0 {
					t.Errorf("checkpoint %v, %d requests: want it untouched and no sweep", cpErr, res.Requests)
				}
				return
			}
			if cpErr != nil || !cp.Until.Equal(res.Until) || res.Published != 1 {
				t.Errorf("checkpoint %+v (%v) after %+v", cp, cpErr, res)
			}
		})
	}
}

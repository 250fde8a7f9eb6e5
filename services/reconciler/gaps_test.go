package reconciler_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/services/reconciler"
)

// Problem 9a: a reconcile outage longer than --since left [checkpoint,
// now−since) unswept, because --since won over an older checkpoint.
func TestACheckpointOlderThanSinceStillWins(t *testing.T) {
	e := newEnv(t)
	first := social("first", base.Add(time.Minute))
	e.srv.AddUsers(first)
	if _, err := e.reconciler(e.config()).Sweep(t.Context()); err != nil {
		t.Fatalf("first sweep: %v", err)
	}
	cp, _, err := e.checkpoint()
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}

	// Two days without reconcile; the deployment still says --since 24h.
	outage := []auth0fake.User{social("gap1", cp.Until.Add(time.Hour)), social("gap2", cp.Until.Add(20*time.Hour))}
	recent := social("recent", cp.Until.Add(40*time.Hour))
	e.srv.AddUsers(append(slices.Clone(outage), recent)...)
	e.setNow(e.clock().Add(48 * time.Hour))
	cfg := e.config()
	cfg.Since = e.clock().Add(-24 * time.Hour)
	res, err := e.reconciler(cfg).Sweep(t.Context())
	if err != nil {
		t.Fatalf("sweep after the outage: %v", err)
	}
	if res.From.After(cp.Until) {
		t.Errorf("sweep started at %v, after the checkpoint %v", res.From, cp.Until)
	}
	want := ids([]auth0fake.User{first, outage[0], outage[1], recent})
	if got := e.streamed()[events.SourceReconcile]; !slices.Equal(got, want) {
		t.Errorf("stream holds %v, want %v: the outage's signups are lost", got, want)
	}
}

// Problem 9b: a user Auth0's search index held only after its window was
// swept was never listed again.
func TestAUserIndexedAfterItsWindowWasSweptIsFound(t *testing.T) {
	e := newEnv(t, auth0fake.WithIndexLag(3*time.Minute))
	lagging := social("lagging", e.clock().Add(-90*time.Second)) // inside the first window, not yet indexed
	e.srv.AddUsers(lagging)
	cfg := e.config()
	r := e.reconciler(cfg)
	res1, err := r.Sweep(t.Context())
	if err != nil || res1.Listed != 0 {
		t.Fatalf("first sweep %+v, %v: want nothing listed yet", res1.Counts, err)
	}
	if !lagging.CreatedAt.Before(res1.Until) {
		t.Fatalf("the user (%v) is not inside the first window (until %v)", lagging.CreatedAt, res1.Until)
	}

	// Five minutes on: the index holds the user now.
	if err := e.sleep(t.Context(), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	res2, err := r.Sweep(t.Context())
	if err != nil {
		t.Fatalf("second sweep: %v", err)
	}
	if got := e.streamed()[events.SourceReconcile]; !slices.Equal(got, ids([]auth0fake.User{lagging})) {
		t.Errorf("stream holds %v after the second sweep [%v, %v): the late-indexed user is lost", got, res2.From, res2.Until)
	}
}

// deleteAfterFirst deletes a listed user from the fake after the first list
// request: a user deleted in Auth0 while a sweep pages.
type deleteAfterFirst struct {
	reconciler.Lister
	srv  *auth0fake.Server
	id   string
	once sync.Once
}

func (d *deleteAfterFirst) ListUsersCreated(ctx context.Context, from, to time.Time, page, perPage int) ([]events.SignupData, int, error) {
	users, total, err := d.Lister.ListUsersCreated(ctx, from, to, page, perPage)
	d.once.Do(func() { d.srv.DeleteUser(d.id) })
	return users, total, err
}

// Problem 9c: with page-number paging, a user deleted mid-sweep shifted the
// next page and the first user of it was never listed.
func TestAUserDeletedMidSweepMakesNoOtherUserSkipped(t *testing.T) {
	e := newEnv(t)
	users := spread("p", 250, base.Add(time.Minute), time.Second)
	e.srv.AddUsers(users...)
	r := e.reconciler(e.config(), func(d *reconciler.Deps) {
		d.Users = &deleteAfterFirst{Lister: e.api, srv: e.srv, id: users[0].UserID}
	})
	if _, err := r.Sweep(t.Context()); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	got := e.streamed()[events.SourceReconcile]
	for _, u := range users[1:] {
		if _, found := slices.BinarySearch(got, u.UserID); !found {
			t.Errorf("%s was never listed", u.UserID)
		}
	}
}

// Users sharing a created_at millisecond across page boundaries are each
// listed once: the cursor neither loses nor loops on them.
func TestUsersSharingAMillisecondAreListedOnce(t *testing.T) {
	tests := []struct {
		name      string
		users     []auth0fake.User
		wantDense int
	}{
		{name: "a tie across a page boundary", users: append(append(
			spread("a", 90, base.Add(time.Minute), time.Millisecond),
			spread("b", 30, base.Add(2*time.Minute), 0)...),
			spread("c", 90, base.Add(3*time.Minute), time.Millisecond)...)},
		{name: "250 users in one millisecond", users: append(append(
			spread("d", 5, base.Add(time.Minute), time.Second),
			spread("e", 250, base.Add(2*time.Minute), 0)...),
			spread("f", 5, base.Add(3*time.Minute), time.Second)...)},
		{name: "1001 users in one millisecond", users: append(
			spread("g", 1001, base.Add(time.Minute), 0),
			spread("h", 5, base.Add(10*time.Minute), time.Second)...), wantDense: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.srv.AddUsers(tt.users...)
			res, err := e.reconciler(e.config()).Sweep(t.Context())
			if err != nil {
				t.Fatalf("Sweep: %v", err)
			}
			got := e.streamed()[events.SourceReconcile]
			if len(slices.Compact(slices.Clone(got))) != len(got) || res.Duplicates != 0 || res.Dense != tt.wantDense {
				t.Fatalf("%d signups, %d distinct, %d duplicates, dense %d: want each once, dense %d",
					len(got), len(slices.Compact(slices.Clone(got))), res.Duplicates, res.Dense, tt.wantDense)
			}
			if tt.wantDense == 0 && !slices.Equal(got, ids(tt.users)) {
				t.Errorf("stream holds %d users, want the %d", len(got), len(tt.users))
			}
			if tt.wantDense > 0 && len(got) != 1005 {
				t.Errorf("stream holds %d users, want the first 1000 of the dense millisecond and the 5 after", len(got))
			}
			if max := len(tt.users)/reconciler.DefaultPageSize + 12; res.Requests > max {
				t.Errorf("%d requests for %d users, want at most %d", res.Requests, len(tt.users), max)
			}
		})
	}
}

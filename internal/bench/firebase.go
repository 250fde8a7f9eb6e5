package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"

	"github.com/signupsync/signupsync/events"
)

// The Firebase limits. Both use the user shape the importer imports, so
// the importer and the backfill are compared with the same work done by a
// minimal client: the emulator's cost per user depends on the shape (with a
// creation time set, ImportUsers is several times slower than for a bare
// uid and email).

// benchSignup is the signup of bench user i, as eventPayload publishes it:
// email, name, picture, creation time and one social identity, the fields
// the importer maps.
func benchSignup(i int) events.SignupData {
	return events.SignupData{Tenant: "bench", UserID: fmt.Sprintf("google-oauth2|%d", i), Email: fmt.Sprintf("u%d@example.com", i), EmailVerified: true,
		Name: "Bench User", Picture: "https://example.com/p.png", CreatedAt: "2026-11-01T10:00:00.000Z",
		Identities: []events.Identity{{Provider: "google-oauth2", Connection: "google-oauth2", UserID: strconv.Itoa(i), IsSocial: true}}}
}

// shaped is one user as the importer handles it: the account it imports
// and the identifiers it looks up first.
type shaped struct {
	user *auth.UserToImport
	ids  []auth.UserIdentifier
}

// importerShape builds what the importer builds for d with its default
// configuration (uid policy auth0_id, the social providers of events):
// the account of toImport and providerInfo in
// services/importer/mapping.go, and the look-up identifiers of
// identifiers in services/importer/importer.go. internal/ may not import a
// service, so the fields are repeated here: keep the two in step.
func importerShape(d events.SignupData) (shaped, error) {
	e := events.Classify(d, events.SocialProviders())
	if !e.OK {
		return shaped{}, fmt.Errorf("bench user %s not eligible: %s", d.UserID, e.Reason)
	}
	uid := events.UIDAuth0ID.FirebaseUID(d.UserID)
	email := strings.ToLower(d.Email)
	u := (&auth.UserToImport{}).UID(uid).CustomClaims(map[string]any{"auth0_user_id": d.UserID}).
		Email(email).EmailVerified(d.EmailVerified).DisplayName(d.Name).PhotoURL(d.Picture)
	t, err := time.Parse(time.RFC3339Nano, d.CreatedAt)
	if err != nil {
		return shaped{}, fmt.Errorf("bench user %s: created_at: %w", d.UserID, err)
	}
	u.Metadata(&auth.UserMetadata{CreationTimestamp: t.UnixMilli()})
	u.ProviderData([]*auth.UserProvider{{ProviderID: e.FirebaseProvider, UID: e.Identity.UserID, Email: email, DisplayName: d.Name, PhotoURL: d.Picture}})
	ids := []auth.UserIdentifier{
		auth.UIDIdentifier{UID: uid},
		auth.ProviderIdentifier{ProviderID: e.FirebaseProvider, ProviderUID: e.Identity.UserID},
		auth.EmailIdentifier{Email: email},
	}
	return shaped{user: u, ids: ids}, nil
}

// shapedBatch is users from..from+n-1 in the importer's shape.
func shapedBatch(from, n int) ([]shaped, error) {
	out := make([]shaped, n)
	for i := range out {
		s, err := importerShape(benchSignup(from + i))
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func firebaseClient(ctx context.Context, project string) (*auth.Client, error) {
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: project})
	if err != nil {
		return nil, err
	}
	return app.Auth(ctx)
}

// limitWarmUp users go through a limit, untimed, before it is measured.
const limitWarmUp = 2000

// rawImport is the ImportUsers limit: n new users in the importer's shape,
// 1000 per call, one call at a time, into a fresh project cleared after.
func (b *bench) rawImport(ctx context.Context, project string, n int) (float64, error) {
	return b.firebaseLimit(ctx, project, n, func(ctx context.Context, fb *auth.Client, batch []shaped) error {
		if err := importBatch(ctx, fb, batch); err != nil {
			return fmt.Errorf("raw import: %w", err)
		}
		return nil
	})
}

// lookupsAtOnce is how many GetUsers calls the importer has in flight for
// one batch: min(4, Concurrency) in lookup (services/importer/importer.go),
// 4 with the default configuration.
const lookupsAtOnce = 4

// requiredWork is the limit the importer's rules set: per 1000 new users,
// the look-ups it must make before importing (uid, provider identity and
// email of each user, at most 100 identifiers per GetUsers call, so 33
// users a call and 31 calls, up to lookupsAtOnce at once) and then one
// ImportUsers of the 1000, all in the importer's shape; issued by a
// minimal client with no broker, no ledger and no claims, one batch after
// the other, into a fresh project cleared after. The look-ups must find
// nothing: the users are new, as in the importer figures.
func (b *bench) requiredWork(ctx context.Context, project string, n int) (float64, error) {
	return b.firebaseLimit(ctx, project, n, func(ctx context.Context, fb *auth.Client, batch []shaped) error {
		if err := lookUp(ctx, fb, batch); err != nil {
			return fmt.Errorf("required work: %w", err)
		}
		if err := importBatch(ctx, fb, batch); err != nil {
			return fmt.Errorf("required work: %w", err)
		}
		return nil
	})
}

// firebaseLimit times work over n new users in batches of 1000, after
// limitWarmUp untimed users, counting only the time spent in work, and
// returns users per second. The project is cleared after.
func (b *bench) firebaseLimit(ctx context.Context, project string, n int, work func(context.Context, *auth.Client, []shaped) error) (float64, error) {
	fb, err := firebaseClient(ctx, project)
	if err != nil {
		return 0, err
	}
	defer b.clearProject(project)
	timed := func(from, n int) (time.Duration, error) {
		var spent time.Duration
		for i := 0; i < n; i += 1000 {
			batch, err := shapedBatch(from+i, min(1000, n-i))
			if err != nil {
				return 0, err
			}
			start := time.Now()
			if err := work(ctx, fb, batch); err != nil {
				return 0, err
			}
			spent += time.Since(start)
		}
		return spent, nil
	}
	if _, err := timed(10_000_000, limitWarmUp); err != nil {
		return 0, err
	}
	spent, err := timed(0, n)
	if err != nil {
		return 0, err
	}
	return float64(n) / spent.Seconds(), nil
}

// lookUp packs the users' identifiers into GetUsers calls of at most 100
// identifiers, never splitting one user's, and runs up to lookupsAtOnce
// calls at once, as the importer's lookup does.
func lookUp(ctx context.Context, fb *auth.Client, users []shaped) error {
	calls := packLookups(users)
	sem := make(chan struct{}, lookupsAtOnce)
	errs := make(chan error, len(calls))
	var wg sync.WaitGroup
	for _, ids := range calls {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res, err := fb.GetUsers(ctx, ids)
			switch {
			case err != nil:
				errs <- fmt.Errorf("GetUsers: %w", err)
			case len(res.Users) > 0:
				errs <- fmt.Errorf("GetUsers found %d accounts of users that should be new", len(res.Users))
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when no call failed
}

// packLookups packs the users' identifiers into GetUsers calls of at most
// 100, never splitting one user's: 33 users a call, 31 calls per 1000.
func packLookups(users []shaped) [][]auth.UserIdentifier {
	var calls [][]auth.UserIdentifier
	var cur []auth.UserIdentifier
	for _, u := range users {
		if len(cur)+len(u.ids) > 100 {
			calls = append(calls, cur)
			cur = nil
		}
		cur = append(cur, u.ids...)
	}
	if len(cur) > 0 {
		calls = append(calls, cur)
	}
	return calls
}

func importBatch(ctx context.Context, fb *auth.Client, users []shaped) error {
	us := make([]*auth.UserToImport, len(users))
	for i, u := range users {
		us[i] = u.user
	}
	res, err := fb.ImportUsers(ctx, us)
	if err != nil {
		return fmt.Errorf("ImportUsers: %w", err)
	}
	if res.FailureCount > 0 {
		return fmt.Errorf("ImportUsers refused %d users, first: %s", res.FailureCount, res.Errors[0].Reason)
	}
	return nil
}

// clearProject deletes every account of a project, keeping the emulator's
// memory flat across runs.
func (b *bench) clearProject(project string) {
	req, _ := http.NewRequest(http.MethodDelete, "http://"+b.emu.Host+"/emulator/v1/projects/"+project+"/accounts", nil)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
	}
}

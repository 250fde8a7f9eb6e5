package firebaseprod_test

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"testing"

	"firebase.google.com/go/v4/auth"
	"firebase.google.com/go/v4/errorutils"

	"github.com/signupsync/signupsync/internal/firebaseprod"
)

func TestUnknownEndpointAnswers404WithGoogleErrorBody(t *testing.T) {
	srv, c, p := start(t)

	_, err := c.QueryUsers(t.Context(), &auth.QueryUsersRequest{})

	if !errorutils.IsNotFound(err) {
		t.Errorf("QueryUsers: %v, want not found", err)
	}
	for _, req := range []struct{ method, path string }{
		{http.MethodPost, apiPath(p, "accounts:query")},
		{http.MethodGet, apiPath(p, firebaseprod.EndpointLookup)},
		{http.MethodPost, "/identitytoolkit.googleapis.com/v1/projects/" + p + "/tenants/t1/accounts:lookup"},
		{http.MethodGet, "/"},
	} {
		status, b := raw(t, srv, req.method, req.path, nil)
		e := decodeJSON[googleError](t, b).Error
		if status != http.StatusNotFound || e.Code != http.StatusNotFound || e.Status != "NOT_FOUND" || e.Message == "" || len(e.Errors) == 0 {
			t.Errorf("%s %s: status %d, body %s; want 404 with Google's error body", req.method, req.path, status, b)
		}
	}
}

func TestErrorsHaveGoogleShape(t *testing.T) {
	srv, c, p := start(t)
	if _, err := c.CreateUser(t.Context(), (&auth.UserToCreate{}).UID("u1")); err != nil {
		t.Fatal(err)
	}

	status, b := raw(t, srv, http.MethodPost, apiPath(p, firebaseprod.EndpointSignUp), map[string]string{"localId": "u1"})

	e := decodeJSON[googleError](t, b).Error
	if status != http.StatusBadRequest || e.Code != 400 || e.Message != "DUPLICATE_LOCAL_ID" ||
		len(e.Errors) != 1 || e.Errors[0].Message != "DUPLICATE_LOCAL_ID" || e.Errors[0].Domain != "global" {
		t.Errorf("status %d, body %s; want Google's 400 body with DUPLICATE_LOCAL_ID", status, b)
	}
}

func TestStatsAreServedOverHTTP(t *testing.T) {
	srv, c, p := start(t)
	importUsers(t, c, user("u1", "a@example.com"), user("u2", "a@example.com"), user("u1", "b@example.com"))

	got, err := firebaseprod.FetchStats(t.Context(), srv.Host(), p)

	if err != nil {
		t.Fatal(err)
	}
	want := srv.Stats(p)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fetched %+v, want %+v", got, want)
	}
	if got.Accounts != 2 || got.Replacements != 1 || got.Calls[firebaseprod.EndpointBatchCreate] != 1 {
		t.Errorf("fetched %+v, want 2 accounts, 1 replacement, 1 import call", got)
	}
	srv.Freeze()
	defer srv.Thaw()
	srv.SetUnavailable(true)
	if _, err := firebaseprod.FetchStats(t.Context(), srv.Host(), "never-used"); err != nil {
		t.Errorf("stats while frozen and unavailable: %v", err)
	}
}

func TestProjectsAreIsolated(t *testing.T) {
	srv, c, p := start(t)
	other := p + "-other"
	c2 := authClient(t, other)
	importUsers(t, c, user("u1", "a@example.com"))

	_, err := c2.GetUser(t.Context(), "u1")

	if !auth.IsUserNotFound(err) {
		t.Errorf("GetUser in another project: %v, want user not found", err)
	}
	if st := srv.Stats(other); st.Accounts != 0 || st.Calls[firebaseprod.EndpointLookup] != 1 {
		t.Errorf("other project's stats = %+v", st)
	}
	if n := srv.Stats(p).Accounts; n != 1 {
		t.Errorf("accounts = %d, want 1", n)
	}
}

func TestBodyOverTheCapIsRefused(t *testing.T) {
	srv, c, p := start(t, firebaseprod.WithMaxBodyBytes(4096))
	users := make([]*auth.UserToImport, 200)
	for i := range users {
		users[i] = user(fmt.Sprintf("user-%03d", i), fmt.Sprintf("user-%03d@example.com", i))
	}

	_, err := c.ImportUsers(t.Context(), users)

	if res := errorutils.HTTPResponse(err); res == nil || res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized import: %v, want 413", err)
	}
	if n := srv.Stats(p).Accounts; n != 0 {
		t.Errorf("accounts = %d, want 0", n)
	}
}

func TestInsertRefusesATakenUID(t *testing.T) {
	srv, _, p := start(t)
	if err := srv.Insert(p, firebaseprod.Account{UID: "u1"}); err != nil {
		t.Fatal(err)
	}

	err := srv.Insert(p, firebaseprod.Account{UID: "u1"})

	if !errors.Is(err, firebaseprod.ErrUIDExists) {
		t.Errorf("second insert: %v, want ErrUIDExists", err)
	}
}

func TestConcurrentCallsAreSafe(t *testing.T) {
	srv, c, p := start(t)
	const workers, calls, perCall = 6, 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*calls)
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				users := make([]*auth.UserToImport, perCall)
				for j := range users {
					// Every worker imports the same emails: duplicates by design.
					users[j] = user(fmt.Sprintf("w%d-c%d-u%d", w, i, j), fmt.Sprintf("c%d-u%d@example.com", i, j))
				}
				if _, err := c.ImportUsers(t.Context(), users); err != nil {
					errs <- err
					return
				}
				if _, err := c.GetUsers(t.Context(), []auth.UserIdentifier{auth.EmailIdentifier{Email: fmt.Sprintf("c%d-u0@example.com", i)}}); err != nil {
					errs <- err
					return
				}
				_ = srv.Stats(p)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	st := srv.Stats(p)
	if st.Accounts != workers*calls*perCall || len(st.DuplicateEmails) != calls*perCall {
		t.Errorf("stats = %d accounts, %d duplicate emails; want %d, %d", st.Accounts, len(st.DuplicateEmails), workers*calls*perCall, calls*perCall)
	}
}

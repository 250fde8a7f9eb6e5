package firebaseprod_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"firebase.google.com/go/v4/errorutils"

	"github.com/signupsync/signupsync/internal/firebaseprod"
)

func TestUnavailableIsAnUnavailableFirebaseError(t *testing.T) {
	// A Retry-After above the SDK's two-minute cap makes it give up at
	// once instead of retrying.
	srv, c, p := start(t, firebaseprod.WithRetryAfter(3*time.Minute))
	srv.SetUnavailable(true)

	_, err := c.GetUser(t.Context(), "u1")

	if !errorutils.IsUnavailable(err) {
		t.Fatalf("GetUser while unavailable: %v, want unavailable", err)
	}
	if res := errorutils.HTTPResponse(err); res == nil || res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "180" {
		t.Errorf("HTTP response = %+v, want 503 with Retry-After 180", res)
	}
	if st := srv.Stats(p); st.Calls[firebaseprod.EndpointLookup] != 1 || st.Unavailable != 1 {
		t.Errorf("stats = %d look-ups, %d unavailable; want one attempt", st.Calls[firebaseprod.EndpointLookup], st.Unavailable)
	}
	srv.SetUnavailable(false)
	if _, err := c.GetUser(t.Context(), "u1"); !auth.IsUserNotFound(err) {
		t.Errorf("GetUser once available: %v, want user not found", err)
	}
}

func TestSDKErrorChecksDoNotSeeThroughWrapping(t *testing.T) {
	// errorutils.Is* and auth.Is* use a type assertion, not errors.As: a
	// caller that wraps the SDK's error with %w before classifying it (as
	// services/importer's classifyFirebase does) finds no UNAVAILABLE and
	// treats a 503 as permanent. Classify first, then wrap.
	srv, c, _ := start(t, firebaseprod.WithRetryAfter(3*time.Minute))
	srv.SetUnavailable(true)

	_, err := c.GetUser(t.Context(), "u1")

	if !errorutils.IsUnavailable(err) {
		t.Fatalf("unwrapped: %v, want unavailable", err)
	}
	if wrapped := fmt.Errorf("firebase GetUsers: %w", err); errorutils.IsUnavailable(wrapped) {
		t.Error("errorutils.IsUnavailable now sees through %w: classifyFirebase's order no longer matters")
	}
}

func TestSDKRetriesA503FourTimesThenReportsIt(t *testing.T) {
	// Without Retry-After the SDK makes five attempts over about seven
	// seconds (0, 1, 2 and 4 s apart) before returning UNAVAILABLE.
	srv, c, p := start(t)
	srv.SetUnavailable(true)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	_, err := c.GetUser(ctx, "u1")

	if !errorutils.IsUnavailable(err) {
		t.Fatalf("GetUser while unavailable: %v, want unavailable", err)
	}
	if st := srv.Stats(p); st.Calls[firebaseprod.EndpointLookup] != 5 || st.Unavailable != 5 {
		t.Errorf("stats = %d look-ups, %d unavailable; want 5 attempts", st.Calls[firebaseprod.EndpointLookup], st.Unavailable)
	}
}

func TestSDKRetriesThroughABriefOutage(t *testing.T) {
	srv, c, p := start(t)
	srv.SetUnavailable(true)
	done := make(chan error, 1)
	go func() {
		_, err := c.CreateUser(t.Context(), (&auth.UserToCreate{}).UID("u1"))
		done <- err
	}()
	eventually(t, "an attempt was refused", func() bool { return srv.Stats(p).Unavailable >= 1 })

	srv.SetUnavailable(false)

	if err := <-done; err != nil {
		t.Fatalf("CreateUser across a brief outage: %v", err)
	}
	st := srv.Stats(p)
	if st.Accounts != 1 || st.Calls[firebaseprod.EndpointSignUp] != st.Unavailable+1 {
		t.Errorf("stats = %d accounts, %d create attempts, %d refused; want 1 account and one attempt served",
			st.Accounts, st.Calls[firebaseprod.EndpointSignUp], st.Unavailable)
	}
}

func TestFrozenCallsHangUntilThawed(t *testing.T) {
	srv, c, _ := start(t)
	importUsers(t, c, user("u1", ""))
	srv.Freeze()
	done := make(chan error, 1)
	go func() {
		_, err := c.GetUser(t.Context(), "u1")
		done <- err
	}()
	eventually(t, "the call is held", func() bool { return srv.Parked() == 1 })
	select {
	case err := <-done:
		t.Fatalf("call returned while frozen: %v", err)
	default:
	}

	srv.Thaw()

	select {
	case err := <-done:
		if err != nil {
			t.Errorf("GetUser after thaw: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("call still held after thaw")
	}
	if n := srv.Parked(); n != 0 {
		t.Errorf("parked = %d after thaw", n)
	}
}

func TestFrozenCallTakesEffectAfterItsClientGaveUp(t *testing.T) {
	srv, c, p := start(t)
	srv.Freeze()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()

	_, err := c.ImportUsers(ctx, []*auth.UserToImport{user("u1", "")})

	// The SDK returns the bare context error, not a FirebaseError.
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ImportUsers while frozen: %v, want deadline exceeded", err)
	}
	eventually(t, "the abandoned call is held", func() bool { return srv.Parked() == 1 })
	if n := len(srv.Accounts(p)); n != 0 {
		t.Fatalf("%d accounts while frozen, want the call not applied yet", n)
	}
	srv.Thaw()
	eventually(t, "the abandoned import is applied", func() bool { return len(srv.Accounts(p)) == 1 })
}

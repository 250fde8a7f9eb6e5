package firebaseprod_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"

	"github.com/signupsync/signupsync/internal/firebaseprod"
)

// projectID is a project id of the test's own.
func projectID(t testing.TB) string {
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	return fmt.Sprintf("demo-%016x", h.Sum64())
}

// start runs a stand-in, points the Admin SDK at it and returns an Auth
// client for the test's project.
func start(t *testing.T, opts ...firebaseprod.Option) (*firebaseprod.Server, *auth.Client, string) {
	t.Helper()
	srv := firebaseprod.New(t, opts...)
	t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", srv.Host())
	p := projectID(t)
	return srv, authClient(t, p), p
}

// authClient is an Admin SDK Auth client for project; the SDK reads
// FIREBASE_AUTH_EMULATOR_HOST here.
func authClient(t *testing.T, project string) *auth.Client {
	t.Helper()
	app, err := firebase.NewApp(t.Context(), &firebase.Config{ProjectID: project})
	if err != nil {
		t.Fatalf("firebase app: %v", err)
	}
	c, err := app.Auth(t.Context())
	if err != nil {
		t.Fatalf("firebase auth: %v", err)
	}
	return c
}

// importUsers imports users and fails the test on a whole-call error.
func importUsers(t *testing.T, c *auth.Client, users ...*auth.UserToImport) *auth.UserImportResult {
	t.Helper()
	res, err := c.ImportUsers(t.Context(), users)
	if err != nil {
		t.Fatalf("ImportUsers: %v", err)
	}
	return res
}

func user(uid, email string) *auth.UserToImport {
	u := (&auth.UserToImport{}).UID(uid)
	if email != "" {
		u.Email(email)
	}
	return u
}

// eventually polls cond until it holds, failing the test after ten
// seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// googleError is Google's error body.
type googleError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Errors  []struct {
			Message string `json:"message"`
			Domain  string `json:"domain"`
			Reason  string `json:"reason"`
		} `json:"errors"`
	} `json:"error"`
}

// raw sends a request to the stand-in's Identity Toolkit API for project
// without the SDK (whose client-side checks would stop it) and returns the
// status and body.
func raw(t *testing.T, srv *firebaseprod.Server, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+srv.Host()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

func apiPath(project, endpoint string) string {
	return "/identitytoolkit.googleapis.com/v1/projects/" + project + "/" + endpoint
}

func decodeJSON[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

package auth0fake_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/internal/auth0fake"
)

type apiErr struct {
	StatusCode int    `json:"statusCode"`
	Error      string `json:"error"`
	Message    string `json:"message"`
	ErrorCode  string `json:"errorCode"`
}

type actionBody struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	Status             string `json:"status"`
	Code               string `json:"code"`
	Runtime            string `json:"runtime"`
	AllChangesDeployed bool   `json:"all_changes_deployed"`
	SupportedTriggers  []struct {
		ID      string `json:"id"`
		Version string `json:"version"`
	} `json:"supported_triggers"`
	Secrets []map[string]any `json:"secrets"`
	// DeployedVersion is absent until a version is live.
	DeployedVersion *struct {
		Number   int    `json:"number"`
		Deployed bool   `json:"deployed"`
		Code     string `json:"code"`
	} `json:"deployed_version"`
}

func jsonBody(t *testing.T, v any) *strings.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReader(string(b))
}

func createAction(t *testing.T, s *auth0fake.Server, name, trigger, version string) actionBody {
	t.Helper()
	r := call(t, s, http.MethodPost, "/api/v2/actions/actions", s.Token(), jsonBody(t, map[string]any{
		"name": name, "supported_triggers": []map[string]string{{"id": trigger, "version": version}},
		"code": "exports.onExecutePostLogin = async () => {};", "runtime": "node22",
		"secrets": []map[string]string{{"name": "K", "value": "v1"}},
	}), "Content-Type", "application/json")
	if r.status != http.StatusCreated {
		t.Fatalf("create action %s: %d %s", name, r.status, r.body)
	}
	var a actionBody
	r.json(t, &a)
	return a
}

func readAction(t *testing.T, s *auth0fake.Server, id string) actionBody {
	t.Helper()
	r := call(t, s, http.MethodGet, "/api/v2/actions/actions/"+id, s.Token(), nil)
	if r.status != http.StatusOK {
		t.Fatalf("read action: %d %s", r.status, r.body)
	}
	var a actionBody
	r.json(t, &a)
	return a
}

func TestActionBuildsAsynchronouslyAndDeployBeforeBuiltIsRefused(t *testing.T) {
	s := auth0fake.New(t)
	s.SetBuildReads(2)
	a := createAction(t, s, "mine", "post-login", "v3")
	if a.Status != auth0fake.ActionPending || a.DeployedVersion != nil || a.AllChangesDeployed {
		t.Fatalf("created action: %+v, want pending, nothing deployed", a)
	}
	for _, sec := range a.Secrets {
		if _, ok := sec["value"]; ok {
			t.Errorf("a secret's value is returned: %v", sec)
		}
	}
	r := call(t, s, http.MethodPost, "/api/v2/actions/actions/"+a.ID+"/deploy", s.Token(), nil)
	var e apiErr
	r.json(t, &e)
	if r.status != http.StatusBadRequest || e.Message != "A draft must be in the 'built' state before it can be deployed." || e.StatusCode != 400 || e.Error != "Bad Request" {
		t.Fatalf("deploy of a pending action: %d %s", r.status, r.body)
	}
	if got := readAction(t, s, a.ID).Status; got != auth0fake.ActionBuilding {
		t.Fatalf("first read: status %s, want building", got)
	}
	if got := readAction(t, s, a.ID).Status; got != auth0fake.ActionBuilt {
		t.Fatalf("second read: status %s, want built", got)
	}

	r = call(t, s, http.MethodPost, "/api/v2/actions/actions/"+a.ID+"/deploy", s.Token(), nil)
	var v struct {
		Number   int  `json:"number"`
		Deployed bool `json:"deployed"`
		Action   struct {
			ID string `json:"id"`
		} `json:"action"`
	}
	r.json(t, &v)
	if r.status != http.StatusOK || v.Number != 1 || v.Deployed || v.Action.ID != a.ID {
		t.Fatalf("deploy: %d %s, want version 1 not yet deployed", r.status, r.body)
	}
	// Deploying is asynchronous too: the version goes live after reads.
	if got := readAction(t, s, a.ID); got.DeployedVersion != nil {
		t.Fatalf("deployed version at once: %+v", got.DeployedVersion)
	}
	got := readAction(t, s, a.ID)
	if got.DeployedVersion == nil || got.DeployedVersion.Number != 1 || !got.DeployedVersion.Deployed || !got.AllChangesDeployed {
		t.Fatalf("after the deploy: %+v", got)
	}

	// An update starts a new build; the live version stays until deployed.
	r = call(t, s, http.MethodPatch, "/api/v2/actions/actions/"+a.ID, s.Token(), jsonBody(t, map[string]any{"code": "changed"}), "Content-Type", "application/json")
	var upd actionBody
	r.json(t, &upd)
	if r.status != http.StatusOK || upd.Status != auth0fake.ActionPending || upd.AllChangesDeployed || upd.DeployedVersion.Code == "changed" {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
}

func TestFailedBuildEndsInFailed(t *testing.T) {
	s := auth0fake.New(t)
	s.SetBuildReads(0)
	s.FailBuilds("broken")
	a := createAction(t, s, "broken", "post-login", "v3")
	if got := readAction(t, s, a.ID).Status; got != auth0fake.ActionFailed {
		t.Fatalf("status %s, want failed", got)
	}
	if r := call(t, s, http.MethodPost, "/api/v2/actions/actions/"+a.ID+"/deploy", s.Token(), nil); r.status != http.StatusBadRequest {
		t.Fatalf("deploy of a failed build: %d", r.status)
	}
}

func TestActionNamesAreUnique(t *testing.T) {
	s := auth0fake.New(t)
	createAction(t, s, "same", "post-login", "v3")
	r := call(t, s, http.MethodPost, "/api/v2/actions/actions", s.Token(), jsonBody(t, map[string]any{
		"name": "same", "supported_triggers": []map[string]string{{"id": "post-user-registration", "version": "v2"}},
	}), "Content-Type", "application/json")
	var e apiErr
	r.json(t, &e)
	if r.status != http.StatusConflict || e.StatusCode != http.StatusConflict || e.Error != "Conflict" {
		t.Fatalf("second action of a name: %d %s", r.status, r.body)
	}
}

func TestActionRequestsAreValidatedLikeAuth0(t *testing.T) {
	s := auth0fake.New(t)
	a := createAction(t, s, "mine", "post-login", "v3")
	tests := []struct {
		name, method, path string
		body               any
		status             int
		message            string
	}{
		{"unknown field", http.MethodPatch, "/api/v2/actions/actions/" + a.ID, map[string]any{"id": a.ID}, 400, "Additional properties not allowed: id"},
		{"another trigger", http.MethodPatch, "/api/v2/actions/actions/" + a.ID, map[string]any{"supported_triggers": []map[string]string{{"id": "post-user-registration", "version": "v2"}}}, 400, "can't upgrade to this trigger."},
		{"unsupported runtime", http.MethodPatch, "/api/v2/actions/actions/" + a.ID, map[string]any{"runtime": "node8"}, 400, "runtime is not supported"},
		{"unknown trigger version", http.MethodPost, "/api/v2/actions/actions", map[string]any{"name": "x", "supported_triggers": []map[string]string{{"id": "post-login", "version": "v9"}}}, 400, "does not exist"},
		{"unknown action", http.MethodGet, "/api/v2/actions/actions/nope", nil, 404, "The action does not exist."},
		{"deploy of an unknown action", http.MethodPost, "/api/v2/actions/actions/nope/deploy", nil, 404, "The action does not exist."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader
			if tt.body != nil {
				body = jsonBody(t, tt.body)
			}
			var r response
			if body != nil {
				r = call(t, s, tt.method, tt.path, s.Token(), body, "Content-Type", "application/json")
			} else {
				r = call(t, s, tt.method, tt.path, s.Token(), nil)
			}
			var e apiErr
			r.json(t, &e)
			if r.status != tt.status || e.StatusCode != tt.status || !strings.Contains(e.Message, tt.message) {
				t.Fatalf("%d %s, want %d %q", r.status, r.body, tt.status, tt.message)
			}
		})
	}
}

func TestBindingsPatchReplacesTheWholeList(t *testing.T) {
	s := auth0fake.New(t)
	s.AddAction(auth0fake.ActionState{Name: "a"})
	b := s.AddAction(auth0fake.ActionState{Name: "b"})
	s.AddAction(auth0fake.ActionState{Name: "c"})
	s.SetBindings("post-login", "a", "b", "c")

	r := call(t, s, http.MethodPatch, "/api/v2/actions/triggers/post-login/bindings", s.Token(), jsonBody(t, map[string]any{
		"bindings": []map[string]any{
			{"ref": map[string]string{"type": "action_name", "value": "c"}, "display_name": "C first"},
			{"ref": map[string]string{"type": "action_id", "value": b}},
		},
	}), "Content-Type", "application/json")
	var out struct {
		Bindings []struct {
			TriggerID   string `json:"trigger_id"`
			DisplayName string `json:"display_name"`
			Action      struct {
				Name string `json:"name"`
			} `json:"action"`
		} `json:"bindings"`
	}
	r.json(t, &out)
	if r.status != http.StatusOK || len(out.Bindings) != 2 || out.Bindings[0].DisplayName != "C first" || out.Bindings[1].DisplayName != "b" || out.Bindings[1].TriggerID != "post-login" {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	// "a" was left out of the list, so it is no longer bound.
	if got := s.Bindings("post-login"); !slices.Equal(got, []string{"c", "b"}) {
		t.Fatalf("bindings %v, want [c b]", got)
	}
	r = call(t, s, http.MethodGet, "/api/v2/actions/triggers/post-login/bindings?per_page=1&page=1", s.Token(), nil)
	var page struct {
		Bindings []struct {
			Action struct {
				Name string `json:"name"`
			} `json:"action"`
		} `json:"bindings"`
		Total int `json:"total"`
	}
	r.json(t, &page)
	if len(page.Bindings) != 1 || page.Bindings[0].Action.Name != "b" || page.Total != 2 {
		t.Fatalf("second page: %s", r.body)
	}

	t.Run("an action of another trigger or never deployed is refused", func(t *testing.T) {
		s.AddAction(auth0fake.ActionState{Name: "reg", Trigger: "post-user-registration"})
		createAction(t, s, "draft", "post-login", "v3")
		for _, name := range []string{"reg", "draft"} {
			r := call(t, s, http.MethodPatch, "/api/v2/actions/triggers/post-login/bindings", s.Token(), jsonBody(t, map[string]any{
				"bindings": []map[string]any{{"ref": map[string]string{"type": "action_name", "value": name}}},
			}), "Content-Type", "application/json")
			if r.status != http.StatusBadRequest {
				t.Errorf("binding %s: %d %s", name, r.status, r.body)
			}
		}
		if got := s.Bindings("post-login"); !slices.Equal(got, []string{"c", "b"}) {
			t.Fatalf("a refused patch changed the bindings: %v", got)
		}
	})
}

func TestDeletingABoundActionNeedsForce(t *testing.T) {
	s := auth0fake.New(t)
	id := s.AddAction(auth0fake.ActionState{Name: "bound"})
	s.SetBindings("post-login", "bound")
	if r := call(t, s, http.MethodDelete, "/api/v2/actions/actions/"+id, s.Token(), nil); r.status != http.StatusBadRequest {
		t.Fatalf("delete of a bound action: %d %s", r.status, r.body)
	}
	if r := call(t, s, http.MethodDelete, "/api/v2/actions/actions/"+id+"?force=true", s.Token(), nil); r.status != http.StatusNoContent {
		t.Fatalf("forced delete: %d %s", r.status, r.body)
	}
	if _, ok := s.Action("bound"); ok || len(s.Bindings("post-login")) != 0 {
		t.Fatal("the forced delete left the action or its binding")
	}
	if r := call(t, s, http.MethodDelete, "/api/v2/actions/actions/"+id, s.Token(), nil); r.status != http.StatusNotFound {
		t.Fatalf("second delete: %d", r.status)
	}
}

func TestTriggersListCurrentVersions(t *testing.T) {
	s := auth0fake.New(t)
	r := call(t, s, http.MethodGet, "/api/v2/actions/triggers", s.Token(), nil)
	var out struct {
		Triggers []auth0fake.Trigger `json:"triggers"`
	}
	r.json(t, &out)
	current := map[string]string{}
	for _, tr := range out.Triggers {
		if tr.Status == "CURRENT" {
			current[tr.ID] = tr.Version
		}
	}
	if current["post-login"] != "v3" || current["post-user-registration"] != "v2" {
		t.Fatalf("current versions %v", current)
	}
}

func TestEventStreamsNeverReturnTheToken(t *testing.T) {
	s := auth0fake.New(t)
	r := call(t, s, http.MethodPost, "/api/v2/event-streams", s.Token(), jsonBody(t, map[string]any{
		"name": "es", "subscriptions": []map[string]string{{"event_type": "user.created"}},
		"destination": map[string]any{"type": "webhook", "configuration": map[string]any{
			"webhook_endpoint": "https://ingest.example.com/hook", "webhook_authorization": map[string]string{"method": "bearer", "token": "tok-123"},
		}},
	}), "Content-Type", "application/json")
	if r.status != http.StatusCreated || strings.Contains(string(r.body), "tok-123") {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var es struct {
		ID          string `json:"id"`
		Status      string `json:"status"`
		Destination struct {
			Configuration struct {
				Authorization map[string]string `json:"webhook_authorization"`
			} `json:"configuration"`
		} `json:"destination"`
	}
	r.json(t, &es)
	if !strings.HasPrefix(es.ID, "est_") || es.Status != "enabled" || es.Destination.Configuration.Authorization["method"] != "bearer" {
		t.Fatalf("created %s", r.body)
	}
	for _, path := range []string{"/api/v2/event-streams", "/api/v2/event-streams/" + es.ID} {
		if r := call(t, s, http.MethodGet, path, s.Token(), nil); r.status != http.StatusOK || strings.Contains(string(r.body), "tok-123") {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
	}
	if got := s.EventStreams(); len(got) != 1 || got[0].Token != "tok-123" {
		t.Fatalf("stored %+v", got)
	}
	// A stream created through the API takes deliveries.
	if r := call(t, s, http.MethodGet, "/api/v2/event-streams/"+es.ID+"/deliveries", s.Token(), nil); r.status != http.StatusOK {
		t.Fatalf("deliveries of a created stream: %d", r.status)
	}
	r = call(t, s, http.MethodPatch, "/api/v2/event-streams/"+es.ID, s.Token(), jsonBody(t, map[string]any{
		"destination": map[string]any{"type": "webhook", "configuration": map[string]any{
			"webhook_endpoint": "http://plain.example.com", "webhook_authorization": map[string]string{"method": "bearer", "token": "x"},
		}},
	}), "Content-Type", "application/json")
	if r.status != http.StatusBadRequest {
		t.Fatalf("an http endpoint: %d %s", r.status, r.body)
	}
	if r := call(t, s, http.MethodDelete, "/api/v2/event-streams/"+es.ID, s.Token(), nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.status)
	}
	var e apiErr
	r = call(t, s, http.MethodGet, "/api/v2/event-streams/"+es.ID, s.Token(), nil)
	r.json(t, &e)
	if r.status != http.StatusNotFound || e.StatusCode != 404 || e.Error != "Not Found" {
		t.Fatalf("deleted stream: %d %s", r.status, r.body)
	}
}

func TestLogStreamsKeepSinkAndFilters(t *testing.T) {
	s := auth0fake.New(t)
	r := call(t, s, http.MethodPost, "/api/v2/log-streams", s.Token(), jsonBody(t, map[string]any{
		"name": "logs", "type": "http",
		"sink":    map[string]string{"httpEndpoint": "https://ingest.example.com/logs", "httpContentFormat": "JSONLINES", "httpAuthorization": "secret-value"},
		"filters": []map[string]string{{"type": "category", "name": "auth.signup.success"}},
	}), "Content-Type", "application/json")
	var ls struct {
		ID      string            `json:"id"`
		Status  string            `json:"status"`
		Sink    map[string]string `json:"sink"`
		Filters []map[string]string
	}
	r.json(t, &ls)
	if r.status != http.StatusOK || !strings.HasPrefix(ls.ID, "lst_") || ls.Status != "active" ||
		ls.Sink["httpAuthorization"] != "secret-value" || ls.Sink["httpContentType"] != "application/json" || len(ls.Filters) != 1 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r = call(t, s, http.MethodPatch, "/api/v2/log-streams/"+ls.ID, s.Token(), jsonBody(t, map[string]any{
		"status": "paused", "sink": map[string]string{"httpContentFormat": "JSONARRAY"},
	}), "Content-Type", "application/json")
	if r.status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	got := s.LogStreams()[0]
	if got.Status != "paused" || got.Sink["httpContentFormat"] != "JSONARRAY" || got.Sink["httpEndpoint"] != "https://ingest.example.com/logs" || !slices.Equal(got.Filters, []string{"auth.signup.success"}) {
		t.Fatalf("after patch %+v", got)
	}
	for _, bad := range []map[string]any{
		{"filters": []map[string]string{{"type": "category", "name": "auth.everything"}}},
		{"sink": map[string]string{"httpContentFormat": "XML"}},
	} {
		if r := call(t, s, http.MethodPatch, "/api/v2/log-streams/"+ls.ID, s.Token(), jsonBody(t, bad), "Content-Type", "application/json"); r.status != http.StatusBadRequest {
			t.Errorf("patch %v: %d", bad, r.status)
		}
	}
	if r := call(t, s, http.MethodGet, "/api/v2/log-streams", s.Token(), nil); r.status != http.StatusOK || !strings.HasPrefix(string(r.body), "[") {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if r := call(t, s, http.MethodDelete, "/api/v2/log-streams/"+ls.ID, s.Token(), nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.status)
	}
	if r := call(t, s, http.MethodGet, "/api/v2/log-streams/"+ls.ID, s.Token(), nil); r.status != http.StatusNotFound {
		t.Fatalf("deleted: %d", r.status)
	}
}

func TestWriteRequestsCountsEverythingButReads(t *testing.T) {
	s := auth0fake.New(t)
	call(t, s, http.MethodGet, "/api/v2/actions/triggers", s.Token(), nil)
	call(t, s, http.MethodGet, "/api/v2/log-streams", s.Token(), nil)
	if n := s.WriteRequests(); n != 0 {
		t.Fatalf("%d writes after reads", n)
	}
	call(t, s, http.MethodDelete, "/api/v2/log-streams/lst_0", s.Token(), nil) // 404, still a write request
	createAction(t, s, "w", "post-login", "v3")
	if n := s.WriteRequests(); n != 2 {
		t.Fatalf("%d writes, want 2", n)
	}
}

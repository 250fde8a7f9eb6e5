package auth0fake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The Actions endpoints, in the shapes Auth0 documents ("Create an action",
// "Update an action", "Deploy an action", "Get triggers", "Get trigger
// bindings", "Update trigger bindings") and as go-auth0's ActionManager
// calls them; the bodies follow go-auth0's recorded responses
// (test/data/recordings/TestActionManager_*.yaml):
//
//   - POST /api/v2/actions/actions answers 201 with the action, status
//     "pending". A second action of the same name is 409.
//   - PATCH /api/v2/actions/actions/{id} replaces the fields it carries
//     (secrets: the whole list) and answers 200 with the action, status
//     "pending" again and all_changes_deployed false. Moving an action to
//     another trigger is 400 ("can't upgrade to this trigger.").
//   - Builds are asynchronous: an action created or changed is "pending",
//     then "building" while it is read, and "built" (or "failed", see
//     [Server.FailBuilds]) after [Server.SetBuildReads] reads of it, or once
//     [DefaultBuildTime] passed on the fake's clock.
//   - POST /api/v2/actions/actions/{id}/deploy refuses an action that is not
//     built with Auth0's 400 "A draft must be in the 'built' state before it
//     can be deployed." and otherwise answers 200 with the new version,
//     "deployed": false: deploying is asynchronous too. The action shows
//     the version as deployed_version after as many further reads.
//   - DELETE /api/v2/actions/actions/{id} answers 204; an action still bound
//     to a trigger is refused (400) unless force=true, which unbinds it.
//     Auth0 documents that an action must be unbound first; the status and
//     wording of its refusal are the fake's.
//   - GET /api/v2/actions/actions filters on actionName (exact), triggerId
//     and deployed, pages with page and per_page, and answers
//     {"actions","total","page","per_page"}.
//   - GET /api/v2/actions/triggers answers the trigger versions with their
//     status (CURRENT or DEPRECATED) and runtimes.
//   - GET /api/v2/actions/triggers/{triggerId}/bindings answers the bindings
//     in execution order ({"bindings","total","page","per_page"}).
//   - PATCH /api/v2/actions/triggers/{triggerId}/bindings replaces the whole
//     list with the one sent: {"bindings":[{"ref":{"type":"action_id" or
//     "action_name","value"},"display_name"}]}. A binding left out is
//     removed. Each ref must name an action that supports the trigger and
//     has a deployed version (400 otherwise).
//
// Request bodies are decoded strictly: a field Auth0 does not take is 400
// "Payload validation error: 'Additional properties not allowed: …'", as
// Auth0 answers. An unknown action is 404 "The action does not exist."

// Routes of the Actions endpoints, as keys of [Server.Requests].
const (
	RouteTriggers       = "GET /api/v2/actions/triggers"
	RouteListActions    = "GET /api/v2/actions/actions"
	RouteCreateAction   = "POST /api/v2/actions/actions"
	RouteGetAction      = "GET /api/v2/actions/actions/{id}"
	RouteUpdateAction   = "PATCH /api/v2/actions/actions/{id}"
	RouteDeleteAction   = "DELETE /api/v2/actions/actions/{id}"
	RouteDeployAction   = "POST /api/v2/actions/actions/{id}/deploy"
	RouteGetBindings    = "GET /api/v2/actions/triggers/{triggerId}/bindings"
	RouteUpdateBindings = "PATCH /api/v2/actions/triggers/{triggerId}/bindings"
)

// Action build statuses.
const (
	ActionPending  = "pending"
	ActionBuilding = "building"
	ActionBuilt    = "built"
	ActionFailed   = "failed"
)

// Defaults of the asynchronous builds and deploys.
const (
	// DefaultBuildReads is how many reads of an action a build or a deploy
	// takes unless [Server.SetBuildReads] says otherwise.
	DefaultBuildReads = 2
	// DefaultBuildTime is how long, on the fake's clock, a build or deploy
	// takes at most whatever the reads.
	DefaultBuildTime = 30 * time.Second
)

// errNotBuilt is Auth0's answer to deploying an action that is not built.
const errNotBuilt = "A draft must be in the 'built' state before it can be deployed."

// Trigger is one version of an Actions trigger, as GET
// /api/v2/actions/triggers lists it.
type Trigger struct {
	ID             string   `json:"id"`
	Version        string   `json:"version"`
	Status         string   `json:"status"`
	Runtimes       []string `json:"runtimes"`
	DefaultRuntime string   `json:"default_runtime,omitempty"`
}

// Triggers are the trigger versions the fake knows: the tenant-bound
// triggers of go-auth0's recorded GET /api/v2/actions/triggers, with node22
// added to the runtimes as Auth0 offers it today.
func Triggers() []Trigger {
	rt := []string{"node18", "node22"}
	return []Trigger{
		{ID: "post-login", Version: "v1", Status: "DEPRECATED", Runtimes: []string{"node12"}, DefaultRuntime: "node12"},
		{ID: "post-login", Version: "v2", Status: "DEPRECATED", Runtimes: rt, DefaultRuntime: "node22"},
		{ID: "post-login", Version: "v3", Status: "CURRENT", Runtimes: rt, DefaultRuntime: "node22"},
		{ID: "credentials-exchange", Version: "v2", Status: "CURRENT", Runtimes: rt, DefaultRuntime: "node22"},
		{ID: "pre-user-registration", Version: "v2", Status: "CURRENT", Runtimes: rt, DefaultRuntime: "node22"},
		{ID: "post-user-registration", Version: "v1", Status: "DEPRECATED", Runtimes: []string{"node12"}, DefaultRuntime: "node12"},
		{ID: "post-user-registration", Version: "v2", Status: "CURRENT", Runtimes: rt, DefaultRuntime: "node22"},
		{ID: "post-change-password", Version: "v2", Status: "CURRENT", Runtimes: rt, DefaultRuntime: "node22"},
		{ID: "send-phone-message", Version: "v2", Status: "CURRENT", Runtimes: rt, DefaultRuntime: "node22"},
	}
}

// ActionState is what the fake holds of an action. Test helpers read it
// ([Server.Action]) and seed it ([Server.AddAction]); Secrets holds the
// values, which the API never returns.
type ActionState struct {
	ID             string
	Name           string
	Trigger        string
	TriggerVersion string
	Runtime        string
	Code           string
	Secrets        map[string]string
	// Status is the build status of the draft (ActionPending … ActionFailed).
	Status string
	// DeployedVersion is the number of the live version, 0 when none is.
	DeployedVersion int
	// DeployedCode and DeployedSecrets are what the live version runs.
	DeployedCode    string
	DeployedSecrets map[string]string
	// AllChangesDeployed is false while the draft differs from the live
	// version.
	AllChangesDeployed bool
}

type actionSecret struct {
	name, value string
	updated     time.Time
}

type actionVersion struct {
	id      string
	number  int
	code    string
	runtime string
	secrets []actionSecret
	created time.Time
}

type fakeAction struct {
	id, name, trigger, version, runtime, code string
	deps                                      json.RawMessage
	secrets                                   []actionSecret
	status                                    string
	buildLeft                                 int
	changedAt, created, updated, builtAt      time.Time
	versions                                  int
	deployed                                  *actionVersion
	deploying                                 *actionVersion
	deployLeft                                int
	deployAt                                  time.Time
	changedSinceDeploy                        bool
}

type fakeBinding struct {
	id, actionID, displayName string
	created                   time.Time
}

// tenantState is the fake's configuration objects: actions, bindings,
// event streams and log streams. Guarded by Server.mu.
type tenantState struct {
	actions      []*fakeAction
	bindings     map[string][]fakeBinding
	eventStreams []*fakeEventStream
	logStreams   []*fakeLogStream
	buildReads   int
	failBuilds   map[string]bool
	logSeq       int
}

func newTenantState() *tenantState {
	return &tenantState{bindings: map[string][]fakeBinding{}, buildReads: DefaultBuildReads, failBuilds: map[string]bool{}, logSeq: 12774}
}

// registerTenant adds the routes of actions.go and streams.go.
func (s *Server) registerTenant(mux *http.ServeMux) {
	s.route(mux, RouteTriggers, true, s.handleTriggers)
	s.route(mux, RouteListActions, true, s.handleListActions)
	s.route(mux, RouteCreateAction, true, s.handleCreateAction)
	s.route(mux, RouteGetAction, true, s.handleGetAction)
	s.route(mux, RouteUpdateAction, true, s.handleUpdateAction)
	s.route(mux, RouteDeleteAction, true, s.handleDeleteAction)
	s.route(mux, RouteDeployAction, true, s.handleDeployAction)
	s.route(mux, RouteGetBindings, true, s.handleGetBindings)
	s.route(mux, RouteUpdateBindings, true, s.handleUpdateBindings)
	s.route(mux, RouteListEventStreams, true, s.handleListEventStreams)
	s.route(mux, RouteCreateEventStream, true, s.handleCreateEventStream)
	s.route(mux, RouteGetEventStream, true, s.handleGetEventStream)
	s.route(mux, RouteUpdateEventStream, true, s.handleUpdateEventStream)
	s.route(mux, RouteDeleteEventStream, true, s.handleDeleteEventStream)
	s.route(mux, RouteListLogStreams, true, s.handleListLogStreams)
	s.route(mux, RouteCreateLogStream, true, s.handleCreateLogStream)
	s.route(mux, RouteGetLogStream, true, s.handleGetLogStream)
	s.route(mux, RouteUpdateLogStream, true, s.handleUpdateLogStream)
	s.route(mux, RouteDeleteLogStream, true, s.handleDeleteLogStream)
}

// SetBuildReads sets on which read of an action a build, and then a
// deploy, finishes (default [DefaultBuildReads]; 0 and 1 finish on the next
// read).
func (s *Server) SetBuildReads(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenant.buildReads = max(0, n)
}

// FailBuilds makes every later build of the action named name end in
// "failed".
func (s *Server) FailBuilds(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenant.failBuilds[name] = true
}

// WriteRequests counts the requests to the Management API that are not
// reads: every route but GET ones and the token endpoint, rejected requests
// included.
func (s *Server) WriteRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for route, c := range s.requests {
		if strings.HasPrefix(route, "GET ") || route == RouteToken || !strings.Contains(route, " /api/v2/") {
			continue
		}
		n += c
	}
	return n
}

// AddAction stores an action as if it had been created, built and deployed
// (version 1), and returns its id. Trigger defaults to post-login, its
// version to the trigger's current one, Runtime to node22. It fails the
// test for a name in use.
func (s *Server) AddAction(a ActionState) string {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.actionByName(a.Name) != nil {
		s.t.Fatalf("auth0fake: AddAction: an action named %q exists", a.Name)
	}
	if a.Trigger == "" {
		a.Trigger = "post-login"
	}
	if a.TriggerVersion == "" {
		a.TriggerVersion = currentTriggerVersion(a.Trigger)
	}
	if a.Runtime == "" {
		a.Runtime = "node22"
	}
	now := s.now()
	fa := &fakeAction{
		id: newUUID(), name: a.Name, trigger: a.Trigger, version: a.TriggerVersion, runtime: a.Runtime,
		code: a.Code, status: ActionBuilt, created: now, updated: now, changedAt: now, builtAt: now,
	}
	for _, name := range sortedKeys(a.Secrets) {
		fa.secrets = append(fa.secrets, actionSecret{name: name, value: a.Secrets[name], updated: now})
	}
	fa.versions = 1
	fa.deployed = &actionVersion{id: newUUID(), number: 1, code: fa.code, runtime: fa.runtime, secrets: slices.Clone(fa.secrets), created: now}
	s.tenant.actions = append(s.tenant.actions, fa)
	return fa.id
}

// Action returns the action named name.
func (s *Server) Action(name string) (ActionState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.actionByName(name)
	if a == nil {
		return ActionState{}, false
	}
	st := ActionState{
		ID: a.id, Name: a.name, Trigger: a.trigger, TriggerVersion: a.version, Runtime: a.runtime, Code: a.code,
		Secrets: map[string]string{}, Status: a.status, AllChangesDeployed: a.allChangesDeployed(),
	}
	for _, sec := range a.secrets {
		st.Secrets[sec.name] = sec.value
	}
	if a.deployed != nil {
		st.DeployedVersion, st.DeployedCode, st.DeployedSecrets = a.deployed.number, a.deployed.code, map[string]string{}
		for _, sec := range a.deployed.secrets {
			st.DeployedSecrets[sec.name] = sec.value
		}
	}
	return st, true
}

// SetBindings replaces the bindings of trigger with the actions named, in
// order, as PATCH …/bindings would (without its checks). It fails the test
// for an unknown name.
func (s *Server) SetBindings(trigger string, actionNames ...string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []fakeBinding
	for _, name := range actionNames {
		a := s.actionByName(name)
		if a == nil {
			s.t.Fatalf("auth0fake: SetBindings: no action named %q", name)
		}
		list = append(list, fakeBinding{id: newUUID(), actionID: a.id, displayName: name, created: s.now()})
	}
	s.tenant.bindings[trigger] = list
}

// Bindings returns the names of the actions bound to trigger, in execution
// order.
func (s *Server) Bindings(trigger string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.tenant.bindings[trigger] {
		if a := s.actionByID(b.actionID); a != nil {
			out = append(out, a.name)
		}
	}
	return out
}

func (s *Server) actionByName(name string) *fakeAction {
	for _, a := range s.tenant.actions {
		if a.name == name {
			return a
		}
	}
	return nil
}

func (s *Server) actionByID(id string) *fakeAction {
	for _, a := range s.tenant.actions {
		if a.id == id {
			return a
		}
	}
	return nil
}

func currentTriggerVersion(trigger string) string {
	for _, t := range Triggers() {
		if t.ID == trigger && t.Status == "CURRENT" {
			return t.Version
		}
	}
	return "v1"
}

// triggerVersion returns the trigger version, or nil.
func triggerVersion(id, version string) *Trigger {
	for _, t := range Triggers() {
		if t.ID == id && t.Version == version {
			return &t
		}
	}
	return nil
}

func isTrigger(id string) bool {
	return slices.ContainsFunc(Triggers(), func(t Trigger) bool { return t.ID == id })
}

// progress moves an action's build and deploy on by one read. The caller
// holds mu.
func (s *Server) progress(a *fakeAction) {
	now := s.now()
	if a.status == ActionPending || a.status == ActionBuilding {
		a.buildLeft--
		switch {
		case a.buildLeft <= 0 || !now.Before(a.changedAt.Add(DefaultBuildTime)):
			a.status, a.builtAt = ActionBuilt, now
			if s.tenant.failBuilds[a.name] {
				a.status = ActionFailed
			}
		default:
			a.status = ActionBuilding
		}
		return
	}
	if a.deploying != nil {
		a.deployLeft--
		if a.deployLeft <= 0 || !now.Before(a.deployAt.Add(DefaultBuildTime)) {
			a.deployed, a.deploying = a.deploying, nil
		}
	}
}

// changed marks a's draft as changed: a new build starts.
func (s *Server) changed(a *fakeAction) {
	now := s.now()
	a.status, a.buildLeft, a.changedAt, a.updated = ActionPending, s.tenant.buildReads, now, now
	a.changedSinceDeploy = true
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (a *fakeAction) triggersJSON() []map[string]string {
	return []map[string]string{{"id": a.trigger, "version": a.version}}
}

func secretsJSON(secrets []actionSecret) []map[string]string {
	out := make([]map[string]string, 0, len(secrets))
	for _, sec := range secrets {
		out = append(out, map[string]string{"name": sec.name, "updated_at": fmtTime(sec.updated)})
	}
	return out
}

func depsJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("[]")
	}
	return raw
}

func (a *fakeAction) allChangesDeployed() bool {
	return a.deployed != nil && a.deploying == nil && !a.changedSinceDeploy
}

// json is the action as GET /api/v2/actions/actions/{id} answers it: no
// secret values.
func (a *fakeAction) json() map[string]any {
	out := map[string]any{
		"id": a.id, "name": a.name, "supported_triggers": a.triggersJSON(),
		"created_at": fmtTime(a.created), "updated_at": fmtTime(a.updated),
		"code": a.code, "dependencies": depsJSON(a.deps), "runtime": a.runtime, "status": a.status,
		"secrets": secretsJSON(a.secrets), "all_changes_deployed": a.allChangesDeployed(),
	}
	if a.status == ActionBuilt {
		out["built_at"] = fmtTime(a.builtAt)
	}
	if a.deployed != nil {
		out["deployed_version"] = a.versionJSON(a.deployed, true, false)
	}
	return out
}

func (a *fakeAction) versionJSON(v *actionVersion, deployed, withAction bool) map[string]any {
	out := map[string]any{
		"id": v.id, "action_id": a.id, "code": v.code, "dependencies": depsJSON(a.deps), "deployed": deployed,
		"number": v.number, "secrets": secretsJSON(v.secrets), "status": ActionBuilt, "runtime": v.runtime,
		"supported_triggers": a.triggersJSON(), "created_at": fmtTime(v.created), "updated_at": fmtTime(v.created),
		"built_at": fmtTime(v.created),
	}
	if withAction {
		out["action"] = map[string]any{
			"id": a.id, "name": a.name, "supported_triggers": a.triggersJSON(),
			"created_at": fmtTime(a.created), "updated_at": fmtTime(a.updated), "all_changes_deployed": false,
		}
	}
	return out
}

// decodeStrict decodes a JSON body refusing fields v does not have, with
// Auth0's 400 body; it reports whether it succeeded.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) bool {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r.Body); err != nil {
		apiError(w, http.StatusBadRequest, "Payload validation error: 'Invalid JSON'.", "invalid_body")
		return false
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := "Payload validation error: 'Invalid JSON'."
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			msg = fmt.Sprintf("Payload validation error: 'Additional properties not allowed: %s'.", strings.Trim(field, `"`))
		} else if _, isType := err.(*json.UnmarshalTypeError); isType {
			msg = fmt.Sprintf("Payload validation error: '%v'.", err)
		}
		apiError(w, http.StatusBadRequest, msg, "invalid_body")
		return false
	}
	return true
}

type secretIn struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	UpdatedAt string `json:"updated_at,omitempty"`
}

type triggerIn struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// actionIn is the body of POST and PATCH /api/v2/actions/actions.
type actionIn struct {
	Name              *string          `json:"name"`
	SupportedTriggers *[]triggerIn     `json:"supported_triggers"`
	Code              *string          `json:"code"`
	Dependencies      *json.RawMessage `json:"dependencies"`
	Runtime           *string          `json:"runtime"`
	Secrets           *[]secretIn      `json:"secrets"`
	Deploy            *bool            `json:"deploy"`
	Modules           *json.RawMessage `json:"modules"`
}

// checkTrigger validates supported_triggers and runtime; it returns Auth0's
// 400 message, or "".
func checkTrigger(triggers []triggerIn, runtime string) string {
	if len(triggers) != 1 {
		return "Payload validation error: 'Array is too long (or short): an action supports exactly one trigger' on property supported_triggers."
	}
	t := triggerVersion(triggers[0].ID, triggers[0].Version)
	if t == nil {
		return fmt.Sprintf("trigger %s %s does not exist", triggers[0].ID, triggers[0].Version)
	}
	if runtime != "" && !slices.Contains(t.Runtimes, runtime) {
		return "runtime is not supported"
	}
	return ""
}

func (s *Server) handleTriggers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"triggers": Triggers()})
}

func (s *Server) handleCreateAction(w http.ResponseWriter, r *http.Request) {
	var in actionIn
	if !decodeStrict(w, r, &in) {
		return
	}
	if in.Name == nil || *in.Name == "" || in.SupportedTriggers == nil {
		apiError(w, http.StatusBadRequest, "Payload validation error: 'Missing required property: name, supported_triggers'.", "invalid_body")
		return
	}
	runtime := "node22"
	if in.Runtime != nil {
		runtime = *in.Runtime
	}
	if msg := checkTrigger(*in.SupportedTriggers, runtime); msg != "" {
		apiError(w, http.StatusBadRequest, msg, "invalid_body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.actionByName(*in.Name) != nil {
		apiError(w, http.StatusConflict, fmt.Sprintf("An action with the name '%s' already exists.", *in.Name), "")
		return
	}
	now := s.now()
	a := &fakeAction{id: newUUID(), name: *in.Name, trigger: (*in.SupportedTriggers)[0].ID, version: (*in.SupportedTriggers)[0].Version, runtime: runtime, created: now}
	if in.Code != nil {
		a.code = *in.Code
	}
	if in.Dependencies != nil {
		a.deps = *in.Dependencies
	}
	if in.Secrets != nil {
		a.secrets = secretsFrom(*in.Secrets, nil, now)
	}
	s.changed(a)
	a.changedSinceDeploy = false
	s.tenant.actions = append(s.tenant.actions, a)
	writeJSON(w, http.StatusCreated, a.json())
}

// secretsFrom is the secrets list a request sets: the whole list, a value
// left out keeping the one stored under that name.
func secretsFrom(in []secretIn, old []actionSecret, now time.Time) []actionSecret {
	out := make([]actionSecret, 0, len(in))
	for _, sec := range in {
		v := sec.Value
		if v == "" {
			if i := slices.IndexFunc(old, func(o actionSecret) bool { return o.name == sec.Name }); i >= 0 {
				v = old[i].value
			}
		}
		out = append(out, actionSecret{name: sec.Name, value: v, updated: now})
	}
	return out
}

// lookupAction returns the action of the path's id, or answers 404. The
// caller holds mu.
func (s *Server) lookupAction(w http.ResponseWriter, r *http.Request) *fakeAction {
	a := s.actionByID(r.PathValue("id"))
	if a == nil {
		apiError(w, http.StatusNotFound, "The action does not exist.", "")
	}
	return a
}

func (s *Server) handleGetAction(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.lookupAction(w, r)
	if a == nil {
		return
	}
	s.progress(a)
	writeJSON(w, http.StatusOK, a.json())
}

func (s *Server) handleListActions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, ok := intParam(w, q.Get("page"), "page", 0, 0, -1)
	if !ok {
		return
	}
	perPage, ok := intParam(w, q.Get("per_page"), "per_page", 20, 1, 100)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var match []*fakeAction
	for _, a := range s.tenant.actions {
		switch {
		case q.Get("actionName") != "" && a.name != q.Get("actionName"),
			q.Get("triggerId") != "" && a.trigger != q.Get("triggerId"),
			q.Get("deployed") == "true" && a.deployed == nil,
			q.Get("deployed") == "false" && a.deployed != nil:
			continue
		}
		match = append(match, a)
	}
	list := []map[string]any{}
	for i := page * perPage; i < len(match) && i < (page+1)*perPage; i++ {
		s.progress(match[i])
		list = append(list, match[i].json())
	}
	writeJSON(w, http.StatusOK, map[string]any{"actions": list, "total": len(match), "page": page, "per_page": perPage})
}

func (s *Server) handleUpdateAction(w http.ResponseWriter, r *http.Request) {
	var in actionIn
	if !decodeStrict(w, r, &in) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.lookupAction(w, r)
	if a == nil {
		return
	}
	if in.Name != nil && *in.Name != a.name {
		if *in.Name == "" {
			apiError(w, http.StatusBadRequest, "Payload validation error: 'String is too short (0 chars), minimum 1' on property name.", "invalid_body")
			return
		}
		if s.actionByName(*in.Name) != nil {
			apiError(w, http.StatusConflict, fmt.Sprintf("An action with the name '%s' already exists.", *in.Name), "")
			return
		}
	}
	runtime := a.runtime
	if in.Runtime != nil {
		runtime = *in.Runtime
	}
	triggers := []triggerIn{{ID: a.trigger, Version: a.version}}
	if in.SupportedTriggers != nil {
		triggers = *in.SupportedTriggers
	}
	if len(triggers) == 1 && triggers[0].ID != a.trigger {
		apiError(w, http.StatusBadRequest, "can't upgrade to this trigger.", "")
		return
	}
	if msg := checkTrigger(triggers, runtime); msg != "" {
		apiError(w, http.StatusBadRequest, msg, "invalid_body")
		return
	}
	now := s.now()
	if in.Name != nil {
		a.name = *in.Name
	}
	a.version, a.runtime = triggers[0].Version, runtime
	if in.Code != nil {
		a.code = *in.Code
	}
	if in.Dependencies != nil {
		a.deps = *in.Dependencies
	}
	if in.Secrets != nil {
		a.secrets = secretsFrom(*in.Secrets, a.secrets, now)
	}
	s.changed(a)
	writeJSON(w, http.StatusOK, a.json())
}

func (s *Server) handleDeleteAction(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.lookupAction(w, r)
	if a == nil {
		return
	}
	force := r.URL.Query().Get("force") == "true"
	for trigger, list := range s.tenant.bindings {
		kept := slices.DeleteFunc(slices.Clone(list), func(b fakeBinding) bool { return b.actionID == a.id })
		if len(kept) == len(list) {
			continue
		}
		if !force {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("The action is bound to the %s trigger: remove the binding first, or delete with force=true.", trigger), "")
			return
		}
		s.tenant.bindings[trigger] = kept
	}
	s.tenant.actions = slices.DeleteFunc(s.tenant.actions, func(o *fakeAction) bool { return o == a })
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleDeployAction(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.lookupAction(w, r)
	if a == nil {
		return
	}
	if a.status != ActionBuilt {
		apiError(w, http.StatusBadRequest, errNotBuilt, "")
		return
	}
	now := s.now()
	a.versions++
	v := &actionVersion{id: newUUID(), number: a.versions, code: a.code, runtime: a.runtime, secrets: slices.Clone(a.secrets), created: now}
	a.deploying, a.deployLeft, a.deployAt, a.changedSinceDeploy = v, s.tenant.buildReads, now, false
	writeJSON(w, http.StatusOK, a.versionJSON(v, false, true))
}

// bindingJSON is a binding as the bindings endpoints answer it.
func (s *Server) bindingJSON(trigger string, b fakeBinding) map[string]any {
	out := map[string]any{
		"id": b.id, "trigger_id": trigger, "display_name": b.displayName,
		"created_at": fmtTime(b.created), "updated_at": fmtTime(b.created),
	}
	if a := s.actionByID(b.actionID); a != nil {
		act := map[string]any{
			"id": a.id, "name": a.name, "supported_triggers": a.triggersJSON(),
			"created_at": fmtTime(a.created), "updated_at": fmtTime(a.updated), "all_changes_deployed": a.allChangesDeployed(),
		}
		if a.deployed != nil {
			act["deployed_version"] = a.versionJSON(a.deployed, true, false)
		}
		out["action"] = act
	}
	return out
}

func (s *Server) handleGetBindings(w http.ResponseWriter, r *http.Request) {
	trigger := r.PathValue("triggerId")
	if !isTrigger(trigger) {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("Path validation error: 'No enum match for: \"%s\"' on property triggerId.", trigger), "invalid_uri")
		return
	}
	q := r.URL.Query()
	page, ok := intParam(w, q.Get("page"), "page", 0, 0, -1)
	if !ok {
		return
	}
	perPage, ok := intParam(w, q.Get("per_page"), "per_page", 20, 1, 100)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.tenant.bindings[trigger]
	list := []map[string]any{}
	for i := page * perPage; i < len(all) && i < (page+1)*perPage; i++ {
		list = append(list, s.bindingJSON(trigger, all[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"bindings": list, "total": len(all), "page": page, "per_page": perPage})
}

func (s *Server) handleUpdateBindings(w http.ResponseWriter, r *http.Request) {
	trigger := r.PathValue("triggerId")
	if !isTrigger(trigger) {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("Path validation error: 'No enum match for: \"%s\"' on property triggerId.", trigger), "invalid_uri")
		return
	}
	var in struct {
		Bindings *[]struct {
			Ref *struct {
				Type  string `json:"type"`
				Value string `json:"value"`
			} `json:"ref"`
			DisplayName string     `json:"display_name"`
			Secrets     []secretIn `json:"secrets"`
		} `json:"bindings"`
	}
	if !decodeStrict(w, r, &in) {
		return
	}
	if in.Bindings == nil {
		apiError(w, http.StatusBadRequest, "Payload validation error: 'Missing required property: bindings'.", "invalid_body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	list := make([]fakeBinding, 0, len(*in.Bindings))
	for i, b := range *in.Bindings {
		if b.Ref == nil {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("Payload validation error: 'Data does not match any schemas from 'oneOf'' on property bindings[%d].", i), "invalid_body")
			return
		}
		var a *fakeAction
		switch b.Ref.Type {
		case "action_id":
			a = s.actionByID(b.Ref.Value)
		case "action_name":
			a = s.actionByName(b.Ref.Value)
		default:
			apiError(w, http.StatusBadRequest, fmt.Sprintf("Payload validation error: 'No enum match for: \"%s\"' on property bindings[%d].ref.type.", b.Ref.Type, i), "invalid_body")
			return
		}
		switch {
		case a == nil:
			apiError(w, http.StatusNotFound, fmt.Sprintf("bindings[%d]: the action does not exist.", i), "")
			return
		case a.trigger != trigger:
			apiError(w, http.StatusBadRequest, fmt.Sprintf("bindings[%d]: action %s does not support the %s trigger.", i, a.name, trigger), "")
			return
		case a.deployed == nil:
			apiError(w, http.StatusBadRequest, fmt.Sprintf("bindings[%d]: action %s has no deployed version.", i, a.name), "")
			return
		}
		name := b.DisplayName
		if name == "" {
			name = a.name
		}
		list = append(list, fakeBinding{id: newUUID(), actionID: a.id, displayName: name, created: now})
	}
	s.tenant.bindings[trigger] = list
	out := make([]map[string]any, 0, len(list))
	for _, b := range list {
		out = append(out, s.bindingJSON(trigger, b))
	}
	writeJSON(w, http.StatusOK, map[string]any{"bindings": out})
}

// newUUID returns a random version 4 UUID, the form of action, version and
// binding ids.
func newUUID() string {
	const hex = "0123456789abcdef"
	id := []byte(randomID(32))
	for i := range id {
		id[i] = hex[int(id[i])%16]
	}
	id[12], id[16] = '4', hex[8+int(id[16])%4]
	return fmt.Sprintf("%s-%s-%s-%s-%s", id[0:8], id[8:12], id[12:16], id[16:20], id[20:32])
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

package tenant

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/auth0/go-auth0"
	"github.com/auth0/go-auth0/management"

	auth0actions "github.com/signupsync/signupsync/deploy/auth0"
	"github.com/signupsync/signupsync/events"
)

// The Actions' secrets, as deploy/auth0/signupsync-action.js reads them
// (event.secrets.SIGNUPSYNC_URL, SIGNUPSYNC_SECRET, SIGNUPSYNC_BUDGET_MS).
const (
	secretURL    = "SIGNUPSYNC_URL"
	secretSecret = "SIGNUPSYNC_SECRET"
	secretBudget = "SIGNUPSYNC_BUDGET_MS"
)

// Trigger ids of the two Actions.
const (
	triggerPostLogin            = management.ActionTriggerPostLogin
	triggerPostUserRegistration = management.ActionTriggerPostUserRegistration
)

// EventTypes are the Event Streams event types ingest reads: user.created
// is a signup, user.updated and user.deleted are lifecycle events
// (services/ingest handlers.go and lifecycle.go).
func EventTypes() []string {
	return []string{events.EventStreamUserCreated, events.EventStreamUserDeleted, events.EventStreamUserUpdated}
}

// LogCategories are the Log Streams filter categories that carry the log
// types ingest reads (services/ingest logstream.go), mapped by Auth0's
// "Log Stream Filters" page
// (https://auth0.com/docs/customize/log-streams/event-filters):
//
//   - auth.login.success ("Login - Success"): s and scoa, a first login
//     being a social signup. It carries every successful login, most of
//     which ingest counts and ignores: the price of seeing first logins.
//   - auth.signup.success ("Signup - Success"): ss.
//   - user.notification ("User/Behavioral - Notification"): du.
//   - user.success ("User/Behavioral - Success"): sdu, with the other
//     successful profile changes, which ingest ignores.
func LogCategories() []string {
	return []string{"auth.login.success", "auth.signup.success", "user.notification", "user.success"}
}

// LogContentFormat is the Log Streams body format. Ingest reads JSON Lines
// and JSON arrays alike, entry by entry; JSON Lines frames every entry on
// its own line, with no enclosing array to keep open, and is the format
// Auth0's recorded custom-webhook streams use. JSONOBJECT would cost one
// request per entry.
const LogContentFormat = "JSONLINES"

// ErrConflict means a resource with one of the installer's names exists in
// a form the installer cannot bring in line (an Action for another
// trigger, a stream of another type, two streams of one name): remove or
// rename it, or choose another Prefix.
var ErrConflict = errors.New("conflicts with what the installer manages")

// actionSpec is one of the two Actions.
type actionSpec struct {
	name, trigger, source string
}

func (i *Installer) actionSpecs() []actionSpec {
	return []actionSpec{
		{name: i.cfg.Prefix + "-post-login", trigger: triggerPostLogin, source: auth0actions.PostLogin()},
		{name: i.cfg.Prefix + "-post-user-registration", trigger: triggerPostUserRegistration, source: auth0actions.PostUserRegistration()},
	}
}

func (i *Installer) eventStreamName() string { return i.cfg.Prefix + "-events" }
func (i *Installer) logStreamName() string   { return i.cfg.Prefix + "-logs" }

// actionSecrets are the secrets the Actions are installed with.
func (i *Installer) actionSecrets() map[string]string {
	m := map[string]string{
		secretURL:    strings.TrimRight(i.cfg.IngestURL, "/"),
		secretSecret: i.secrets.ActionSecret,
	}
	if i.cfg.ActionBudget > 0 {
		m[secretBudget] = strconv.FormatInt(i.cfg.ActionBudget.Milliseconds(), 10)
	}
	return m
}

// digestMarker starts the line of secret digests appended to an Action's
// code.
const digestMarker = "// signupsync install, digests of this Action's secrets (not the secrets):"

// desiredCode is an Action's source followed by the digests of the secrets
// it is installed with. Auth0 returns an Action's code but never its
// secrets' values, so the digests are how a re-run tells whether the
// installed secrets are the ones it would install, without rewriting them
// (and deploying a new version) every time. The code is a non-secret field
// Auth0 already shows, the digests reveal nothing of a random secret (see
// digest), and any change of a secret needs a new deployed version anyway,
// which a change of code brings.
func desiredCode(spec actionSpec, secrets map[string]string) string {
	names := sortedNames(secrets)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		parts = append(parts, name+"="+digest(spec.name, name, secrets[name]))
	}
	return strings.TrimRight(spec.source, "\n") + "\n\n" + digestMarker + " " + strings.Join(parts, " ") + "\n"
}

// splitCode separates installed code into the source and the digests.
func splitCode(code string) (string, map[string]string) {
	digests := map[string]string{}
	i := strings.LastIndex(code, "\n\n"+digestMarker)
	if i < 0 {
		return strings.TrimRight(code, "\n"), digests
	}
	for _, f := range strings.Fields(code[i+2+len(digestMarker):]) {
		if name, d, ok := strings.Cut(f, "="); ok {
			digests[name] = d
		}
	}
	return code[:i], digests
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// mode says what a diff is for: an install, whose unsupplied secrets are
// generated and so differ, or a status, which reports them unverified.
type mode int

const (
	modeInstall mode = iota
	modeStatus
)

// actionDiff is the comparison of one Action.
type actionDiff struct {
	spec    actionSpec
	actual  *management.Action
	version string // the trigger's current version
	change  Change
	notes   []string // what could not be verified (status)
}

func (i *Installer) diffAction(spec actionSpec, actual *management.Action, version string, m mode) (actionDiff, error) {
	d := actionDiff{spec: spec, actual: actual, version: version, change: Change{Kind: KindAction, Name: spec.name}}
	secrets := i.actionSecrets()
	if actual == nil {
		d.change.Op = OpCreate
		d.change.Details = []string{
			fmt.Sprintf("%s %s, %s", spec.trigger, version, Runtime),
			"secrets " + strings.Join(sortedNames(secrets), ", ") + " <set>",
		}
		return d, nil
	}
	var diffs []string
	triggers := actual.SupportedTriggers
	if len(triggers) != 1 || triggers[0].GetID() != spec.trigger {
		return d, fmt.Errorf("action %s exists but is not for the %s trigger: %w", spec.name, spec.trigger, ErrConflict)
	}
	if v := triggers[0].GetVersion(); v != version {
		diffs = append(diffs, fmt.Sprintf("trigger version %s → %s", v, version))
	}
	if r := actual.GetRuntime(); r != Runtime {
		diffs = append(diffs, fmt.Sprintf("runtime %s → %s", r, Runtime))
	}
	source, digests := splitCode(actual.GetCode())
	if source != strings.TrimRight(spec.source, "\n") {
		diffs = append(diffs, "code changed")
	}
	if len(actual.GetDependencies()) > 0 {
		diffs = append(diffs, "dependencies removed")
	}
	if actual.GetStatus() == management.ActionStatusFailed {
		diffs = append(diffs, "its last build failed")
	}
	installed := map[string]bool{}
	for _, s := range actual.GetSecrets() {
		installed[s.GetName()] = true
	}
	for _, name := range sortedNames(installed) {
		if _, ok := secrets[name]; !ok {
			diffs = append(diffs, "secret "+name+" removed")
		}
	}
	for _, name := range sortedNames(secrets) {
		switch {
		case !installed[name]:
			diffs = append(diffs, "secret "+name+" added <set>")
		case name == secretSecret && i.cfg.ActionSecret == "" && m == modeStatus:
			d.notes = append(d.notes, "secret "+name+" not verified: ActionSecret not supplied")
		case name == secretSecret && i.cfg.ActionSecret == "" && digests[name] != digest(spec.name, name, secrets[name]):
			diffs = append(diffs, "secret "+name+" <changed> (ActionSecret not supplied, and Auth0 never returns the installed one: a new one is generated)")
		case digests[name] == "":
			diffs = append(diffs, "secret "+name+" <changed> (no digest of the installed value)")
		case digests[name] != digest(spec.name, name, secrets[name]):
			diffs = append(diffs, "secret "+name+" <changed>")
		}
	}
	if len(diffs) == 0 && i.cfg.RewriteSecrets && m == modeInstall {
		diffs = append(diffs, "secrets <rewritten> (RewriteSecrets)")
	}
	live := actual.GetDeployedVersion()
	switch {
	case len(diffs) > 0:
		d.change.Op, d.change.Details = OpUpdate, append(diffs, "then deployed")
	case live == nil:
		d.change.Op, d.change.Details = OpDeploy, []string{"never deployed"}
	case live.GetCode() != actual.GetCode():
		d.change.Op, d.change.Details = OpDeploy, []string{"the draft is not live"}
	default:
		d.notes = append([]string{fmt.Sprintf("deployed version %d", live.Number)}, d.notes...)
		d.change.Op, d.change.Details = OpNone, d.notes
	}
	return d, nil
}

// knowsActionSecret reports whether the installed Action's signing secret
// is the one this Installer signs with (supplied, or generated by it and
// installed in an earlier call), by the digest its code carries.
func (i *Installer) knowsActionSecret(spec actionSpec, actual *management.Action) bool {
	_, digests := splitCode(actual.GetCode())
	d := digests[secretSecret]
	return d != "" && d == digest(spec.name, secretSecret, i.secrets.ActionSecret)
}

// bindingsDiff is the comparison of one trigger's bindings: others are the
// tenant's bindings other than ours, in their order; ours goes last.
type bindingsDiff struct {
	trigger string
	others  []*management.ActionBinding
	change  Change
}

// isOurs reports whether b binds the action named name (or of id id).
func isOurs(b *management.ActionBinding, name, id string) bool {
	a := b.GetAction()
	if a == nil {
		return false
	}
	return (id != "" && a.GetID() == id) || a.GetName() == name
}

// diffBindings compares a trigger's bindings with the desired list: the
// tenant's others in their order, then ours once. Ours goes last so that
// it never delays the tenant's own Actions (the post-login Action may hold
// a login for its whole budget) and so that a login another Action denies
// is not reported; Event Streams still report that signup. With remove set
// the desired list is the others alone (uninstall).
func diffBindings(trigger, name, id string, list []*management.ActionBinding, remove bool) bindingsDiff {
	d := bindingsDiff{trigger: trigger, change: Change{Kind: KindBindings, Name: trigger}}
	ours, last := 0, false
	for k, b := range list {
		if isOurs(b, name, id) {
			ours++
			last = k == len(list)-1
			continue
		}
		d.others = append(d.others, b)
	}
	n := len(d.others)
	kept := plural(n, "other")
	switch {
	case remove && ours == 0:
		d.change.Op = OpNone
	case remove:
		d.change.Op, d.change.Details = OpDelete, []string{fmt.Sprintf("remove %s (%s kept in order)", name, kept)}
	case ours == 1 && last:
		d.change.Op, d.change.Details = OpNone, []string{fmt.Sprintf("%s runs last, after %s", name, kept)}
	case ours == 0:
		d.change.Op, d.change.Details = OpUpdate, []string{fmt.Sprintf("add %s (after %s)", name, kept)}
	case ours == 1:
		d.change.Op, d.change.Details = OpUpdate, []string{fmt.Sprintf("move %s to the end (after %s, kept in their order)", name, kept)}
	default:
		d.change.Op, d.change.Details = OpUpdate, []string{fmt.Sprintf("bind %s once instead of %d times, last (after %s)", name, ours, kept)}
	}
	return d
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// setDiff describes the difference of two sets of names as "+a -b".
func setDiff(have, want []string) string {
	var parts []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			parts = append(parts, "+"+w)
		}
	}
	for _, h := range have {
		if !slices.Contains(want, h) {
			parts = append(parts, "-"+h)
		}
	}
	return strings.Join(parts, " ")
}

// eventStreamDiff is the comparison of the event stream.
type eventStreamDiff struct {
	actual *management.EventStream
	change Change
	notes  []string
}

func (i *Installer) diffEventStream(actual *management.EventStream, m mode) (eventStreamDiff, error) {
	name := i.eventStreamName()
	d := eventStreamDiff{actual: actual, change: Change{Kind: KindEventStream, Name: name}}
	want := endpoint(i.cfg.IngestURL, events.PathEventStream)
	if actual == nil {
		d.change.Op = OpCreate
		d.change.Details = []string{"webhook " + want, "bearer token <set>", "subscriptions " + strings.Join(EventTypes(), ", ")}
		return d, nil
	}
	dest := actual.GetDestination()
	if t := dest.GetEventStreamDestinationType(); t != "webhook" {
		return d, fmt.Errorf("event stream %s exists with a %q destination, not a webhook: %w", name, t, ErrConflict)
	}
	conf := dest.GetEventStreamDestinationConfiguration()
	var diffs []string
	if ep, _ := conf["webhook_endpoint"].(string); ep != want {
		diffs = append(diffs, fmt.Sprintf("endpoint %s → %s", ep, want))
	}
	auth, _ := conf["webhook_authorization"].(map[string]any)
	if method, _ := auth["method"].(string); method != "bearer" {
		diffs = append(diffs, fmt.Sprintf("authorization %s → bearer <set>", method))
	}
	var types []string
	for _, s := range actual.GetSubscriptions() {
		types = append(types, s.GetEventStreamSubscriptionType())
	}
	if sd := setDiff(types, EventTypes()); sd != "" {
		diffs = append(diffs, "subscriptions "+sd)
	}
	if s := actual.GetStatus(); s != "enabled" {
		diffs = append(diffs, fmt.Sprintf("status %s → enabled", s))
	}
	// Auth0 never returns the token: a supplied one can only be assumed to
	// be installed, an unsupplied one is generated and so replaces it.
	switch {
	case i.cfg.EventStreamToken == "" && m == modeStatus:
		d.notes = append(d.notes, "bearer token not verified: EventStreamToken not supplied")
	case i.cfg.EventStreamToken == "":
		diffs = append(diffs, "bearer token <changed> (EventStreamToken not supplied, and Auth0 never returns the installed one: a new one is generated)")
	case i.cfg.RewriteSecrets && m == modeInstall && len(diffs) == 0:
		diffs = append(diffs, "bearer token <rewritten> (RewriteSecrets)")
	case len(diffs) == 0:
		d.notes = append(d.notes, "bearer token assumed: Auth0 never returns it")
	default:
		diffs = append(diffs, "bearer token <set>")
	}
	if len(diffs) > 0 {
		d.change.Op, d.change.Details = OpUpdate, diffs
	} else {
		d.change.Op, d.change.Details = OpNone, d.notes
	}
	return d, nil
}

// eventStreamBody is the stream as the installer writes it, token
// included.
func (i *Installer) eventStreamBody(withName bool) *management.EventStream {
	var subs []management.EventStreamSubscription
	for _, t := range EventTypes() {
		subs = append(subs, management.EventStreamSubscription{EventStreamSubscriptionType: auth0.String(t)})
	}
	es := &management.EventStream{
		Subscriptions: &subs,
		Destination: &management.EventStreamDestination{
			EventStreamDestinationType: auth0.String("webhook"),
			EventStreamDestinationConfiguration: map[string]any{
				"webhook_endpoint":      endpoint(i.cfg.IngestURL, events.PathEventStream),
				"webhook_authorization": map[string]any{"method": "bearer", "token": i.secrets.EventStreamToken},
			},
		},
	}
	if withName {
		es.Name = auth0.String(i.eventStreamName())
	} else {
		es.Status = auth0.String("enabled")
	}
	return es
}

// logStreamDiff is the comparison of the log stream; token is the
// Authorization value it is (to be) installed with.
type logStreamDiff struct {
	actual *management.LogStream
	token  string
	change Change
	notes  []string
}

func (i *Installer) diffLogStream(actual *management.LogStream, m mode) (logStreamDiff, error) {
	name := i.logStreamName()
	d := logStreamDiff{actual: actual, token: i.cfg.LogStreamToken, change: Change{Kind: KindLogStream, Name: name}}
	want := endpoint(i.cfg.IngestURL, events.PathLogStream)
	if actual == nil {
		if d.token == "" {
			d.token = i.generatedLogToken
		}
		d.change.Op = OpCreate
		d.change.Details = []string{"custom webhook " + want, LogContentFormat, "authorization <set>", "filters " + strings.Join(LogCategories(), ", ")}
		return d, nil
	}
	sink, ok := actual.Sink.(*management.LogStreamSinkHTTP)
	if actual.GetType() != management.LogStreamTypeHTTP || !ok {
		return d, fmt.Errorf("log stream %s exists with type %q, not a custom webhook (http): %w", name, actual.GetType(), ErrConflict)
	}
	var diffs []string
	if ep := sink.GetEndpoint(); ep != want {
		diffs = append(diffs, fmt.Sprintf("endpoint %s → %s", ep, want))
	}
	if f := sink.GetContentFormat(); f != LogContentFormat {
		diffs = append(diffs, fmt.Sprintf("content format %s → %s", f, LogContentFormat))
	}
	if ct := sink.GetContentType(); ct != "application/json" {
		diffs = append(diffs, fmt.Sprintf("content type %s → application/json", ct))
	}
	// Auth0 returns the Authorization value, so an unsupplied one is kept.
	installed := sink.GetAuthorization()
	switch {
	case d.token == "" && installed != "":
		d.token = installed
	case d.token == "":
		d.token = i.generatedLogToken
	}
	switch {
	case installed != d.token:
		diffs = append(diffs, "authorization <changed>")
	case i.cfg.RewriteSecrets && m == modeInstall:
		diffs = append(diffs, "authorization <rewritten> (RewriteSecrets)")
	}
	var filters []string
	for _, f := range actual.GetFilters() {
		if f["type"] == "category" {
			filters = append(filters, f["name"])
		}
	}
	if fd := setDiff(filters, LogCategories()); fd != "" {
		diffs = append(diffs, "filters "+fd)
	}
	if s := actual.GetStatus(); s != "active" {
		diffs = append(diffs, fmt.Sprintf("status %s → active", s))
	}
	if len(diffs) > 0 {
		d.change.Op, d.change.Details = OpUpdate, diffs
	} else {
		d.change.Op = OpNone
	}
	return d, nil
}

// logStreamBody is the stream as the installer writes it.
func (i *Installer) logStreamBody(token string, create bool) *management.LogStream {
	filters := make([]map[string]string, 0, len(LogCategories()))
	for _, c := range LogCategories() {
		filters = append(filters, map[string]string{"type": "category", "name": c})
	}
	ls := &management.LogStream{
		Filters: &filters,
		Sink: &management.LogStreamSinkHTTP{
			Endpoint:      auth0.String(endpoint(i.cfg.IngestURL, events.PathLogStream)),
			ContentType:   auth0.String("application/json"),
			ContentFormat: auth0.String(LogContentFormat),
			Authorization: auth0.String(token),
		},
	}
	if create {
		ls.Name, ls.Type = auth0.String(i.logStreamName()), auth0.String(management.LogStreamTypeHTTP)
	} else {
		ls.Status = auth0.String("active")
	}
	return ls
}

package tenant

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/auth0/go-auth0"
	"github.com/auth0/go-auth0/management"
)

// ErrBuildFailed means Auth0 could not build an Action's code; the error
// names the Action.
var ErrBuildFailed = errors.New("auth0 could not build the action")

// ErrSecretsNotSupplied is what an install answers when signupsync is
// already installed and the run was not given a secret Auth0 cannot show
// (the Actions' signing secret, the Event Streams token): generating a new
// one would rotate it under a running ingest, which would then refuse
// every delivery with 401 until it is reconfigured. Supply the values
// ingest has, or set Config.RewriteSecrets to rotate on purpose.
var ErrSecretsNotSupplied = errors.New("installed secrets unknown to this run")

// Installer installs, reports and uninstalls signupsync's Auth0
// configuration. Its methods are safe for concurrent use, though two
// installs at once race in the tenant. The secrets it generates (those
// Config did not supply) are generated once, in [New], so a [Installer.Plan]
// shows what an [Installer.Install] of the same Installer does.
type Installer struct {
	cfg Config
	api *api
	// secrets are the supplied or generated Action secret and Event
	// Streams token; the Log Streams token is resolved per run (see
	// diffLogStream), generatedLogToken standing in when none is
	// installed or supplied.
	secrets           Secrets
	generatedLogToken string
	// sentToken says this Installer has written secrets.EventStreamToken to
	// the event stream, so a later run of it knows the installed token.
	sentToken    atomic.Bool
	buildTimeout time.Duration
}

// New checks cfg and builds an installer. It does no I/O: bad credentials
// surface on the first call. ctx only carries values into token requests.
func New(ctx context.Context, cfg Config, deps Deps) (*Installer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("auth0 install config: %w", err)
	}
	a, err := newAPI(ctx, cfg, deps)
	if err != nil {
		return nil, err
	}
	i := &Installer{cfg: cfg, api: a, buildTimeout: cfg.BuildTimeout}
	if i.buildTimeout == 0 {
		i.buildTimeout = DefaultBuildTimeout
	}
	i.secrets.ActionSecret, i.secrets.EventStreamToken = cfg.ActionSecret, cfg.EventStreamToken
	if i.secrets.ActionSecret == "" {
		i.secrets.ActionSecret = newWebhookSecret()
	}
	if i.secrets.EventStreamToken == "" {
		i.secrets.EventStreamToken = newToken()
	}
	i.generatedLogToken = newToken()
	return i, nil
}

// snapshot is what the installer read of the tenant.
type snapshot struct {
	versions    map[string]string                      // trigger id → its CURRENT version
	actions     map[string]*management.Action          // by our names; absent: none
	bindings    map[string][]*management.ActionBinding // by trigger id
	eventStream *management.EventStream
	logStream   *management.LogStream
}

// read reads the parts of the tenant that the configuration selects.
func (i *Installer) read(ctx context.Context) (*snapshot, error) {
	t := &snapshot{versions: map[string]string{}, actions: map[string]*management.Action{}, bindings: map[string][]*management.ActionBinding{}}
	if i.cfg.Actions {
		var list *management.ActionTriggerList
		err := i.api.call(ctx, "list action triggers", true, func(ctx context.Context) (err error) {
			list, err = i.api.m.Action.Triggers(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, tr := range list.Triggers {
			if tr.GetStatus() == "CURRENT" {
				t.versions[tr.GetID()] = tr.GetVersion()
			}
		}
		for _, spec := range i.actionSpecs() {
			if t.versions[spec.trigger] == "" {
				return nil, fmt.Errorf("auth0 lists no current version of the %s trigger", spec.trigger)
			}
			a, err := i.findAction(ctx, spec.name)
			if err != nil {
				return nil, err
			}
			if a != nil {
				t.actions[spec.name] = a
			}
			if t.bindings[spec.trigger], err = i.readBindings(ctx, spec.trigger); err != nil {
				return nil, err
			}
		}
	}
	if i.cfg.EventStream {
		es, err := i.findEventStream(ctx)
		if err != nil {
			return nil, err
		}
		t.eventStream = es
	}
	if i.cfg.LogStream {
		var all []*management.LogStream
		err := i.api.call(ctx, "list log streams", true, func(ctx context.Context) (err error) {
			all, err = i.api.m.LogStream.List(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, ls := range all {
			if ls.GetName() != i.logStreamName() {
				continue
			}
			if t.logStream != nil {
				return nil, fmt.Errorf("more than one log stream is named %s: %w", i.logStreamName(), ErrConflict)
			}
			t.logStream = ls
		}
	}
	return t, nil
}

// findAction returns the action named name, or nil.
func (i *Installer) findAction(ctx context.Context, name string) (*management.Action, error) {
	var list *management.ActionList
	err := i.api.call(ctx, "list actions named "+name, true, func(ctx context.Context) (err error) {
		list, err = i.api.m.Action.List(ctx, management.Parameter("actionName", name))
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, a := range list.Actions {
		if a.GetName() == name {
			return a, nil
		}
	}
	return nil, nil
}

// bindingsPerPage is the page size of the bindings list.
const bindingsPerPage = 50

func (i *Installer) readBindings(ctx context.Context, trigger string) ([]*management.ActionBinding, error) {
	var all []*management.ActionBinding
	for page := 0; ; page++ {
		var list *management.ActionBindingList
		err := i.api.call(ctx, "list bindings of "+trigger, true, func(ctx context.Context) (err error) {
			list, err = i.api.m.Action.Bindings(ctx, trigger, management.Page(page), management.PerPage(bindingsPerPage))
			return err
		})
		if err != nil {
			return nil, err
		}
		all = append(all, list.Bindings...)
		if len(list.Bindings) < bindingsPerPage || (list.Total > 0 && len(all) >= list.Total) {
			return all, nil
		}
	}
}

func (i *Installer) findEventStream(ctx context.Context) (*management.EventStream, error) {
	var found *management.EventStream
	var opts []management.RequestOption
	for pages := 0; pages < 100; pages++ {
		var list *management.EventStreamList
		err := i.api.call(ctx, "list event streams", true, func(ctx context.Context) (err error) {
			list, err = i.api.m.EventStream.List(ctx, opts...)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, es := range list.EventStreams {
			if es.GetName() != i.eventStreamName() {
				continue
			}
			if found != nil {
				return nil, fmt.Errorf("more than one event stream is named %s: %w", i.eventStreamName(), ErrConflict)
			}
			found = es
		}
		if list.Next == "" || len(list.EventStreams) == 0 {
			break
		}
		opts = []management.RequestOption{management.From(list.Next)}
	}
	return found, nil
}

// work is a computed diff: the plan, and what applying it needs.
type work struct {
	plan    Plan
	notes   [][]string // per change, what could not be verified (status)
	actions []actionDiff
	events  *eventStreamDiff
	logs    *logStreamDiff
	secrets Secrets
}

func (w *work) add(c Change, notes []string) {
	w.plan.Changes = append(w.plan.Changes, c)
	w.notes = append(w.notes, notes)
}

// diff compares the tenant with what signupsync needs.
func (i *Installer) diff(t *snapshot, m mode) (*work, error) {
	w := &work{}
	if i.cfg.Actions {
		w.secrets.ActionSecret = i.secrets.ActionSecret
		for _, spec := range i.actionSpecs() {
			d, err := i.diffAction(spec, t.actions[spec.name], t.versions[spec.trigger], m)
			if err != nil {
				return nil, err
			}
			w.actions = append(w.actions, d)
			w.add(d.change, d.notes)
		}
		for _, spec := range i.actionSpecs() {
			b := diffBindings(spec.trigger, spec.name, t.actions[spec.name].GetID(), t.bindings[spec.trigger], false)
			w.add(b.change, nil)
		}
	}
	if i.cfg.EventStream {
		w.secrets.EventStreamToken = i.secrets.EventStreamToken
		d, err := i.diffEventStream(t.eventStream, m)
		if err != nil {
			return nil, err
		}
		w.events = &d
		w.add(d.change, d.notes)
	}
	if i.cfg.LogStream {
		d, err := i.diffLogStream(t.logStream, m)
		if err != nil {
			return nil, err
		}
		w.secrets.LogStreamToken = d.token
		w.logs = &d
		w.add(d.change, d.notes)
	}
	if m == modeInstall && !i.cfg.RewriteSecrets {
		if err := i.checkSecretsSupplied(t); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// checkSecretsSupplied refuses an install that would replace, with a
// generated value, a secret that is installed and that Auth0 cannot show:
// see [ErrSecretsNotSupplied].
func (i *Installer) checkSecretsSupplied(t *snapshot) error {
	var missing []string
	if i.cfg.Actions && i.cfg.ActionSecret == "" {
		for _, spec := range i.actionSpecs() {
			// An Action this Installer installed carries the digest of its
			// generated secret: that one is known.
			if a := t.actions[spec.name]; a != nil && !i.knowsActionSecret(spec, a) {
				missing = append(missing, "ActionSecret (action "+spec.name+" is installed)")
				break
			}
		}
	}
	if i.cfg.EventStream && i.cfg.EventStreamToken == "" && t.eventStream != nil && !i.sentToken.Load() {
		missing = append(missing, "EventStreamToken (event stream "+i.eventStreamName()+" is installed)")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s; supply the values ingest is configured with, or set RewriteSecrets to rotate them", ErrSecretsNotSupplied, strings.Join(missing, ", "))
}

// Plan returns what [Installer.Install] would change, reading the tenant
// and writing nothing: the dry run.
func (i *Installer) Plan(ctx context.Context) (Plan, error) {
	t, err := i.read(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("auth0 install plan: %w", err)
	}
	w, err := i.diff(t, modeInstall)
	if err != nil {
		return Plan{}, fmt.Errorf("auth0 install plan: %w", err)
	}
	return w.plan, nil
}

// Status compares the tenant with what signupsync needs, writing nothing.
// Secrets Config does not supply are reported as not verified, never as
// different; an Event Streams token is never verifiable (Auth0 does not
// return it).
func (i *Installer) Status(ctx context.Context) (Status, error) {
	t, err := i.read(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("auth0 status: %w", err)
	}
	w, err := i.diff(t, modeStatus)
	if err != nil {
		return Status{}, fmt.Errorf("auth0 status: %w", err)
	}
	var s Status
	for k, c := range w.plan.Changes {
		notes := w.notes[k]
		if c.Kind == KindBindings && c.Op == OpNone {
			notes = c.Details
		}
		s.Items = append(s.Items, statusOfChange(c, notes))
	}
	return s, nil
}

// Result is what [Installer.Install] did and the secrets ingest must be
// configured with.
type Result struct {
	// Plan is what the install changed (when it failed, what it set out to
	// change).
	Plan Plan
	// Secrets are the credentials now installed for the parts selected:
	// hand them to ingest ([Secrets.WriteEnvFile]). They are never logged.
	Secrets Secrets
}

// Install brings the tenant in line: it creates or updates the two
// Actions, waits for each to build, deploys it and waits for the deploy,
// binds each last in its trigger (the tenant's other bindings kept, in
// their order), then creates or updates the event stream and the log
// stream. What already matches is not written, so a second run makes no
// write request. Progress goes to progress, one line per step, without
// secrets.
//
// The Result holds the secrets ingest must accept, even when Install fails
// part way (some may be installed by then). Configure ingest with them
// before Auth0 sends with them, or supply them in Config from ingest's
// environment: until ingest accepts them it answers 401, and only Event
// Streams retries (briefly) and `signupsync reconcile` recover what was
// refused. A failed build is [ErrBuildFailed] naming the Action; a resource
// the installer cannot take over is [ErrConflict].
func (i *Installer) Install(ctx context.Context, progress io.Writer) (Result, error) {
	if progress == nil {
		progress = io.Discard
	}
	t, err := i.read(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("auth0 install: %w", err)
	}
	w, err := i.diff(t, modeInstall)
	if err != nil {
		return Result{}, fmt.Errorf("auth0 install: %w", err)
	}
	res := Result{Plan: w.plan, Secrets: w.secrets}
	if err := i.apply(ctx, w, progress); err != nil {
		return res, fmt.Errorf("auth0 install: %w", err)
	}
	return res, nil
}

func (i *Installer) apply(ctx context.Context, w *work, out io.Writer) error {
	ids := map[string]string{}
	type deploy struct {
		spec   actionSpec
		id     string
		number int
	}
	var deploys []deploy
	for _, d := range w.actions {
		id := d.actual.GetID()
		switch d.change.Op {
		case OpCreate, OpUpdate:
			body := i.actionBody(d)
			var err error
			if d.change.Op == OpCreate {
				err = i.api.call(ctx, "create action "+d.spec.name, false, func(ctx context.Context) error {
					return i.api.m.Action.Create(ctx, body)
				})
			} else {
				err = i.api.call(ctx, "update action "+d.spec.name, true, func(ctx context.Context) error {
					return i.api.m.Action.Update(ctx, id, body)
				})
			}
			if err != nil {
				return err
			}
			id = body.GetID()
			say(out, "%sd action %s", d.change.Op, d.spec.name)
			deploys = append(deploys, deploy{spec: d.spec, id: id})
		case OpDeploy:
			deploys = append(deploys, deploy{spec: d.spec, id: id})
		}
		ids[d.spec.name] = id
	}
	for k, dep := range deploys {
		if err := i.waitBuilt(ctx, dep.spec.name, dep.id); err != nil {
			return err
		}
		var v *management.ActionVersion
		err := i.api.call(ctx, "deploy action "+dep.spec.name, false, func(ctx context.Context) (err error) {
			v, err = i.api.m.Action.Deploy(ctx, dep.id)
			return err
		})
		if err != nil {
			return err
		}
		deploys[k].number = v.Number
		say(out, "built action %s, deploying version %d", dep.spec.name, v.Number)
	}
	for _, dep := range deploys {
		if err := i.waitDeployed(ctx, dep.spec.name, dep.id, dep.number); err != nil {
			return err
		}
		say(out, "deployed action %s version %d", dep.spec.name, dep.number)
	}
	for _, spec := range i.actionSpecs() {
		if !i.cfg.Actions {
			break
		}
		if err := i.bind(ctx, spec, ids[spec.name], false, out); err != nil {
			return err
		}
	}
	if e := w.events; e != nil && e.change.Op != OpNone {
		body := i.eventStreamBody(e.change.Op == OpCreate)
		var err error
		if e.change.Op == OpCreate {
			err = i.api.call(ctx, "create event stream "+i.eventStreamName(), false, func(ctx context.Context) error {
				return i.api.m.EventStream.Create(ctx, body)
			})
		} else {
			err = i.api.call(ctx, "update event stream "+i.eventStreamName(), true, func(ctx context.Context) error {
				return i.api.m.EventStream.Update(ctx, e.actual.GetID(), body)
			})
		}
		if err != nil {
			return err
		}
		i.sentToken.Store(true)
		say(out, "%sd event stream %s", e.change.Op, i.eventStreamName())
	}
	if l := w.logs; l != nil && l.change.Op != OpNone {
		body := i.logStreamBody(l.token, l.change.Op == OpCreate)
		var err error
		if l.change.Op == OpCreate {
			err = i.api.call(ctx, "create log stream "+i.logStreamName(), false, func(ctx context.Context) error {
				return i.api.m.LogStream.Create(ctx, body)
			})
		} else {
			err = i.api.call(ctx, "update log stream "+i.logStreamName(), true, func(ctx context.Context) error {
				return i.api.m.LogStream.Update(ctx, l.actual.GetID(), body)
			})
		}
		if err != nil {
			return err
		}
		say(out, "%sd log stream %s", l.change.Op, i.logStreamName())
	}
	return nil
}

// actionBody is an Action as the installer writes it, secrets included.
func (i *Installer) actionBody(d actionDiff) *management.Action {
	secrets := i.actionSecrets()
	list := make([]management.ActionSecret, 0, len(secrets))
	for _, name := range sortedNames(secrets) {
		list = append(list, management.ActionSecret{Name: auth0.String(name), Value: auth0.String(secrets[name])})
	}
	return &management.Action{
		Name:              auth0.String(d.spec.name),
		SupportedTriggers: []management.ActionTrigger{{ID: auth0.String(d.spec.trigger), Version: auth0.String(d.version)}},
		Code:              auth0.String(desiredCode(d.spec, secrets)),
		Dependencies:      &[]management.ActionDependency{},
		Runtime:           auth0.String(Runtime),
		Secrets:           &list,
	}
}

// Polling of builds and deploys: the first wait, doubled up to the last.
const (
	firstPoll = 250 * time.Millisecond
	maxPoll   = 5 * time.Second
)

// poll reads the action until done says it is ready, for at most the build
// timeout; what names the wait in errors.
func (i *Installer) poll(ctx context.Context, name, id, what string, done func(*management.Action) (bool, error)) error {
	wctx, cancel := context.WithTimeout(ctx, i.buildTimeout)
	defer cancel()
	status := ""
	for delay := firstPoll; ; delay = min(maxPoll, 2*delay) {
		var a *management.Action
		err := i.api.call(wctx, "read action "+name, true, func(ctx context.Context) (err error) {
			a, err = i.api.m.Action.Read(ctx, id)
			return err
		})
		if err == nil {
			status = a.GetStatus()
			var ok bool
			if ok, err = done(a); ok || err != nil {
				return err
			}
			err = i.api.sleep(wctx, delay)
		}
		if err != nil {
			if ctx.Err() == nil && wctx.Err() != nil {
				return fmt.Errorf("action %s: not %s within %v (status %q): %w", name, what, i.buildTimeout, status, wctx.Err())
			}
			return err
		}
	}
}

// waitBuilt waits until Auth0 built the action's draft: Auth0 refuses to
// deploy before ("A draft must be in the 'built' state before it can be
// deployed.").
func (i *Installer) waitBuilt(ctx context.Context, name, id string) error {
	return i.poll(ctx, name, id, "built", func(a *management.Action) (bool, error) {
		switch a.GetStatus() {
		case management.ActionStatusBuilt:
			return true, nil
		case management.ActionStatusFailed:
			return false, fmt.Errorf("action %s: %w", name, ErrBuildFailed)
		}
		return false, nil
	})
}

// waitDeployed waits until the action's live version is number: deploying
// is asynchronous too, and an action binds only once a version is live.
func (i *Installer) waitDeployed(ctx context.Context, name, id string, number int) error {
	return i.poll(ctx, name, id, "deployed", func(a *management.Action) (bool, error) {
		v := a.GetDeployedVersion()
		return v != nil && v.Number >= number, nil
	})
}

// bind brings one trigger's bindings in line, reading them afresh so that
// a change the operator made since the plan is kept: the others in their
// order, then ours (remove: without ours). It writes only when they
// differ.
func (i *Installer) bind(ctx context.Context, spec actionSpec, id string, remove bool, out io.Writer) error {
	list, err := i.readBindings(ctx, spec.trigger)
	if err != nil {
		return err
	}
	d := diffBindings(spec.trigger, spec.name, id, list, remove)
	if d.change.Op == OpNone {
		return nil
	}
	refs := make([]*management.ActionBinding, 0, len(d.others)+1)
	for _, b := range d.others {
		refs = append(refs, &management.ActionBinding{
			Ref:         &management.ActionBindingReference{Type: auth0.String(management.ActionBindingReferenceByID), Value: auth0.String(b.GetAction().GetID())},
			DisplayName: auth0.String(b.GetDisplayName()),
		})
	}
	if !remove {
		refs = append(refs, &management.ActionBinding{
			Ref:         &management.ActionBindingReference{Type: auth0.String(management.ActionBindingReferenceByID), Value: auth0.String(id)},
			DisplayName: auth0.String(spec.name),
		})
	}
	err = i.api.call(ctx, "update bindings of "+spec.trigger, true, func(ctx context.Context) error {
		return i.api.m.Action.UpdateBindings(ctx, spec.trigger, refs)
	})
	if err != nil {
		return err
	}
	say(out, "bindings %s: %s", spec.trigger, d.change.Details[0])
	return nil
}

// Uninstall removes exactly what Install creates, for the parts Config
// selects: it unbinds the Actions (the tenant's other bindings kept, in
// their order), deletes them, and deletes the two streams, found by their
// names. Nothing else is touched. With dryRun it only returns the plan.
func (i *Installer) Uninstall(ctx context.Context, dryRun bool, progress io.Writer) (Plan, error) {
	if progress == nil {
		progress = io.Discard
	}
	t, err := i.read(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("auth0 uninstall: %w", err)
	}
	var p Plan
	if i.cfg.Actions {
		for _, spec := range i.actionSpecs() {
			p.Changes = append(p.Changes, diffBindings(spec.trigger, spec.name, t.actions[spec.name].GetID(), t.bindings[spec.trigger], true).change)
		}
		for _, spec := range i.actionSpecs() {
			p.Changes = append(p.Changes, deletion(KindAction, spec.name, t.actions[spec.name] != nil))
		}
	}
	if i.cfg.EventStream {
		p.Changes = append(p.Changes, deletion(KindEventStream, i.eventStreamName(), t.eventStream != nil))
	}
	if i.cfg.LogStream {
		p.Changes = append(p.Changes, deletion(KindLogStream, i.logStreamName(), t.logStream != nil))
	}
	if dryRun {
		return p, nil
	}
	if err := i.remove(ctx, t, progress); err != nil {
		return p, fmt.Errorf("auth0 uninstall: %w", err)
	}
	return p, nil
}

func deletion(kind, name string, exists bool) Change {
	if !exists {
		return Change{Op: OpNone, Kind: kind, Name: name, Details: []string{"not installed"}}
	}
	return Change{Op: OpDelete, Kind: kind, Name: name}
}

func (i *Installer) remove(ctx context.Context, t *snapshot, out io.Writer) error {
	if i.cfg.Actions {
		for _, spec := range i.actionSpecs() {
			if err := i.bind(ctx, spec, t.actions[spec.name].GetID(), true, out); err != nil {
				return err
			}
		}
		for _, spec := range i.actionSpecs() {
			a := t.actions[spec.name]
			if a == nil {
				continue
			}
			if err := i.delete(ctx, "action "+spec.name, func(ctx context.Context) error { return i.api.m.Action.Delete(ctx, a.GetID()) }, out); err != nil {
				return err
			}
		}
	}
	if es := t.eventStream; es != nil {
		if err := i.delete(ctx, "event stream "+es.GetName(), func(ctx context.Context) error { return i.api.m.EventStream.Delete(ctx, es.GetID()) }, out); err != nil {
			return err
		}
	}
	if ls := t.logStream; ls != nil {
		if err := i.delete(ctx, "log stream "+ls.GetName(), func(ctx context.Context) error { return i.api.m.LogStream.Delete(ctx, ls.GetID()) }, out); err != nil {
			return err
		}
	}
	return nil
}

// delete deletes one resource; one already gone is fine.
func (i *Installer) delete(ctx context.Context, what string, fn func(context.Context) error, out io.Writer) error {
	err := i.api.call(ctx, "delete "+what, true, fn)
	switch {
	case errors.Is(err, ErrNotFound):
		say(out, "%s was already gone", what)
	case err != nil:
		return err
	default:
		say(out, "deleted %s", what)
	}
	return nil
}

func say(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, format+"\n", args...)
}

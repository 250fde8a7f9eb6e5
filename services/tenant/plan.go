package tenant

import (
	"fmt"
	"io"
	"strings"
)

// Kinds of what the installer manages, as [Change.Kind] and
// [StatusItem.Kind] name them.
const (
	KindAction      = "action"
	KindBindings    = "bindings"
	KindEventStream = "event stream"
	KindLogStream   = "log stream"
)

// Op is what a [Change] does.
type Op string

// Ops.
const (
	OpCreate Op = "create"
	// OpUpdate rewrites a resource (an Action is then deployed too); for
	// bindings it rewrites the trigger's list.
	OpUpdate Op = "update"
	// OpDeploy deploys an Action whose draft is right but not live.
	OpDeploy Op = "deploy"
	// OpDelete deletes a resource; for bindings it removes ours from the
	// trigger's list.
	OpDelete Op = "delete"
	// OpNone changes nothing.
	OpNone Op = "unchanged"
)

// Change is one line of a [Plan]. Details say what differs; they never hold
// a secret's value (a secret shows as <set>, <changed> or <rewritten>).
type Change struct {
	Op      Op
	Kind    string
	Name    string // the resource's name; for bindings, the trigger's id
	Details []string
}

// Writes reports whether the change writes to the tenant.
func (c Change) Writes() bool { return c.Op != OpNone }

// String is the change as [Plan.Render] writes it:
//
//   - create action signupsync-post-login (post-login v3, node22; …)
//     ~ update action signupsync-post-login: code changed
//     ~ deploy action signupsync-post-login: the draft is not live
//     ~ bindings post-login: add signupsync-post-login (after 2 others)
//   - bindings post-login: remove signupsync-post-login (2 others kept in order)
//   - delete event stream signupsync-events
//     = log stream signupsync-logs unchanged
func (c Change) String() string {
	d := strings.Join(c.Details, "; ")
	if c.Kind == KindBindings {
		switch c.Op {
		case OpNone:
			return "= bindings " + c.Name + " unchanged" + paren(d)
		case OpDelete:
			return "- bindings " + c.Name + ": " + d
		}
		return "~ bindings " + c.Name + ": " + d
	}
	switch c.Op {
	case OpCreate:
		return "+ create " + c.Kind + " " + c.Name + paren(d)
	case OpUpdate, OpDeploy:
		return "~ " + string(c.Op) + " " + c.Kind + " " + c.Name + ": " + d
	case OpDelete:
		return "- delete " + c.Kind + " " + c.Name + paren(d)
	}
	return "= " + c.Kind + " " + c.Name + " unchanged" + paren(d)
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// Plan is what an install or uninstall does, or would do: a diff of the
// tenant against what signupsync needs, one [Change] per resource.
type Plan struct {
	Changes []Change
}

// Writes counts the changes that write to the tenant.
func (p Plan) Writes() int {
	n := 0
	for _, c := range p.Changes {
		if c.Writes() {
			n++
		}
	}
	return n
}

// Render writes one line per change.
func (p Plan) Render(w io.Writer) error {
	var b strings.Builder
	for _, c := range p.Changes {
		b.WriteString(c.String() + "\n")
	}
	if len(p.Changes) == 0 {
		b.WriteString("nothing to do\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("render plan: %w", err)
	}
	return nil
}

// State is how an installed resource compares with what signupsync needs.
type State string

// States.
const (
	StateInstalled State = "installed"
	StateDiffers   State = "differs"
	StateMissing   State = "missing"
)

// StatusItem is the state of one resource. Details say what differs or,
// for an installed resource, what could not be verified.
type StatusItem struct {
	Kind    string
	Name    string
	State   State
	Details []string
}

// Status is what [Installer.Status] found.
type Status struct {
	Items []StatusItem
}

// Matches reports whether every resource is installed as signupsync needs
// it (as far as Auth0 lets the installer see: see the Details).
func (s Status) Matches() bool {
	for _, it := range s.Items {
		if it.State != StateInstalled {
			return false
		}
	}
	return true
}

// Render writes one line per resource, then a verdict:
//
//	installed  action signupsync-post-login (deployed version 2)
//	differs    log stream signupsync-logs: status paused → active
//	missing    event stream signupsync-events
func (s Status) Render(w io.Writer) error {
	var b strings.Builder
	for _, it := range s.Items {
		line := fmt.Sprintf("%-10s %s %s", it.State, it.Kind, it.Name)
		d := strings.Join(it.Details, "; ")
		switch {
		case d == "":
		case it.State == StateInstalled:
			line += " (" + d + ")"
		default:
			line += ": " + d
		}
		b.WriteString(line + "\n")
	}
	if s.Matches() {
		b.WriteString("everything installed matches\n")
	} else {
		b.WriteString("the tenant differs: signupsync auth0 install brings it in line\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("render status: %w", err)
	}
	return nil
}

// statusOfChange turns a change computed in status mode into a status
// item; notes are what could not be verified.
func statusOfChange(c Change, notes []string) StatusItem {
	it := StatusItem{Kind: c.Kind, Name: c.Name}
	switch c.Op {
	case OpCreate:
		it.State = StateMissing
	case OpNone:
		it.State, it.Details = StateInstalled, notes
	default:
		it.State, it.Details = StateDiffers, c.Details
	}
	return it
}

// Package schemas embeds the JSON Schemas (draft 2020-12) of every body
// signupsync accepts and of the normalised signup event it publishes, and
// validates decoded JSON against them.
//
// The schemas are the contract documents; the Go types in package events
// mirror them. Compile the set once at start-up with [Compile] and share the
// returned [*Set]: it is safe for concurrent use.
package schemas

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed *.json
var files embed.FS

// The schema names [Set.Validate] accepts.
const (
	Auth0Action      = "auth0-action.json"
	Auth0EventStream = "auth0-event-stream.json"
	Auth0LogEvent    = "auth0-log-event.json"
	Auth0User        = "auth0-user.json"
	SignupEventV1    = "signup-event.v1.json"
	// LifecycleEventV1 is the user lifecycle event (deletion, profile
	// change) published on users.v1.<kind>.<source>.
	LifecycleEventV1 = "user-lifecycle-event.v1.json"
	// AccountMergeV1 is the anonymous account merge request
	// (accounts.v1.merge.<key>) and its acknowledgement
	// (accounts.v1.merged.<key>), stream ACCOUNTS.
	AccountMergeV1 = "account-merge.v1.json"
)

const baseURL = "https://schemas.signupsync.dev/"

// FS returns the embedded schema files, for tools that publish them.
func FS() fs.FS { return files }

// Set is a compiled set of the embedded schemas. It is safe for concurrent use.
type Set struct {
	byName  map[string]*jsonschema.Schema
	printer *message.Printer
}

// Compile parses and compiles every embedded schema. It fails only when an
// embedded schema is itself invalid, which the tests rule out.
func Compile() (*Set, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	names, err := fs.Glob(files, "*.json")
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	for _, name := range names {
		f, err := files.Open(name)
		if err != nil {
			return nil, fmt.Errorf("open schema %s: %w", name, err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", name, err)
		}
		if err := c.AddResource(baseURL+name, doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", name, err)
		}
	}
	s := &Set{byName: make(map[string]*jsonschema.Schema, len(names)), printer: message.NewPrinter(language.English)}
	for _, name := range names {
		sch, err := c.Compile(baseURL + name)
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", name, err)
		}
		s.byName[name] = sch
	}
	return s, nil
}

// Names lists the compiled schema names in sorted order.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.byName))
	for n := range s.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// FieldError reports the first instance location that failed validation.
// Field is a JSON pointer into the validated document ("" is the root).
type FieldError struct {
	Schema string
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	field := e.Field
	if field == "" {
		field = "/"
	}
	return fmt.Sprintf("%s: %s", field, e.Reason)
}

// ErrUnknownSchema is returned by [Set.Validate] for a name it does not hold.
var ErrUnknownSchema = errors.New("unknown schema")

// Validate checks doc, a value decoded from JSON (maps, slices, strings,
// float64 or json.Number, bools, nil), against the named schema. A failure is
// a [*FieldError] naming the deepest failing field.
func (s *Set) Validate(name string, doc any) error {
	sch, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownSchema, name)
	}
	err := sch.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validate against %s: %w", name, err)
	}
	leaf := deepest(ve)
	return &FieldError{
		Schema: name,
		Field:  pointer(leaf.InstanceLocation),
		Reason: leaf.ErrorKind.LocalizedString(s.printer),
	}
}

// deepest follows the first cause with the longest instance location, which
// names the most specific failing field.
func deepest(e *jsonschema.ValidationError) *jsonschema.ValidationError {
	for len(e.Causes) > 0 {
		best := e.Causes[0]
		for _, c := range e.Causes[1:] {
			if len(c.InstanceLocation) > len(best.InstanceLocation) {
				best = c
			}
		}
		e = best
	}
	return e
}

func pointer(loc []string) string {
	if len(loc) == 0 {
		return ""
	}
	var b strings.Builder
	for _, p := range loc {
		b.WriteByte('/')
		p = strings.ReplaceAll(p, "~", "~0")
		b.WriteString(strings.ReplaceAll(p, "/", "~1"))
	}
	return b.String()
}

package ingest

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds JSON nesting; Auth0 bodies nest four or five levels (a log
// entry's details, app_metadata), so 32 leaves room and stops stack abuse.
const maxDepth = 32

// BadRequestError is a malformed or schema-invalid body. Field is a JSON
// pointer to the failing value ("" is the whole body); it is safe to show to
// the sender.
type BadRequestError struct {
	Field  string
	Reason string
}

func (e *BadRequestError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func badRequest(field, format string, args ...any) error {
	return &BadRequestError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// parseJSON decodes exactly one JSON value from b into maps, slices,
// json.Number, strings, bools and nil. Unlike encoding/json it rejects
// invalid UTF-8 (instead of replacing it), duplicate object keys (which two
// parsers could read differently), NUL characters and nesting deeper than
// maxDepth.
func parseJSON(b []byte) (any, error) {
	if !utf8.Valid(b) {
		return nil, badRequest("", "body is not valid UTF-8")
	}
	p := &jsonParser{b: b}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(b) {
		return nil, badRequest("", "unexpected data after the JSON value")
	}
	return v, nil
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// Accessors over validated JSON objects. The schema has already checked the
// types, so a wrong type here reads as absent.

func obj(m map[string]any, key string) map[string]any {
	v, _ := m[key].(map[string]any)
	return v
}

func str(m map[string]any, key string) string {
	switch v := m[key].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

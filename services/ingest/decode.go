package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
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
// parsers could read differently) and nesting deeper than maxDepth.
func parseJSON(b []byte) (any, error) {
	if !utf8.Valid(b) {
		return nil, badRequest("", "body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := parseValue(dec, "", 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badRequest("", "unexpected data after the JSON value")
	}
	return v, nil
}

func parseValue(dec *json.Decoder, path string, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(path, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			return nil, badRequest(path, "nested deeper than %d levels", maxDepth)
		}
		switch t {
		case '{':
			obj := make(map[string]any)
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, syntaxError(path, err)
				}
				key, ok := kt.(string)
				if !ok {
					return nil, badRequest(path, "object key is not a string")
				}
				if strings.IndexByte(key, 0) >= 0 {
					return nil, badRequest(path, "NUL character in a key")
				}
				child := path + "/" + escapePointer(key)
				if _, dup := obj[key]; dup {
					return nil, badRequest(child, "duplicate key")
				}
				v, err := parseValue(dec, child, depth+1)
				if err != nil {
					return nil, err
				}
				obj[key] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, syntaxError(path, err)
			}
			return obj, nil
		case '[':
			arr := []any{}
			for i := 0; dec.More(); i++ {
				v, err := parseValue(dec, path+"/"+strconv.Itoa(i), depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, syntaxError(path, err)
			}
			return arr, nil
		default:
			return nil, badRequest(path, "unexpected %q", string(t))
		}
	case string:
		if strings.IndexByte(t, 0) >= 0 {
			return nil, badRequest(path, "NUL character in a string")
		}
		return t, nil
	default:
		return t, nil
	}
}

func syntaxError(path string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest(path, "truncated JSON")
	}
	return badRequest(path, "malformed JSON: %s", err.Error())
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// splitJSONLines splits a JSON Lines body into its non-empty lines.
func splitJSONLines(b []byte) [][]byte {
	var out [][]byte
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 {
			out = append(out, line)
		}
	}
	return out
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

func boolean(m map[string]any, key string) bool {
	v, _ := m[key].(bool)
	return v
}

func rawJSON(m map[string]any, key string) json.RawMessage {
	v, ok := m[key].(map[string]any)
	if !ok || len(v) == 0 {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

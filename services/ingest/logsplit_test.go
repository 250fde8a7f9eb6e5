package ingest

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// splitAll runs the splitter over body and returns copies of its entries.
func splitAll(body []byte, maxEntry, maxEntries int) ([]string, error) {
	sp := newEntrySplitter(bytes.NewReader(body), maxEntry, maxEntries)
	var out []string
	for {
		e, err := sp.next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(e))
	}
}

func TestEntrySplitterFraming(t *testing.T) {
	a, b := `{"data":{"type":"s"}}`, `{"data":{"type":"ss","user_id":"github|1","note":"} ] \" {["}}`
	tests := []struct {
		name  string
		body  string
		want  []string
		field string // of the 400, when the body is refused
		large bool   // refused with 413
	}{
		{"array", "[" + a + "," + b + "]", []string{a, b}, "", false},
		{"array with whitespace", " \n[ " + a + " ,\r\n\t" + b + " ]\n ", []string{a, b}, "", false},
		{"empty array", "[ ]", nil, "", false},
		{"object", a, []string{a}, "", false},
		{"pretty-printed object", "{\n  \"data\": {\n    \"type\": \"s\"\n  }\n}\n", []string{"{\n  \"data\": {\n    \"type\": \"s\"\n  }\n}"}, "", false},
		{"json lines", a + "\n" + b + "\r\n\n" + a + "\n", []string{a, b, a}, "", false},
		{"json lines without final newline", a + "\n" + b, []string{a, b}, "", false},
		{"empty", " \n ", nil, "", false},
		{"two objects on a line", a + " " + a, []string{a}, "", false},
		{"trailing comma", "[" + a + ",]", []string{a}, "/1", false},
		{"missing comma", "[" + a + " " + a + "]", []string{a}, "/0", false},
		{"data after the array", "[" + a + "] x", []string{a}, "", false},
		{"unterminated array", "[" + a, []string{a}, "/1", false},
		{"unterminated entry", "[" + a[:10], nil, "/0", false},
		{"entry not an object", `[1]`, nil, "/0", false},
		{"body not JSON", `"x"`, nil, "", false},
		{"too deep", `[{"a":` + strings.Repeat("[", maxDepth), nil, "/0", false},
		{"entry too large", `[{"a":"` + strings.Repeat("x", 200) + `"}]`, nil, "", true},
		{"too many entries", "[" + strings.Repeat(a+",", 4) + a + "]", []string{a, a, a, a}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitAll([]byte(tt.body), 128, 4)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("entries %q, want %q (err %v)", got, tt.want, err)
			}
			var bre *BadRequestError
			var tle *tooLargeError
			switch {
			case tt.large:
				if !errors.As(err, &tle) {
					t.Fatalf("err = %v, want a tooLargeError", err)
				}
			case tt.name == "empty":
				if err != errEmpty {
					t.Fatalf("err = %v, want errEmpty", err)
				}
			case tt.field != "" || strings.Contains(tt.name, "not") || strings.Contains(tt.name, "after") || strings.Contains(tt.name, "two"):
				if !errors.As(err, &bre) || bre.Field != tt.field {
					t.Fatalf("err = %#v, want a BadRequestError at %q", err, tt.field)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// FuzzLogEntrySplitter checks the splitter against the whole-body parser:
// on a body parseJSON accepts as an array of objects (or one object) within
// the limits, the splitter must return exactly its entries; and whenever the
// splitter returns entries that all parse, an array body must be valid JSON
// with the same entries. Entries never exceed the entry limit.
func FuzzLogEntrySplitter(f *testing.F) {
	for _, s := range []string{
		`[{"data":{"type":"ss","user_id":"a|b"}},{"data":{"type":"s"}}]`,
		"{\"data\":{\"type\":\"s\"}}\n{\"data\":{\"type\":\"ss\"}}\n",
		`{"a":"]}\"{["}`, `[]`, `[{}]`, `[{},]`, `[{"a":[1,{"b":[]}]}]  `, "\t[\r\n{}\n]", `{}{}`, `[{"a":"\\"}]`,
	} {
		f.Add([]byte(s))
	}
	const maxEntry, maxEntries = 512, 16
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := splitAll(body, maxEntry, maxEntries)
		for _, e := range got {
			if len(e) > maxEntry || e[0] != '{' {
				t.Fatalf("entry %q breaks the entry bound or is not an object", e)
			}
		}
		var parsed []any
		allParse := true
		for _, e := range got {
			v, perr := parseJSON([]byte(e))
			if perr != nil {
				allParse = false
				break
			}
			parsed = append(parsed, v)
		}
		whole, werr := parseJSON(body)
		first := bytes.TrimLeft(body, " \t\r\n")
		isArray := len(first) > 0 && first[0] == '['

		// Whole body valid: the splitter agrees, unless a limit or a
		// non-object element stops it.
		if werr == nil {
			var want []any
			switch v := whole.(type) {
			case []any:
				want = v
			case map[string]any:
				want = []any{v}
			default:
				return
			}
			for _, e := range want {
				if _, ok := e.(map[string]any); !ok {
					return
				}
			}
			var tle *tooLargeError
			if errors.As(err, &tle) {
				return
			}
			if err != nil {
				t.Fatalf("splitter refused a valid body %q: %v", body, err)
			}
			if len(want) == 0 {
				want = nil
			}
			if !reflect.DeepEqual(parsed, want) {
				t.Fatalf("splitter entries %q differ from the parsed body %q", got, body)
			}
			return
		}
		// Splitter happy and every entry parses: an array body is valid
		// JSON, but for nesting one level deeper than an entry may be.
		if err == nil && allParse && isArray {
			var bre *BadRequestError
			if errors.As(werr, &bre) && strings.Contains(bre.Reason, "nested deeper") {
				return
			}
			t.Fatalf("splitter accepted %q, which parseJSON refuses: %v", body, werr)
		}
	})
}

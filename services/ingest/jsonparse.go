package ingest

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonParser parses one JSON value in a single pass over a body parseJSON
// has already checked is valid UTF-8 (encoding/json would replace invalid
// bytes instead). Every value it accepts decodes to what encoding/json with
// UseNumber produces (maps, slices, strings, json.Number, bools, nil;
// FuzzParseJSONMatchesEncodingJSON checks it), but it accepts less, because
// the receivers must refuse what encoding/json lets through: a duplicate
// object key (the schema validator and a later reader could each take a
// different copy), a NUL character escaped as \u0000 (a raw one both
// refuse), nesting deeper than maxDepth (encoding/json allows 10,000
// levels), and numbers beyond the limits below (the validator's cost grows
// with a number's magnitude). A refusal names the failing value by its JSON
// pointer, the field of the 400 answer, built only when an error happens;
// encoding/json reports a byte offset. It is a parser of its own rather than
// these checks over encoding/json's Decoder.Token, which an earlier version
// made: in a profile of BenchmarkActionReceiverNoopPublisher the token API
// took 19 % of the CPU.
type jsonParser struct {
	b     []byte
	i     int
	depth int
	// path is the stack of keys (string) and indices (int) being parsed.
	path []any
}

func (p *jsonParser) fail(format string, args ...any) error {
	var sb strings.Builder
	for _, seg := range p.path {
		sb.WriteByte('/')
		switch v := seg.(type) {
		case string:
			sb.WriteString(escapePointer(v))
		case int:
			sb.WriteString(strconv.Itoa(v))
		}
	}
	return badRequest(sb.String(), format, args...)
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value() (any, error) {
	p.ws()
	if p.i >= len(p.b) {
		return nil, p.fail("truncated JSON")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return nil, p.fail("malformed JSON: unexpected %q at offset %d", c, p.i)
	}
}

func (p *jsonParser) literal(word string) error {
	if len(p.b)-p.i < len(word) {
		return p.fail("truncated JSON")
	}
	if string(p.b[p.i:p.i+len(word)]) != word {
		return p.fail("malformed JSON at offset %d", p.i)
	}
	p.i += len(word)
	return nil
}

func (p *jsonParser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.fail("nested deeper than %d levels", maxDepth)
	}
	return nil
}

func (p *jsonParser) object() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.i++ // {
	obj := make(map[string]any)
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		p.depth--
		return obj, nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.fail("truncated JSON")
		}
		if p.b[p.i] != '"' {
			return nil, p.fail("malformed JSON: object key is not a string at offset %d", p.i)
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		key := k.(string)
		p.path = append(p.path, key)
		if _, dup := obj[key]; dup {
			return nil, p.fail("duplicate key")
		}
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.fail("truncated JSON")
		}
		if p.b[p.i] != ':' {
			return nil, p.fail("malformed JSON: want ':' at offset %d", p.i)
		}
		p.i++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		obj[key] = v
		p.path = p.path[:len(p.path)-1]
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.fail("truncated JSON")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			p.depth--
			return obj, nil
		default:
			return nil, p.fail("malformed JSON: want ',' or '}' at offset %d", p.i)
		}
	}
}

func (p *jsonParser) array() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.i++ // [
	arr := []any{}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		p.depth--
		return arr, nil
	}
	for idx := 0; ; idx++ {
		p.path = append(p.path, idx)
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		p.path = p.path[:len(p.path)-1]
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.fail("truncated JSON")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			p.depth--
			return arr, nil
		default:
			return nil, p.fail("malformed JSON: want ',' or ']' at offset %d", p.i)
		}
	}
}

// str parses a string at p.i (which holds the opening quote). The input is
// known to be valid UTF-8.
func (p *jsonParser) str() (any, error) {
	p.i++
	start := p.i
	// Fast path: no escapes.
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := string(p.b[start:p.i])
			p.i++
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			if c == 0 {
				return nil, p.fail("NUL character in a string")
			}
			return nil, p.fail("malformed JSON: control character in a string")
		}
		p.i++
	}
	buf := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			if c == 0 {
				return nil, p.fail("NUL character in a string")
			}
			return nil, p.fail("malformed JSON: control character in a string")
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return nil, p.fail("truncated JSON")
		}
		esc := p.b[p.i+1]
		p.i += 2
		switch esc {
		case '"', '\\', '/':
			buf = append(buf, esc)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, p.fail("malformed JSON: bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A valid pair makes one rune; otherwise, as encoding/json
				// does, U+FFFD, and a following escape is read on its own.
				dec := utf8.RuneError
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					if r2, ok := p.hex4(); ok {
						dec = utf16.DecodeRune(r, r2)
					}
					if dec == utf8.RuneError {
						p.i = save
					}
				}
				r = dec
			}
			if r == 0 {
				return nil, p.fail("NUL character in a string")
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return nil, p.fail("malformed JSON: bad escape \\%c", esc)
		}
	}
	return nil, p.fail("truncated JSON")
}

func (p *jsonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

// Number limits. No Auth0 payload holds a number longer than an identity's
// numeric user_id (about 20 digits) or an exponent at all, and the schema
// validator checks integer types and bounds with big-rational arithmetic,
// whose cost grows with the number's magnitude: 1.5e999999 took seconds per
// number. Bounding length and exponent keeps validating any accepted body
// linear in its size.
const (
	maxNumberLen = 64
	maxExponent  = 400 // beyond float64's range (about 1.8e308) either way
)

// number checks the JSON number grammar and the limits above and returns the
// number as json.Number.
func (p *jsonParser) number() (any, error) {
	start := p.i
	n, err := p.numberGrammar()
	if err != nil {
		return nil, err
	}
	if len(n) > maxNumberLen {
		p.i = start
		return nil, p.fail("number longer than %d characters", maxNumberLen)
	}
	if e := strings.IndexAny(n, "eE"); e >= 0 {
		exp, err := strconv.Atoi(strings.TrimPrefix(n[e+1:], "+"))
		if err != nil || exp > maxExponent || exp < -maxExponent {
			p.i = start
			return nil, p.fail("number exponent beyond ±%d", maxExponent)
		}
	}
	return json.Number(n), nil
}

func (p *jsonParser) numberGrammar() (string, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i >= len(p.b) {
		return "", p.fail("truncated JSON")
	}
	if p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return "", p.fail("malformed JSON: bad number at offset %d", start)
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return "", p.fail("malformed JSON: bad number at offset %d", start)
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return "", p.fail("malformed JSON: bad number at offset %d", start)
		}
	}
	return string(p.b[start:p.i]), nil
}

package auth0fake

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// query is the subset of Auth0's Lucene user search syntax the fake knows:
// clauses joined by AND (or by spaces), each field:value, field:"phrase",
// field:prefix*, or a range field:[a TO b] with { } for exclusive bounds
// and * for an open end. Dates compare as dates, with Elasticsearch's
// rounding of date-only bounds.
type query []clause

type clause struct {
	field string
	// term, quoted or with a trailing * wildcard, when not a range.
	term     string
	wildcard bool
	// isRange with bounds; "" is an open end.
	isRange      bool
	lo, hi       string
	loInc, hiInc bool
}

// normalised fields are matched case-insensitively, as Auth0 does.
var normalised = map[string]bool{"email": true, "name": true, "given_name": true, "family_name": true, "nickname": true}

var dateFields = map[string]bool{"created_at": true, "updated_at": true, "last_login": true}

func parseQuery(q string) (query, error) {
	var out query
	rest := strings.TrimSpace(q)
	for rest != "" {
		if after, ok := strings.CutPrefix(rest, "AND "); ok {
			rest = strings.TrimSpace(after)
			continue
		}
		if strings.HasPrefix(rest, "OR ") || strings.HasPrefix(rest, "NOT ") || rest[0] == '(' {
			return nil, fmt.Errorf("auth0fake supports only AND of field clauses, not %q", rest)
		}
		field, after, ok := strings.Cut(rest, ":")
		if !ok || field == "" || strings.ContainsAny(field, " \"[{") {
			return nil, fmt.Errorf("expected field:value at %q", rest)
		}
		c := clause{field: field}
		var err error
		switch {
		case after == "":
			return nil, fmt.Errorf("missing value for %s", field)
		case after[0] == '[' || after[0] == '{':
			end := strings.IndexAny(after, "]}")
			if end < 0 {
				return nil, fmt.Errorf("unterminated range for %s", field)
			}
			lo, hi, ok := strings.Cut(after[1:end], " TO ")
			if !ok {
				return nil, fmt.Errorf("range for %s needs TO", field)
			}
			c.isRange, c.loInc, c.hiInc = true, after[0] == '[', after[end] == ']'
			if c.lo, err = bound(lo); err == nil {
				c.hi, err = bound(hi)
			}
			rest = after[end+1:]
		case after[0] == '"':
			end := strings.IndexByte(after[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated phrase for %s", field)
			}
			c.term, rest = after[1:end+1], after[end+2:]
		default:
			term, tail, _ := strings.Cut(after, " ")
			c.term, rest = term, tail
			if t, ok := strings.CutSuffix(term, "*"); ok {
				c.term, c.wildcard = t, true
			}
		}
		if err != nil {
			return nil, fmt.Errorf("range for %s: %w", field, err)
		}
		out = append(out, c)
		rest = strings.TrimSpace(rest)
	}
	return out, nil
}

func bound(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		return "", nil
	}
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	if s == "" {
		return "", errors.New("empty bound")
	}
	return s, nil
}

func (q query) match(m map[string]any) bool {
	for _, c := range q {
		if !c.match(lookup(m, c.field)) {
			return false
		}
	}
	return true
}

func (c clause) match(v any) bool {
	if v == nil {
		return false
	}
	if !c.isRange {
		s := scalar(v)
		if normalised[c.field] {
			s, c.term = strings.ToLower(s), strings.ToLower(c.term)
		}
		if c.wildcard {
			return strings.HasPrefix(s, c.term)
		}
		return s == c.term
	}
	if dateFields[c.field] {
		t, _, err := parseDate(scalar(v))
		if err != nil {
			return false
		}
		if c.lo != "" {
			lo, dateOnly, err := parseDate(c.lo)
			if err != nil {
				return false
			}
			if dateOnly && !c.loInc { // gt rounds up
				lo = lo.Add(24*time.Hour - time.Millisecond)
			}
			if t.Before(lo) || (!c.loInc && t.Equal(lo)) {
				return false
			}
		}
		if c.hi != "" {
			hi, dateOnly, err := parseDate(c.hi)
			if err != nil {
				return false
			}
			if dateOnly && c.hiInc { // lte rounds up
				hi = hi.Add(24*time.Hour - time.Millisecond)
			}
			if t.After(hi) || (!c.hiInc && t.Equal(hi)) {
				return false
			}
		}
		return true
	}
	if c.lo != "" {
		if r := compare(c.field, v, c.lo); r < 0 || (r == 0 && !c.loInc) {
			return false
		}
	}
	if c.hi != "" {
		if r := compare(c.field, v, c.hi); r > 0 || (r == 0 && !c.hiInc) {
			return false
		}
	}
	return true
}

func parseDate(s string) (t time.Time, dateOnly bool, err error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, false, nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05", s); err == nil {
		return t, false, nil
	}
	t, err = time.Parse(time.DateOnly, s)
	return t, true, err
}

// compare orders two values of field: as dates, numbers, or strings.
func compare(field string, a, b any) int {
	as, bs := scalar(a), scalar(b)
	if dateFields[field] {
		at, _, aerr := parseDate(as)
		bt, _, berr := parseDate(bs)
		if aerr == nil && berr == nil {
			return at.Compare(bt)
		}
	}
	af, aerr := strconv.ParseFloat(as, 64)
	bf, berr := strconv.ParseFloat(bs, 64)
	if aerr == nil && berr == nil {
		switch {
		case af < bf:
			return -1
		case af > bf:
			return 1
		}
		return 0
	}
	return strings.Compare(as, bs)
}

func scalar(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// lookup follows a path such as "app_metadata.plan" or
// "identities[0].connection" through a JSON object.
func lookup(m map[string]any, path string) any {
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		name, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			n, err := strconv.Atoi(part[i+1 : len(part)-1])
			if err != nil {
				return nil
			}
			name, idx = part[:i], n
		}
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[name]
		if idx >= 0 {
			arr, ok := cur.([]any)
			if !ok || idx >= len(arr) {
				return nil
			}
			cur = arr[idx]
		}
	}
	return cur
}

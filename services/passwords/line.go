package passwords

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/signupsync/signupsync/events"
)

// Line is one valid line of the hash export. PasswordHash is a secret.
type Line struct {
	OID           string
	AltID         string
	Email         string
	EmailVerified bool
	PasswordHash  string
	PasswordSetAt time.Time
	Tenant        string
	Connection    string
}

// ErrMalformedLine is wrapped by [ParseLine]. Its messages name the field
// and never quote a value.
var ErrMalformedLine = errors.New("malformed hash export line")

// UserID is the Auth0 user_id of the line: auth0|alt_id when the line has
// an alt_id, else auth0|$oid.
func (l Line) UserID() string {
	if l.AltID != "" {
		return "auth0|" + l.AltID
	}
	return "auth0|" + l.OID
}

// profile is the user as the line describes it, partial: the importer reads
// the full profile when it has the Management API.
func (l Line) profile(tenant string) events.SignupData {
	raw := strings.TrimPrefix(l.UserID(), "auth0|")
	return events.SignupData{
		Tenant: tenant, Partial: true, Connection: l.Connection, ConnectionStrategy: "auth0",
		UserID: l.UserID(), Email: l.Email, EmailVerified: l.EmailVerified,
		Identities: []events.Identity{{Provider: "auth0", Connection: l.Connection, UserID: raw}},
	}
}

// wireLine is a line as Auth0 writes it (MongoDB extended JSON).
type wireLine struct {
	ID *struct {
		OID string `json:"$oid"`
	} `json:"_id"`
	AltID         *string         `json:"alt_id"`
	Email         *string         `json:"email"`
	EmailVerified json.RawMessage `json:"email_verified"`
	PasswordHash  *string         `json:"passwordHash"`
	PasswordSet   *struct {
		Date json.RawMessage `json:"$date"`
	} `json:"password_set_date"`
	Tenant     string `json:"tenant"`
	Connection string `json:"connection"`
}

// ParseLine validates one line of the hash export. tooLong marks a line
// cut at the reader's limit. Errors wrap [ErrMalformedLine] and never
// contain the hash.
func ParseLine(raw []byte, tooLong bool) (Line, error) {
	bad := func(what string) (Line, error) { return Line{}, fmt.Errorf("%w: %s", ErrMalformedLine, what) }
	if tooLong {
		return bad("line too long")
	}
	var w wireLine
	if err := json.Unmarshal(raw, &w); err != nil {
		// json's messages name types and offsets, never values; keep only
		// the fact.
		return bad("not a JSON object of the expected shape")
	}
	l := Line{Tenant: w.Tenant, Connection: w.Connection}
	if w.ID == nil || !isHex24(w.ID.OID) {
		return bad("_id.$oid missing or not 24 hex digits")
	}
	l.OID = w.ID.OID
	if w.AltID != nil {
		if *w.AltID == "" || strings.ContainsAny(*w.AltID, "|\x00") {
			return bad("alt_id empty or containing '|'")
		}
		l.AltID = *w.AltID
	}
	if w.Email == nil || !strings.Contains(*w.Email, "@") {
		return bad("email missing")
	}
	l.Email = *w.Email
	switch string(w.EmailVerified) {
	case "true", `"true"`:
		l.EmailVerified = true
	case "", "null", "false", `"false"`:
	default:
		return bad("email_verified not a boolean")
	}
	if w.PasswordHash == nil || !events.ValidBcrypt(*w.PasswordHash) {
		return bad("passwordHash missing or not a bcrypt hash ($2a$/$2b$)")
	}
	l.PasswordHash = *w.PasswordHash
	if w.PasswordSet != nil && len(w.PasswordSet.Date) > 0 {
		t, ok := parseDate(w.PasswordSet.Date)
		if !ok {
			return bad("password_set_date.$date not a date")
		}
		l.PasswordSetAt = t
	}
	if l.Connection == "" {
		return bad("connection missing")
	}
	return l, nil
}

// parseDate reads $date as an RFC 3339 string, or a number of milliseconds
// (or {"$numberLong": "..."}), as MongoDB's extended JSON allows.
func parseDate(b json.RawMessage) (time.Time, bool) {
	var s string
	if json.Unmarshal(b, &s) == nil {
		t, err := time.Parse(time.RFC3339Nano, s)
		return t, err == nil
	}
	var ms int64
	if json.Unmarshal(b, &ms) == nil {
		return time.UnixMilli(ms).UTC(), true
	}
	var nl struct {
		N json.Number `json:"$numberLong"`
	}
	if json.Unmarshal(b, &nl) == nil {
		if v, err := nl.N.Int64(); err == nil {
			return time.UnixMilli(v).UTC(), true
		}
	}
	return time.Time{}, false
}

func isHex24(s string) bool {
	if len(s) != 24 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// reader yields the non-blank lines of a (possibly gzipped) file.
type reader struct {
	br      *bufio.Reader
	max     int
	line    int64
	raw     []byte
	tooLong bool
	fatal   error
}

func newReader(r io.Reader, maxLine int) (*reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	return &reader{br: br, max: maxLine}, nil
}

func (r *reader) next() bool {
	for r.fatal == nil {
		var buf []byte
		tooLong := false
		var err error
		for {
			var chunk []byte
			chunk, err = r.br.ReadSlice('\n')
			if len(buf)+len(chunk) > r.max {
				tooLong = true
			} else {
				buf = append(buf, chunk...)
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		eof := errors.Is(err, io.EOF)
		if err != nil && !eof {
			r.fatal = fmt.Errorf("read at line %d: %w", r.line+1, err)
			return false
		}
		if len(buf) == 0 && !tooLong && eof {
			return false
		}
		r.line++
		buf = bytes.TrimSpace(buf)
		if len(buf) == 0 && !tooLong {
			if eof {
				return false
			}
			continue
		}
		r.raw, r.tooLong = buf, tooLong
		return true
	}
	return false
}

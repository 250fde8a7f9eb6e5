package ingest

import (
	"bufio"
	"errors"
	"io"
	"strconv"
)

// Log Streams batch limits. A batch is read from the request body one entry
// at a time, so what a request holds in memory is one entry being read plus
// what the batch keeps to publish (the signups and the raw invalid entries),
// never the body.
const (
	// maxLogEntry bounds one entry, in bytes. Auth0 entries are one to a few
	// kilobytes; the largest documented shape (an ss entry carrying the
	// sign-up request body and its prompts) stays far below it.
	maxLogEntry = 64 << 10
	// maxLogEntries bounds the entries of one batch: about 5,500 entries of
	// a typical 1.5 KB fill the default 8 MiB body limit, so the bound is
	// reached only by tiny invented entries, whose signups would otherwise
	// cost more memory than their bytes.
	maxLogEntries = 10000
	// maxLogStreamBodyLimit caps Config.LogStreamBodyLimit: what a batch
	// keeps to publish grows with the body, so the body is bounded too.
	maxLogStreamBodyLimit = 64 << 20
)

// tooLargeError is a body, entry or batch past a limit: the receiver
// answers 413. Its message names the limit and never echoes input.
type tooLargeError struct {
	What  string // "body", "entry" or "batch"
	Limit int64
	Unit  string // "bytes" or "entries"
}

func (e *tooLargeError) Error() string {
	return e.What + " exceeds " + strconv.FormatInt(e.Limit, 10) + " " + e.Unit
}

// splitter states.
const (
	splitStart = iota
	splitArray // inside a JSON array, after an entry
	splitLines // one object, or JSON Lines, after an entry
	splitDone
)

// entrySplitter reads the entries of a Log Streams body — a JSON array of
// objects, one object, or JSON Lines (objects separated by newlines) — one
// at a time from r. It checks only the framing: where each entry starts and
// ends, string and escape boundaries, nesting depth and the limits. Each
// entry it returns is then parsed on its own by parseJSON, which checks
// everything else. It is not safe for concurrent use.
type entrySplitter struct {
	r          *bufio.Reader
	maxEntry   int
	maxEntries int
	buf        []byte
	n          int // entries returned so far
	state      int
}

func newEntrySplitter(r io.Reader, maxEntry, maxEntries int) *entrySplitter {
	return &entrySplitter{r: bufio.NewReaderSize(r, 32<<10), maxEntry: maxEntry, maxEntries: maxEntries}
}

// next returns the raw bytes of the next entry, valid until the following
// call, and io.EOF after the last one. Other errors are a *BadRequestError
// (malformed framing, the field naming the entry index), a *tooLargeError,
// or the reader's error (an *http.MaxBytesError among them).
func (s *entrySplitter) next() ([]byte, error) {
	switch s.state {
	case splitStart:
		c, err := s.skipSpace()
		if errors.Is(err, io.EOF) {
			return nil, errEmpty
		}
		if err != nil {
			return nil, err
		}
		switch c {
		case '[':
			_, _ = s.r.ReadByte()
			c, err := s.skipSpace()
			if err != nil {
				return nil, s.truncated(err)
			}
			if c == ']' {
				_, _ = s.r.ReadByte()
				return nil, s.finish()
			}
			s.state = splitArray
		case '{':
			s.state = splitLines
		default:
			return nil, badRequest("", "body is not a JSON array, a JSON object or JSON Lines")
		}
		return s.entry()
	case splitArray:
		c, err := s.skipSpace()
		if err != nil {
			return nil, s.truncated(err)
		}
		_, _ = s.r.ReadByte()
		switch c {
		case ',':
			if _, err := s.skipSpace(); err != nil {
				return nil, s.truncated(err)
			}
			return s.entry()
		case ']':
			return nil, s.finish()
		}
		return nil, badRequest("/"+strconv.Itoa(s.n-1), "malformed JSON: want ',' or ']' after the entry")
	case splitLines:
		// An entry ends its line: blanks, then a newline or the end.
		for {
			c, err := s.r.ReadByte()
			if errors.Is(err, io.EOF) {
				s.state = splitDone
				return nil, io.EOF
			}
			if err != nil {
				return nil, err
			}
			if c == ' ' || c == '\t' || c == '\r' {
				continue
			}
			if c != '\n' {
				return nil, badRequest("", "unexpected data after the JSON value (JSON Lines entries are separated by newlines)")
			}
			break
		}
		if _, err := s.skipSpace(); err != nil {
			if errors.Is(err, io.EOF) {
				s.state = splitDone
			}
			return nil, err
		}
		return s.entry()
	}
	return nil, io.EOF
}

// entry reads one object, whose first byte is next in r.
func (s *entrySplitter) entry() ([]byte, error) {
	field := "/" + strconv.Itoa(s.n)
	if s.n >= s.maxEntries {
		return nil, &tooLargeError{What: "batch", Limit: int64(s.maxEntries), Unit: "entries"}
	}
	if c, err := s.r.ReadByte(); err != nil {
		return nil, s.truncated(err)
	} else if c != '{' {
		return nil, badRequest(field, "entry is not a JSON object")
	}
	s.buf = append(s.buf[:0], '{')
	depth, inString, escaped := 1, false, false
	for depth > 0 {
		c, err := s.r.ReadByte()
		if err != nil {
			return nil, s.truncated(err)
		}
		if len(s.buf) >= s.maxEntry {
			return nil, &tooLargeError{What: "entry " + field[1:], Limit: int64(s.maxEntry), Unit: "bytes"}
		}
		s.buf = append(s.buf, c)
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > maxDepth {
				return nil, badRequest(field, "nested deeper than %d levels", maxDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	s.n++
	return s.buf, nil
}

// finish checks that only whitespace follows the closing bracket.
func (s *entrySplitter) finish() error {
	s.state = splitDone
	if _, err := s.skipSpace(); !errors.Is(err, io.EOF) {
		if err != nil {
			return err
		}
		return badRequest("", "unexpected data after the JSON value")
	}
	return io.EOF
}

// skipSpace consumes JSON whitespace and returns the next byte, unread.
func (s *entrySplitter) skipSpace() (byte, error) {
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		_ = s.r.UnreadByte()
		return c, nil
	}
}

// truncated turns an unexpected end of the body into a 400; other read
// errors pass through.
func (s *entrySplitter) truncated(err error) error {
	if errors.Is(err, io.EOF) {
		return badRequest("/"+strconv.Itoa(s.n), "truncated JSON")
	}
	return err
}

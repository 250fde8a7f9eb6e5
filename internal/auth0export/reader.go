// Package auth0export reads Auth0 users exports (format json: one user
// object per line, gzipped or not) as a stream, for backfill and the
// cutover report. Malformed and over-long lines are reported with their
// line numbers and never stop the read.
package auth0export

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/signupsync/signupsync/events"
)

// Reader iterates the users of an export. It is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	maxLine int
	tenant  string

	line  int64
	data  events.SignupData
	err   error
	fatal error
}

// DefaultMaxLine is the longest line read before it counts as malformed.
const DefaultMaxLine = 1 << 20

// NewReader reads r, gunzipping it when it starts with gzip's magic bytes.
func NewReader(r io.Reader, maxLine int, tenant string) (*Reader, error) {
	in, err := maybeGunzip(r)
	if err != nil {
		return nil, err
	}
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &Reader{br: bufio.NewReaderSize(in, 64<<10), maxLine: maxLine, tenant: tenant}, nil
}

// Next advances to the next non-blank line. It returns false at the end of
// the input or on a read error (see [Reader.Fatal]).
func (r *Reader) Next() bool {
	for r.fatal == nil {
		raw, tooLong, err := readLine(r.br, r.maxLine)
		if err != nil && !errors.Is(err, io.EOF) {
			r.fatal = fmt.Errorf("read export at line %d: %w", r.line+1, err)
			return false
		}
		eof := errors.Is(err, io.EOF)
		if len(raw) == 0 && !tooLong && eof {
			return false
		}
		r.line++
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 && !tooLong {
			if eof {
				return false
			}
			continue
		}
		r.data, r.err = parseUser(raw, tooLong, r.tenant)
		return true
	}
	return false
}

// Line is the 1-based line number of the current entry.
func (r *Reader) Line() int64 { return r.line }

// User returns the current user, or the error that makes its line malformed.
func (r *Reader) User() (events.SignupData, error) { return r.data, r.err }

// Fatal is the read error that ended the iteration, if any.
func (r *Reader) Fatal() error { return r.fatal }

// parseUser decodes one export line.
func parseUser(raw []byte, tooLong bool, tenant string) (events.SignupData, error) {
	if tooLong {
		return events.SignupData{}, errors.New("line longer than the limit")
	}
	if raw[0] != '{' {
		return events.SignupData{}, errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var u events.Auth0User
	if err := dec.Decode(&u); err != nil {
		return events.SignupData{}, fmt.Errorf("not a user object: %w", err)
	}
	if dec.More() {
		return events.SignupData{}, errors.New("data after the JSON object")
	}
	return u.SignupData(tenant)
}

// readLine returns the next line without its newline. A line longer than
// limit is consumed and reported with tooLong.
func readLine(br *bufio.Reader, limit int) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if len(buf)+len(chunk) > limit {
			tooLong = true
			buf = buf[:0]
		} else if !tooLong {
			buf = append(buf, chunk...)
		}
		if err != nil {
			return buf, tooLong, err
		}
		if !isPrefix {
			return buf, tooLong, nil
		}
	}
}

func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		zr.Multistream(true)
		return zr, nil
	}
	return br, nil
}

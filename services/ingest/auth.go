package ingest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
)

// ErrUnauthorized is returned when a request carries no configured credential.
var ErrUnauthorized = errors.New("missing or wrong credentials")

// headerAuth accepts a request whose Authorization header equals one of a set
// of configured values, compared in constant time over their SHA-256 so
// neither the value nor its length leaks; a Bearer or Basic scheme matches
// in any case (see canonicalAuthorization). It is safe for concurrent use.
type headerAuth struct {
	accepted [][sha256.Size]byte
}

func newHeaderAuth(values []string) *headerAuth {
	a := &headerAuth{}
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			a.accepted = append(a.accepted, sha256.Sum256([]byte(canonicalAuthorization(v))))
		}
	}
	return a
}

func (a *headerAuth) check(r *http.Request) error {
	got := r.Header.Get("Authorization")
	if got == "" || len(a.accepted) == 0 {
		return ErrUnauthorized
	}
	sum := sha256.Sum256([]byte(canonicalAuthorization(got)))
	ok := 0
	for i := range a.accepted {
		ok |= subtle.ConstantTimeCompare(sum[:], a.accepted[i][:])
	}
	if ok != 1 {
		return ErrUnauthorized
	}
	return nil
}

// eventStreamAuth builds the accepted Authorization values for Auth0 Event
// Streams: "Bearer <token>" for each token and "Basic <base64(user:pass)>"
// for each user:pass pair.
func eventStreamAuth(tokens, basic []string) *headerAuth {
	var vals []string
	for _, t := range tokens {
		if t = strings.TrimSpace(t); t != "" {
			vals = append(vals, "Bearer "+t)
		}
	}
	for _, b := range basic {
		if b = strings.TrimSpace(b); b != "" {
			vals = append(vals, "Basic "+basicValue(b))
		}
	}
	return newHeaderAuth(vals)
}

func basicValue(userPass string) string { return base64.StdEncoding.EncodeToString([]byte(userPass)) }

// canonicalAuthorization spells the Bearer and Basic schemes of an
// Authorization value one way, since schemes are case-insensitive (RFC 7235
// section 2.1; RFC 9110 section 11.1), and takes the one or more spaces
// after the scheme as one: "bearer t" and "BEARER  t" become "Bearer t".
// The credentials are kept as sent, since tokens and base64 are
// case-sensitive. A value with another scheme or none is compared whole, so
// a Log Streams token that happens to hold a space does not turn
// case-insensitive in its first word.
func canonicalAuthorization(v string) string {
	scheme, cred, ok := strings.Cut(v, " ")
	if !ok {
		return v
	}
	for _, s := range [...]string{"Bearer", "Basic"} {
		if strings.EqualFold(scheme, s) {
			return s + " " + strings.TrimLeft(cred, " ")
		}
	}
	return v
}

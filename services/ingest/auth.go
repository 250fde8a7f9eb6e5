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
// neither the value nor its length leaks. It is safe for concurrent use.
type headerAuth struct {
	accepted [][sha256.Size]byte
}

func newHeaderAuth(values []string) *headerAuth {
	a := &headerAuth{}
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			a.accepted = append(a.accepted, sha256.Sum256([]byte(v)))
		}
	}
	return a
}

func (a *headerAuth) check(r *http.Request) error {
	got := r.Header.Get("Authorization")
	if got == "" || len(a.accepted) == 0 {
		return ErrUnauthorized
	}
	sum := sha256.Sum256([]byte(got))
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

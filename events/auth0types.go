package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
)

// Auth0 writes some fields of its user object with more than one JSON type.
// Every reader of Auth0 users (the webhook receivers in ingest, the users
// export reader, the Management API client) decodes those fields with the
// types in this file, so that one user reads the same from every source.
//
// The variations handled, and where they are documented:
//
//   - email_verified (and, defensively, identities[].isSocial): a JSON
//     boolean, or the string "true" or "false". Auth0 copies profile values
//     from the identity provider as received; SAML attributes are strings,
//     and Sign in with Apple writes email_verified into its ID token as a
//     string (Apple Feedback FB7600878). See [Auth0Bool].
//   - created_at: the Management API's UserDateSchema is "string (ISO 8601)
//     or object" (Auth0 Management API v2 OpenAPI, as generated into
//     Auth0's SDKs, e.g. node-auth0 Management.UserDateSchema). See
//     [Auth0Time].
//   - identities[].user_id: a string or an integer (Event Streams
//     user.created identity schemas; handled by [Auth0Identity]).

// Auth0Bool is a boolean field of an Auth0 user object as Auth0 really
// writes it. It accepts true and false, the strings "true" and "false" in
// any case, and null, which reads as false. Anything else fails with a
// *json.UnmarshalTypeError, which encoding/json completes with the field's
// path ("email_verified", "identities.isSocial").
type Auth0Bool bool

// UnmarshalJSON implements json.Unmarshaler.
func (b *Auth0Bool) UnmarshalJSON(data []byte) error {
	v, err := decodeAny(data)
	if err != nil {
		return err
	}
	got, err := ParseAuth0Bool(v)
	if err != nil {
		return &json.UnmarshalTypeError{Value: jsonKind(v), Type: reflect.TypeFor[bool]()}
	}
	*b = Auth0Bool(got)
	return nil
}

// ErrAuth0Type is returned by [ParseAuth0Bool] and [ParseAuth0Time] for a
// value of a type Auth0 does not write for the field. The message names the
// JSON kind of the value, never the value itself.
var ErrAuth0Type = errors.New("unexpected JSON type for an auth0 user field")

// ParseAuth0Bool applies the [Auth0Bool] rule to a JSON value already
// decoded into Go (bool, string or nil; numbers, objects and arrays are
// refused). The error wraps [ErrAuth0Type].
func ParseAuth0Bool(v any) (bool, error) {
	switch x := v.(type) {
	case nil:
		return false, nil
	case bool:
		return x, nil
	case string:
		switch {
		case strings.EqualFold(x, "true"):
			return true, nil
		case strings.EqualFold(x, "false"):
			return false, nil
		}
		return false, typeError("a string other than \"true\" or \"false\"", "a boolean")
	}
	return false, typeError(jsonKind(v), "a boolean")
}

// Auth0Time is a date field of an Auth0 user object (created_at). Auth0
// documents it as an ISO 8601 string or an object; a string is kept as
// written, an object reads as its "$date" string member when it has one and
// as absent otherwise, and null reads as absent. Anything else fails with a
// *json.UnmarshalTypeError naming the field.
type Auth0Time string

// UnmarshalJSON implements json.Unmarshaler.
func (t *Auth0Time) UnmarshalJSON(data []byte) error {
	v, err := decodeAny(data)
	if err != nil {
		return err
	}
	got, err := ParseAuth0Time(v)
	if err != nil {
		return &json.UnmarshalTypeError{Value: jsonKind(v), Type: reflect.TypeFor[string]()}
	}
	*t = Auth0Time(got)
	return nil
}

// ParseAuth0Time applies the [Auth0Time] rule to a JSON value already
// decoded into Go. The error wraps [ErrAuth0Type].
func ParseAuth0Time(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case map[string]any:
		s, _ := x["$date"].(string)
		return s, nil
	}
	return "", typeError(jsonKind(v), "a date string or object")
}

func typeError(got, want string) error {
	return &auth0TypeError{got: got, want: want}
}

type auth0TypeError struct{ got, want string }

func (e *auth0TypeError) Error() string { return "got " + e.got + ", want " + e.want }
func (e *auth0TypeError) Unwrap() error { return ErrAuth0Type }

// decodeAny decodes one raw JSON value, keeping numbers as json.Number.
func decodeAny(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// jsonKind names the JSON kind of a decoded value as encoding/json's type
// errors do ("string", "number", "object").
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case string:
		return "string"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return "number"
}

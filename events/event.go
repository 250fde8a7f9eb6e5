package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Source names where a signup was learnt from. It is part of the subject and
// of the CloudEvents source attribute.
type Source string

// The sources signupsync knows.
const (
	SourceAction      Source = "action"
	SourceEventStream Source = "event_stream"
	SourceLogStream   Source = "log_stream"
	SourceBackfill    Source = "backfill"
	SourceReconcile   Source = "reconcile"
	SourceReplay      Source = "replay"
)

// Sources lists every valid [Source].
func Sources() []Source {
	return []Source{SourceAction, SourceEventStream, SourceLogStream, SourceBackfill, SourceReconcile, SourceReplay}
}

// Valid reports whether s is one of [Sources].
func (s Source) Valid() bool {
	for _, v := range Sources() {
		if s == v {
			return true
		}
	}
	return false
}

// CloudEvents attributes of the version 1 signup event.
const (
	SpecVersion     = "1.0"
	TypeSignupV1    = "dev.signupsync.signup.v1"
	DataContentType = "application/json"
	sourcePrefix    = "signupsync/"
)

// Identity is one entry of an Auth0 user's identities array.
type Identity struct {
	Provider   string `json:"provider"`
	Connection string `json:"connection,omitempty"`
	// UserID is the provider's own id of the person (for google-oauth2 the
	// Google subject), always carried as a string.
	UserID   string `json:"user_id"`
	IsSocial bool   `json:"isSocial"`
}

// SignupData is the data of a signup event: the Auth0 user profile fields
// signupsync uses, plus where the signup came from.
type SignupData struct {
	Tenant string `json:"tenant"`
	// Partial is true when the profile is incomplete (Log Streams carry only
	// the id, the email and the connection) and should be read again from the
	// Auth0 Management API before it is mapped.
	Partial            bool            `json:"partial"`
	Trigger            string          `json:"trigger,omitempty"`
	Connection         string          `json:"connection,omitempty"`
	ConnectionStrategy string          `json:"connection_strategy,omitempty"`
	UserID             string          `json:"user_id"`
	Email              string          `json:"email,omitempty"`
	EmailVerified      bool            `json:"email_verified,omitempty"`
	Name               string          `json:"name,omitempty"`
	GivenName          string          `json:"given_name,omitempty"`
	FamilyName         string          `json:"family_name,omitempty"`
	Nickname           string          `json:"nickname,omitempty"`
	Picture            string          `json:"picture,omitempty"`
	CreatedAt          string          `json:"created_at,omitempty"`
	Identities         []Identity      `json:"identities"`
	AppMetadata        json.RawMessage `json:"app_metadata,omitempty"`
	UserMetadata       json.RawMessage `json:"user_metadata,omitempty"`
}

// Signup is the normalised signup event, version 1: a CloudEvents 1.0
// structured-mode JSON envelope whose subject is the Auth0 user_id.
type Signup struct {
	SpecVersion     string     `json:"specversion"`
	ID              string     `json:"id"`
	Source          string     `json:"source"`
	Type            string     `json:"type"`
	Time            time.Time  `json:"time"`
	Subject         string     `json:"subject"`
	DataContentType string     `json:"datacontenttype"`
	Data            SignupData `json:"data"`
}

// NewSignup wraps data in a version 1 envelope learnt from src at t. The
// identities slice is never nil in the result, as the schema requires.
func NewSignup(src Source, data SignupData, t time.Time) Signup {
	if data.Identities == nil {
		data.Identities = []Identity{}
	}
	return Signup{
		SpecVersion:     SpecVersion,
		ID:              EventID(data.UserID),
		Source:          sourcePrefix + string(src),
		Type:            TypeSignupV1,
		Time:            t.UTC(),
		Subject:         data.UserID,
		DataContentType: DataContentType,
		Data:            data,
	}
}

// EventSource returns the [Source] named by the envelope's source attribute,
// or "" when it names none.
func (s Signup) EventSource() Source {
	rest, ok := strings.CutPrefix(s.Source, sourcePrefix)
	if !ok {
		return ""
	}
	src, _, _ := strings.Cut(rest, "/")
	if !Source(src).Valid() {
		return ""
	}
	return Source(src)
}

// EventID derives the event id, which is also the Nats-Msg-Id, from an Auth0
// user_id: "su_" and 32 hex digits of its SHA-256. Equal ids mean the same
// person, whichever source reported the signup.
func EventID(auth0UserID string) string {
	sum := sha256.Sum256([]byte(auth0UserID))
	return "su_" + hex.EncodeToString(sum[:16])
}

// ErrMalformedEvent is wrapped by [Decode] for bytes that are not a version 1
// signup event. It is permanent: redelivery cannot fix it.
var ErrMalformedEvent = errors.New("malformed signup event")

// Encode marshals a signup event.
func Encode(s Signup) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode signup %s: %w", s.ID, err)
	}
	return b, nil
}

// Decode unmarshals and checks a version 1 signup event. Errors wrap
// [ErrMalformedEvent].
func Decode(b []byte) (Signup, error) {
	var s Signup
	if err := json.Unmarshal(b, &s); err != nil {
		return Signup{}, fmt.Errorf("%w: %w", ErrMalformedEvent, err)
	}
	switch {
	case s.SpecVersion != SpecVersion:
		return Signup{}, fmt.Errorf("%w: specversion %q", ErrMalformedEvent, s.SpecVersion)
	case s.Type != TypeSignupV1:
		return Signup{}, fmt.Errorf("%w: type %q", ErrMalformedEvent, s.Type)
	case s.Data.UserID == "" || s.Subject != s.Data.UserID:
		return Signup{}, fmt.Errorf("%w: subject does not match data.user_id", ErrMalformedEvent)
	case s.ID != EventID(s.Data.UserID):
		return Signup{}, fmt.Errorf("%w: id does not match data.user_id", ErrMalformedEvent)
	case s.EventSource() == "":
		return Signup{}, fmt.Errorf("%w: source %q", ErrMalformedEvent, s.Source)
	}
	return s, nil
}

// SocialProviders maps Auth0 social connection strategies to the Firebase
// provider ids an unlinked social account is imported under. It is data:
// extend it when Firebase supports another provider.
func SocialProviders() map[string]string {
	return map[string]string{
		"google-oauth2": "google.com",
		"facebook":      "facebook.com",
		"apple":         "apple.com",
		"twitter":       "twitter.com",
		"github":        "github.com",
		"windowslive":   "microsoft.com",
		"yahoo":         "yahoo.com",
	}
}

package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Auth0User is an Auth0 user object as the Management API returns it and as
// a users export (format json, one object per line) writes it. Absent and
// null fields read as zero values; email_verified and created_at accept
// every type Auth0 writes them with ([Auth0Bool], [Auth0Time]), and decoding
// fails with a *json.UnmarshalTypeError naming the field for any other.
type Auth0User struct {
	UserID        string          `json:"user_id"`
	Email         string          `json:"email"`
	EmailVerified Auth0Bool       `json:"email_verified"`
	Name          string          `json:"name"`
	GivenName     string          `json:"given_name"`
	FamilyName    string          `json:"family_name"`
	Nickname      string          `json:"nickname"`
	Picture       string          `json:"picture"`
	CreatedAt     Auth0Time       `json:"created_at"`
	Identities    []Auth0Identity `json:"identities"`
	AppMetadata   json.RawMessage `json:"app_metadata"`
	UserMetadata  json.RawMessage `json:"user_metadata"`
}

// Auth0Identity is one identity of an Auth0 user. Auth0 writes the
// provider's user id as a string or, for some providers, as a JSON number;
// UserID keeps its digits exactly either way.
type Auth0Identity struct {
	Provider   string          `json:"provider"`
	Connection string          `json:"connection"`
	UserID     json.RawMessage `json:"user_id"`
	IsSocial   Auth0Bool       `json:"isSocial"`
}

// ErrInvalidUser is wrapped by [Auth0User.SignupData] for a user object that
// cannot be a signup.
var ErrInvalidUser = errors.New("invalid auth0 user")

// SignupData maps the user to signup data (not partial). A user without
// identities gets one derived from its user_id, as [DeriveIdentity] does.
func (u Auth0User) SignupData(tenant string) (SignupData, error) {
	if _, _, ok := strings.Cut(u.UserID, "|"); !ok || len(u.UserID) > 256 {
		return SignupData{}, fmt.Errorf("%w: user_id %q is not provider|id", ErrInvalidUser, truncate(u.UserID, 64))
	}
	d := SignupData{
		Tenant: tenant, UserID: u.UserID, Email: u.Email, EmailVerified: bool(u.EmailVerified),
		Name: u.Name, GivenName: u.GivenName, FamilyName: u.FamilyName, Nickname: u.Nickname,
		Picture: u.Picture, CreatedAt: string(u.CreatedAt),
		AppMetadata: object(u.AppMetadata), UserMetadata: object(u.UserMetadata),
		Identities: make([]Identity, 0, len(u.Identities)),
	}
	for i, id := range u.Identities {
		raw, err := rawUserID(id.UserID)
		if err != nil || id.Provider == "" {
			return SignupData{}, fmt.Errorf("%w: identities[%d]: provider and user_id are required", ErrInvalidUser, i)
		}
		d.Identities = append(d.Identities, Identity{Provider: id.Provider, Connection: id.Connection, UserID: raw, IsSocial: bool(id.IsSocial)})
	}
	if len(d.Identities) == 0 {
		d.Identities = DeriveIdentity(u.UserID, "", "", "")
	}
	if len(d.Identities) == 1 && d.Connection == "" {
		d.Connection = d.Identities[0].Connection
	}
	return d, nil
}

func rawUserID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", errors.New("missing")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || s == "" {
			return "", errors.New("bad string")
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", err
	}
	if _, err := strconv.ParseFloat(n.String(), 64); err != nil {
		return "", err
	}
	return n.String(), nil
}

// object keeps a non-empty JSON object and drops null, {} and non-objects.
func object(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 3 || raw[0] != '{' {
		return nil
	}
	return raw
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// DeriveIdentity builds the one identity of a fresh signup whose sender did
// not include the identities array (post-user-registration, Log Streams,
// flat exports): Auth0 user ids are "<provider>|<provider user id>".
// strategy overrides the provider when known; strategyType is the Log
// Streams strategy_type ("social", "database", …) when known, otherwise a
// provider in [SocialProviders] counts as social.
func DeriveIdentity(userID, connection, strategy, strategyType string) []Identity {
	provider, raw, ok := strings.Cut(userID, "|")
	if !ok || provider == "" || raw == "" {
		return []Identity{}
	}
	if strategy != "" {
		provider = strategy
	}
	social := strategyType == "social"
	if strategyType == "" {
		_, social = SocialProviders()[provider]
	}
	return []Identity{{Provider: provider, Connection: connection, UserID: raw, IsSocial: social}}
}

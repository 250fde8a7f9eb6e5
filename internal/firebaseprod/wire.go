package firebaseprod

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// wireProvider is a providerUserInfo entry of Identity Toolkit requests
// and answers.
type wireProvider struct {
	ProviderID  string `json:"providerId,omitempty"`
	RawID       string `json:"rawId,omitempty"`
	FederatedID string `json:"federatedId,omitempty"`
	Email       string `json:"email,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	PhotoURL    string `json:"photoUrl,omitempty"`
	PhoneNumber string `json:"phoneNumber,omitempty"`
}

func (w wireProvider) provider() Provider {
	return Provider{ProviderID: w.ProviderID, RawID: w.RawID, Email: w.Email,
		DisplayName: w.DisplayName, PhotoURL: w.PhotoURL, PhoneNumber: w.PhoneNumber}
}

// wireUser is an account as accounts:lookup and accounts:batchGet answer
// it: timestamps in milliseconds (validSince in seconds) as strings.
type wireUser struct {
	LocalID           string         `json:"localId"`
	Email             string         `json:"email,omitempty"`
	EmailVerified     bool           `json:"emailVerified,omitempty"`
	DisplayName       string         `json:"displayName,omitempty"`
	PhotoURL          string         `json:"photoUrl,omitempty"`
	PhoneNumber       string         `json:"phoneNumber,omitempty"`
	Disabled          bool           `json:"disabled,omitempty"`
	CustomAttributes  string         `json:"customAttributes,omitempty"`
	ProviderUserInfo  []wireProvider `json:"providerUserInfo,omitempty"`
	PasswordHash      string         `json:"passwordHash,omitempty"`
	Salt              string         `json:"salt,omitempty"`
	PasswordUpdatedAt int64          `json:"passwordUpdatedAt,omitempty"`
	ValidSince        string         `json:"validSince,omitempty"`
	CreatedAt         string         `json:"createdAt,omitempty"`
	LastLoginAt       string         `json:"lastLoginAt,omitempty"`
}

// providerInfo lists an account's linked identities followed by the
// derived "password" and "phone" entries, as Firebase answers them.
func providerInfo(a *Account) []wireProvider {
	out := make([]wireProvider, 0, len(a.Providers)+2)
	for _, p := range a.Providers {
		out = append(out, wireProvider{ProviderID: p.ProviderID, RawID: p.RawID, Email: p.Email,
			DisplayName: p.DisplayName, PhotoURL: p.PhotoURL, PhoneNumber: p.PhoneNumber})
	}
	if a.Email != "" && a.PasswordHash != "" {
		out = append(out, wireProvider{ProviderID: providerPassword, RawID: a.Email, FederatedID: a.Email,
			Email: a.Email, DisplayName: a.DisplayName, PhotoURL: a.PhotoURL})
	}
	if a.PhoneNumber != "" {
		out = append(out, wireProvider{ProviderID: providerPhone, RawID: a.PhoneNumber, PhoneNumber: a.PhoneNumber})
	}
	return out
}

func toWire(a *Account) wireUser {
	return wireUser{
		LocalID:           a.UID,
		Email:             a.Email,
		EmailVerified:     a.EmailVerified,
		DisplayName:       a.DisplayName,
		PhotoURL:          a.PhotoURL,
		PhoneNumber:       a.PhoneNumber,
		Disabled:          a.Disabled,
		CustomAttributes:  a.CustomAttributes,
		ProviderUserInfo:  providerInfo(a),
		PasswordHash:      a.PasswordHash,
		Salt:              a.Salt,
		PasswordUpdatedAt: a.PasswordUpdatedAt,
		ValidSince:        formatInt(a.ValidSince),
		CreatedAt:         formatInt(a.CreatedAt),
		LastLoginAt:       formatInt(a.LastLoginAt),
	}
}

func formatInt(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

// flexInt is an int64 sent as a JSON number (the Go SDK) or as a string
// (int64 fields in Google's JSON mapping).
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*f = 0
			return nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		*f = flexInt(n)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexInt(n)
	return nil
}

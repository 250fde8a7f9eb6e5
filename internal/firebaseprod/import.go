package firebaseprod

import (
	"fmt"
	"slices"
)

// hashAlgorithms are the hashAlgorithm values importUsers accepts.
var hashAlgorithms = []string{
	"HMAC_SHA512", "HMAC_SHA256", "HMAC_SHA1", "HMAC_MD5", "MD5", "SHA1", "SHA256", "SHA512",
	"PBKDF_SHA1", "PBKDF2_SHA256", "SCRYPT", "STANDARD_SCRYPT", "BCRYPT",
}

// importUser is one user of accounts:batchCreate.
type importUser struct {
	LocalID          string         `json:"localId"`
	Email            string         `json:"email"`
	EmailVerified    bool           `json:"emailVerified"`
	DisplayName      string         `json:"displayName"`
	PhotoURL         string         `json:"photoUrl"`
	PhoneNumber      string         `json:"phoneNumber"`
	Disabled         bool           `json:"disabled"`
	CustomAttributes string         `json:"customAttributes"`
	ProviderUserInfo []wireProvider `json:"providerUserInfo"`
	PasswordHash     string         `json:"passwordHash"`
	Salt             string         `json:"salt"`
	CreatedAt        flexInt        `json:"createdAt"`
	LastLoginAt      flexInt        `json:"lastLoginAt"`
}

type batchCreateRequest struct {
	Users []importUser `json:"users"`
	HashConfig
}

type importError struct {
	Index   int    `json:"index"`
	Message string `json:"message"`
}

type batchCreateResponse struct {
	Kind  string        `json:"kind"`
	Error []importError `json:"error,omitempty"`
}

// batchCreate is importUsers with production's semantics: no uniqueness
// check at all. A user whose uid exists (in the project, or earlier in the
// same call) replaces that account whole and counts as a replacement; a
// user whose email or provider identity another account holds becomes an
// additional account. Only invalid data fails a user, reported at its
// index; the call fails whole only when it is malformed, empty, larger than
// MaxImportUsers, or has password hashes without a valid hashAlgorithm.
func batchCreate(p *project, c call) (any, *apiError) {
	var req batchCreateRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	switch {
	case len(req.Users) == 0:
		return nil, badRequest("MISSING_USER_ACCOUNT")
	case len(req.Users) > MaxImportUsers:
		return nil, badRequest(fmt.Sprintf("MAXIMUM_USER_COUNT_EXCEEDED : at most %d users per call, got %d", MaxImportUsers, len(req.Users)))
	case req.Algorithm != "" && !slices.Contains(hashAlgorithms, req.Algorithm):
		return nil, badRequest("INVALID_HASH_ALGORITHM")
	case req.Algorithm == "" && slices.ContainsFunc(req.Users, func(u importUser) bool { return u.PasswordHash != "" }):
		return nil, badRequest("MISSING_HASH_ALGORITHM")
	}
	var hash *HashConfig
	if req.Algorithm != "" {
		h := req.HashConfig
		hash = &h
	}
	resp := batchCreateResponse{Kind: "identitytoolkit#UploadAccountResponse"}
	valid := make([]Account, 0, len(req.Users))
	for i, u := range req.Users {
		a, msg := fromImport(u, hash, c)
		if msg != "" {
			resp.Error = append(resp.Error, importError{Index: i, Message: msg})
			continue
		}
		valid = append(valid, a)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range valid {
		if p.put(a) {
			p.replacements++
			if len(p.replaced) < maxReplacedUIDs {
				p.replaced = append(p.replaced, a.UID)
			}
		}
	}
	return resp, nil
}

// fromImport makes the account an imported user describes, or says why the
// user is invalid.
func fromImport(u importUser, hash *HashConfig, c call) (Account, string) {
	if !validUID(u.LocalID) {
		return Account{}, msgInvalidUID
	}
	a := Account{
		UID:           u.LocalID,
		EmailVerified: u.EmailVerified,
		DisplayName:   u.DisplayName,
		Disabled:      u.Disabled,
		CreatedAt:     int64(u.CreatedAt),
		LastLoginAt:   int64(u.LastLoginAt),
		ValidSince:    c.now.Unix(),
	}
	if a.CreatedAt == 0 {
		a.CreatedAt = c.now.UnixMilli()
	}
	if u.Email != "" {
		if !validEmail(u.Email) {
			return Account{}, msgInvalidEmail
		}
		a.Email = canonicalEmail(u.Email)
	}
	if u.PhoneNumber != "" {
		if !validPhone(u.PhoneNumber) {
			return Account{}, msgInvalidPhone
		}
		a.PhoneNumber = u.PhoneNumber
	}
	if u.PhotoURL != "" {
		if !validPhotoURL(u.PhotoURL) {
			return Account{}, msgInvalidPhotoURL
		}
		a.PhotoURL = u.PhotoURL
	}
	if u.CustomAttributes != "" {
		if problem, _ := checkClaims(u.CustomAttributes); problem != claimsOK {
			return Account{}, claimsMessage(problem)
		}
		a.CustomAttributes = u.CustomAttributes
	}
	for _, w := range u.ProviderUserInfo {
		if w.ProviderID == providerPassword || w.ProviderID == providerPhone {
			continue // derived from the account's own fields
		}
		if !validProviderID(w.ProviderID) || w.RawID == "" {
			return Account{}, msgInvalidProvider
		}
		a.Providers = append(a.Providers, w.provider())
	}
	a.Salt = u.Salt
	if u.PasswordHash != "" {
		a.PasswordHash = u.PasswordHash
		h := *hash
		a.Hash = &h
		a.PasswordUpdatedAt = c.now.UnixMilli()
	}
	return a, ""
}

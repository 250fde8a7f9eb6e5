package firebaseprod

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"unicode"
)

const (
	maxUIDLen       = 128
	maxClaimsLen    = 1000
	minPasswordLen  = 6
	maxEmailLen     = 256
	defaultPageSize = 20
)

// reservedClaims are the token claims custom claims must not set.
var reservedClaims = []string{
	"acr", "amr", "at_hash", "aud", "auth_time", "azp", "cnf", "c_hash",
	"exp", "firebase", "iat", "iss", "jti", "nbf", "nonce", "sub",
}

var (
	// e164 is a phone number in E.164 form.
	e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	// providerIDPattern is a provider domain: google.com, oidc.acme,
	// saml.corp, playgames.google.com. A bare strategy name such as
	// "google-oauth2" is not one.
	providerIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$`)
)

func validUID(uid string) bool { return uid != "" && len(uid) <= maxUIDLen }

// validEmail accepts local@domain with no spaces or control characters and
// a domain of non-empty labels.
func validEmail(email string) bool {
	if email == "" || len(email) > maxEmailLen || strings.ContainsFunc(email, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}) {
		return false
	}
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return false
	}
	for label := range strings.SplitSeq(domain, ".") {
		if label == "" {
			return false
		}
	}
	return true
}

func validPhone(phone string) bool { return e164.MatchString(phone) }

func validPhotoURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func validProviderID(id string) bool { return providerIDPattern.MatchString(id) }

// claimsProblem is why custom claims were refused.
type claimsProblem int

const (
	claimsOK claimsProblem = iota
	claimsInvalid
	claimsTooLarge
	claimsForbidden
)

// checkClaims checks serialised custom claims: a JSON object of at most
// 1000 characters setting no reserved claim. forbidden names the reserved
// claim found.
func checkClaims(s string) (problem claimsProblem, forbidden string) {
	if len(s) > maxClaimsLen {
		return claimsTooLarge, ""
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil || m == nil {
		return claimsInvalid, ""
	}
	for _, k := range reservedClaims {
		if _, ok := m[k]; ok {
			return claimsForbidden, k
		}
	}
	return claimsOK, ""
}

// Per-user messages of accounts:batchCreate. Production documents none, so
// these are the stand-in's own sentences (the claims ones follow
// production's wording as the emulator reports it). None names the value.
const (
	msgInvalidUID      = "Invalid localId: it must be 1 to 128 characters."
	msgInvalidEmail    = "Invalid email address."
	msgInvalidPhone    = "Invalid phone number: it must be in E.164 form."
	msgInvalidPhotoURL = "Invalid photoUrl: it must be an absolute http or https URL."
	msgInvalidProvider = "Invalid providerUserInfo: providerId must be a provider domain such as google.com and rawId must be set."
	msgInvalidClaims   = "Invalid custom claims provided."
	msgClaimsTooLarge  = "Custom claims provided are too large."
	msgForbiddenClaim  = "Custom claims provided include a reserved claim."
)

// claimsMessage is the per-user import message of a claims problem.
func claimsMessage(p claimsProblem) string {
	switch p {
	case claimsTooLarge:
		return msgClaimsTooLarge
	case claimsForbidden:
		return msgForbiddenClaim
	}
	return msgInvalidClaims
}

// claimsError is the accounts:update error of a claims problem.
func claimsError(p claimsProblem, forbidden string) *apiError {
	switch p {
	case claimsTooLarge:
		return badRequest("CLAIMS_TOO_LARGE")
	case claimsForbidden:
		return badRequest("FORBIDDEN_CLAIM : " + forbidden)
	}
	return badRequest("INVALID_CLAIMS")
}
